"""The VLA safety invariant (docs/vla.md, "Safety"), checked on a stream of published commands.

Used by the safety layer's property tests (each Decision that carries a command) and by the fuzz suite
(each /vla/commanded_joint_states message: positions, velocities, header stamp). Independent of the
layer's code: it only knows the limits and the period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_node.safety import JointLimit

#: Rounding allowance for positions and velocities.
EPS = 1e-9


@dataclass(frozen=True)
class Command:
    time_s: float  # when it was published (the step's time)
    positions: np.ndarray
    velocities: np.ndarray  # of the step that led to it (zero at the start of a run)


@dataclass(frozen=True)
class StreamLimits:
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    period_s: float
    time_slack_s: float = 0.0  # allowance on timestamps (publish-side jitter), for runs' starts

    @classmethod
    def of(cls, limits: Sequence[JointLimit], period_s: float, time_slack_s: float = 0.0) -> StreamLimits:
        def field(name: str) -> np.ndarray:
            return np.array([getattr(limit, name) for limit in limits], dtype=np.float64)

        return cls(
            field("lower"), field("upper"), field("velocity"), field("acceleration"), period_s, time_slack_s
        )


def _stops_inside(c: Command, lim: StreamLimits) -> bool:
    """From this velocity the arm can brake to rest at the acceleration limit within the limits."""
    finite = np.isfinite(lim.acceleration)
    reach = np.zeros_like(c.velocities)
    reach[finite] = c.velocities[finite] * np.abs(c.velocities[finite]) / (2 * lim.acceleration[finite])
    ends = c.positions + reach
    return bool(np.all(ends <= lim.upper + EPS) and np.all(ends >= lim.lower - EPS))


def check_command_stream(commands: Sequence[Command], lim: StreamLimits) -> list[str]:
    """Every violation of the invariant in `commands` (empty: none). A command either continues its
    run (positions = previous + velocity * period) or starts a new one at rest, reachable from the
    previous command at the velocity limit in the time between them, after a run that ended at rest."""
    violations = []
    dt = lim.period_s
    previous: Command | None = None
    for i, c in enumerate(commands):
        where = f"command {i} at {c.time_s:.4f} s {np.round(c.positions, 6).tolist()}"
        if c.positions.shape != lim.lower.shape or c.velocities.shape != lim.lower.shape:
            violations.append(f"{where}: wrong number of joints")
            previous = None
            continue
        if not (np.all(np.isfinite(c.positions)) and np.all(np.isfinite(c.velocities))):
            violations.append(f"{where}: not finite")
        if np.any(c.positions < lim.lower - EPS) or np.any(c.positions > lim.upper + EPS):
            violations.append(f"{where}: outside the position limits")
        if np.any(np.abs(c.velocities) > lim.velocity + EPS):
            violations.append(f"{where}: velocity {c.velocities.tolist()} above the limit")
        if not _stops_inside(c, lim):
            violations.append(f"{where}: cannot brake to rest inside the limits")
        if previous is None:
            if np.any(c.velocities != 0):
                violations.append(f"{where}: the first command is not at rest")
        elif np.allclose(c.positions, previous.positions + c.velocities * dt, rtol=0, atol=EPS * 10):
            if np.any(np.abs(c.velocities - previous.velocities) > lim.acceleration * dt + EPS):
                violations.append(
                    f"{where}: velocity changed from {previous.velocities.tolist()} to "
                    f"{c.velocities.tolist()} in one step, above the acceleration limit"
                )
        else:  # a new run
            if np.any(c.velocities != 0) or np.any(previous.velocities != 0):
                violations.append(f"{where}: a jump that is not a run ending and starting at rest")
            elapsed = c.time_s - previous.time_s + lim.time_slack_s
            if np.any(np.abs(c.positions - previous.positions) > lim.velocity * elapsed + EPS):
                violations.append(
                    f"{where}: starts {np.abs(c.positions - previous.positions).max():.4g} away from the "
                    f"previous command {elapsed:.4g} s earlier, faster than the velocity limit"
                )
        previous = c
    return violations
