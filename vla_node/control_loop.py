"""A periodic loop on its own thread with absolute deadlines (plain Python, no rclpy).

Deadline k is `start + k * period` on the monotonic clock, so timing errors never accumulate. The
thread sleeps until `spin_s` before the deadline, then spins up to it (yielding the GIL between
clock reads), and runs `step(k)`. Woken after a later deadline already passed (a step or the
scheduler ran late), it counts the missed deadlines as overruns and runs once for the latest one:
no burst of catch-up steps. Period jitter is |interval between two step starts - period|. A step
that starts more than `late_s` (default a quarter period) after its deadline counts as late; overruns
and late steps together are the loop's deadline misses.

A step that raises stops the loop (nothing more is run); the exception is kept in `failure` and
handed to `on_failure`, so the owner can report it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from humanoid_common.diagnostics import LatencyWindow

#: Sleep until this long before a deadline, then spin: covers the sleep's wake-up and GIL latency.
DEFAULT_SPIN_S = 0.001


class ControlLoop:
    """Runs `step(k)` at deadline k (k = 0, 1, 2, ... with gaps after overruns) on a dedicated thread."""

    def __init__(
        self,
        period_s: float,
        step: Callable[[int], None],
        *,
        name: str = "control-loop",
        spin_s: float = DEFAULT_SPIN_S,
        window: int = 5000,
        late_s: float | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"the loop period must be > 0 s, got {period_s}")
        if not 0 <= spin_s < period_s:
            raise ValueError(f"spin_s must be within [0, period), got {spin_s} for a {period_s} s period")
        self.period_s = period_s
        self.spin_s = spin_s
        self.jitter_ms = LatencyWindow(window)
        self.late_s = period_s / 4 if late_s is None else late_s
        self.overruns = 0  # deadlines skipped because the loop was late
        self.late_steps = 0  # steps started more than late_s after their deadline
        self.steps = 0
        self.failure: BaseException | None = None
        self._step = step
        self._on_failure = on_failure
        self._window = window
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; a loop runs once (make a new one to restart)."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop and wait for a running step to finish (idempotent; fine before `start`)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def reset_stats(self) -> None:
        """Forget the jitter samples and the miss counts (e.g. after a warm-up)."""
        self.jitter_ms = LatencyWindow(self._window)
        self.overruns = self.late_steps = 0

    @property
    def deadline_misses(self) -> int:
        return self.overruns + self.late_steps

    def _run(self) -> None:
        start = time.monotonic()
        k = 0
        last_s: float | None = None
        while self._wait_until(start + k * self.period_s):
            now = time.monotonic()
            latest = int((now - start) / self.period_s)  # the latest deadline already passed
            if latest > k:
                self.overruns += latest - k
                k = latest
            if now - (start + k * self.period_s) > self.late_s:
                self.late_steps += 1
            if last_s is not None:
                self.jitter_ms.add(abs(now - last_s - self.period_s) * 1e3)
            last_s = now
            try:
                self._step(k)
            except BaseException as error:  # stop on any failure: never run a broken step again
                self.failure = error
                if self._on_failure is not None:
                    self._on_failure(error)
                return
            self.steps += 1
            k += 1

    def _wait_until(self, deadline: float) -> bool:
        """Sleep, then spin, up to `deadline`; False if stopped meanwhile."""
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if remaining > self.spin_s:
                self._stop.wait(remaining - self.spin_s)
            else:
                time.sleep(0)  # let other threads have the GIL while spinning
        return False
