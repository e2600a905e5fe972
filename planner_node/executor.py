"""Running a checked plan step by step against the robot (no rclpy; issue 14).

`PlanExecutor.run()` blocks until the plan ends and is meant for a thread of its own (the ROS node runs
it off the executor thread); `cancel()` may be called from any thread and takes effect within one poll
period. Every call into the `Robot` is made from the thread that runs the plan. Before each step the
step is checked again against the robot's context of that moment (`check_step`): a person who left is
not greeted, an object no longer seen is not reached for. The executor only asks: speech through
`say`/`greet`, motion through `start_vla` (the VLA node's safety layer decides what moves) and `stop`;
it has no way to enable motion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from planner_node.checker import check_step, refusal
from planner_node.context import Context
from planner_node.plan_schema import DEFAULT_LIMITS, Plan, PlanLimits, Step


class VlaState(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class VlaStatus:
    """The state of the task last given to the VLA; `detail` says why it failed."""

    state: VlaState
    detail: str = ""


class Robot(Protocol):
    """What the planner may make the robot do. Every method returns promptly (publish, read a cache)."""

    def context(self) -> Context:
        """What the robot knows now."""

    def say(self, text: str) -> None:
        """Speak `text`."""

    def greet(self, person: str) -> str:
        """Greet `person` (in view); returns what was said."""

    def start_vla(self, instruction: str) -> None:
        """Give the VLA a new task. From then on `vla_status` reports this task, not an earlier one."""

    def vla_status(self) -> VlaStatus:
        """The state of the task last started."""

    def stop(self) -> None:
        """End the VLA's current task (the arm holds)."""


class Outcome(Enum):
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # a step no longer fits the context
    FAILED = "failed"  # the VLA reported failure, or a robot call raised
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class PlanResult:
    outcome: Outcome
    steps_done: int
    said: tuple[str, ...]
    reason: str = ""  # why the plan stopped early; empty on success

    @property
    def success(self) -> bool:
        return self.outcome is Outcome.SUCCEEDED


@dataclass(frozen=True)
class ExecutorConfig:
    vla_timeout_s: float = 60.0  # a `vla` step not done by then is stopped and the plan ends
    poll_s: float = 0.05  # how often the VLA's status and the context are read while waiting
    announce_failures: bool = True  # say why a plan stopped early (not after a cancel)
    limits: PlanLimits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if not self.vla_timeout_s > 0:
            raise ValueError(f"planner executor: vla_timeout_s ({self.vla_timeout_s}) must be positive")
        if not 0 < self.poll_s <= 1:
            raise ValueError(f"planner executor: poll_s ({self.poll_s}) must be in (0, 1] seconds")


DEFAULT_CONFIG = ExecutorConfig()


class _Stopped(Exception):  # noqa: N818 (control flow, not an error)
    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


class PlanExecutor:
    """Runs one plan once. `on_step(index, step)` is called as each step starts, `on_say(text)` after
    each thing said; both on the running thread."""

    def __init__(
        self,
        plan: Plan,
        robot: Robot,
        config: ExecutorConfig = DEFAULT_CONFIG,
        *,
        on_step: Callable[[int, Step], None] | None = None,
        on_say: Callable[[str], None] | None = None,
    ) -> None:
        self._plan, self._robot, self._config = plan, robot, config
        self._on_step, self._on_say = on_step, on_say
        self._cancel = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()
        self._said: list[str] = []

    def cancel(self) -> None:
        """Stop the plan (and the VLA task it started) as soon as the running thread notices."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> PlanResult:
        """Run the plan to its end, a refusal, a failure, a timeout or a cancel; blocks."""
        with self._start_lock:
            if self._started:
                raise RuntimeError("a PlanExecutor runs its plan once; make a new one")
            self._started = True
        done = 0
        try:
            for index, step in enumerate(self._plan.steps):
                self._check_cancel()
                self._run_step(index, step)
                done += 1
        except _Stopped as stopped:
            if stopped.outcome is not Outcome.CANCELLED and self._config.announce_failures:
                self._try_say(stopped.reason)
            return PlanResult(stopped.outcome, done, tuple(self._said), stopped.reason)
        return PlanResult(Outcome.SUCCEEDED, done, tuple(self._said))

    # -- steps ----------------------------------------------------------------------------------

    def _run_step(self, index: int, step: Step) -> None:
        """Check `step` against the context of now, then run it; any error ends the plan (_Stopped)."""
        robot = self._robot
        try:
            error = check_step(step, robot.context(), self._config.limits)
            if error is not None:
                raise _Stopped(Outcome.REFUSED, error.reason)
            if self._on_step is not None:
                self._on_step(index, step)
            if step.tool == "say":
                robot.say(step.args["text"])
                self._record(step.args["text"])
            elif step.tool == "greet":
                self._record(robot.greet(step.args["person"]))
            elif step.tool == "vla":
                self._run_vla(step.args["instruction"])
            elif step.tool == "wait_for":
                self._wait_for(step.args["person"], step.args["timeout_s"])
            elif step.tool == "stop":
                robot.stop()
            else:  # check_step refuses unknown tools; a new tool must be added here too
                raise _Stopped(Outcome.REFUSED, f"I cannot run the tool {step.tool}.")
        except _Stopped:
            raise
        except Exception as error:
            raise _Stopped(Outcome.FAILED, f"{step.tool} failed: {type(error).__name__}: {error}") from error

    def _run_vla(self, instruction: str) -> None:
        deadline = time.monotonic() + self._config.vla_timeout_s
        try:
            self._robot.start_vla(instruction)
            while True:
                status = self._robot.vla_status()
                if status.state is VlaState.SUCCEEDED:
                    return
                if status.state is VlaState.FAILED:
                    detail = f": {status.detail}" if status.detail else ""
                    raise _Stopped(Outcome.FAILED, f"The arm could not {instruction}{detail}.")
                if time.monotonic() >= deadline:
                    raise _Stopped(
                        Outcome.TIMED_OUT,
                        f"The arm did not {instruction} within {self._config.vla_timeout_s:g} seconds.",
                    )
                self._pause()
        except BaseException:
            self._robot.stop()  # never leave a task of this plan running
            raise

    def _wait_for(self, person: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._robot.context().sees(person):
            if time.monotonic() >= deadline:
                raise _Stopped(Outcome.TIMED_OUT, f"{person} did not come within {timeout_s:g} seconds.")
            self._pause()

    # -- helpers --------------------------------------------------------------------------------

    def _pause(self) -> None:
        """Wait one poll period; ends the plan at once on cancel."""
        if self._cancel.wait(self._config.poll_s):
            self._check_cancel()

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise _Stopped(Outcome.CANCELLED, "cancelled")

    def _record(self, text: str) -> None:
        if text:
            self._said.append(text)
            if self._on_say is not None:
                self._on_say(text)

    def _try_say(self, reason: str) -> None:
        text = refusal(reason, self._config.limits).steps[0].args["text"]  # printable, bounded
        try:
            self._robot.say(text)
        except Exception:  # the reason is in the result either way
            return
        self._record(text)
