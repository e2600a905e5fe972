"""System 1: the safety layer inside the control loop (plain Python, no rclpy).

Every control step, `SafetyLayer.step` turns the action the queue proposes into the command to send,
brakes, or sends nothing. It never waits on anything; interventions are counted by kind.

The invariant, whatever arrives (docs/vla.md, "Safety"): commands go out in runs, one per control
step. Every command is within the position limits. Within a run each command moves at most
`velocity * period` from the previous one, its velocity changes by at most `acceleration * period`,
and the velocity always allows stopping inside the position limits. A run starts at rest at the
measured position, which must be within the limits and reachable from the previous run's last command
at the velocity limit in the time since; it ends only at rest. Every hold is a braking step (zero
velocity as fast as the acceleration limit allows); all commands come from one function, `_advance`.

A measured state that is malformed, outside the limits, or farther from the last command than the arm
can be (`tracking_tolerance` plus what the velocity limit allows in the time since) is a fault: the
arm brakes to rest and output stops until an enable is accepted, and enabling is refused while the
condition lasts.
"""

from __future__ import annotations

import math
import threading
import xml.etree.ElementTree as ET
from collections import Counter, deque
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from humanoid_common.config import read_yaml


class Intervention(str, Enum):
    DISABLED = "disabled"  # dry run: brake to rest, then nothing is published
    FAULT = "fault"  # the measured state is wrong: brake to rest, then nothing until enabled again
    STOPPED = "stopped"  # stop topic received: hold until re-enabled
    NO_JOINT_STATE = "no_joint_state"  # nothing to start from yet: nothing published
    WAITING_FOR_REST = "waiting_for_rest"  # enabled; the first command follows once the arm is at rest
    START = "start"  # the first command of a run: the measured position, at rest
    STALE_CAMERA = "stale_camera"
    STALE_JOINT_STATES = "stale_joint_states"
    EMPTY_QUEUE = "empty_queue"
    INVALID_ACTION = "invalid_action"  # NaN, inf or wrong size: rejected, hold
    POSITION_LIMIT = "position_limit"  # clamped (including braking before a limit)
    VELOCITY_LIMIT = "velocity_limit"  # clamped
    ACCELERATION_LIMIT = "acceleration_limit"  # clamped


SENT = "sent"  # counts key of the actions that went out (possibly clamped)
HOLDS = (
    Intervention.STOPPED,
    Intervention.STALE_CAMERA,
    Intervention.STALE_JOINT_STATES,
    Intervention.EMPTY_QUEUE,
    Intervention.INVALID_ACTION,
    Intervention.FAULT,
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
    #: How far (rad or m) the measured position may trail the last command: the controller's tracking
    #: error while moving. Farther is a fault.
    tracking_tolerance: float = 0.3
    #: How much (rad or m) a measured position may vary while the arm is at rest, or lie beyond a limit.
    rest_tolerance: float = 0.01
    #: A run starts only after this many steps of fresh joint states within rest_tolerance.
    rest_steps: int = 3

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError(f"the control period must be > 0 s, got {self.period_s}")
        if not (self.tracking_tolerance > 0 and self.rest_tolerance > 0):
            raise ValueError("tracking_tolerance and rest_tolerance must be > 0")
        if self.rest_steps < 1:
            raise ValueError(f"rest_steps must be >= 1, got {self.rest_steps}")


@dataclass(frozen=True)
class Inputs:
    """What the control loop knows at one step."""

    action: np.ndarray | None  # proposed absolute joint positions, None when the queue is empty
    measured: np.ndarray | None  # latest joint state positions, None before the first message
    camera_age_s: float | None  # None before the first image
    joint_state_age_s: float | None
    camera_deadline_missed: bool = False  # a deadline miss since the last image
    joint_state_deadline_missed: bool = False
    time_s: float | None = None  # monotonic time of this step; None: one period after the last step


@dataclass(frozen=True)
class Decision:
    command: np.ndarray | None  # positions to publish; None: publish nothing
    intervention: Intervention | None  # the hold/skip reason (None when the action went out)
    clamped: tuple[Intervention, ...] = ()  # limits that modified the action
    velocity: np.ndarray | None = None  # of the step to `command` (zero at the start of a run)


class SafetyLayer:
    """Validates and limits each command; keeps the last command, its velocity and the faults.

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
        self.fault: str | None = None  # latched while enabled; cleared by an accepted enable
        self.condition: str | None = None  # what is wrong with the measured state at the last step
        self.counts: Counter[str] = Counter()
        self._running = False  # a run is going on: a command goes out every step
        self._last: np.ndarray | None = None  # the last command that went out
        self._last_time: float | None = None  # ...and when
        self._velocity = np.zeros(len(joint_names))  # of the last step of the run (0 at rest)
        self._now = 0.0
        self._measured: np.ndarray | None = None  # the latest well-formed, fresh measured state
        self._recent: deque[np.ndarray] = deque(maxlen=config.rest_steps)
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Commands are going out (including braking to rest after a disable or a fault)."""
        return self._running

    # -- operator requests (executor thread) ------------------------------------------------------

    def enable(self, on: bool) -> tuple[bool, str]:
        """Enable motion (clears a stop and a fault) or disable it; (accepted, what happens).

        Enabling is refused while the measured state is faulty (the reason is returned). Disabling
        is always accepted: a moving arm brakes to rest, then nothing more is published.
        """
        with self._lock:
            if not on:
                self.enabled = self.stopped = False
                return True, "motion disabled (dry run)" + (": braking to rest" if self._running else "")
            if self.condition:
                return False, f"motion not enabled: {self.condition}"
            self.enabled, self.stopped, self.fault = True, False, None
            if self._running:
                return True, "motion enabled"
            if self._measured is None:
                return True, "motion enabled; the first command follows the first fresh joint state"
            return True, "motion enabled; the first command is the measured position once the arm is at rest"

    def stop(self) -> None:
        """Brake to rest and hold from now on until enabled again."""
        with self._lock:
            self.stopped = True

    def camera_fresh(self, age_s: float | None) -> bool:
        return age_s is not None and age_s <= self.config.max_camera_age_s

    # -- the control step (control thread) --------------------------------------------------------

    def step(self, inputs: Inputs) -> Decision:
        with self._lock:
            self._now = self._now + self.config.period_s if inputs.time_s is None else inputs.time_s
            self._observe(inputs.measured, inputs.joint_state_age_s)
            if self.condition and self.enabled and self.fault is None:
                self.fault = self.condition
            decision = self._run_step(inputs) if self._running else self._idle_step(inputs)
            if decision.intervention is not None:
                self.counts[decision.intervention.value] += 1
            else:
                self.counts[SENT] += 1
                for kind in decision.clamped:
                    self.counts[kind.value] += 1
            return decision

    def _observe(self, measured: np.ndarray | None, age_s: float | None) -> None:
        """Check the measured state; keep it (and its recent history) when it is usable: well-formed,
        fresh and without a fault condition."""
        self.condition = None
        self._measured = None
        if measured is not None:
            try:
                values = np.asarray(measured, dtype=np.float64)
            except (TypeError, ValueError):
                values = np.full(0, np.nan)
            if values.shape != self._lower.shape or not np.isfinite(values).all():
                self.condition = (
                    f"the measured state {np.array2string(values.ravel()[:8], precision=3)} is not "
                    f"{len(self.joint_names)} finite positions"
                )
            else:
                self.condition = self._outside_limits(values) or self._inconsistent(values, age_s or 0.0)
                fresh = age_s is not None and age_s <= self.config.max_joint_state_age_s
                self._measured = values if fresh and not self.condition else None
        if self._measured is None:
            self._recent.clear()
        else:
            self._recent.append(values)

    def _outside_limits(self, values: np.ndarray) -> str | None:
        tolerance = self.config.rest_tolerance
        outside = (values < self._lower - tolerance) | (values > self._upper + tolerance)
        if not outside.any():
            return None
        i = int(np.flatnonzero(outside)[0])
        return (
            f"joint {self.joint_names[i]} is measured at {values[i]:.6g}, outside its limits "
            f"[{self._lower[i]:g}, {self._upper[i]:g}]"
        )

    def _inconsistent(self, values: np.ndarray, age_s: float) -> str | None:
        """Farther from the last command than the tracking tolerance plus what the velocity limit
        allows since that command (and over the measurement's age)?"""
        if self._last is None:
            return None
        elapsed = self._now - self._last_time + age_s
        allowed = self.config.tracking_tolerance + self._vmax * elapsed
        apart = np.abs(values - self._last)
        if not (apart > allowed).any():
            return None
        i = int(np.flatnonzero(apart > allowed)[0])
        return (
            f"joint {self.joint_names[i]} is measured at {values[i]:.6g} but was last commanded to "
            f"{self._last[i]:.6g}, {apart[i]:.3g} apart, more than the arm can be "
            f"({allowed[i]:.3g}): it does not follow the commands, or the joint states come from elsewhere"
        )

    def _stale(self, inputs: Inputs) -> Intervention | None:
        cfg = self.config
        if inputs.joint_state_deadline_missed or (
            inputs.joint_state_age_s is None or inputs.joint_state_age_s > cfg.max_joint_state_age_s
        ):
            return Intervention.STALE_JOINT_STATES
        if inputs.camera_deadline_missed or not self.camera_fresh(inputs.camera_age_s):
            return Intervention.STALE_CAMERA
        return None

    def _idle_step(self, inputs: Inputs) -> Decision:
        """No run: start one at the measured position when everything allows it."""
        if not self.enabled:
            return Decision(None, Intervention.DISABLED)
        if self.fault is not None:
            return Decision(None, Intervention.FAULT)
        if self.stopped:
            return Decision(None, Intervention.STOPPED)
        if inputs.measured is None:
            return Decision(None, Intervention.NO_JOINT_STATE)
        if self._stale(inputs) is Intervention.STALE_JOINT_STATES:
            return Decision(None, Intervention.STALE_JOINT_STATES)
        start = self._start_point()
        if start is None:
            return Decision(None, Intervention.WAITING_FOR_REST)
        self._running = True
        self._velocity = np.zeros_like(self._velocity)
        self._record(start)
        return Decision(start.copy(), Intervention.START, velocity=self._velocity.copy())

    def _start_point(self) -> np.ndarray | None:
        """The measured position (inside the limits) when the arm is at rest and could have got there
        from the last command at the velocity limit; None while that is not (yet) the case."""
        if self._measured is None or len(self._recent) < self.config.rest_steps:
            return None
        recent = np.stack(self._recent)
        if (recent.max(axis=0) - recent.min(axis=0) > self.config.rest_tolerance).any():
            return None
        start = np.clip(self._measured, self._lower, self._upper)
        if self._last is not None:
            reach = self._vmax * (self._now - self._last_time)
            if (np.abs(start - self._last) > reach).any():
                return None
        return start

    def _run_step(self, inputs: Inputs) -> Decision:
        reason = (
            (Intervention.DISABLED if not self.enabled else None)
            or (Intervention.FAULT if self.fault is not None else None)
            or (Intervention.STOPPED if self.stopped else None)
            or self._stale(inputs)
            or (Intervention.EMPTY_QUEUE if inputs.action is None else None)
            or (None if self._valid(inputs.action) else Intervention.INVALID_ACTION)
        )
        if reason is None:
            target = np.asarray(inputs.action, dtype=np.float64)
            command, clamped = self._advance((target - self._last) / self.config.period_s)
            return Decision(command, None, clamped, self._velocity.copy())
        if reason in (Intervention.DISABLED, Intervention.FAULT) and not self._velocity.any():
            self._running = False  # at rest: output stops
            return Decision(None, reason)
        command, _ = self._advance(np.zeros_like(self._velocity))  # brake
        return Decision(command, reason, velocity=self._velocity.copy())

    def _valid(self, action: np.ndarray) -> bool:
        action = np.asarray(action)
        return action.shape == (len(self.joint_names),) and bool(np.isfinite(action).all())

    def _advance(self, wanted: np.ndarray) -> tuple[np.ndarray, tuple[Intervention, ...]]:
        """The one place commands are made: move from the last command with the velocity closest to
        `wanted` that the velocity, acceleration and braking-distance limits allow."""
        dt = self.config.period_s
        clamped = []
        velocity = np.clip(wanted, -self._vmax, self._vmax)
        if not np.array_equal(velocity, wanted):
            clamped.append(Intervention.VELOCITY_LIMIT)
        dv = self._amax * dt
        accelerated = np.clip(velocity, self._velocity - dv, self._velocity + dv)
        if not np.array_equal(accelerated, velocity):
            clamped.append(Intervention.ACCELERATION_LIMIT)
        slowest, fastest = self._stoppable_velocities(self._last)
        bounded = np.clip(accelerated, slowest, fastest)
        if not np.array_equal(bounded, accelerated):
            clamped.append(Intervention.POSITION_LIMIT)
        command = np.clip(self._last + bounded * dt, self._lower, self._upper)
        self._velocity = (command - self._last) / dt
        self._record(command)
        return command.copy(), tuple(clamped)

    def _stoppable_velocities(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The velocity range from which the arm, after one step, can still brake to rest at the
        acceleration limit before reaching a position limit: v*dt + v^2/(2a) <= room, solved for v as
        2*room / (dt + sqrt(dt^2 + 2*room/a)) (no loss of precision for large a; room/dt for a = inf)."""
        dt = self.config.period_s

        def fastest(room: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore"):
                braking = np.where(np.isinf(self._amax), 0.0, 2.0 * room / self._amax)
                speed = 2.0 * room / (dt + np.sqrt(dt * dt + braking))
            return np.where(np.isinf(room), np.inf, np.maximum(speed, 0.0))

        return -fastest(position - self._lower), fastest(self._upper - position)

    def _record(self, command: np.ndarray) -> None:
        self._last = command
        self._last_time = self._now
