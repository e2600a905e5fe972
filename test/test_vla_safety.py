"""Safety layer: each limit, NaN/inf, stale inputs, empty queue, disable and stop; limit files."""

import math
import sys
import threading

import numpy as np
import pytest

from vla_node.safety import (
    Inputs,
    Intervention,
    JointLimit,
    LimitsError,
    SafetyConfig,
    SafetyLayer,
    load_limits_urdf,
    load_limits_yaml,
)

JOINTS = ("a", "b")
DT = 0.04
REST_STEPS = SafetyConfig(DT).rest_steps


def layer(**limits) -> SafetyLayer:
    limit = JointLimit(**limits)
    safety = SafetyLayer(JOINTS, dict.fromkeys(JOINTS, limit), SafetyConfig(DT, 0.2, 0.1))
    assert safety.enable(True)[0]
    return safety


def fresh(action, measured=(0.0, 0.0), **ages) -> Inputs:
    ages = {"camera_age_s": 0.01, "joint_state_age_s": 0.01, **ages}
    a = None if action is None else np.asarray(action, dtype=float)
    return Inputs(action=a, measured=np.asarray(measured, dtype=float), **ages)


def started(safety: SafetyLayer, measured=(0.0, 0.0)) -> SafetyLayer:
    """Steps at rest until the run starts at `measured`."""
    for _ in range(REST_STEPS - 1):
        assert safety.step(fresh(None, measured)).intervention is Intervention.WAITING_FOR_REST
    decision = safety.step(fresh(None, measured))
    assert decision.intervention is Intervention.START
    np.testing.assert_array_equal(decision.command, measured)
    np.testing.assert_array_equal(decision.velocity, [0.0, 0.0])
    return safety


def test_a_run_starts_at_rest_at_the_measured_position():
    started(layer(), measured=(0.3, -0.2))


def test_no_run_starts_while_the_arm_moves():
    safety = layer()
    for i in range(10):
        decision = safety.step(fresh([1.0, 1.0], measured=(0.02 * i, 0.0)))
        assert decision.command is None
        assert decision.intervention is Intervention.WAITING_FOR_REST


def test_a_valid_action_passes_unchanged():
    safety = started(layer())
    decision = safety.step(fresh([0.1, -0.2]))
    assert decision.intervention is None
    assert decision.clamped == ()
    np.testing.assert_allclose(decision.command, [0.1, -0.2])
    np.testing.assert_allclose(decision.velocity, [0.1 / DT, -0.2 / DT])


def test_the_position_limit_is_approached_braking_and_never_passed():
    safety = started(layer(lower=-1.0, upper=1.0, velocity=2.0, acceleration=10.0))
    positions, velocities = [], []
    for _ in range(60):
        decision = safety.step(fresh([3.0, -0.5], measured=safety._last))
        positions.append(decision.command[0])
        velocities.append(decision.velocity[0])
    assert max(positions) <= 1.0
    assert positions[-1] == pytest.approx(1.0, abs=1e-9)  # it gets there...
    steps = np.diff([0.0, *velocities])
    assert np.all(np.abs(steps) <= 10.0 * DT + 1e-9)  # ...without a velocity jump at the limit
    assert safety.counts["position_limit"] > 0


def test_velocity_limit_clamps_the_step():
    safety = started(layer(velocity=1.0))  # at most 0.04 per 40 ms step
    decision = safety.step(fresh([1.0, 0.0]))
    np.testing.assert_allclose(decision.command, [0.04, 0.0])
    assert decision.clamped == (Intervention.VELOCITY_LIMIT,)


def test_acceleration_limit_ramps_the_velocity():
    safety = started(layer(acceleration=10.0))  # velocity may change by 0.4 rad/s per step
    first = safety.step(fresh([1.0, 0.0])).command
    np.testing.assert_allclose(first, [0.4 * DT, 0.0])
    second = safety.step(fresh([1.0, 0.0], measured=first)).command
    np.testing.assert_allclose(second, first + np.array([0.8 * DT, 0.0]))
    assert safety.counts["acceleration_limit"] == 2


def test_a_hold_brakes_at_the_acceleration_limit():
    safety = started(layer(velocity=1.0, acceleration=5.0))
    for _ in range(10):
        moving = safety.step(fresh([5.0, 0.0], measured=safety._last))
    assert moving.velocity[0] == pytest.approx(1.0)
    velocities = []
    for _ in range(10):
        decision = safety.step(fresh(None, measured=safety._last))
        assert decision.intervention is Intervention.EMPTY_QUEUE
        velocities.append(decision.velocity[0])
    np.testing.assert_allclose(velocities[:5], [0.8, 0.6, 0.4, 0.2, 0.0], atol=1e-12)
    assert velocities[5:] == [0.0] * 5  # then it holds


@pytest.mark.parametrize("bad", [[math.nan, 0.0], [0.0, math.inf], [0.0, 0.0, 0.0]])
def test_invalid_actions_are_rejected_and_the_robot_holds(bad):
    safety = started(layer())
    safety.step(fresh([0.2, 0.3]))
    decision = safety.step(fresh(bad, measured=(0.2, 0.3)))
    assert decision.intervention is Intervention.INVALID_ACTION
    np.testing.assert_allclose(decision.command, [0.2, 0.3])  # last command (no acceleration limit)
    assert safety.counts["invalid_action"] == 1


@pytest.mark.parametrize(
    ("ages", "kind"),
    [
        ({"camera_age_s": 0.25}, Intervention.STALE_CAMERA),
        ({"camera_age_s": None}, Intervention.STALE_CAMERA),
        ({"joint_state_age_s": 0.11}, Intervention.STALE_JOINT_STATES),
        ({"camera_deadline_missed": True}, Intervention.STALE_CAMERA),
        ({"joint_state_deadline_missed": True}, Intervention.STALE_JOINT_STATES),
    ],
)
def test_stale_inputs_hold(ages, kind):
    safety = started(layer(), measured=(0.1, 0.2))
    decision = safety.step(fresh([0.5, 0.5], measured=(0.1, 0.2), **ages))
    assert decision.intervention is kind
    np.testing.assert_allclose(decision.command, [0.1, 0.2])
    assert safety.counts[kind.value] == 1


def test_no_run_starts_on_stale_joint_states():
    safety = layer()
    for _ in range(5):
        decision = safety.step(fresh(None, joint_state_age_s=0.5))
        assert decision.command is None
        assert decision.intervention is Intervention.STALE_JOINT_STATES


def test_empty_queue_holds_and_resumes_smoothly():
    safety = started(layer(velocity=1.0))
    assert safety.step(fresh(None)).intervention is Intervention.EMPTY_QUEUE
    resumed = safety.step(fresh([1.0, 0.0]))
    np.testing.assert_allclose(resumed.command, [0.04, 0.0])


def test_disabled_publishes_nothing_and_counts():
    safety = layer()
    assert safety.enable(False)[0]
    decision = safety.step(fresh([0.1, 0.1]))
    assert decision.command is None
    assert decision.intervention is Intervention.DISABLED
    assert safety.counts["disabled"] == 1


def test_disabling_brakes_to_rest_then_stops_publishing():
    safety = started(layer(velocity=1.0, acceleration=5.0))
    for _ in range(10):
        safety.step(fresh([5.0, 0.0], measured=safety._last))
    accepted, message = safety.enable(False)
    assert accepted
    assert "braking" in message
    braking = []
    while (decision := safety.step(fresh([5.0, 0.0], measured=safety._last))).command is not None:
        assert decision.intervention is Intervention.DISABLED
        braking.append(decision.velocity[0])
    np.testing.assert_allclose(braking, [0.8, 0.6, 0.4, 0.2, 0.0], atol=1e-12)
    assert not safety.running


def test_no_joint_state_yet_publishes_nothing():
    decision = layer().step(Inputs(np.zeros(2), None, 0.01, None))
    assert decision.command is None
    assert decision.intervention is Intervention.NO_JOINT_STATE


def test_stop_holds_until_enabled_again():
    safety = started(layer())
    safety.step(fresh([0.1, 0.1]))
    safety.stop()
    decision = safety.step(fresh([0.5, 0.5], measured=(0.1, 0.1)))
    assert decision.intervention is Intervention.STOPPED
    np.testing.assert_allclose(decision.command, [0.1, 0.1])
    assert safety.enable(True)[0]
    assert safety.step(fresh([0.5, 0.5], measured=(0.1, 0.1))).intervention is None


@pytest.mark.parametrize("measured", [(1e6, 0.0), (0.0, -1.5), (math.nan, 0.0), (0.0,), (0.0, 0.0, 0.0)])
def test_a_measured_state_outside_the_limits_or_malformed_is_a_fault(measured):
    safety = SafetyLayer(JOINTS, dict.fromkeys(JOINTS, JointLimit(-1.0, 1.0, 2.0)), SafetyConfig(DT))
    decision = safety.step(fresh(None, measured))
    assert decision.command is None
    assert safety.condition is not None
    accepted, message = safety.enable(True)
    assert not accepted
    assert safety.condition in message
    assert not safety.enabled


def test_a_measured_state_that_leaves_the_commands_latches_a_fault():
    safety = started(layer(lower=-2.0, upper=2.0, velocity=1.0, acceleration=50.0))
    safety.step(fresh([0.04, 0.0]))
    decision = safety.step(fresh([0.08, 0.0], measured=(1.5, 0.0)))  # 1.46 rad from the command
    assert decision.intervention is Intervention.FAULT
    assert "last commanded" in safety.fault
    np.testing.assert_allclose(decision.command, [0.04, 0.0])  # braking (one step: 50 rad/s^2)
    assert safety.step(fresh([0.08, 0.0], measured=(1.5, 0.0))).command is None  # at rest: output stops
    safety.step(fresh([0.08, 0.0], measured=(1.5, 0.0)))
    assert not safety.enable(True)[0]  # still inconsistent: refused
    safety.step(fresh(None, measured=(0.04, 0.0)))  # the arm is where it was commanded again
    assert safety.enable(True) == (
        True,
        "motion enabled; the first command is the measured position once the arm is at rest",
    )
    assert safety.fault is None


def test_after_a_pause_a_run_starts_where_the_arm_was_moved_within_its_velocity_limit():
    safety = started(layer(velocity=1.0))
    assert safety.enable(False)[0]
    assert safety.step(fresh(None)).command is None
    safety.step(Inputs(None, np.array([0.5, 0.0]), 0.01, 0.01, time_s=None))  # moved 0.5 in one step
    assert "farther" in (safety.condition or "") or "apart" in (safety.condition or "")
    assert not safety.enable(True)[0]  # 0.5 rad in 80 ms is faster than 1 rad/s: a jump
    for _ in range(20):  # 0.8 s later the arm could have got there
        safety.step(fresh(None, measured=(0.5, 0.0)))
    assert safety.condition is None
    assert safety.enable(True)[0]
    decision = safety.step(fresh(None, measured=(0.5, 0.0)))  # at rest for long enough already
    assert decision.intervention is Intervention.START
    np.testing.assert_allclose(decision.command, [0.5, 0.0])


def test_spoofed_joint_states_while_enable_toggles_never_move_the_arm_out_of_bounds():
    """The hostile run that found the old bug: finite but wrong joint states interleaved with the real
    ones while /vla/enable is called again and again. The arm stays within its limits, moves no faster
    than allowed, and once the spoofing starts it only brakes: no run starts on such joint states."""
    limit = JointLimit(-1.2, 3.3, 2.0, 25.0)
    safety = SafetyLayer(JOINTS, dict.fromkeys(JOINTS, limit), SafetyConfig(1 / 24))
    safety.enable(True)
    arm = np.zeros(2)
    before, during = [], []
    for i in range(2000):
        spoofing = i >= 30
        spoofed = spoofing and i % 3 == 1
        measured = np.array([1e6, -1e6]) if spoofed and i % 2 else np.array([3.2, -1.1]) if spoofed else arm
        if spoofing and i % 5 == 0:
            safety.enable(True)
        decision = safety.step(fresh(arm + 0.5, measured))
        if decision.command is not None:
            (during if spoofing else before).append(decision.command)
            arm = decision.command
    assert len(before) > 20, "the arm never moved: the test proves nothing"
    positions = np.array(before + during)
    assert positions.min() >= -1.2
    assert positions.max() <= 3.3
    assert np.abs(np.diff(positions, axis=0)).max() <= 2.0 / 24 + 1e-9
    assert len(during) <= 3  # braking from 2 rad/s at 25 rad/s^2 takes 2 steps, then output stops
    assert safety.counts["start"] == 1


def test_every_joint_needs_limits():
    with pytest.raises(LimitsError, match=r"\['b'\]"):
        SafetyLayer(JOINTS, {"a": JointLimit()}, SafetyConfig(DT))


def test_limits_from_yaml(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text("joints:\n  a: {lower: -1, upper: 1, velocity: 2, acceleration: 5}\n  b: {}\n")
    limits = load_limits_yaml(path)
    assert limits["a"] == JointLimit(-1, 1, 2, 5)
    assert limits["b"] == JointLimit()
    path.write_text("joints:\n  a: {lower: 1, upper: -1}\n")
    with pytest.raises(LimitsError, match=r"joints\.a"):
        load_limits_yaml(path)
    path.write_text("joints:\n  a: {top: 1}\n")
    with pytest.raises(LimitsError, match="unknown"):
        load_limits_yaml(path)


def test_limits_from_urdf(tmp_path):
    path = tmp_path / "arm.urdf"
    path.write_text(
        """<robot name="arm">
  <joint name="a" type="revolute"><limit lower="-1.5" upper="1.5" velocity="2.0" effort="1"/></joint>
  <joint name="b" type="continuous"><limit velocity="3.0" effort="1"/></joint>
  <joint name="base" type="fixed"/>
</robot>"""
    )
    limits = load_limits_urdf(path)
    assert set(limits) == {"a", "b"}
    assert limits["a"] == JointLimit(-1.5, 1.5, 2.0)
    assert limits["b"].lower == -math.inf
    assert limits["b"].velocity == 3.0


def test_enable_from_another_thread_never_breaks_a_step():
    """/vla/enable and /vla/stop are served on the executor thread while the control thread steps:
    a toggle that lands inside a step must not leave it half done (it once raised a TypeError that
    ended the control loop)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within ms
    safety = layer()
    safety.enable(True)
    errors: list[BaseException] = []
    done = threading.Event()

    def control() -> None:
        try:
            while not done.is_set():
                safety.step(fresh((0.1, 0.1)))
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    thread = threading.Thread(target=control)
    thread.start()
    try:
        for i in range(20000):
            safety.enable(i % 2 == 0)
            if i % 7 == 0:
                safety.stop()
    finally:
        done.set()
        thread.join(10)
        sys.setswitchinterval(previous)
    assert not errors, errors
