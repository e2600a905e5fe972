"""planner_node over real rclpy topics with a real model (Qwen2.5-Coder-0.5B on llama.cpp): the action
with feedback and result, grounding in what the memory and perception report (an unconsented person is
never named), speech and VLA tasks on their topics, a task monitor that reports success, cancel and
preemption, hostile messages dropped while the node goes on, and exit 78 for a backend that is absent.

The assertions are about invariants that hold whatever the model plans (only what the context holds
is named, what was said is what was published, a cancelled plan leaves no task running), plus the cases
the grammar decides alone (nothing to greet or touch: only `say` or `stop` can be planned). How well
the model plans is the benchmark's question (bench/planner.py), not these tests'.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionClient
from rclpy.parameter import Parameter
from std_msgs.msg import String

from harness import REPO, wait_for
from humanoid_common.qos import load_qos_config
from humanoid_stack.action import ExecuteInstruction
from humanoid_stack.msg import Detection, DetectionArray, MemoryEvent, Person, PersonArray, PersonInfo
from humanoid_stack.srv import ListPeople

pytestmark = pytest.mark.integration
MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
PLAN_TIMEOUT_S = 120.0


class Scene:
    """The planner's world from the test's side: a face memory (people, events, list service), a
    detector, a task monitor that reports an instruction done `task_s` after it was given, and
    collectors of what the planner says and asks the arm to do."""

    def __init__(self, ros, *, task_s: float | None = 0.5) -> None:
        qos = load_qos_config()
        self.node = ros.node("planner_scene")
        pub = self.node.create_publisher
        self.people_pub = pub(PersonArray, "/memory/people", qos.profile("/memory/people"))
        self.events_pub = pub(MemoryEvent, "/memory/events", qos.profile("/memory/events"))
        self.detections_pub = pub(
            DetectionArray, "/perception/detections", qos.profile("/perception/detections")
        )
        self.status_pub = pub(String, "/sim/status", qos.profile("/sim/status"))
        self.request_pub = pub(String, "/planner/instruction", qos.profile("/planner/instruction"))
        self.said = ros.collect(String, "/speech/say", qos.profile("/speech/say"))
        self.tasks: list[str] = []
        self.node.create_subscription(
            String, "/vla/instruction", self._on_task, qos.profile("/vla/instruction")
        )
        self.listed: list[PersonInfo] = []
        self.node.create_service(ListPeople, "/memory/list_people", self._list)
        self.in_view: list[str] = []  # consented names recognised now
        self.strangers_in_view = 0
        self.objects: list[str] = []
        self.task_s = task_s
        self._task_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish, daemon=True)
        self._thread.start()
        self.diagnostics: list[DiagnosticArray] = ros.collect(DiagnosticArray, "/diagnostics", 50)

    def know(self, name: str, consent: bool = True) -> None:
        self.listed.append(
            PersonInfo(person_id=name.lower(), display_name=name if consent else "", consent=consent)
        )

    def _list(self, request, response):
        response.people = list(self.listed)
        return response

    def _on_task(self, msg: String) -> None:
        self.tasks.append(msg.data)
        self._task_at = time.monotonic()

    def _publish(self) -> None:
        """10 Hz, as the memory, the detector and the sim do."""
        while not self._stop.wait(0.1):
            people = [
                Person(display_name=n, person_id=n.lower(), band=Person.BAND_KNOWN) for n in self.in_view
            ]
            people += [Person(band=Person.BAND_KNOWN, person_id="anon")] * self.strangers_in_view
            self.people_pub.publish(PersonArray(people=people))
            detections = [Detection(class_name=o, score=0.9) for o in [*self.objects, "person"]]
            self.detections_pub.publish(DetectionArray(detections=detections))
            task = self.tasks[-1] if self.tasks else ""
            done = bool(task) and self.task_s is not None and time.monotonic() - self._task_at >= self.task_s
            self.status_pub.publish(String(data=json.dumps({"instruction": task, "success": done})))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def planner(ros):
    from planner_node.node import PlannerNode

    def start(**params):
        overrides = {"model": MODEL, "known_people_period_s": 1.0, "vla_timeout_s": 20.0, **params}
        node = PlannerNode(
            context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]
        )
        assert node.autostart_ok
        ros.add(node)
        return node

    return start


@pytest.fixture
def scene(ros):
    scene = Scene(ros)
    yield scene
    scene.close()


def send(ros, instruction: str):
    """Send a goal; (goal handle, feedback list, result future)."""
    client = ActionClient(ros.node("planner_client"), ExecuteInstruction, "/planner/execute")
    assert client.wait_for_server(timeout_sec=20)
    feedback: list = []
    future = client.send_goal_async(
        ExecuteInstruction.Goal(instruction=instruction), feedback_callback=feedback.append
    )
    wait_for(future.done, 20, "the goal response")
    handle = future.result()
    assert handle.accepted
    return handle, feedback, handle.get_result_async()


def result_of(future, timeout: float = PLAN_TIMEOUT_S):
    wait_for(future.done, timeout, "the plan's result")
    return future.result()


def test_a_grounded_request_is_planned_and_carried_out_naming_only_what_is_there(ros, planner, scene):
    scene.in_view = ["Alice"]
    scene.know("Alice")
    scene.know("Bob", consent=False)  # in memory without consent: never named
    scene.strangers_in_view = 1
    scene.objects = ["red cup", "blue ball"]
    planner()
    time.sleep(1.5)  # the context fills
    _, feedback, future = send(ros, "say hello to Alice, then touch the red cup")
    response = result_of(future)
    result = response.result
    print(f"outcome {result.outcome}: plan {result.plan}; said {list(result.said)}; tasks {scene.tasks}")
    assert result.plan, result.reason
    plan = json.loads(result.plan)
    allowed = {"Alice", "red cup", "blue ball"}
    for step in plan["steps"]:
        for key in ("person", "object"):
            if key in step["args"]:
                assert step["args"][key] in allowed
    assert all("Bob" not in text for text in scene.tasks)
    assert {"planning", "executing"} <= {f.feedback.state for f in feedback}
    wait_for(lambda: len(scene.said) >= len(result.said), 10, "what was said, on /speech/say")
    assert [m.data for m in scene.said] == list(result.said)
    for task in filter(None, scene.tasks):  # every VLA task names one object of the context
        assert sum(obj in task for obj in ("red cup", "blue ball")) == 1, task
    assert "person" not in " ".join(scene.tasks)  # detections of people are never objects
    if result.success:
        assert response.status == GoalStatus.STATUS_SUCCEEDED
        assert result.steps_done == len(plan["steps"])


def test_with_nobody_and_nothing_known_only_speech_is_possible(ros, planner, scene):
    planner()
    time.sleep(1.0)
    _, _, future = send(ros, "greet Bob and grab the purple elephant")
    result = result_of(future).result
    tools = [step["tool"] for step in json.loads(result.plan)["steps"]]
    assert set(tools) <= {"say", "stop"}, tools  # the grammar offers nothing else
    assert all(task == "" for task in scene.tasks)  # no task given (stop publishes an empty one)
    assert result.said, "the refusal is spoken"


def test_cancel_while_the_arm_works_stops_the_task(ros, planner, scene):
    scene.task_s = None  # the task never ends by itself
    scene.objects = ["red cup"]
    planner()
    time.sleep(1.0)
    handle, _, future = send(ros, "touch the red cup")
    wait_for(lambda: any(scene.tasks), PLAN_TIMEOUT_S, "a VLA task")
    cancel = handle.cancel_goal_async()
    wait_for(cancel.done, 10, "the cancel response")
    response = result_of(future, 20)
    assert response.status == GoalStatus.STATUS_CANCELED
    assert response.result.outcome == "cancelled"
    wait_for(lambda: scene.tasks[-1] == "", 5, "the task stopped (an empty instruction)")


def test_a_new_request_preempts_the_running_one(ros, planner, scene):
    scene.task_s = None
    scene.objects = ["red cup"]
    planner()
    time.sleep(1.0)
    _, _, first = send(ros, "touch the red cup")
    wait_for(lambda: any(scene.tasks), PLAN_TIMEOUT_S, "the first plan's task")
    scene.task_s = 0.3
    _, _, second = send(ros, "say that you are ready")
    assert result_of(first, 30).result.outcome == "preempted"
    assert result_of(second).result.plan


def test_a_stop_request_is_never_refused_and_stops_the_arm_without_the_model(ros, planner, scene):
    scene.task_s = None
    scene.objects = ["red cup"]
    node = planner(preempt=False)  # other requests are refused while one runs
    time.sleep(1.0)
    _, _, first = send(ros, "touch the red cup")
    wait_for(lambda: any(scene.tasks), PLAN_TIMEOUT_S, "the first plan's task")
    planned = node.plans["planned"]
    _, _, stop = send(ros, "STOP, stop now!")  # send() asserts that the goal is accepted
    wait_for(lambda: scene.tasks[-1] == "", 10, "the arm stopped (an empty instruction)")
    result = result_of(stop, 30).result
    assert json.loads(result.plan) == {"steps": [{"tool": "stop", "args": {}}]}
    assert result.success, result.reason
    assert result_of(first, 30).result.outcome == "preempted"
    assert node.plans["planned"] == planned  # the model was not asked


def test_hostile_messages_are_dropped_and_the_planner_goes_on(ros, planner, scene):
    node = planner()
    qos = load_qos_config()
    pub = scene.node.create_publisher
    bad_status = pub(String, "/sim/status", qos.profile("/sim/status"))
    hostile = [
        "not json",
        "[1, 2]",
        '{"instruction": 3, "success": true}',
        '{"instruction": "", "success": "yes"}',
        json.dumps({"instruction": "", "success": False, "objects": [1, 2]}),
    ]
    attacks = [(bad_status, String(data=text)) for text in hostile]
    attacks += [(scene.request_pub, String(data="")), (scene.request_pub, String(data="x" * 100_000))]
    attacks += [(scene.people_pub, PersonArray(people=[Person()] * 5000))]
    attacks += [(scene.events_pub, MemoryEvent(type=99, display_name="Alice"))]

    def dropped() -> int:
        return sum(s.health.dropped for s in node._subs)

    for index, (publisher, message) in enumerate(attacks):  # one at a time: none lost in a full queue
        before = dropped()
        publisher.publish(message)
        wait_for(lambda before=before: dropped() > before, 20, f"hostile message {index} dropped")
    forged = "Mallory\u202e"  # a bidi override in a name: never shown, never named
    scene.people_pub.publish(PersonArray(people=[Person(display_name=forged, band=Person.BAND_KNOWN)]))
    time.sleep(0.5)
    assert forged not in node.world.context(time.monotonic()).names
    scene.events_pub.publish(MemoryEvent(type=MemoryEvent.FORGOTTEN, display_name="Alice"))
    _, _, future = send(ros, "say hi")
    assert result_of(future).result.plan  # still planning


def test_a_forgotten_person_is_no_longer_named(ros, planner, scene):
    scene.know("Alice")
    scene.in_view = ["Alice"]
    node = planner()
    wait_for(lambda: node.world.context(time.monotonic()).sees("Alice"), 10, "Alice in view")
    scene.in_view = []
    scene.listed.clear()
    scene.events_pub.publish(MemoryEvent(type=MemoryEvent.FORGOTTEN, person_id="alice", display_name="Alice"))
    wait_for(lambda: not node.world.context(time.monotonic()).knows("Alice"), 10, "Alice forgotten")


def test_the_node_keeps_its_diagnostics_while_the_model_plans(ros, planner, scene):
    planner(threads=1)  # the slowest planning here
    time.sleep(1.5)
    _, _, future = send(ros, "say hello, then tell me a short joke about robots")
    started = time.monotonic()
    count = len([d for d in scene.diagnostics if any(s.name.startswith("planner_node") for s in d.status)])
    result_of(future)
    took = time.monotonic() - started
    during = (
        len([d for d in scene.diagnostics if any(s.name.startswith("planner_node") for s in d.status)])
        - count
    )
    print(f"planning and saying took {took:.1f} s; {during} diagnostics reports meanwhile")
    assert during >= int(took) - 2  # the 1 Hz timer kept running on the executor thread

    def planning_time() -> str:
        for array in reversed(list(scene.diagnostics)):
            for status in array.status:
                if status.name == "planner_node: planner":
                    return {v.key: v.value for v in status.values}.get("plan_ms.median", "none")
        return "none"

    wait_for(lambda: planning_time() != "none", 5, "the planning time in the diagnostics")
    assert float(planning_time()) > 0


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (["-p", "backend:=tensorrt_llm", "-p", "device:=cuda"], "TensorRT-LLM is not installed"),
        (["-p", "backend:=tensorrt_llm"], "runs on an NVIDIA GPU only"),
        (["-p", "model:=/nonexistent/model.gguf"], "/nonexistent/model.gguf does not exist"),
        (
            ["-p", "backend:=edge_llm", "-p", "device:=cuda", "-p", "model:=/nonexistent/checkpoint"],
            "not a Hugging Face checkpoint folder",
        ),
    ],
)
def test_a_backend_that_cannot_run_here_exits_78_saying_why(params, reason):
    proc = subprocess.run(
        [sys.executable, "-m", "humanoid_bringup.composed", "planner_node", "--ros-args", *params],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 78, proc.stderr[-2000:]
    assert reason in proc.stderr + proc.stdout
