"""The tabletop world: a planar two-joint arm above a table with three named objects (no rclpy).

Coordinates are metres in the table plane, the arm's base at the origin, +y pointing away from the
robot. Joint angles are radians: the shoulder angle is measured from +x, the elbow angle relative
to the upper link. The joints track commanded positions as a first-order system whose speed is
capped by the velocity limit, and positions stay inside the position limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

JOINT_NAMES: tuple[str, ...] = ("shoulder_joint", "elbow_joint")
#: Homing ends when every joint is this close to home (rad).
HOME_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ArmSpec:
    """Geometry and limits of the arm."""

    link_lengths: tuple[float, float] = (0.30, 0.25)
    position_lower: tuple[float, float] = (-1.2, -2.6)
    position_upper: tuple[float, float] = (3.3, 2.6)
    velocity_limit: tuple[float, float] = (2.0, 2.0)  # rad/s
    tracking_time_constant_s: float = 0.05
    home: tuple[float, float] = (math.pi / 2, 2.5)

    @property
    def lower(self) -> np.ndarray:
        return np.asarray(self.position_lower, dtype=np.float64)

    @property
    def upper(self) -> np.ndarray:
        return np.asarray(self.position_upper, dtype=np.float64)

    @property
    def reach(self) -> float:
        return float(sum(self.link_lengths))


@dataclass(frozen=True)
class ObjectKind:
    """One of the three objects: its name is what instructions refer to."""

    name: str  # e.g. "red cup"
    colour: str
    shape: str  # cup | block | ball
    size_m: float  # radius (cup, ball) or half the side (block)


OBJECT_KINDS: tuple[ObjectKind, ...] = (
    ObjectKind("red cup", "red", "cup", 0.035),
    ObjectKind("blue block", "blue", "block", 0.03),
    ObjectKind("green ball", "green", "ball", 0.03),
)


@dataclass(frozen=True)
class PlacedObject:
    kind: ObjectKind
    position: tuple[float, float]  # metres
    yaw: float  # radians (only visible on the block)

    @property
    def name(self) -> str:
        return self.kind.name


@dataclass(frozen=True)
class LayoutSpec:
    """Where objects may be placed: an annulus sector in front of the arm, all reachable."""

    radius_range: tuple[float, float] = (0.22, 0.50)
    angle_range_deg: tuple[float, float] = (15.0, 165.0)
    min_separation_m: float = 0.13


def forward_kinematics(q: np.ndarray, arm: ArmSpec) -> tuple[np.ndarray, np.ndarray]:
    """(elbow position, end-effector position) for joint angles q."""
    l1, l2 = arm.link_lengths
    elbow = np.array([l1 * math.cos(q[0]), l1 * math.sin(q[0])])
    ee = elbow + np.array([l2 * math.cos(q[0] + q[1]), l2 * math.sin(q[0] + q[1])])
    return elbow, ee


def inverse_kinematics(point: np.ndarray, arm: ArmSpec) -> np.ndarray:
    """Joint angles putting the end effector on `point`, elbow bent counter-clockwise (elbow >= 0).

    Raises ValueError when the point is out of reach or the solution violates a joint limit.
    """
    l1, l2 = arm.link_lengths
    x, y = float(point[0]), float(point[1])
    r2 = x * x + y * y
    cos_elbow = (r2 - l1 * l1 - l2 * l2) / (2 * l1 * l2)
    if not -1.0 <= cos_elbow <= 1.0:
        raise ValueError(f"point ({x:.3f}, {y:.3f}) is out of the arm's reach")
    elbow = math.acos(cos_elbow)
    shoulder = math.atan2(y, x) - math.atan2(l2 * math.sin(elbow), l1 + l2 * math.cos(elbow))
    q = np.array([shoulder, elbow])
    if np.any(q < arm.lower) or np.any(q > arm.upper):
        raise ValueError(f"point ({x:.3f}, {y:.3f}) needs joints {q.round(3)} outside the limits")
    return q


def random_layout(rng: np.random.Generator, arm: ArmSpec, spec: LayoutSpec) -> tuple[PlacedObject, ...]:
    """Place the three objects at reachable, well separated random positions."""
    for _ in range(1000):
        radius = rng.uniform(*spec.radius_range, size=3)
        angle = np.radians(rng.uniform(*spec.angle_range_deg, size=3))
        points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)[np.triu_indices(3, 1)]
        if gaps.min() < spec.min_separation_m:
            continue
        order = rng.permutation(3)
        yaws = rng.uniform(0, math.pi / 2, size=3)
        objects = tuple(
            PlacedObject(OBJECT_KINDS[k], (float(points[i, 0]), float(points[i, 1])), float(yaws[i]))
            for i, k in enumerate(order)
        )
        for obj in objects:  # the layout spec must keep every object solvable
            inverse_kinematics(np.asarray(obj.position), arm)
        return objects
    raise RuntimeError(f"could not place three objects {spec.min_separation_m} m apart; widen the layout")


@dataclass(frozen=True)
class SuccessSpec:
    radius_m: float = 0.04  # end effector within this distance of the target's centre...
    hold_s: float = 0.25  # ...continuously for this long


@dataclass
class World:
    """The simulated state; `step` advances it, `reset` starts a new episode."""

    arm: ArmSpec = field(default_factory=ArmSpec)
    layout_spec: LayoutSpec = field(default_factory=LayoutSpec)
    success_spec: SuccessSpec = field(default_factory=SuccessSpec)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.q = np.asarray(self.arm.home, dtype=np.float64)
        self.qd = np.zeros(2)
        self.command = self.q.copy()
        self.objects: tuple[PlacedObject, ...] = ()
        self.target: str | None = None
        self.time_s = 0.0
        self.target_since_s = 0.0
        self._inside_since_s: float | None = None
        self.success = False
        self.success_time_s: float | None = None
        self.homing = False  # driving home after `home()`: commands are ignored until it arrives
        self.ignored_commands = 0
        self.reset()

    def reset(self, q: np.ndarray | None = None) -> None:
        """New random layout, arm at home (or at `q`), no target, clock at zero."""
        self.objects = random_layout(self._rng, self.arm, self.layout_spec)
        self.q = np.clip(np.asarray(self.arm.home if q is None else q, dtype=np.float64), *self._limits())
        self.qd = np.zeros(2)
        self.command = self.q.copy()
        self.time_s = 0.0
        self.set_target(None)

    def home(self) -> None:
        """A new episode as a real arm starts one: new layout, no target, clock at zero, and the arm
        driven home by its own controller (at most at the velocity limit), not put there. Until it
        arrives, commands are ignored: the homing owns the arm."""
        self.reset(self.q)
        self.command = np.clip(np.asarray(self.arm.home, dtype=np.float64), *self._limits())
        self.homing = True

    def _limits(self) -> tuple[np.ndarray, np.ndarray]:
        return self.arm.lower, self.arm.upper

    def object(self, name: str) -> PlacedObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"no object named {name!r} (objects: {', '.join(o.name for o in self.objects)})")

    def set_target(self, name: str | None) -> None:
        """Start timing a new task: touch object `name` (None: no task)."""
        if name is not None:
            self.object(name)
        self.target = name
        self.target_since_s = self.time_s
        self._inside_since_s = None
        self.success = False
        self.success_time_s = None

    def set_command(self, positions: np.ndarray) -> bool:
        """Commanded joint positions, clipped to the position limits; False (and counted) while homing.
        Non-finite values are refused."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (2,) or not np.all(np.isfinite(positions)):
            raise ValueError(f"joint command must be 2 finite numbers, got {positions!r}")
        if self.homing:
            self.ignored_commands += 1
            return False
        self.command = np.clip(positions, *self._limits())
        return True

    def step(self, dt: float) -> None:
        """Advance by dt seconds: first-order tracking with the velocity limit, then the success check."""
        if dt <= 0:
            return
        velocity = (self.command - self.q) / max(self.arm.tracking_time_constant_s, dt)
        limit = np.asarray(self.arm.velocity_limit)
        self.qd = np.clip(velocity, -limit, limit)
        self.q = np.clip(self.q + self.qd * dt, *self._limits())
        self.time_s += dt
        if self.homing and np.all(np.abs(self.q - self.command) <= HOME_TOLERANCE):
            self.homing = False
        self._update_success()

    def end_effector(self) -> np.ndarray:
        return forward_kinematics(self.q, self.arm)[1]

    def target_distance(self) -> float | None:
        if self.target is None:
            return None
        return float(np.linalg.norm(self.end_effector() - np.asarray(self.object(self.target).position)))

    def _update_success(self) -> None:
        distance = self.target_distance()
        if distance is None or self.success:
            return
        if distance > self.success_spec.radius_m:
            self._inside_since_s = None
            return
        if self._inside_since_s is None:
            self._inside_since_s = self.time_s
        if self.time_s - self._inside_since_s >= self.success_spec.hold_s - 1e-9:
            self.success = True
            self.success_time_s = self.time_s - self.target_since_s

    def elapsed_s(self) -> float:
        """Seconds since the current target was set."""
        return self.time_s - self.target_since_s
