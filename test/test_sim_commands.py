"""Choosing the joint target of this instant from a JointTrajectory command."""

from __future__ import annotations

import numpy as np
import pytest

from tabletop_sim.commands import CommandError, TrajectoryPoint, current_target

JOINTS = ("shoulder_joint", "elbow_joint")
MS = 1_000_000


def points(*times_ms):
    return [TrajectoryPoint([float(i), float(-i)], t * MS) for i, t in enumerate(times_ms)]


def test_zero_stamp_means_the_first_point():
    assert current_target(JOINTS, points(0, 40, 80), 0, 10_000 * MS, JOINTS).tolist() == [0.0, -0.0]


def test_the_latest_point_whose_time_has_come():
    stamp = 1_000 * MS
    assert current_target(JOINTS, points(0, 40, 80), stamp, stamp + 50 * MS, JOINTS).tolist() == [1.0, -1.0]
    assert current_target(JOINTS, points(0, 40, 80), stamp, stamp + 500 * MS, JOINTS).tolist() == [2.0, -2.0]
    assert current_target(JOINTS, points(20, 40), stamp, stamp, JOINTS).tolist() == [0.0, -0.0]  # future


def test_joint_order_follows_the_names():
    target = current_target(tuple(reversed(JOINTS)), [TrajectoryPoint([2.0, 1.0], 0)], 0, 0, JOINTS)
    np.testing.assert_array_equal(target, [1.0, 2.0])


@pytest.mark.parametrize(
    ("names", "pts", "message"),
    [
        (("shoulder_joint",), [TrajectoryPoint([1.0], 0)], "do not match"),
        (("shoulder_joint", "wrist_joint"), [TrajectoryPoint([1.0, 2.0], 0)], "do not match"),
        (JOINTS, [], "no points"),
        (JOINTS, [TrajectoryPoint([1.0], 0)], "finite positions"),
        (JOINTS, [TrajectoryPoint([1.0, float("nan")], 0)], "finite positions"),
    ],
)
def test_bad_commands_are_rejected_with_a_reason(names, pts, message):
    with pytest.raises(CommandError, match=message):
        current_target(names, pts, 0, 0, JOINTS)
