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


def layer(**limits) -> SafetyLayer:
    limit = JointLimit(**limits)
    safety = SafetyLayer(JOINTS, dict.fromkeys(JOINTS, limit), SafetyConfig(DT, 0.2, 0.1))
    safety.enable(True)
    return safety


def fresh(action, measured=(0.0, 0.0), **ages) -> Inputs:
    ages = {"camera_age_s": 0.01, "joint_state_age_s": 0.01, **ages}
    a = None if action is None else np.asarray(action, dtype=float)
    return Inputs(action=a, measured=np.asarray(measured, dtype=float), **ages)


def test_a_valid_action_passes_unchanged():
    decision = layer().step(fresh([0.1, -0.2]))
    assert decision.intervention is None
    assert decision.clamped == ()
    np.testing.assert_allclose(decision.command, [0.1, -0.2])


def test_position_limit_clamps():
    safety = layer(lower=-1.0, upper=1.0)
    decision = safety.step(fresh([3.0, -0.5]))
    np.testing.assert_allclose(decision.command, [1.0, -0.5])
    assert Intervention.POSITION_LIMIT in decision.clamped
    assert safety.counts["position_limit"] == 1


def test_velocity_limit_clamps_the_step():
    safety = layer(velocity=1.0)  # at most 0.04 per 40 ms tick
    decision = safety.step(fresh([1.0, 0.0]))
    np.testing.assert_allclose(decision.command, [0.04, 0.0])
    assert decision.clamped == (Intervention.VELOCITY_LIMIT,)


def test_acceleration_limit_ramps_the_velocity():
    safety = layer(acceleration=10.0)  # velocity may change by 0.4 rad/s per tick
    first = safety.step(fresh([1.0, 0.0])).command
    np.testing.assert_allclose(first, [0.4 * DT, 0.0])
    second = safety.step(fresh([1.0, 0.0])).command
    np.testing.assert_allclose(second, first + np.array([0.8 * DT, 0.0]))
    assert safety.counts["acceleration_limit"] == 2


@pytest.mark.parametrize("bad", [[math.nan, 0.0], [0.0, math.inf], [0.0, 0.0, 0.0]])
def test_invalid_actions_are_rejected_and_the_robot_holds(bad):
    safety = layer()
    safety.step(fresh([0.2, 0.3]))
    decision = safety.step(fresh(bad))
    assert decision.intervention is Intervention.INVALID_ACTION
    np.testing.assert_allclose(decision.command, [0.2, 0.3])  # last command
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
def test_stale_inputs_hold_at_the_measured_position_before_any_command(ages, kind):
    safety = layer()
    decision = safety.step(fresh([0.5, 0.5], measured=(0.1, 0.2), **ages))
    assert decision.intervention is kind
    np.testing.assert_allclose(decision.command, [0.1, 0.2])
    assert safety.counts[kind.value] == 1


def test_empty_queue_holds_and_resumes_smoothly():
    safety = layer(velocity=1.0)
    assert safety.step(fresh(None)).intervention is Intervention.EMPTY_QUEUE
    resumed = safety.step(fresh([1.0, 0.0]))
    np.testing.assert_allclose(resumed.command, [0.04, 0.0])


def test_disabled_publishes_nothing_and_counts():
    safety = layer()
    safety.enable(False)
    decision = safety.step(fresh([0.1, 0.1]))
    assert decision.command is None
    assert decision.intervention is Intervention.DISABLED
    assert safety.counts["disabled"] == 1


def test_no_joint_state_yet_publishes_nothing():
    decision = layer().step(Inputs(np.zeros(2), None, 0.01, None))
    assert decision.command is None
    assert decision.intervention is Intervention.NO_JOINT_STATE


def test_stop_holds_until_enabled_again():
    safety = layer()
    safety.step(fresh([0.1, 0.1]))
    safety.stop()
    decision = safety.step(fresh([0.5, 0.5]))
    assert decision.intervention is Intervention.STOPPED
    np.testing.assert_allclose(decision.command, [0.1, 0.1])
    safety.enable(True)
    assert safety.step(fresh([0.5, 0.5])).intervention is None


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
