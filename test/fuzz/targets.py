"""The nodes under fuzz: how each starts, what it subscribes to (with a valid message of each topic),
its services, the valid output that must follow, and the invariant on its output."""

from __future__ import annotations

import functools
import json
import math
import random
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.action import ActionClient
from safety_invariant import Command, StreamLimits, check_command_stream
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Empty, Header, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory
from ultralytics.utils import ASSETS
from visualization_msgs.msg import MarkerArray

from fuzz.malformed import trajectory
from fuzz.requests import hostile_request
from fuzz.runner import ServiceSpec, Session, Target, TopicSpec
from harness import wait_for
from humanoid_bringup.governor import MAX_COUNT
from humanoid_bringup.governor_node import DEFAULTS
from humanoid_common.assets import asset_path
from humanoid_common.config import config_dir
from humanoid_common.images import camera_info, numpy_to_compressed, numpy_to_image, pinhole_matrix
from humanoid_stack.action import ExecuteInstruction
from humanoid_stack.msg import Detection, DetectionArray, MemoryEvent, Person, PersonArray
from humanoid_stack.srv import ConfirmIdentity, Enroll, Forget, ListPeople
from memory_node.crypto import new_key_text
from planner_node.context import refused_character
from planner_node.plan_schema import DEFAULT_LIMITS
from tabletop_sim.instructions import OBJECT_NAMES, TEMPLATES, instruction_for
from tabletop_sim.render import Camera as SimCamera
from tabletop_sim.render import render
from tabletop_sim.world import JOINT_NAMES, ArmSpec, World
from vla_node.safety import load_limits_yaml

#: A valid stimulus is sent again this often until the node answers (best-effort topics may lose one).
RESEND_S = 2.0
OUTPUT_TIMEOUT_S = 60.0


def stamp_key(msg: Any) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


class Recent:
    """The last `size` values seen, by key (a message's stamp): bounded whatever the node sends."""

    def __init__(self, size: int = 200) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(self, key: Any) -> Any:
        with self._lock:
            return self._items.get(key)


def answer_to(session: Session, topic: str, msg: Any, answers: Recent, what: str) -> Any:
    """Publish `msg` (again every RESEND_S until answered) and return the answer stored under its stamp."""
    sent: list[float] = []

    def answered() -> Any:
        now = session.node.get_clock().now().nanoseconds / 1e9
        if not sent or now - sent[-1] > RESEND_S:
            session.publish(topic, msg)
            sent.append(now)
        return answers.get(stamp_key(msg))

    return wait_for(answered, OUTPUT_TIMEOUT_S, what, interval=0.05)


BUS = cv2.imread(str(ASSETS / "bus.jpg"))
SMALL_BUS = cv2.resize(BUS, (BUS.shape[1] // 4, BUS.shape[0] // 4))  # still has people and a bus in it
TO_ENCODING = {"bgr8": None, "rgb8": cv2.COLOR_BGR2RGB, "bgra8": cv2.COLOR_BGR2BGRA,
               "rgba8": cv2.COLOR_BGR2RGBA, "mono8": cv2.COLOR_BGR2GRAY}  # fmt: skip


def camera_image(rng: random.Random) -> Image:
    """The small bus photo in one of the colour encodings (a frame with something to detect)."""
    encoding = rng.choice(list(TO_ENCODING))
    code = TO_ENCODING[encoding]
    return numpy_to_image(SMALL_BUS if code is None else cv2.cvtColor(SMALL_BUS, code), encoding)


def finite_points(markers: MarkerArray) -> bool:
    return all(
        math.isfinite(p.x) and math.isfinite(p.y) and math.isfinite(p.z)
        for m in markers.markers
        for p in (m.pose.position, *m.points)
    )


# ------------------------------------------------------------------------------ perception_node

#: 10 Hz: frames (and so markers) keep being processed while camera_info is fuzzed.
PERCEPTION_ARGS = ["-m", "perception_node.node", "--ros-args",
                   "-p", "warmup_frames:=0", "-p", "max_rate_hz:=10.0"]  # fmt: skip


def valid_camera_info(rng: random.Random) -> CameraInfo:
    width, height = rng.choice(((640, 480), (810, 1080), (0, 0)))
    return camera_info(
        Header(), width, height, pinhole_matrix(width or 640, height or 480, rng.uniform(40, 100))
    )


SMALL_BUS_FILES = {fmt: numpy_to_compressed(SMALL_BUS, "bgr8", fmt) for fmt in ("jpeg", "png")}


def valid_compressed(rng: random.Random) -> CompressedImage:
    msg = SMALL_BUS_FILES[rng.choice(("jpeg", "png"))]
    return CompressedImage(format=msg.format, data=msg.data)


class PerceptionObserver:
    """Detections must follow a valid image of the bus; every marker point must be finite."""

    def __init__(self, session: Session, image_topic: str) -> None:
        self.session, self.image_topic = session, image_topic
        self.answers = Recent()
        self.bad_markers: list[str] = []
        self.boxes = 0  # marker boxes checked
        qos = session.qos
        session.node.create_subscription(
            DetectionArray,
            "/perception/detections",
            self._on_detections,
            qos.profile("/perception/detections"),
        )
        session.node.create_subscription(
            MarkerArray, "/perception/markers", self._on_markers, qos.profile("/perception/markers")
        )

    def _on_detections(self, msg: DetectionArray) -> None:
        self.answers.put(stamp_key(msg), len(msg.detections))

    def _on_markers(self, msg: MarkerArray) -> None:
        self.boxes += len(msg.markers) // 2
        if not finite_points(msg):
            self.bad_markers.append(
                f"non-finite marker positions in the markers of {stamp_key(msg.markers[0])}"
            )

    def output(self) -> str:
        compressed = self.image_topic.endswith("compressed")
        image = numpy_to_compressed(BUS, "bgr8", "jpeg") if compressed else numpy_to_image(BUS, "bgr8")
        self.session.publish("/camera/camera_info", valid_camera_info(random.Random(0)))
        count = answer_to(self.session, self.image_topic, image, self.answers, "detections of bus.jpg")
        assert count > 0, "no detections in bus.jpg after the fuzzing"
        return f"{count} detections in bus.jpg; {self.boxes} marker boxes checked"

    def violations(self) -> list[str]:
        return list(self.bad_markers)


PERCEPTION = Target(
    name="perception_node",
    node="perception_node",
    command=lambda tmp: (PERCEPTION_ARGS, {}),
    topics=(
        TopicSpec("/camera/image_raw", Image, camera_image),
        TopicSpec("/camera/camera_info", CameraInfo, valid_camera_info),
    ),
    observer=lambda session: PerceptionObserver(session, "/camera/image_raw"),
)
PERCEPTION_COMPRESSED = Target(
    name="perception_node (compressed_input)",
    node="perception_node",
    command=lambda tmp: ([*PERCEPTION_ARGS, "-p", "compressed_input:=true"], {}),
    topics=(
        TopicSpec("/camera/image_raw/compressed", CompressedImage, valid_compressed),
        TopicSpec("/camera/camera_info", CameraInfo, valid_camera_info),
    ),
    observer=lambda session: PerceptionObserver(session, "/camera/image_raw/compressed"),
)


# -------------------------------------------------------------------------------- tabletop_sim

ARM = ArmSpec()


def valid_command(rng: random.Random) -> JointTrajectory:
    return trajectory(
        list(JOINT_NAMES), [rng.uniform(lo, hi) for lo, hi in zip(ARM.lower, ARM.upper, strict=True)]
    )


def valid_instruction(rng: random.Random) -> String:
    return String(data=instruction_for(rng.choice(OBJECT_NAMES), rng.choice(TEMPLATES)))


class SimObserver:
    """/sim/status must name the target of a valid instruction; /joint_states must stay finite and
    inside the arm's limits."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.status: dict[str, Any] = {}
        self.bad_states: list[str] = []
        qos = session.qos
        node = session.node
        node.create_subscription(String, "/sim/status", self._on_status, qos.profile("/sim/status"))
        node.create_subscription(JointState, "/joint_states", self._on_joints, qos.profile("/joint_states"))

    def _on_status(self, msg: String) -> None:
        self.status = json.loads(msg.data)

    def _on_joints(self, msg: JointState) -> None:
        q = np.asarray(msg.position)
        if q.shape != (2,) or not np.all(np.isfinite(q)) or np.any(q < ARM.lower) or np.any(q > ARM.upper):
            self.bad_states.append(f"joint state {q.tolist()}")

    def output(self) -> str:
        wait_for(lambda: self.status.get("objects"), OUTPUT_TIMEOUT_S, "/sim/status")
        name = next(o for o in sorted(self.status["objects"]) if o != self.status["target"])  # a new target
        self.session.publish("/vla/instruction", String(data=instruction_for(name)))
        wait_for(lambda: self.status["target"] == name, OUTPUT_TIMEOUT_S, f"/sim/status naming {name}")
        return f"status names the target {name!r} (episode {self.status['episode']})"

    def violations(self) -> list[str]:
        return list(self.bad_states)


SIM = Target(
    name="tabletop_sim",
    node="tabletop_sim",
    command=lambda tmp: (
        ["-m", "tabletop_sim.node", "--ros-args", "-p", "seed:=1", "-p", "camera_rate_hz:=5.0"],
        {},
    ),
    topics=(
        TopicSpec("/vla/joint_command", JointTrajectory, valid_command),
        TopicSpec("/vla/instruction", String, valid_instruction),
    ),
    services=(ServiceSpec("/tabletop_sim/reset", Trigger, functools.partial(hostile_request, Trigger)),),
    observer=SimObserver,
)


# ------------------------------------------------------------------------------------ governor

#: No pressure from the machine can reach these thresholds: the level moves only on deadline misses.
GOVERNOR_ARGS = [
    "-m", "humanoid_bringup.governor_node", "--ros-args",
    "-p", "cpu_high_percent:=1000.0", "-p", "cpu_low_percent:=999.0",
    "-p", "gpu_high_percent:=1000.0", "-p", "gpu_low_percent:=999.0",
    "-p", "thermal_high_c:=1000.0", "-p", "thermal_low_c:=999.0",
]  # fmt: skip


def valid_diagnostics(rng: random.Random) -> DiagnosticArray:
    """The VLA node's control status with unchanged deadline counts (no new miss), sometimes beside
    another node's status."""
    values = {
        "deadline_misses.control": "3",
        "deadline_misses.camera": "1",
        "deadline_misses.joint_states": "0",
    }
    control = DiagnosticStatus(
        name="vla_node: control",
        message="motion disabled (dry run)",
        values=[KeyValue(key=k, value=v) for k, v in {**values, "rate_hz": "24.0"}.items()],
    )
    other = DiagnosticStatus(
        name="perception_node: camera", values=[KeyValue(key="deadline_misses", value="7")]
    )
    return DiagnosticArray(status=[control, other] if rng.random() < 0.5 else [control])


class GovernorObserver:
    """A fresh "governor: load" status must follow; every one must hold only bounded numbers: a level
    of its ladder, rates of the configured ladders, a whole deadline count within MAX_COUNT.

    (Whether the level may rise is not checked here: a corrupted report can pass every check, e.g. one
    counter lowered, read as a VLA restart, and the next valid report then shows new misses. Only DDS
    security tells a forged plausible report from a real one. test_bringup checks that reports no
    loop can produce leave the level alone.)"""

    def __init__(self, session: Session) -> None:
        self.load: deque[dict[str, Any]] = deque(maxlen=1)
        self.unbounded: list[str] = []
        self.updates = 0
        session.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_array, session.qos.profile("/diagnostics")
        )

    def _on_array(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "governor: load":
                self.updates += 1
                values = {kv.key: kv.value for kv in status.values}
                self.load.append(values)
                if not bounded_load(values):
                    self.unbounded.append(f"{status.message}: {values}")

    def output(self) -> str:
        seen = self.updates
        wait_for(lambda: self.updates > seen, OUTPUT_TIMEOUT_S, "a new 'governor: load' status")
        load = self.load[-1]
        return f"level {load['level']}, vla_deadline_misses {load['vla_deadline_misses']}"

    def violations(self) -> list[str]:
        return list(self.unbounded)


def bounded_load(values: dict[str, str]) -> bool:
    misses = values.get("vla_deadline_misses", "")
    return (
        values.get("level") in {str(level) for level in range(DEFAULTS.levels)}
        and float(values.get("rate_hz.perception_node", "nan")) in DEFAULTS.perception_rates
        and float(values.get("rate_hz.memory_node", "nan")) in DEFAULTS.memory_rates
        and (misses == "unknown" or (misses.isdigit() and int(misses) <= MAX_COUNT))
    )


GOVERNOR = Target(
    name="governor",
    node="governor",
    command=lambda tmp: (GOVERNOR_ARGS, {}),
    topics=(TopicSpec("/diagnostics", DiagnosticArray, valid_diagnostics),),
    observer=GovernorObserver,
)


# -------------------------------------------------------------------------------- people_scene


class CameraObserver:
    """Images must keep coming (stamped after the fuzzing)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.latest: Image | None = None
        qos = session.qos.profile("/camera/image_raw", for_subscription=True)
        session.node.create_subscription(Image, "/camera/image_raw", self._on_image, qos)

    def _on_image(self, msg: Image) -> None:
        self.latest = msg

    def output(self) -> str:
        after = self.session.node.get_clock().now().nanoseconds

        def fresh() -> Image | None:
            image = self.latest
            stamp = image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec if image else 0
            return image if stamp > after else None

        image = wait_for(fresh, OUTPUT_TIMEOUT_S, "an image from the scene")
        return f"{image.width}x{image.height} {image.encoding} images"

    def violations(self) -> list[str]:
        return []


PEOPLE_SCENE = Target(
    name="people_scene",
    node="people_scene",
    command=lambda tmp: (["-m", "tabletop_sim.people_node", "--ros-args", "-p", "rate_hz:=5.0"], {}),
    topics=(),
    services=(ServiceSpec("/people_scene/start", Trigger, functools.partial(hostile_request, Trigger)),),
    observer=CameraObserver,
)


# --------------------------------------------------------------------------------- memory_node


def _face_frame() -> np.ndarray:
    """A face (a bundled portrait, cropped as in test_memory_node) on a plain 320x240 background."""
    image = cv2.imread(str(asset_path("face_obama2.jpg")))
    x1, y1, x2, y2 = 208, 227, 469, 635
    w, h = x2 - x1, y2 - y1
    crop = image[y1 - h // 2 : y2 + h // 4, x1 - w // 4 : x2 + w // 4]
    face = cv2.resize(crop, (int(150 * crop.shape[1] / crop.shape[0]), 150))
    canvas = np.full((240, 320, 3), 90, np.uint8)
    canvas[45 : 45 + face.shape[0], 80 : 80 + face.shape[1]] = face
    return canvas


FACE_FRAME = _face_frame()
FACE_BOX = (80.0, 45.0, 80.0 + 150 * 0.8, 195.0)  # roughly where the head is: a person box around it


def face_image(rng: random.Random) -> Image:
    encoding = rng.choice(list(TO_ENCODING))
    code = TO_ENCODING[encoding]
    return numpy_to_image(FACE_FRAME if code is None else cv2.cvtColor(FACE_FRAME, code), encoding)


def person_detections(rng: random.Random) -> DetectionArray:
    x1, y1, x2, y2 = FACE_BOX
    person = Detection(
        class_id=0, class_name="person", score=0.9, track_id=rng.randint(1, 5),
        center_x=(x1 + x2) / 2, center_y=(y1 + y2) / 2, size_x=x2 - x1, size_y=y2 - y1,
    )  # fmt: skip
    return DetectionArray(image_width=320, image_height=240, model="yolo11n.onnx", detections=[person])


def finite_people(msg: PersonArray) -> bool:
    numbers = [msg.processing_ms]
    for p in msg.people:
        numbers += [p.center_x, p.center_y, p.size_x, p.size_y, p.detector_score, p.quality, p.similarity]
        numbers += [p.margin, *p.landmarks]
    return all(math.isfinite(n) for n in numbers)


class MemoryObserver:
    """A PersonArray with the face must follow a valid frame; every PersonArray holds finite numbers."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.answers = Recent()
        self.bad: list[str] = []
        session.node.create_subscription(
            PersonArray, "/memory/people", self._on_people, session.qos.profile("/memory/people")
        )

    def _on_people(self, msg: PersonArray) -> None:
        if msg.provisional:
            self.answers.put(stamp_key(msg), len(msg.people))
        if not finite_people(msg):
            self.bad.append(f"non-finite numbers in /memory/people of {stamp_key(msg)}")

    def output(self) -> str:
        count = answer_to(self.session, "/camera/image_raw", face_image(random.Random(0)), self.answers,
                          "/memory/people of a frame with a face")  # fmt: skip
        assert count > 0, "no face found in the frame with a face after the fuzzing"
        return f"{count} face(s) in /memory/people"

    def violations(self) -> list[str]:
        return list(self.bad)


def _memory_command(tmp: Path) -> tuple[list[str], dict[str, str]]:
    args = ["-m", "memory_node.node", "--ros-args",
            "-p", f"data_dir:={tmp / 'memory'}", "-p", "max_rate_hz:=5.0"]  # fmt: skip
    return args, {"HUMANOID_MEMORY_KEY": new_key_text()}


MEMORY = Target(
    name="memory_node",
    node="memory_node",
    command=_memory_command,
    topics=(
        TopicSpec("/camera/image_raw", Image, face_image),
        TopicSpec("/perception/detections", DetectionArray, person_detections),
    ),
    services=tuple(
        ServiceSpec(name, srv_type, functools.partial(hostile_request, srv_type))
        for name, srv_type in (
            ("/memory/enroll", Enroll),
            ("/memory/forget", Forget),
            ("/memory/list_people", ListPeople),
            ("/memory/confirm_identity", ConfirmIdentity),
            ("/memory/consolidate", Trigger),
        )
    ),
    observer=MemoryObserver,
)


# ------------------------------------------------------------------------------------ vla_node

VLA_RATE_HZ = 24.0
VLA_LIMITS = load_limits_yaml(config_dir() / "vla_limits.yaml")
#: Commands are stamped when published, not at their control step: allowance for that jitter.
STAMP_SLACK_S = 0.05
TABLE_SCENES = [render(World(seed=seed), SimCamera(64, 48)) for seed in range(4)]


class ArmFollower:
    """A robot that is exactly where it was last commanded (at home before that): the joint states a
    consistent robot sends back."""

    def __init__(self) -> None:
        self.position = list(ARM.home)

    def joint_state(self, rng: random.Random) -> JointState:
        return JointState(
            name=list(JOINT_NAMES), position=list(self.position), velocity=[0.0] * len(JOINT_NAMES)
        )


def table_image(rng: random.Random) -> Image:
    return numpy_to_image(rng.choice(TABLE_SCENES), "rgb8")


class VlaObserver:
    """After enabling, commands must follow valid camera images and joint states. Every command the
    node published must meet the safety invariant (test/safety_invariant.py), checked on its record
    /vla/commanded_joint_states (positions, the step's velocities, the stamp); every /vla/joint_command
    must have that record (the same positions)."""

    def __init__(self, session: Session, arm: ArmFollower) -> None:
        self.session, self.arm = session, arm
        self.commands: list[Command] = []
        self.sent_positions: list[tuple[float, ...]] = []  # of /vla/joint_command
        self.enable = session.node.create_client(SetBool, "/vla/enable")
        for topic, msg_type, callback in (
            ("/vla/commanded_joint_states", JointState, self._on_record),
            ("/vla/joint_command", JointTrajectory, self._on_command),
        ):
            qos = session.qos.profile(topic)
            qos.depth = 1000  # this checker must see every message, even while the fuzzer keeps it busy
            session.node.create_subscription(msg_type, topic, callback, qos)

    def _on_record(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.commands.append(Command(stamp, np.asarray(msg.position), np.asarray(msg.velocity)))
        self.arm.position = list(msg.position)

    def _on_command(self, msg: JointTrajectory) -> None:
        self.sent_positions += [tuple(point.positions) for point in msg.points]

    def output(self) -> str:
        before = len(self.commands)
        rng = random.Random(0)
        instruction = valid_instruction(rng)
        answers: list[Any] = []
        deadline = time.monotonic() + OUTPUT_TIMEOUT_S
        tick = 0
        while len(self.commands) - before < VLA_RATE_HZ:  # a second of commands
            replies = [future.result().message for future in answers if future.done()]
            assert time.monotonic() < deadline, f"no commands after enabling; /vla/enable said {replies[-1:]}"
            self.session.publish("/joint_states", self.arm.joint_state(rng))
            if tick % 3 == 0:
                self.session.publish("/camera/image_raw", table_image(rng))
            if tick % 50 == 0:
                self.session.publish("/vla/instruction", instruction)
                answers.append(self.enable.call_async(SetBool.Request(data=True)))
            tick += 1
            time.sleep(0.02)
        return f"{len(self.commands) - before} commands after enabling; {len(self.commands)} checked in all"

    def violations(self) -> list[str]:
        limits = StreamLimits.of([VLA_LIMITS[name] for name in JOINT_NAMES], 1 / VLA_RATE_HZ, STAMP_SLACK_S)
        recorded = {tuple(c.positions) for c in self.commands}
        unrecorded = [p for p in self.sent_positions if p not in recorded]
        missing = [f"/vla/joint_command {p} has no commanded_joint_states record" for p in unrecorded]
        return check_command_stream(list(self.commands), limits) + missing


VLA_ARGS = ["-m", "vla_node.node", "--ros-args", "-p", "policy:=reference:vla_node/models/reference",
            "-p", f"control_rate_hz:={VLA_RATE_HZ}"]  # fmt: skip
VLA_ARM = ArmFollower()
VLA = Target(
    name="vla_node",
    node="vla_node",
    command=lambda tmp: (VLA_ARGS, {}),
    topics=(
        TopicSpec("/camera/image_raw", Image, table_image),
        TopicSpec("/joint_states", JointState, VLA_ARM.joint_state),
        TopicSpec("/vla/instruction", String, valid_instruction),
        TopicSpec("/vla/stop", Empty, lambda rng: Empty()),
    ),
    services=(ServiceSpec("/vla/enable", SetBool, functools.partial(hostile_request, SetBool)),),
    observer=lambda session: VlaObserver(session, VLA_ARM),
)


# --------------------------------------------------------------------------------- planner_node

#: The small model, one thread: it plans for every request that gets through while the rest is fuzzed.
PLANNER_ARGS = ["-m", "planner_node.node", "--ros-args",
                "-p", "model:=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "-p", "threads:=1"]  # fmt: skip
PLANNER_NAMES = ("Alice", "Bob")


def valid_people(rng: random.Random) -> PersonArray:
    name = rng.choice(PLANNER_NAMES)
    return PersonArray(people=[Person(display_name=name, person_id=name.lower(), band=Person.BAND_KNOWN)])


def valid_event(rng: random.Random) -> MemoryEvent:
    name = rng.choice(PLANNER_NAMES)
    kind = rng.choice((MemoryEvent.WELCOME_BACK, MemoryEvent.LEFT, MemoryEvent.NEW_PERSON))
    return MemoryEvent(type=kind, person_id=name.lower(), display_name=name)


def valid_objects(rng: random.Random) -> DetectionArray:
    return DetectionArray(detections=[Detection(class_name=rng.choice(OBJECT_NAMES), score=0.9)])


def valid_task_status(rng: random.Random) -> String:
    task = rng.choice(("", valid_instruction(rng).data))
    return String(data=json.dumps({"instruction": task, "success": rng.random() < 0.5}))


def valid_request(rng: random.Random) -> String:
    return String(data=rng.choice(("say hello", "greet Alice", f"touch the {rng.choice(OBJECT_NAMES)}")))


class PlannerObserver:
    """A request gets a plan after the fuzzing (asked again when a late fuzzed request preempts it),
    and everything the robot said meanwhile is speakable: at most max_text_chars, no control, format
    or bidi characters, whatever the requests and names held."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.said: list[str] = []
        qos = session.qos.profile("/speech/say")
        session.node.create_subscription(String, "/speech/say", lambda msg: self.said.append(msg.data), qos)
        self.client = ActionClient(session.node, ExecuteInstruction, "/planner/execute")

    def output(self) -> str:
        assert self.client.wait_for_server(timeout_sec=OUTPUT_TIMEOUT_S), "no /planner/execute server"
        deadline = time.monotonic() + 4 * OUTPUT_TIMEOUT_S  # the 0.5B model on a loaded 2-core machine
        while True:
            sent = self.client.send_goal_async(ExecuteInstruction.Goal(instruction="say hello"))
            wait_for(sent.done, OUTPUT_TIMEOUT_S, "the planner's goal response")
            handle = sent.result()
            assert handle.accepted, "the planner refused a goal"
            result = handle.get_result_async()
            wait_for(result.done, max(1.0, deadline - time.monotonic()), "a plan for 'say hello'")
            answer = result.result().result
            if answer.outcome != "preempted":
                assert answer.plan, f"no plan for 'say hello': {answer.outcome}, {answer.reason}"
                return f"'say hello' planned: {answer.plan}; {len(self.said)} things said"

    def violations(self) -> list[str]:
        return [
            f"said {text[:80]!r}"
            for text in list(self.said)
            if len(text) > DEFAULT_LIMITS.max_text_chars or refused_character(text) is not None
        ]


PLANNER = Target(
    name="planner_node",
    node="planner_node",
    command=lambda tmp: (PLANNER_ARGS, {}),
    topics=(
        TopicSpec("/memory/people", PersonArray, valid_people),
        TopicSpec("/memory/events", MemoryEvent, valid_event),
        TopicSpec("/perception/detections", DetectionArray, valid_objects),
        TopicSpec("/sim/status", String, valid_task_status),
        TopicSpec("/vla/instruction", String, valid_instruction),
        TopicSpec("/planner/instruction", String, valid_request),
    ),
    observer=PlannerObserver,
)
