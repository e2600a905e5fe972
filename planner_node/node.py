"""planner_node: what people say → a checked plan → speech and VLA tasks (a managed node; issue 14).

Requests come as the action /planner/execute (humanoid_stack/action/ExecuteInstruction: feedback with
the plan and the step running, a result with what was done and said) or as a String on
/planner/instruction. For each, on a worker thread: the context of the moment (world_view.py, from
/memory/people, /memory/events, the /memory/list_people service, /perception/detections, the task
status topic and /vla/instruction), the on-device model's plan under the grammar of that context
(plan_schema.py, llm.py), the deterministic check (checker.py), then the steps (executor.py): speech
on /speech/say, tasks on /vla/instruction. The planner never enables motion: the VLA node's safety
layer decides what moves. One request at a time: a new one preempts the running one (`preempt`), or
is refused while one runs. A request that only says stop (stop_request.py) is never refused: it stops
the arm at once, without the model.

The action's goal is ACCEPTED while it is planned and carried out and EXECUTING only as its result
is set: rclpy runs an action's execute callback on the executor's thread, and this node's single
thread must keep serving the context topics meanwhile.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from std_msgs.msg import String

from humanoid_common.assets import model_file
from humanoid_common.diagnostics import OK, WARN, DiagnosticsPublisher, LatencyWindow
from humanoid_common.lifecycle import ManagedNode, run_node
from humanoid_common.qos import load_qos_config
from humanoid_common.validation import InvalidMessageError, bounded_count, bounded_text
from humanoid_common.watch import WatchedPublisher, WatchedSubscription, inputs_status
from humanoid_stack.action import ExecuteInstruction
from humanoid_stack.msg import DetectionArray, MemoryEvent, Person, PersonArray
from humanoid_stack.srv import ListPeople
from planner_node.checker import plan_to_run, refusal
from planner_node.context import Context
from planner_node.executor import ExecutorConfig, Outcome, PlanExecutor, PlanResult, VlaStatus
from planner_node.llm import GenerationCancelled, ModelConfig, PlanModel, load_model
from planner_node.plan_schema import DEFAULT_LIMITS, Plan, plan_schema, prompt_messages
from planner_node.stop_request import STOP_PLAN, is_stop_request
from planner_node.world_view import WorldView, WorldViewConfig

PARAMETERS: dict[str, tuple[Any, str]] = {
    "backend": ("llama_cpp", "llama_cpp | edge_llm | tensorrt_llm"),
    "model": (ModelConfig.model, "asset name or path: a GGUF (llama_cpp), a checkpoint or engine (TensorRT)"),
    "device": ("cpu", "cpu | cuda | cuda:N"),
    "threads": (0, "CPU threads for the model; 0: all cores"),
    "context_tokens": (4096, "the model's context window"),
    "max_tokens": (256, "longest answer"),
    "planning_budget_s": (8.0, "after this long planning, the robot says it is still thinking"),
    "preempt": (True, "a new request cancels the running one (false: refused while one runs)"),
    "vla_timeout_s": (60.0, "a VLA task not done by then is stopped and the plan ends"),
    "in_view_s": (3.0, "a person recognised within this many seconds is in view"),
    "object_memory_s": (10.0, "an object detected within this many seconds is seen"),
    "min_object_score": (0.5, "detections below this score are not objects"),
    "excluded_objects": (["person"], "labels never offered as objects to reach for"),
    "task_status_topic": ("/sim/status", "JSON {instruction, success, objects}; empty: none"),
    "known_people_period_s": (10.0, "how often the memory's person list is read"),
    "greeting": ("Hello, {name}!", "what greet(person) says; {name} is the person"),
    "qos_file": ("", "QoS file (empty: config/qos.yaml)"),
}
#: Longest String request on /planner/instruction taken at all (the planner's own limit is lower).
MAX_REQUEST_MESSAGE_CHARS = 4 * DEFAULT_LIMITS.max_request_chars
MAX_PEOPLE = 256
MAX_DETECTIONS = 1000
MAX_STATUS_CHARS = 65_536
MAX_NAME_CHARS = 256  # of a display name in an event (longer names never reach the context anyway)
EVENT_TYPES = frozenset(
    {
        MemoryEvent.WELCOME_BACK,
        MemoryEvent.ARE_YOU,
        MemoryEvent.NEW_PERSON,
        MemoryEvent.LEFT,
        MemoryEvent.FORGOTTEN,
    }
)
#: Said once a plan has taken `planning_budget_s`.
STILL_THINKING = "I'm still thinking."
#: How long a request waits for the memory's person list before planning without it.
LIST_PEOPLE_WAIT_S = 1.0


@dataclass
class _Job:
    """One request: its goal handle (None for a topic request), what it asked and where it got to."""

    request: str
    goal: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)
    executor: PlanExecutor | None = None
    plan: Plan | None = None
    outcome: str = ""
    result: PlanResult | None = None
    started: float = field(default_factory=time.monotonic)
    warm_up: bool = False  # only fill the model's prompt cache
    notices: list[str] = field(default_factory=list)  # said while planning, before the plan's steps
    stop_only: bool = field(init=False)  # the request only says stop: no model, never refused

    def __post_init__(self) -> None:
        self.stop_only = is_stop_request(self.request)


class PlannerNode(ManagedNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("planner_node", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.model: PlanModel | None = None
        self.world = WorldView()
        self.executor_config = ExecutorConfig()
        self.plans = {"planned": 0, "refused_by_checker": 0, "failed": 0}
        self.plan_ms = LatencyWindow(200)
        self._job: _Job | None = None  # running
        self._pending: _Job | None = None  # next
        self._worker: threading.Thread | None = None
        self._stopped_worker: threading.Thread | None = None  # may still be leaving the model
        # The worker's ROS calls (feedback, results, speech, tasks, the person list) run under this lock
        # and only while _ros_open: a model call that returns after a stop finds them gone and does
        # nothing, instead of using an action server or publisher being destroyed (a crash in rcl).
        self._ros_lock = threading.RLock()
        self._ros_open = False
        self._job_lock = threading.Lock()
        self._wake = threading.Condition(self._job_lock)
        self._finished: dict[bytes, _Job] = {}  # goal id → its ended job, until its result is sent
        self._subs: list[WatchedSubscription] = []
        self._pubs: dict[str, WatchedPublisher] = {}
        self._action: ActionServer | None = None
        self._list_client: Any = None
        self._timer_handles: list[Any] = []
        self._diagnostics: DiagnosticsPublisher | None = None
        self.autostart()

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _while_open(self, call: Callable[[], Any]) -> bool:
        """Make a ROS call unless the node has stopped its inputs and outputs (see _ros_lock); whether
        it was made."""
        with self._ros_lock:
            if self._ros_open:
                call()
            return self._ros_open

    # -- lifecycle ----------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        config = ModelConfig(
            backend=self._param("backend"),
            model=self._param("model"),
            device=self._param("device"),
            threads=int(self._param("threads")),
            context_tokens=int(self._param("context_tokens")),
            max_tokens=int(self._param("max_tokens")),
        )
        self.world = WorldView(
            WorldViewConfig(
                in_view_s=float(self._param("in_view_s")),
                object_memory_s=float(self._param("object_memory_s")),
                min_object_score=float(self._param("min_object_score")),
                excluded_objects=tuple(self._param("excluded_objects")),
            )
        )
        self.executor_config = ExecutorConfig(vla_timeout_s=float(self._param("vla_timeout_s")))
        if not self._param("planning_budget_s") > 0 or not self._param("known_people_period_s") > 0:
            raise ValueError("planning_budget_s and known_people_period_s must be > 0 s")
        self._param("greeting").format(name="")  # a malformed template fails here, not at a greeting
        path = model_file(config.model, "model") if config.backend == "llama_cpp" else config.model
        started = time.monotonic()
        self.model = load_model(config, str(path))
        self.get_logger().info(
            f"{config.backend} model {self.model.name} loaded in {time.monotonic() - started:.1f} s"
        )
        self._diagnostics = DiagnosticsPublisher(self, "planner_node", 1.0)
        self._diagnostics.add("planner", self._status)
        self._diagnostics.add("inputs", inputs_status(lambda: self._subs))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos = load_qos_config(self._param("qos_file") or None)
        self._pubs = {
            topic: WatchedPublisher(self, String, topic, qos) for topic in ("/speech/say", "/vla/instruction")
        }
        subs = [
            (PersonArray, "/memory/people", self._on_people),
            (MemoryEvent, "/memory/events", self._on_event),
            (DetectionArray, "/perception/detections", self._on_detections),
            (String, "/vla/instruction", self._on_arm_instruction),
            (String, "/planner/instruction", self._on_instruction),
        ]
        if self._param("task_status_topic"):
            subs.append((String, self._param("task_status_topic"), self._on_task_status))
        self._subs = [WatchedSubscription(self, *spec, qos) for spec in subs]
        self._list_client = self.create_client(ListPeople, "/memory/list_people")
        period = float(self._param("known_people_period_s"))
        self._timer_handles = [self.create_timer(period, self._ask_known_people)]
        self._action = ActionServer(
            self,
            ExecuteInstruction,
            "/planner/execute",
            execute_callback=self._finish_goal,
            goal_callback=self._on_goal,
            handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel,
        )
        with self._ros_lock:
            self._ros_open = True
        self._ask_known_people()
        # The first job reads the prompt's fixed part (rules, tools, examples) into the model's cache, so
        # the first person to ask does not wait for it; a request that comes meanwhile preempts it.
        self._start(_Job("hello", warm_up=True))
        return super().on_activate(state)

    def stop_input(self) -> None:
        for sub in self._subs:
            sub.destroy()
        self._subs = []
        for timer in self._timer_handles:
            self.destroy_timer(timer)
        self._timer_handles = []
        self._end_job(wait_s=1.0)
        with self._ros_lock:
            self._ros_open = False
        if self._action is not None:
            self._action.destroy()
            self._action = None
        if self._list_client is not None:
            self.destroy_client(self._list_client)
            self._list_client = None
        for publisher in self._pubs.values():
            self.destroy_publisher(publisher.publisher)
        self._pubs = {}

    def release(self) -> None:
        if self._diagnostics is not None:
            self._diagnostics.destroy()
            self._diagnostics = None
        worker = self._stopped_worker
        if self.model is not None:
            if worker is not None and worker.is_alive():
                # Still inside a prompt chunk after the cancel (a loaded CPU): freeing the model under it
                # would crash; it is freed with its last reference when that call returns.
                self.get_logger().info("the model call ends after the cancel; its memory is freed then")
            else:
                self.model.close()
            self.model = None

    # -- inputs (executor thread) -------------------------------------------------------------------
    def _on_people(self, msg: PersonArray) -> None:
        people = bounded_count(msg.people, "people", MAX_PEOPLE)
        names = [p.display_name for p in people if p.band == Person.BAND_KNOWN and p.display_name]
        self.world.people_recognised(names, time.monotonic())

    def _on_event(self, msg: MemoryEvent) -> None:
        if msg.type not in EVENT_TYPES:
            raise InvalidMessageError(f"unknown memory event type {msg.type}")
        bounded_text(msg.display_name, "display_name", MAX_NAME_CHARS)
        if msg.type == MemoryEvent.LEFT:
            self.world.person_left(msg.display_name)
        elif msg.type == MemoryEvent.FORGOTTEN:
            self.world.person_forgotten(msg.display_name)

    def _on_detections(self, msg: DetectionArray) -> None:
        detections = bounded_count(msg.detections, "detections", MAX_DETECTIONS)
        self.world.objects_detected(((d.class_name, d.score) for d in detections), time.monotonic())

    def _on_arm_instruction(self, msg: String) -> None:
        self.world.arm_instruction(bounded_text(msg.data, "instruction", MAX_REQUEST_MESSAGE_CHARS))

    def _on_task_status(self, msg: String) -> None:
        try:
            status = json.loads(bounded_text(msg.data, "task status", MAX_STATUS_CHARS))
        except json.JSONDecodeError as error:
            raise InvalidMessageError(f"task status is not JSON: {error}") from error
        if not isinstance(status, dict):
            raise InvalidMessageError("task status is not a JSON object")
        instruction, success = status.get("instruction"), status.get("success")
        objects = status.get("objects")
        if not isinstance(instruction, str) or not isinstance(success, bool):
            raise InvalidMessageError("task status needs a string 'instruction' and a boolean 'success'")
        if objects is not None:
            if not isinstance(objects, dict | list) or not all(isinstance(o, str) for o in objects):
                raise InvalidMessageError("task status 'objects' must name objects by strings")
            self.world.scene_objects(bounded_count(list(objects), "objects", MAX_DETECTIONS))
        self.world.task_status(instruction, success)

    def _ask_known_people(self) -> threading.Event:
        """Ask the memory for its people; the returned event is set when the answer is in."""
        answered = threading.Event()

        def take(future: Any) -> None:
            response = future.result() if future.exception() is None else None
            if response is not None:
                people = response.people
                self.world.known_people(p.display_name for p in people if p.consent and not p.archived)
            answered.set()

        def ask() -> None:
            client = self._list_client
            if client is None or not client.service_is_ready():
                answered.set()
            else:
                client.call_async(ListPeople.Request()).add_done_callback(take)

        if not self._while_open(ask):
            answered.set()
        return answered

    def _on_instruction(self, msg: String) -> None:
        request = bounded_text(msg.data, "instruction", MAX_REQUEST_MESSAGE_CHARS)
        if not request.strip():
            raise InvalidMessageError("empty instruction")
        job = _Job(request)
        if not self._param("preempt") and self._busy() and not job.stop_only:
            self.get_logger().warning(f"busy with a request: {request[:80]!r} dropped (preempt is false)")
            return
        self._start(job)

    # -- the action ---------------------------------------------------------------------------------
    def _on_goal(self, goal_request: Any) -> GoalResponse:
        if not self._param("preempt") and self._busy() and not is_stop_request(goal_request.instruction):
            self.get_logger().info("goal refused: busy with another request (preempt is false)")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_accepted(self, goal_handle: Any) -> None:
        self._start(_Job(goal_handle.request.instruction, goal=goal_handle))

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        with self._job_lock:
            running, waiting = self._job, self._pending
            if waiting is not None and waiting.goal is goal_handle:
                self._pending = None
        if running is not None and running.goal is goal_handle:
            self._cancel(running, "cancelled")
        elif waiting is not None and waiting.goal is goal_handle:
            waiting.outcome = "cancelled"
            waiting.result = PlanResult(Outcome.CANCELLED, 0, (), "cancelled before it was planned")
            self._deliver(waiting)
        return CancelResponse.ACCEPT

    def _finish_goal(self, goal_handle: Any) -> ExecuteInstruction.Result:
        """The execute callback: runs once the job is over (see the module docstring)."""
        job: _Job = self._finished.pop(bytes(goal_handle.goal_id.uuid))
        result = job.result
        response = ExecuteInstruction.Result(
            success=bool(result and result.success and job.outcome == "succeeded"),
            outcome=job.outcome,
            steps_done=result.steps_done if result else 0,
            plan=job.plan.to_json() if job.plan else "",
            said=[*job.notices, *(result.said if result else ())],
            reason=(result.reason if result else "") or ("" if job.outcome == "succeeded" else job.outcome),
        )
        if job.outcome in ("cancelled", "preempted") and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif response.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return response

    # -- jobs: one worker thread, one request running and at most one waiting (the newest) ----------
    def _busy(self) -> bool:
        with self._job_lock:
            return (self._job is not None and not self._job.warm_up) or self._pending is not None

    def _start(self, job: _Job) -> None:
        """Queue `job` as the next request; it preempts the running one and replaces one still waiting,
        so a flood of requests costs no more than the last of them. A stop request stops the arm here and
        now, before the running request has let go of the model."""
        with self._job_lock:
            replaced, self._pending = self._pending, job
            if self._job is not None:
                self._cancel(self._job, "preempted")
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, args=(self._stopped_worker,), name="planner", daemon=True
                )
                self._worker.start()
            self._wake.notify()
        if job.stop_only:  # after the running request was cancelled, so it ends quietly
            self.get_logger().info(f"stop request {job.request[:80]!r}: the arm is stopped now")
            _RosRobot(self).stop()
        if replaced is not None:
            replaced.outcome = "preempted"
            replaced.result = PlanResult(Outcome.CANCELLED, 0, (), "preempted before it was planned")
            self._deliver(replaced)

    def _end_job(self, wait_s: float) -> None:
        """Cancel the running request, drop the waiting one, stop the worker (deactivate, shutdown)."""
        with self._job_lock:
            worker, self._worker = self._worker, None
            waiting, self._pending = self._pending, None
            if self._job is not None:
                self._cancel(self._job, "cancelled")
            self._wake.notify()
        if waiting is not None:
            waiting.outcome = "cancelled"
            waiting.result = PlanResult(Outcome.CANCELLED, 0, (), "the planner stopped")
            self._deliver(waiting)
        if worker is not None:
            worker.join(wait_s)
            self._stopped_worker = worker

    def _work(self, previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()  # a worker of an earlier activation still in the model: one call at a time
        me = threading.current_thread()
        while True:
            with self._job_lock:
                while self._pending is None and self._worker is me:
                    self._wake.wait()
                if self._worker is not me:
                    return
                job, self._pending = self._pending, None
                self._job = job
            self._run_job(job)
            with self._job_lock:
                self._job = None

    def _deliver(self, job: _Job) -> None:
        """Hand an ended job's result to its action client (any thread; see the module docstring)."""
        if job.goal is None:
            return
        self._finished[bytes(job.goal.goal_id.uuid)] = job
        try:
            self._while_open(lambda: job.goal.execute(self._finish_goal))
        except Exception as error:  # the node is being destroyed: its executor and the goal are gone
            self.get_logger().warning(f"the result of {job.request[:60]!r} could not be sent: {error}")

    @staticmethod
    def _cancel(job: _Job, outcome: str) -> None:
        job.outcome = job.outcome or outcome
        job.cancel.set()
        if job.executor is not None:
            job.executor.cancel()

    def _run_job(self, job: _Job) -> None:
        if job.warm_up:
            empty = Context()
            try:
                self.model.complete(
                    prompt_messages(empty, job.request), plan_schema(empty), cancel=job.cancel
                )
            except GenerationCancelled:
                return
            except Exception as error:  # the requests will meet it again and report it
                self.get_logger().error(f"warming the model up failed: {type(error).__name__}: {error}")
                return
            self.get_logger().info(f"prompt cached in {time.monotonic() - job.started:.1f} s")
            return
        try:
            self._plan_and_execute(job)
        except Exception as error:  # a bug or a backend failure: the request ends, the node goes on
            self.plans["failed"] += 1
            job.outcome = job.outcome or "failed"
            self.get_logger().error(f"request {job.request[:80]!r} failed: {type(error).__name__}: {error}")
            job.result = job.result or PlanResult(Outcome.FAILED, 0, (), f"{type(error).__name__}: {error}")
        finally:
            self._deliver(job)

    def _plan_and_execute(self, job: _Job) -> None:
        robot = _RosRobot(self)
        self._feedback(job, "planning", -1, "")
        if job.cancel.is_set():
            return self._cancelled(job, "cancelled before planning")
        if job.stop_only:
            job.plan = STOP_PLAN  # no model: _start has stopped the arm, the plan reports it
        else:
            job.plan = self._plan_with_context(job, robot)
        if job.plan is None:
            return self._cancelled(job, "cancelled while planning")
        job.executor = PlanExecutor(
            job.plan,
            robot,
            self.executor_config,
            on_step=lambda index, step: self._feedback(job, "executing", index, step.tool),
        )
        if job.cancel.is_set():
            job.executor.cancel()
        job.result = job.executor.run()
        job.outcome = job.outcome or job.result.outcome.value

    @staticmethod
    def _cancelled(job: _Job, reason: str) -> None:
        job.outcome = job.outcome or "cancelled"
        job.result = PlanResult(Outcome.CANCELLED, 0, (), reason)

    def _plan_with_context(self, job: _Job, robot: _RosRobot) -> Plan | None:
        """The plan for `job` in the context of the moment (known people asked for first)."""
        self._ask_known_people().wait(LIST_PEOPLE_WAIT_S)
        context = self.world.context(time.monotonic())
        try:
            messages = prompt_messages(context, job.request)
        except ValueError as error:
            return refusal(str(error))
        return self._plan(job, context, messages, robot)

    def _plan(
        self, job: _Job, context: Context, messages: list[dict[str, str]], robot: _RosRobot
    ) -> Plan | None:
        """The model's checked plan, a refusal saying why it cannot be used, or None when cancelled."""
        budget = threading.Timer(float(self._param("planning_budget_s")), self._still_thinking, (job, robot))
        budget.daemon = True
        budget.start()
        try:
            completion = self.model.complete(messages, plan_schema(context), cancel=job.cancel)
        except GenerationCancelled:
            return None
        finally:
            budget.cancel()
        self.plan_ms.add(completion.total_s * 1e3)
        plan, refused = plan_to_run(completion.text, context, job.request)
        self.plans["planned"] += 1
        if refused is not None:
            self.plans["refused_by_checker"] += 1
            self.get_logger().warning(f"plan refused by the checker ({refused}): {completion.text[:300]!r}")
            return plan
        self.get_logger().info(
            f"plan for {job.request[:80]!r} in {completion.total_s:.1f} s "
            f"(first token {completion.first_token_s:.2f} s): {plan.to_json()}"
        )
        return plan

    @staticmethod
    def _still_thinking(job: _Job, robot: _RosRobot) -> None:
        robot.say(STILL_THINKING)
        job.notices.append(STILL_THINKING)

    def _feedback(self, job: _Job, state: str, step: int, tool: str) -> None:
        if job.goal is None:
            return
        feedback = ExecuteInstruction.Feedback(
            state=state,
            plan=job.plan.to_json() if job.plan else "",
            current_step=step,
            current_tool=tool,
            elapsed_s=time.monotonic() - job.started,
        )
        self._while_open(lambda: job.goal.publish_feedback(feedback))

    def _status(self) -> tuple[int, str, dict[str, Any]]:
        with self._job_lock:
            job = self._job
        running = job is not None
        values = {
            **self.plans,
            "model": self.model.name if self.model else "none",
            "busy": running,
            "plan_ms.median": round(self.plan_ms.median, 1) if self.plan_ms.count else "none",
            "plan_ms.p99": round(self.plan_ms.p99, 1) if self.plan_ms.count else "none",
        }
        if self.plans["failed"]:
            return WARN, f"{self.plans['failed']} requests failed (see the log)", values
        if running and job.warm_up:
            return OK, "warming up (reading the prompt into the model's cache)", values
        return OK, ("working on: " + job.request[:60]) if running else "idle", values


class _RosRobot:
    """The executor's Robot over this node's topics (every call publishes or reads the world view)."""

    def __init__(self, node: PlannerNode) -> None:
        self._node = node
        self._task = ""  # the instruction this robot last gave the VLA

    def context(self) -> Context:
        return self._node.world.context(time.monotonic())

    def _publish(self, topic: str, text: str) -> None:
        self._node._while_open(lambda: self._node._pubs[topic].publish(String(data=text)))

    def say(self, text: str) -> None:
        self._publish("/speech/say", text)

    def greet(self, person: str) -> str:
        text = self._node._param("greeting").format(name=person)
        self.say(text)
        return text

    def start_vla(self, instruction: str) -> None:
        self._task = instruction
        self._node.world.begin_task(instruction)
        self._publish("/vla/instruction", instruction)

    def vla_status(self) -> VlaStatus:
        return self._node.world.task_state(self._task)

    def stop(self) -> None:
        self.start_vla("")  # an empty instruction: the VLA ends its task and the arm holds


def main(args: list[str] | None = None) -> int:
    return run_node(PlannerNode, args)


if __name__ == "__main__":
    sys.exit(main())
