"""A background thread fed through a bounded queue: newest work wins, nothing queues unboundedly."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundWorker(Generic[T]):
    """Runs `handle(batch)` on its own thread with up to `max_batch` pending items, oldest first.

    At most `max_pending` items wait; submitting more drops the oldest (counted in `dropped`). With
    max_pending=1 this is "newest frame only". Exceptions from `handle` go to `on_error` and the thread
    keeps running.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], None],
        on_error: Callable[[Exception], None],
        *,
        max_pending: int = 1,
        max_batch: int = 1,
    ) -> None:
        self._handle = handle
        self._on_error = on_error
        self._max_batch = max_batch
        self._pending: deque[T] = deque(maxlen=max_pending)
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self.dropped = 0
        self.handled = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        with self._cond:
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append(item)
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                batch = [self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))]
                self._busy = True
            try:
                self._handle(batch)
            except Exception as exc:  # the worker must survive one bad frame
                self._on_error(exc)
            with self._cond:
                self._busy = False
                self.handled += len(batch)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the batch in progress; pending items are dropped."""
        with self._cond:
            self._stop = True
            self._pending.clear()
            self._cond.notify()
        self._thread.join(timeout)
