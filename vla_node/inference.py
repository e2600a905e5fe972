"""Policy inference off the control loop (plain Python, no rclpy).

`InferenceWorker` runs `predict_chunk` in its own thread, one request at a time: the control loop
calls `submit` (never blocks; refused while busy) and `poll` (the finished result, if any). An
optional delay is added to every inference to emulate slower models. `predict_blocking` is the same
call made synchronously, for comparison and benchmarks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from humanoid_common.diagnostics import LatencyWindow
from vla_node.policy import Observation, Policy


@dataclass(frozen=True)
class Request:
    observation: Observation
    tick: int  # control tick the observation was taken at
    sent_s: float  # monotonic time
    reset: bool = False  # reset the policy (new episode or instruction) before predicting


@dataclass(frozen=True)
class Result:
    request: Request
    chunk: np.ndarray | None  # (horizon, action_dim) or None on error
    latency_s: float  # from submit to result, delay included
    error: str = ""


class InferenceWorker:
    """A thread that runs one policy call at a time."""

    def __init__(
        self, policy: Policy, delay_s: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if delay_s < 0:
            raise ValueError(f"inference delay must be >= 0, got {delay_s}")
        self.policy = policy
        self.delay_s = delay_s
        self._clock = clock
        self.latency_ms = LatencyWindow(200)
        self.errors = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._request: Request | None = None
        self._result: Result | None = None
        self._busy = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="vla-inference", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, observation: Observation, tick: int, *, reset: bool = False) -> bool:
        """Queue one observation; False (nothing queued) while a previous one is still running."""
        with self._lock:
            if self._busy or self._closing:
                return False
            self._busy = True
            self._request = Request(observation, tick, self._clock(), reset)
            self._wake.notify()
            return True

    def poll(self) -> Result | None:
        """The finished result, once; None if none is ready."""
        with self._lock:
            result, self._result = self._result, None
            return result

    def predict_blocking(self, observation: Observation, tick: int = 0) -> Result:
        """The same inference, in the caller's thread."""
        return self._infer(Request(observation, tick, self._clock()))

    def _infer(self, request: Request) -> Result:
        try:
            if request.reset:
                self.policy.reset()
            if self.delay_s:
                time.sleep(self.delay_s)
            chunk = np.asarray(self.policy.predict_chunk(request.observation), dtype=np.float64)
            error = ""
        except Exception as exc:  # a failing model must not kill the thread; the node reports it
            chunk, error = None, f"{type(exc).__name__}: {exc}"
            self.errors += 1
        latency_s = self._clock() - request.sent_s
        self.latency_ms.add(latency_s * 1e3)
        return Result(request, chunk, latency_s, error)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._request is None and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                request, self._request = self._request, None
            result = self._infer(request)
            with self._lock:
                self._result = result
                self._busy = False

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (waits for a running inference up to `timeout_s`)."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout_s)
