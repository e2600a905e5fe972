"""Newest-frame-only processing: a one-slot mailbox, a rate limiter and the worker thread using both.

The subscription callback only puts the frame into the slot (replacing, and counting as skipped, any
frame the worker has not taken yet); the worker takes the newest frame when the rate allows. Memory is
bounded by one waiting frame plus the one being processed, whatever the camera rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Stamped(Generic[T]):
    """An item and when it was put into the slot (``time.monotonic()`` seconds)."""

    item: T
    put_at: float


class LatestSlot(Generic[T]):
    """Holds at most one item; a newer item replaces the waiting one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._item: Stamped[T] | None = None
        self.put_count = 0
        self.skipped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.skipped += 1
            self._item = Stamped(item, self._clock())
            self.put_count += 1
            self._cond.notify()

    def take(self, timeout: float) -> Stamped[T] | None:
        """The newest item (removing it), waiting up to ``timeout`` s; None if nothing came."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None

    def wake(self) -> None:
        """Wake a waiting ``take`` (used on stop)."""
        with self._cond:
            self._cond.notify_all()


def rate_error(max_rate_hz: float) -> str | None:
    """Why a max_rate_hz value is refused, or None (the check behind the nodes' live rate parameter)."""
    if not max_rate_hz >= 0:  # also refuses NaN
        return f"must be >= 0 Hz (0 = unlimited), got {max_rate_hz}"
    return None


class RateLimiter:
    """Allows one event per ``1 / max_rate_hz`` seconds; ``max_rate_hz <= 0`` means unlimited."""

    def __init__(self, max_rate_hz: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = -float("inf")
        self.set_rate(max_rate_hz)

    def set_rate(self, max_rate_hz: float) -> None:
        """Change the rate; it applies to the next event, counted from the last one."""
        self.max_rate_hz = max_rate_hz
        self.period_s = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0

    def wait_s(self) -> float:
        """Seconds until the next event is allowed (0 when allowed now)."""
        return max(0.0, self._last + self.period_s - self._clock())

    def mark(self) -> None:
        """Record an event now; the next one is allowed a full period later (no catch-up bursts)."""
        self._last = self._clock()

    def ready(self) -> bool:
        return self.wait_s() == 0.0


class LatestWorker(Generic[T]):
    """A thread that processes only the newest item of a LatestSlot, at most ``max_rate_hz``.

    It first waits until the rate allows, then takes the newest item, so the frame it processes is
    never older than one camera period (plus transport) at processing start. ``process`` exceptions
    are passed to ``on_error`` and the thread keeps going.
    """

    def __init__(
        self,
        process: Callable[[Stamped[T]], None],
        max_rate_hz: float,
        on_error: Callable[[BaseException], None],
        name: str = "latest-worker",
    ) -> None:
        self.slot: LatestSlot[T] = LatestSlot()
        self._process = process
        self._on_error = on_error
        self._limiter = RateLimiter(max_rate_hz)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.processed = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: T) -> None:
        self.slot.put(item)

    @property
    def max_rate_hz(self) -> float:
        return self._limiter.max_rate_hz

    def set_rate(self, max_rate_hz: float) -> None:
        """Change the rate while running (e.g. from a load governor); applies within 0.1 s."""
        self._limiter.set_rate(max_rate_hz)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._limiter.wait_s()
            if wait > 0:
                self._stop.wait(min(wait, 0.1))  # re-check: the rate may change meanwhile
                continue
            stamped = self.slot.take(timeout=0.1)
            if stamped is None or self._stop.is_set():
                continue
            self._limiter.mark()
            try:
                self._process(stamped)
            except Exception as error:  # keep processing later frames; the shell reports it
                self._on_error(error)
            self.processed += 1

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the current item; True when the thread ended within ``timeout``."""
        self._stop.set()
        self.slot.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.slot.clear()
        return not self._thread.is_alive()
