"""Newest-frame-only processing: a mailbox of one slot per source, a rate limiter and the worker
thread using both.

The subscription callback only puts the frame into its source's slot (replacing, and counting as
skipped, any frame of that source the worker has not taken yet); the worker takes the newest frame of
every source that has one when the rate allows, as one batch. Memory is bounded by one waiting frame
per source plus the batch being processed, whatever the camera rates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Stamped(Generic[T]):
    """An item, when it was put into the slot (``time.monotonic()`` seconds) and its source's key."""

    item: T
    put_at: float
    key: Hashable = None


class LatestSlot(Generic[T]):
    """Holds at most one item per key (one key unless given); a newer item replaces the waiting one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._items: dict[Hashable, Stamped[T]] = {}
        self.put_count = 0
        self.skipped = 0

    def put(self, item: T, key: Hashable = None) -> None:
        with self._cond:
            if key in self._items:
                self.skipped += 1
            self._items[key] = Stamped(item, self._clock(), key)
            self.put_count += 1
            self._cond.notify()

    def take(self, timeout: float) -> list[Stamped[T]]:
        """The newest item of every key that has one (removing them), in the order their keys first
        came, waiting up to ``timeout`` s; empty if nothing came."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            items = list(self._items.values())
            self._items.clear()
            return items

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

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
    """A thread that processes only the newest items of a LatestSlot, at most ``max_rate_hz`` batches
    a second.

    It first waits until the rate allows, then takes the newest item of each key as one batch, so a
    frame it processes is never older than one camera period (plus transport) at processing start.
    ``process`` exceptions are passed to ``on_error`` and the thread keeps going.
    """

    def __init__(
        self,
        process: Callable[[list[Stamped[T]]], None],
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

    def submit(self, item: T, key: Hashable = None) -> None:
        self.slot.put(item, key)

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
            batch = self.slot.take(timeout=0.1)
            if not batch or self._stop.is_set():
                continue
            self._limiter.mark()
            try:
                self._process(batch)
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
