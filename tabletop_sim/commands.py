"""Turn a joint trajectory command into the position target of this instant (no rclpy).

The sim accepts what the VLA node sends (trajectory_msgs/JointTrajectory): it applies the point
whose time has come (header stamp + time_from_start at or before now, the latest such point), or the
first point when none has come yet or the stamp is zero ("start now", as ros2_control reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class CommandError(ValueError):
    """A joint command that cannot be applied; the message says why."""


@dataclass(frozen=True)
class TrajectoryPoint:
    positions: Sequence[float]
    time_from_start_ns: int


def current_target(
    joint_names: Sequence[str],
    points: Sequence[TrajectoryPoint],
    stamp_ns: int,
    now_ns: int,
    expected_joints: Sequence[str],
) -> np.ndarray:
    """Positions (in `expected_joints` order) of the point due now; raises CommandError."""
    names = list(joint_names)
    if sorted(names) != sorted(expected_joints):
        raise CommandError(f"joint names {names} do not match this arm's joints {list(expected_joints)}")
    if not points:
        raise CommandError("trajectory has no points")
    positions = []
    for i, point in enumerate(points):
        values = np.asarray(point.positions, dtype=np.float64)
        if values.shape != (len(names),) or not np.all(np.isfinite(values)):
            raise CommandError(f"point {i}: need {len(names)} finite positions, got {list(point.positions)}")
        positions.append(values)
    chosen = 0
    if stamp_ns > 0:
        elapsed = now_ns - stamp_ns
        for i, point in enumerate(points):
            if point.time_from_start_ns <= elapsed:
                chosen = i
    order = [names.index(joint) for joint in expected_joints]
    return positions[chosen][order]
