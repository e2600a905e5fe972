"""System 1: the safety layer inside the control loop (plain Python, no rclpy).

Every control tick, `SafetyLayer.step` turns the action the queue proposes into the command to send,
or decides to hold or to send nothing. It never waits on anything. Interventions are counted by kind.

Order of checks: disabled (dry run, nothing is sent) → stopped → no joint state yet → stale inputs →
empty queue → invalid action (NaN/inf, wrong size) → velocity, acceleration and position limits.
Holding means commanding the last commanded position (the measured one before the first command)
with zero velocity: no new motion, no extrapolation.
"""

from __future__ import annotations

import math
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from humanoid_common.config import read_yaml


class Intervention(str, Enum):
    DISABLED = "disabled"  # dry run: nothing published
    STOPPED = "stopped"  # stop topic received: hold until re-enabled
    NO_JOINT_STATE = "no_joint_state"  # nothing to hold at yet: nothing published
    STALE_CAMERA = "stale_camera"
    STALE_JOINT_STATES = "stale_joint_states"
    EMPTY_QUEUE = "empty_queue"
    INVALID_ACTION = "invalid_action"  # NaN, inf or wrong size: rejected, hold
    POSITION_LIMIT = "position_limit"  # clamped
    VELOCITY_LIMIT = "velocity_limit"  # clamped
    ACCELERATION_LIMIT = "acceleration_limit"  # clamped


SENT = "sent"  # counts key of the actions that went out (possibly clamped)
HOLDS = (
    Intervention.STOPPED,
    Intervention.STALE_CAMERA,
    Intervention.STALE_JOINT_STATES,
    Intervention.EMPTY_QUEUE,
    Intervention.INVALID_ACTION,
)


@dataclass(frozen=True)
class JointLimit:
    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf  # |rad/s| or |m/s|
    acceleration: float = math.inf

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"lower limit {self.lower} must be below upper limit {self.upper}")
        if not (self.velocity > 0 and self.acceleration > 0):
            raise ValueError("velocity and acceleration limits must be > 0")


class LimitsError(ValueError):
    """A limits file is malformed; the message names the file and the joint."""


def load_limits_yaml(path: str | Path) -> dict[str, JointLimit]:
    """`joints: {name: {lower, upper, velocity, acceleration}}`; each field optional."""
    path = Path(path)
    data = read_yaml(path, "joint limits", LimitsError)
    joints = data.get("joints") if isinstance(data, dict) else None
    if not isinstance(joints, dict) or not joints:
        raise LimitsError(
            f"{path}: expected a mapping 'joints: {{name: {{lower, upper, velocity, acceleration}}}}'"
        )
    limits = {}
    for name, entry in joints.items():
        unknown = set(entry or {}) - {"lower", "upper", "velocity", "acceleration"}
        if unknown:
            raise LimitsError(f"{path}: joints.{name}: unknown field(s) {sorted(unknown)}")
        try:
            limits[str(name)] = JointLimit(**{k: float(v) for k, v in (entry or {}).items()})
        except (TypeError, ValueError) as error:
            raise LimitsError(f"{path}: joints.{name}: {error}") from error
    return limits


def load_limits_urdf(path: str | Path) -> dict[str, JointLimit]:
    """Limits from a URDF's `<joint><limit lower upper velocity/>` tags (continuous joints: no position
    limit). URDF has no acceleration limit; add one in YAML if the robot needs it."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        raise LimitsError(f"cannot read URDF {path}: {error}") from error
    limits = {}
    for joint in root.iter("joint"):
        kind, limit = joint.get("type"), joint.find("limit")
        if kind == "fixed" or limit is None:
            continue
        values = {"velocity": float(limit.get("velocity", math.inf))}
        if kind != "continuous":
            values |= {
                "lower": float(limit.get("lower", -math.inf)),
                "upper": float(limit.get("upper", math.inf)),
            }
        try:
            limits[joint.get("name")] = JointLimit(**values)
        except ValueError as error:
            raise LimitsError(f"{path}: joint {joint.get('name')}: {error}") from error
    return limits


@dataclass(frozen=True)
class SafetyConfig:
    period_s: float  # control period
    max_camera_age_s: float = 0.2
    max_joint_state_age_s: float = 0.1


@dataclass(frozen=True)
class Inputs:
    """What the control loop knows at one tick."""

    action: np.ndarray | None  # proposed absolute joint positions, None when the queue is empty
    measured: np.ndarray | None  # latest joint state positions, None before the first message
    camera_age_s: float | None  # None before the first image
    joint_state_age_s: float | None
    camera_deadline_missed: bool = False  # a deadline miss since the last image
    joint_state_deadline_missed: bool = False


@dataclass(frozen=True)
class Decision:
    command: np.ndarray | None  # positions to publish; None: publish nothing
    intervention: Intervention | None  # the hold/skip reason (None when the action went out)
    clamped: tuple[Intervention, ...] = ()  # limits that modified the action


class SafetyLayer:
    """Validates and limits each command; keeps the last command to hold at.

    `step` runs on the control thread while `enable` and `stop` arrive on the executor thread (the
    /vla/enable service, /vla/stop): a lock keeps a toggle from landing in the middle of a step.
    """

    def __init__(
        self, joint_names: tuple[str, ...], limits: dict[str, JointLimit], config: SafetyConfig
    ) -> None:
        missing = [name for name in joint_names if name not in limits]
        if missing:
            raise LimitsError(
                f"no joint limits for {missing}: every commanded joint needs limits (YAML or URDF)"
            )
        self.joint_names = joint_names
        self.config = config
        ordered = [limits[name] for name in joint_names]
        self._lower = np.array([lim.lower for lim in ordered])
        self._upper = np.array([lim.upper for lim in ordered])
        self._vmax = np.array([lim.velocity for lim in ordered])
        self._amax = np.array([lim.acceleration for lim in ordered])
        self.enabled = False
        self.stopped = False
        self.counts: Counter[str] = Counter()
        self._last: np.ndarray | None = None
        self._velocity = np.zeros(len(joint_names))
        self._lock = threading.Lock()

    def enable(self, on: bool) -> None:
        """Enable (clears a stop) or disable motion output. Disabled: nothing is published."""
        with self._lock:
            self.enabled = on
            self.stopped = False
            self._last = None
            self._velocity[:] = 0.0

    def stop(self) -> None:
        """Hold from now on until enabled again."""
        with self._lock:
            self.stopped = True

    def camera_fresh(self, age_s: float | None) -> bool:
        return age_s is not None and age_s <= self.config.max_camera_age_s

    def _stale(self, inputs: Inputs) -> Intervention | None:
        cfg = self.config
        if inputs.joint_state_deadline_missed or (
            inputs.joint_state_age_s is None or inputs.joint_state_age_s > cfg.max_joint_state_age_s
        ):
            return Intervention.STALE_JOINT_STATES
        if inputs.camera_deadline_missed or not self.camera_fresh(inputs.camera_age_s):
            return Intervention.STALE_CAMERA
        return None

    def step(self, inputs: Inputs) -> Decision:
        with self._lock:
            return self._step(inputs)

    def _step(self, inputs: Inputs) -> Decision:
        if not self.enabled:
            return self._count(Decision(None, Intervention.DISABLED))
        if self._last is None and inputs.measured is None:
            return self._count(Decision(None, Intervention.NO_JOINT_STATE))
        if self._last is None:
            self._last = np.asarray(inputs.measured, dtype=np.float64).copy()
        reason = (
            Intervention.STOPPED
            if self.stopped
            else self._stale(inputs)
            or (Intervention.EMPTY_QUEUE if inputs.action is None else None)
            or (None if self._valid(inputs.action) else Intervention.INVALID_ACTION)
        )
        if reason is not None:
            self._velocity[:] = 0.0
            return self._count(Decision(self._last.copy(), reason))
        command, clamped = self._limit(np.asarray(inputs.action, dtype=np.float64))
        for kind in clamped:
            self.counts[kind.value] += 1
        self.counts[SENT] += 1
        return Decision(command, None, clamped)

    def _valid(self, action: np.ndarray) -> bool:
        action = np.asarray(action)
        return action.shape == (len(self.joint_names),) and bool(np.isfinite(action).all())

    def _limit(self, target: np.ndarray) -> tuple[np.ndarray, tuple[Intervention, ...]]:
        dt = self.config.period_s
        clamped = []
        velocity = (target - self._last) / dt
        limited = np.clip(velocity, -self._vmax, self._vmax)
        if not np.array_equal(limited, velocity):
            clamped.append(Intervention.VELOCITY_LIMIT)
        dv_max = self._amax * dt
        accelerated = np.clip(limited, self._velocity - dv_max, self._velocity + dv_max)
        if not np.array_equal(accelerated, limited):
            clamped.append(Intervention.ACCELERATION_LIMIT)
        command = self._last + accelerated * dt
        bounded = np.clip(command, self._lower, self._upper)
        if not np.array_equal(bounded, command):
            clamped.append(Intervention.POSITION_LIMIT)
        self._velocity = (bounded - self._last) / dt
        self._last = bounded
        return bounded.copy(), tuple(clamped)

    def _count(self, decision: Decision) -> Decision:
        self.counts[decision.intervention.value] += 1
        return decision
