"""Diagnostics helpers shared by every node: latency/rate statistics and a /diagnostics publisher.

``LatencyWindow``, ``RateMeter`` and ``build_status`` are plain Python (usable from core modules);
``DiagnosticsPublisher`` needs an rclpy node, imported lazily so the rest works without rclpy.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

if TYPE_CHECKING:
    from rclpy.node import Node

__all__ = [
    "ERROR",
    "OK",
    "STALE",
    "WARN",
    "DiagnosticsPublisher",
    "LatencyWindow",
    "RateMeter",
    "StatusFn",
    "build_status",
    "format_value",
    "level_byte",
]

# DiagnosticStatus levels; rclpy exposes them as one-byte ``bytes`` (b"\x00" ... b"\x03").
OK: bytes = DiagnosticStatus.OK
WARN: bytes = DiagnosticStatus.WARN
ERROR: bytes = DiagnosticStatus.ERROR
STALE: bytes = DiagnosticStatus.STALE

#: A level as int (0-3) or the one-byte ``bytes`` of ``DiagnosticStatus``.
Level = int | bytes
#: A status task: returns (level, message, values) each time diagnostics are published.
StatusFn = Callable[[], tuple[Level, str, Mapping[str, Any]]]


class LatencyWindow:
    """Rolling statistics over the last ``size`` samples (any unit; name keys after it)."""

    def __init__(self, size: int = 100) -> None:
        if size < 1:
            raise ValueError(f"LatencyWindow size must be at least 1, got {size}")
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        """Record one sample."""
        self._samples.append(float(value))

    @property
    def count(self) -> int:
        """Samples currently in the window."""
        return len(self._samples)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100, linear interpolation) of the window; NaN when empty."""
        if not self._samples:
            return math.nan
        return float(np.percentile(np.fromiter(self._samples, dtype=float), q))

    @property
    def mean(self) -> float:
        """Mean of the window; NaN when empty."""
        return float(np.mean(np.fromiter(self._samples, dtype=float))) if self._samples else math.nan

    @property
    def median(self) -> float:
        """Median of the window; NaN when empty."""
        return self.percentile(50)

    @property
    def p90(self) -> float:
        """90th percentile of the window; NaN when empty."""
        return self.percentile(90)

    @property
    def p99(self) -> float:
        """99th percentile of the window; NaN when empty."""
        return self.percentile(99)

    @property
    def max(self) -> float:
        """Largest sample in the window; NaN when empty."""
        return max(self._samples) if self._samples else math.nan

    def summary(self, prefix: str = "") -> dict[str, float]:
        """count, mean, median, p90, p99 and max in one pass, keys prefixed (e.g. "latency_ms.")."""
        if not self._samples:
            stats = dict.fromkeys(("mean", "median", "p90", "p99", "max"), math.nan)
        else:
            data = np.fromiter(self._samples, dtype=float)
            median, p90, p99 = np.percentile(data, [50, 90, 99])
            stats = {
                "mean": float(data.mean()),
                "median": float(median),
                "p90": float(p90),
                "p99": float(p99),
                "max": float(data.max()),
            }
        return {f"{prefix}count": len(self._samples), **{prefix + k: v for k, v in stats.items()}}


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds.

    ``clock`` returns seconds (default ``time.monotonic``; inject a fake for tests). Until a full window
    has passed since creation, the rate is taken over the elapsed time. Memory grows with
    rate * window (one entry per ``tick`` call).
    """

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not window_s > 0.0:
            raise ValueError(f"RateMeter window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._start = clock()
        self._events: deque[tuple[float, int]] = deque()
        self._in_window = 0

    def tick(self, n: int = 1) -> None:
        """Record ``n`` events now."""
        now = self._clock()
        self._events.append((now, n))
        self._in_window += n
        self._expire(now)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._events and self._events[0][0] <= horizon:
            self._in_window -= self._events.popleft()[1]

    def rate(self) -> float:
        """Events per second over the last ``window_s`` (or since creation, if shorter); 0.0 at start."""
        now = self._clock()
        self._expire(now)
        span = min(self.window_s, now - self._start)
        return self._in_window / span if span > 0.0 else 0.0


_LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


def level_byte(level: Level) -> bytes:
    """Normalise a level given as int (0-3) or one-byte ``bytes`` to the ``bytes`` rclpy expects."""
    if isinstance(level, (bytes, bytearray)) and len(level) == 1:
        value = bytes(level)
    elif isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 255:
        value = bytes([level])
    else:
        raise ValueError(f"diagnostic level must be OK/WARN/ERROR/STALE (0-3), got {level!r}")
    if value not in _LEVEL_NAMES:
        raise ValueError(f"diagnostic level must be OK/WARN/ERROR/STALE (0-3), got {value[0]}")
    return value


def format_value(value: Any) -> str:
    """Render a diagnostic value: floats to 4 significant digits, everything else with ``str``."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def build_status(
    name: str,
    hardware_id: str,
    level: Level,
    message: str,
    values: Mapping[str, Any] | None = None,
) -> DiagnosticStatus:
    """A ``DiagnosticStatus`` with ``values`` as string key/value pairs (insertion order kept)."""
    status = DiagnosticStatus()
    status.name = name
    status.hardware_id = hardware_id
    status.level = level_byte(level)
    status.message = message
    status.values = [KeyValue(key=str(k), value=format_value(v)) for k, v in (values or {}).items()]
    return status


class DiagnosticsPublisher:
    """Publish one ``DiagnosticArray`` every ``period_s`` with a status per registered task.

    Status names are ``"<name>: <task_name>"``. A task that raises (or returns something malformed)
    is reported as an ERROR status naming the exception; the node keeps running and the error is
    logged once per distinct failure.
    """

    def __init__(
        self,
        node: Node,
        name: str,
        period_s: float = 1.0,
        *,
        hardware_id: str = "",
        topic: str = "/diagnostics",
    ) -> None:
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        if not period_s > 0.0:
            raise ValueError(f"diagnostics period_s must be > 0, got {period_s}")
        self._node = node
        self.name = name
        self.hardware_id = hardware_id
        self._tasks: dict[str, StatusFn] = {}
        self._last_error: dict[str, str] = {}
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._publisher = node.create_publisher(DiagnosticArray, topic, qos)
        self._timer = node.create_timer(period_s, self.publish_now)

    def add(self, task_name: str, fn: StatusFn) -> None:
        """Register ``fn`` returning ``(level, message, values)``; task names must be unique."""
        if task_name in self._tasks:
            raise ValueError(f"diagnostic task {task_name!r} is already registered on {self.name!r}")
        self._tasks[task_name] = fn

    def remove(self, task_name: str) -> None:
        """Unregister a task (no error if absent)."""
        self._tasks.pop(task_name, None)
        self._last_error.pop(task_name, None)

    def _run_task(self, task_name: str, fn: StatusFn) -> DiagnosticStatus:
        status_name = f"{self.name}: {task_name}"
        try:
            level, message, values = fn()
            status = build_status(status_name, self.hardware_id, level, message, values)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if self._last_error.get(task_name) != error:
                self._node.get_logger().error(f"diagnostic task {status_name!r} failed: {error}")
                self._last_error[task_name] = error
            return build_status(status_name, self.hardware_id, ERROR, f"task raised {error}", {})
        self._last_error.pop(task_name, None)
        return status

    def publish_now(self) -> DiagnosticArray:
        """Run every task, publish the array, and return it."""
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status = [self._run_task(task, fn) for task, fn in list(self._tasks.items())]
        self._publisher.publish(array)
        return array

    def destroy(self) -> None:
        """Destroy the timer and publisher (the node stays)."""
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._publisher)
