"""ControlLoop: deadlines, overrun skipping, failure and stop (behaviour only; bounds are generous)."""

from __future__ import annotations

import threading
import time

import pytest

from harness import wait_for
from vla_node.control_loop import ControlLoop

PERIOD_S = 0.005


class Recorder:
    def __init__(self, slow_at: int | None = None, slow_s: float = 0.0, fail_at: int | None = None) -> None:
        self.ticks: list[int] = []
        self.threads: set[str] = set()
        self.slow_at, self.slow_s, self.fail_at = slow_at, slow_s, fail_at

    def __call__(self, k: int) -> None:
        self.ticks.append(k)
        self.threads.add(threading.current_thread().name)
        if k == self.fail_at:
            raise RuntimeError("broken step")
        if k == self.slow_at:
            time.sleep(self.slow_s)


def test_steps_run_on_the_loop_thread_with_increasing_deadlines():
    step = Recorder()
    loop = ControlLoop(PERIOD_S, step, name="test-loop")
    loop.start()
    wait_for(lambda: len(step.ticks) >= 20, 10, "20 steps")
    loop.stop()
    assert not loop.running
    assert step.threads == {"test-loop"}
    assert step.ticks[0] == 0
    assert all(b > a for a, b in zip(step.ticks, step.ticks[1:], strict=False))
    assert loop.steps == len(step.ticks)
    assert len(step.ticks) - 1 + loop.overruns == step.ticks[-1]  # each deadline either ran or was skipped
    assert loop.jitter_ms.count == len(step.ticks) - 1
    assert loop.failure is None


def test_a_late_step_skips_missed_deadlines_instead_of_bursting():
    step = Recorder(slow_at=3, slow_s=4.5 * PERIOD_S)
    loop = ControlLoop(PERIOD_S, step)
    loop.start()
    wait_for(lambda: len(step.ticks) >= 8, 10, "steps after the slow one")
    loop.stop()
    after_slow = step.ticks[step.ticks.index(3) + 1]
    assert after_slow >= 3 + 4, step.ticks  # deadlines 4..7 passed during the slow step
    assert loop.overruns >= 3
    assert loop.jitter_ms.max >= 3 * PERIOD_S * 1e3  # the late interval shows as jitter


def test_a_step_past_its_deadline_without_skipping_one_counts_as_late():
    step = Recorder(slow_at=2, slow_s=1.5 * PERIOD_S)  # deadline 3 passes during step 2, deadline 4 not
    loop = ControlLoop(PERIOD_S, step)
    loop.start()
    wait_for(lambda: len(step.ticks) >= 6, 10, "steps after the slow one")
    loop.stop()
    assert 3 in step.ticks, step.ticks  # run late, not skipped
    assert loop.late_steps >= 1
    assert loop.deadline_misses == loop.overruns + loop.late_steps
    loop.reset_stats()
    assert loop.deadline_misses == 0


def test_stop_ends_the_loop_and_no_step_runs_after_it():
    step = Recorder()
    loop = ControlLoop(0.05, step)
    loop.start()
    wait_for(lambda: len(step.ticks) >= 1, 10, "a first step")
    started = time.monotonic()
    loop.stop()
    assert not loop.running
    assert time.monotonic() - started < 2.0  # wakes from its sleep, does not wait out the period
    count = len(step.ticks)
    time.sleep(0.15)
    assert len(step.ticks) == count
    loop.stop()  # idempotent


def test_stop_before_start_and_single_start():
    loop = ControlLoop(PERIOD_S, Recorder())
    loop.stop()
    assert not loop.running
    loop = ControlLoop(PERIOD_S, Recorder())
    loop.start()
    with pytest.raises(RuntimeError):
        loop.start()
    loop.stop()


def test_a_failing_step_stops_the_loop_and_is_reported():
    reported: list[BaseException] = []
    step = Recorder(fail_at=2)
    loop = ControlLoop(PERIOD_S, step, on_failure=reported.append)
    loop.start()
    wait_for(lambda: not loop.running, 10, "the loop to stop after the failure")
    assert step.ticks[-1] == 2
    assert isinstance(loop.failure, RuntimeError)
    assert reported == [loop.failure]
    assert loop.steps == 2


def test_reset_stats_clears_jitter_and_overruns():
    step = Recorder(slow_at=1, slow_s=3 * PERIOD_S)
    loop = ControlLoop(PERIOD_S, step)
    loop.start()
    wait_for(lambda: len(step.ticks) >= 4, 10, "steps")
    loop.stop()
    assert loop.overruns > 0
    loop.reset_stats()
    assert loop.overruns == 0
    assert loop.jitter_ms.count == 0


@pytest.mark.parametrize(("period_s", "spin_s"), [(0.0, 0.0), (-1.0, 0.0), (0.01, 0.01), (0.01, -0.001)])
def test_invalid_period_or_spin_is_refused(period_s, spin_s):
    with pytest.raises(ValueError, match=r"period|spin"):
        ControlLoop(period_s, Recorder(), spin_s=spin_s)
