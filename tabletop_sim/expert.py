"""The scripted expert: analytic IK to the named object, then a smooth joint-space approach.

The expert is a feedback law: from the current joint positions it returns the next chunk of joint
targets on the straight joint-space line to the goal, at a capped speed that slows exponentially
near the goal. Being a function of the observation only, it labels perturbed states consistently,
which is what behaviour cloning needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tabletop_sim.world import World, inverse_kinematics


@dataclass(frozen=True)
class ExpertSpec:
    speed_rad_s: float = 1.2  # cruise speed of the fastest joint (below the 2 rad/s limit)
    settle_time_constant_s: float = 0.15  # exponential approach in the last part


def goal_joints(world: World, target: str) -> np.ndarray:
    """Joint positions that put the end effector on the centre of object `target`."""
    return inverse_kinematics(np.asarray(world.object(target).position), world.arm)


def expert_chunk(
    q: np.ndarray, goal: np.ndarray, horizon: int, dt: float, spec: ExpertSpec = ExpertSpec()
) -> np.ndarray:
    """(horizon, joints) absolute joint targets, one every dt seconds, from q towards goal."""
    q = np.asarray(q, dtype=np.float64)
    offset = np.asarray(goal, dtype=np.float64) - q
    distance = float(np.max(np.abs(offset)))
    if distance < 1e-9:
        return np.repeat(q[None], horizon, axis=0).astype(np.float32)
    decay = 1.0 - math.exp(-dt / spec.settle_time_constant_s)
    remaining = np.empty(horizon)
    left = distance
    for k in range(horizon):
        left -= min(spec.speed_rad_s * dt, left * decay)
        remaining[k] = left
    fraction = remaining / distance
    return (goal[None] - offset[None] * fraction[:, None]).astype(np.float32)
