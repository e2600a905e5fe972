"""Tests for humanoid_common.diagnostics (statistics, status building, /diagnostics publisher)."""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy

from harness import RosHarness, wait_for
from humanoid_common.diagnostics import (
    ERROR,
    OK,
    STALE,
    WARN,
    DiagnosticsPublisher,
    LatencyWindow,
    RateMeter,
    build_status,
    format_value,
    level_byte,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- LatencyWindow --------------------------------------------------------------------------------


def test_latency_window_matches_numpy_on_last_n() -> None:
    rng = np.random.default_rng(7)
    data = rng.exponential(12.0, size=250)
    window = LatencyWindow(size=100)
    for value in data:
        window.add(value)
    last = data[-100:]
    assert window.count == 100
    assert window.mean == pytest.approx(last.mean())
    assert window.median == pytest.approx(np.median(last))
    assert window.p90 == pytest.approx(np.percentile(last, 90))
    assert window.p99 == pytest.approx(np.percentile(last, 99))
    assert window.max == pytest.approx(last.max())
    assert window.percentile(25) == pytest.approx(np.percentile(last, 25))


def test_latency_window_known_values() -> None:
    window = LatencyWindow(size=10)
    for value in range(1, 11):  # 1..10
        window.add(value)
    assert window.mean == 5.5
    assert window.median == 5.5
    assert window.p90 == pytest.approx(9.1)
    assert window.p99 == pytest.approx(9.91)
    assert window.max == 10
    window.add(100)  # evicts 1
    assert window.count == 10
    assert window.mean == pytest.approx((sum(range(2, 11)) + 100) / 10)
    assert window.max == 100


def test_latency_window_summary_and_empty() -> None:
    window = LatencyWindow(size=5)
    empty = window.summary("lat_ms.")
    assert empty["lat_ms.count"] == 0
    assert all(math.isnan(empty[f"lat_ms.{k}"]) for k in ("mean", "median", "p90", "p99", "max"))
    assert math.isnan(window.mean)
    assert math.isnan(window.max)
    assert math.isnan(window.p99)
    for value in (4.0, 1.0, 3.0, 2.0):
        window.add(value)
    summary = window.summary()
    assert list(summary) == ["count", "mean", "median", "p90", "p99", "max"]
    assert summary["count"] == 4
    assert summary["mean"] == 2.5
    assert summary["median"] == 2.5
    assert summary["p90"] == pytest.approx(np.percentile([1, 2, 3, 4], 90))
    assert summary["max"] == 4.0


def test_latency_window_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="size must be at least 1, got 0"):
        LatencyWindow(size=0)


# --- RateMeter ------------------------------------------------------------------------------------


def test_rate_meter_steady_rate() -> None:
    clock = FakeClock()
    meter = RateMeter(window_s=2.0, clock=clock)
    assert meter.rate() == 0.0
    for _ in range(100):  # 30 Hz for 100 events (3.3 s)
        clock.now += 1 / 30
        meter.tick()
    assert meter.rate() == pytest.approx(30.0, rel=0.02)


def test_rate_meter_partial_window_uses_elapsed_time() -> None:
    clock = FakeClock()
    meter = RateMeter(window_s=10.0, clock=clock)
    for _ in range(5):
        clock.now += 0.1
        meter.tick()
    # 5 events in 0.5 s elapsed, not 5 events over the 10 s window.
    assert meter.rate() == pytest.approx(10.0)


def test_rate_meter_decays_when_events_stop_and_counts_batches() -> None:
    clock = FakeClock()
    meter = RateMeter(window_s=1.0, clock=clock)
    clock.now += 1.0
    meter.tick(20)
    assert meter.rate() == pytest.approx(20.0)
    clock.now += 0.5
    assert meter.rate() == pytest.approx(20.0)  # still inside the window
    clock.now += 0.6
    assert meter.rate() == 0.0


def test_rate_meter_rejects_bad_window() -> None:
    with pytest.raises(ValueError, match="window_s must be > 0"):
        RateMeter(window_s=0.0)


# --- build_status ---------------------------------------------------------------------------------


def test_level_constants_are_message_bytes() -> None:
    assert (OK, WARN, ERROR, STALE) == (b"\x00", b"\x01", b"\x02", b"\x03")
    assert level_byte(2) == ERROR
    assert level_byte(DiagnosticStatus.WARN) == WARN
    for bad in (4, -1, b"\x07", b"", True, "OK"):
        with pytest.raises(ValueError, match="diagnostic level must be OK/WARN/ERROR/STALE"):
            level_byte(bad)  # type: ignore[arg-type]


def test_format_value() -> None:
    assert format_value(12.345678) == "12.35"
    assert format_value(np.float32(0.000123456)) == "0.0001235"
    assert format_value(1234567.0) == "1.235e+06"
    assert format_value(float("nan")) == "nan"
    assert format_value(3) == "3"
    assert format_value(np.int64(7)) == "7"
    assert format_value(True) == "True"
    assert format_value("cuda:0") == "cuda:0"


def test_build_status_converts_values() -> None:
    values: dict[str, Any] = {"fps": 29.9701, "dropped": 3, "device": "cuda:0", "ok": False}
    status = build_status("perception: camera", "cam0", 1, "low rate", values)
    assert isinstance(status, DiagnosticStatus)
    assert status.level == WARN
    assert (status.name, status.hardware_id, status.message) == ("perception: camera", "cam0", "low rate")
    assert [(kv.key, kv.value) for kv in status.values] == [
        ("fps", "29.97"),
        ("dropped", "3"),
        ("device", "cuda:0"),
        ("ok", "False"),
    ]
    assert build_status("x", "", OK, "fine", {}).values == []
    assert build_status("x", "", ERROR, "bad").level == ERROR


# --- DiagnosticsPublisher (integration) -----------------------------------------------------------


@pytest.mark.integration
def test_publisher_reports_good_and_failing_tasks(ros: RosHarness) -> None:
    suffix = uuid.uuid4().hex[:8]
    name = f"diag_test_{suffix}"
    node = ros.node(name)
    calls = {"camera": 0}

    def camera_ok() -> tuple[bytes, str, dict[str, Any]]:
        calls["camera"] += 1
        return OK, "streaming", {"fps": 30.0, "frames": calls["camera"]}

    def broken() -> tuple[bytes, str, dict[str, Any]]:
        raise RuntimeError("model not loaded")

    received: list[DiagnosticArray] = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(DiagnosticArray, "/diagnostics", received.append, qos)
    diag = DiagnosticsPublisher(node, name, period_s=0.1, hardware_id="test-hw")
    diag.add("camera", camera_ok)
    diag.add("policy", broken)
    with pytest.raises(ValueError, match="already registered"):
        diag.add("camera", camera_ok)

    def ours() -> list[DiagnosticArray]:
        # Other test runs may share the topic: keep only arrays from this publisher, with both tasks.
        return [
            a for a in list(received) if {s.name for s in a.status} >= {f"{name}: camera", f"{name}: policy"}
        ]

    wait_for(lambda: len(ours()) >= 2, 3.0, "two DiagnosticArrays from the publisher")
    array = ours()[-1]
    by_name = {s.name: s for s in array.status}
    good, bad = by_name[f"{name}: camera"], by_name[f"{name}: policy"]
    assert good.level == OK
    assert good.message == "streaming"
    assert good.hardware_id == "test-hw"
    assert {kv.key: kv.value for kv in good.values}["fps"] == "30"
    assert bad.level == ERROR
    assert bad.message == "task raised RuntimeError: model not loaded"
    assert array.header.stamp.sec > 0  # stamped from the node clock
    assert calls["camera"] >= 2  # the timer keeps running after the failing task
    diag.destroy()
