#!/usr/bin/env python3
"""make demo: the whole stack on bundled data, recorded to out/demo.mp4 and out/report.md.

The stack runner starts the profile's nodes (perception, memory, VLA, governor) plus the two
simulated cameras: people_scene (the head camera: the street video with people who come and go,
config/demo/scene.yaml) and tabletop_sim (the arm and its table camera, remapped to /tabletop/...,
which the VLA node sees). Alice is enrolled with consent from two photos; while the scene runs the
arm performs random instructed tasks; this process records every output topic, composes the video
and writes the report. Progress goes to the terminal; node logs to out/demo/logs.

    python tools/demo.py [--profile desktop_cpu] [--out out]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from humanoid_bringup.demo_report import DemoStats, EventRecord, PlannerRecord, render_report
from humanoid_bringup.demo_video import HEIGHT, WIDTH, Face, Scene, compose
from humanoid_bringup.profiles import load_profile
from humanoid_bringup.run import StackOptions, child_specs
from humanoid_bringup.supervisor import ChildSpec, Supervisor
from humanoid_common.allocator import keep_large_buffers
from humanoid_common.assets import asset_path
from humanoid_common.config import apply_fastdds_profile, config_dir, read_yaml
from humanoid_common.images import image_to_numpy, to_bgr8
from humanoid_common.qos import load_qos_config
from humanoid_stack.action import ExecuteInstruction
from humanoid_stack.msg import DetectionArray, MemoryEvent, PersonArray
from humanoid_stack.srv import Enroll
from memory_node.crypto import new_key_text
from perception_node.detector import Detection
from tabletop_sim.instructions import random_instruction
from tabletop_sim.people import PHOTOS, load_script
from tabletop_sim.ros_episodes import RosEpisodeDriver

REPO = Path(__file__).resolve().parents[1]
TABLE_TOPIC = "/tabletop/camera/image_raw"
TABLE_INFO_TOPIC = "/tabletop/camera/camera_info"
HEAD_CAMERA_HZ = 10.0  # the scripted head camera; slower than a real one to spare the two cores
NODES = [
    "perception_node",
    "memory_node",
    "vla_node",
    "planner_node",
    "tabletop_sim",
    "people_scene",
    "governor",
]
VIDEO_FPS = 10.0
EPISODE_TIMEOUT_S = 8.0
#: What people ask the planner: the first before the scene starts (the scene waits until it is planned:
#: a plan takes 15-80 s on the two loaded cores, longer than Alice stays), the others not before t s of
#: the scene, one after the other. Alice (enrolled, consented) is in view at 6-18 s and 46-60 s, a
#: stranger at 24-40 s; nobody called Bob is known and there is no elephant. They run beside the arm's
#: random tasks.
FIRST_REQUEST = "When Alice comes, say hello to her, then touch the {object}."
PLANNER_REQUESTS = ((1.0, "Greet Bob and bring me the purple elephant."),)
PLANNER_TIMEOUT_S = 180.0
EVENT_NAMES = {0: "welcome back", 1: "are you ...?", 2: "new person", 3: "left", 4: "forgotten"}
LATENCIES = {
    "perception.latency_ms": "perception: image stamp → detections published",
    "perception.inference_ms": "perception: model call",
    "memory.provisional_ms": "memory: image received → provisional answer",
    "memory.refined_ms": "memory: image received → refined answer (Tiers 2/3)",
    "vla.camera_to_command_ms": "VLA: camera image → joint command (node's p50 each second)",
    "vla.period_jitter_p99_ms": "VLA: control period jitter p99 (node's, each second)",
}


def demo_params(out: Path, seed: int) -> Path:
    """The demo's parameters on top of the profile: short memory timings, a fresh store, the scene."""
    params = {
        "/**/memory_node": {"ros__parameters": {
            "config_file": str(config_dir() / "demo" / "memory.yaml"), "data_dir": str(out / "memory")}},
        "/**/tabletop_sim": {"ros__parameters": {"seed": seed}},
        "/**/people_scene": {"ros__parameters": {
            "script": str(config_dir() / "demo" / "scene.yaml"), "autoplay": False,
            "rate_hz": HEAD_CAMERA_HZ}},
        "/**/vla_node": {"ros__parameters": {"max_camera_age_ms": 300.0}},
        "/**/planner_node": {"ros__parameters": {"vla_timeout_s": 2 * EPISODE_TIMEOUT_S}},
    }  # fmt: skip
    path = out / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def demo_qos(out: Path) -> Path:
    """config/qos.yaml with the camera deadlines at three periods of the demo's head camera.

    The shipped 100 ms is three frames of a 30 Hz camera; at 10 Hz it would count a miss at every
    late frame. The table camera shares the keys (a remapped topic keeps its key): its deadline
    matches the VLA's max_camera_age_ms of the demo.
    """
    data = read_yaml(config_dir() / "qos.yaml", "QoS file")
    for topic in ("/camera/image_raw", "/camera/camera_info"):
        data["topics"][topic]["deadline_ms"] = 3 * 1000.0 / HEAD_CAMERA_HZ
    path = out / "qos.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Recorder:
    """Subscribes to every output, keeps the current `Scene` and fills `DemoStats`."""

    def __init__(self, node: Any, stats: DemoStats, t0: list[float], qos_file: Path) -> None:
        self.node, self.stats, self._t0 = node, stats, t0
        self.scene = Scene()
        self.lock = threading.Lock()
        self.recording = False  # stats count from the scene's start; the video shows everything
        qos = load_qos_config(qos_file)

        def sub(msg_type: Any, topic: str, callback: Any, key: str | None = None) -> None:
            profile = qos.profile(key or topic, for_subscription=True)
            node.create_subscription(msg_type, topic, lambda m: self._got(topic, callback, m), profile)

        sub(Image, "/camera/image_raw", self._head)
        sub(Image, TABLE_TOPIC, self._table, key="/camera/image_raw")
        sub(DetectionArray, "/perception/detections", self._detections)
        sub(PersonArray, "/memory/people", self._people)
        sub(MemoryEvent, "/memory/events", self._event)
        sub(JointTrajectory, "/vla/joint_command", self._command)
        sub(String, "/sim/status", self._status)
        sub(String, "/speech/say", self._said)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 20)

    def now(self) -> float:
        return time.monotonic() - self._t0[0]

    def _got(self, topic: str, callback: Any, msg: Any) -> None:
        if self.recording:
            self.stats.received(topic, time.monotonic())
        with self.lock:
            callback(msg)

    def _head(self, msg: Any) -> None:
        self.scene.head = to_bgr8(image_to_numpy(msg), msg.encoding)

    def _table(self, msg: Any) -> None:
        self.scene.table = to_bgr8(image_to_numpy(msg), msg.encoding)

    def _detections(self, msg: Any) -> None:
        self.scene.detections = [
            Detection(
                d.class_id, d.class_name, d.score, d.center_x, d.center_y, d.size_x, d.size_y, d.track_id
            )
            for d in msg.detections
        ]
        if self.recording:
            self.stats.sample("perception.latency_ms", msg.latency_ms)
            self.stats.sample("perception.inference_ms", msg.inference_ms)

    def _people(self, msg: Any) -> None:
        if self.recording:
            kind = "memory.provisional_ms" if msg.provisional else "memory.refined_ms"
            self.stats.sample(kind, msg.processing_ms)
        if not msg.provisional or not self.scene.faces:
            self.scene.faces = [
                Face(
                    (
                        p.center_x - p.size_x / 2,
                        p.center_y - p.size_y / 2,
                        p.center_x + p.size_x / 2,
                        p.center_y + p.size_y / 2,
                    ),
                    p.display_name,
                    p.band,
                    p.track_id,
                    p.similarity,
                )
                for p in msg.people
            ]

    def _event(self, msg: Any) -> None:
        if not self.recording:
            return
        kind = EVENT_NAMES.get(msg.type, str(msg.type))
        record = EventRecord(self.now(), kind, msg.display_name, msg.person_id, msg.text)
        self.stats.events.append(record)
        self.scene.events.append(f"{record.t_s:5.1f} s {kind}: {msg.display_name or msg.text}")

    def _command(self, msg: Any) -> None:
        if msg.points:
            self.scene.commanded = np.asarray(msg.points[0].positions, float)

    def _status(self, msg: Any) -> None:
        try:
            self.scene.instruction = json.loads(msg.data).get("instruction", "")
        except json.JSONDecodeError:
            return

    def _said(self, msg: Any) -> None:
        self.scene.said = msg.data
        if self.recording:
            self.scene.events.append(f"{self.now():5.1f} s robot: {msg.data}")

    def _diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            self.stats.diagnostics[status.name] = values
            if status.name == "vla_node: control" and self.recording:
                for key, name in (("camera_to_command_ms.median", "vla.camera_to_command_ms"),
                                  ("period_jitter_ms.p99", "vla.period_jitter_p99_ms")):  # fmt: skip
                    if _is_number(values.get(key)):
                        self.stats.sample(name, float(values[key]))
            if status.name == "governor: load" and _is_number(values.get("level")):
                level = int(float(values["level"]))
                self.stats.governor(self.now(), level)
                self.scene.governor_level = level


def _is_number(text: str | None) -> bool:
    """A finite number (diagnostics say "nan" before a window has samples)."""
    try:
        return math.isfinite(float(text))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def wait(predicate: Any, timeout: float, what: str, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if supervisor.failure:
            raise RuntimeError(f"the stack failed while waiting for {what}: {supervisor.failure}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def call(
    node: Any, srv_type: Any, name: str, request: Any, supervisor: Supervisor, timeout: float = 60.0
) -> Any:
    client = node.create_client(srv_type, name)
    wait(client.service_is_ready, 120, f"the service {name}", supervisor)
    future = client.call_async(request)
    wait(future.done, timeout, f"the answer of {name}", supervisor)
    return future.result()


class PlannerScript:
    """Asks the planner FIRST_REQUEST (`plan_first`, before the scene) and PLANNER_REQUESTS (on a thread
    of its own while the arm's random tasks go on); `wants_arm` is set while a plan that has a `vla`
    step runs, and the task loop starts no new task then (two sources of instructions would take the arm
    from each other)."""

    def __init__(self, action: ActionClient, driver: RosEpisodeDriver, recorder: Recorder, stats: DemoStats):
        self.action, self.driver, self.recorder, self.stats = action, driver, recorder, stats
        self.wants_arm = threading.Event()
        self.planned = threading.Event()  # the running request's plan is made (it is being carried out)
        self.failure = ""
        self.first: tuple[float, str, Any] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def plan_first(self) -> None:
        """Ask FIRST_REQUEST and wait until it is planned (its steps then wait for Alice)."""
        self.first = self._send(FIRST_REQUEST)
        done = self.first[2]
        _wait_plain(lambda: self.planned.is_set() or done.done(), PLANNER_TIMEOUT_S, "the first plan")
        print(f"[demo] planned in {time.monotonic() - self.first[0]:.1f} s; the scene starts", flush=True)

    def _run(self) -> None:
        try:
            if self.first is not None:
                self.stats.planner.append(self._finish(*self.first))
            for at, text in PLANNER_REQUESTS:
                while self.recorder.now() < at:
                    time.sleep(0.1)
                self.stats.planner.append(self._finish(*self._send(text)))
        except Exception as error:  # reported by the main loop
            self.failure = f"{type(error).__name__}: {error}"
        finally:
            self.wants_arm.clear()

    def _feedback(self, message: Any) -> None:
        if message.feedback.state == "executing":
            self.planned.set()
        steps = json.loads(message.feedback.plan)["steps"] if message.feedback.plan else []
        if any(step["tool"] == "vla" for step in steps[max(message.feedback.current_step, 0) :]):
            self.wants_arm.set()
        else:
            self.wants_arm.clear()

    def _send(self, text: str) -> tuple[float, str, Any]:
        """Send a request: (when, monotonic; the request; its result future)."""
        objects = sorted(self.driver.status.get("objects") or {})
        request = text.format(object=objects[0] if objects else "cup")
        asked = time.monotonic()
        self.recorder.scene.asked = request
        self.planned.clear()
        print(f"[demo] asking the planner: {request!r}", flush=True)
        sent = self.action.send_goal_async(
            ExecuteInstruction.Goal(instruction=request), feedback_callback=self._feedback
        )
        _wait_plain(sent.done, 30, "the planner taking the request")
        if not sent.result().accepted:
            raise RuntimeError(f"planner_node refused the request {request!r}")
        return asked, request, sent.result().get_result_async()

    def _finish(self, asked: float, request: str, done: Any) -> PlannerRecord:
        """Wait for a request's result; its record (times from the scene's start: negative before it)."""
        _wait_plain(done.done, PLANNER_TIMEOUT_S, "the planner's result")
        self.wants_arm.clear()
        result = done.result().result
        steps = json.loads(result.plan)["steps"] if result.plan else []
        plan = "; ".join(f"{s['tool']}({', '.join(str(v) for v in s['args'].values())})" for s in steps)
        took = time.monotonic() - asked
        asked_at = self.recorder.now() - took
        record = PlannerRecord(asked_at, request, plan, tuple(result.said), result.outcome, took)
        print(
            f"[demo] planner: {record.outcome} in {took:.1f} s: {plan}; said {list(record.said)}", flush=True
        )
        return record


def _wait_plain(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def run(args: argparse.Namespace) -> int:

    started = time.monotonic()
    out = args.out.resolve()
    work = out / "demo"
    shutil.rmtree(work, ignore_errors=True)  # a fresh memory store and logs every run
    work.mkdir(parents=True)
    script = load_script(config_dir() / "demo" / "scene.yaml")
    profile = load_profile(args.profile)
    os.environ.setdefault("ROS_DOMAIN_ID", str(102 + os.getpid() % 130))  # tests use 1..101
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ["HUMANOID_MEMORY_KEY"] = new_key_text()  # the demo's store is thrown away afterwards
    apply_fastdds_profile()
    qos_file = demo_qos(work)
    options = StackOptions(
        profile, NODES, [demo_params(work, args.seed)], qos_file=str(qos_file),
        remaps={
            "tabletop_sim": {"/camera/image_raw": TABLE_TOPIC, "/camera/camera_info": TABLE_INFO_TOPIC},
            "vla_node": {"/camera/image_raw": TABLE_TOPIC},
        },
    )  # fmt: skip
    specs: list[ChildSpec] = child_specs(options)
    supervisor = Supervisor(specs, output=open(work / "stack.log", "w"), log_dir=work / "logs")  # noqa: SIM115
    stop = threading.Event()
    status: list[int] = []
    supervising = threading.Thread(target=lambda: status.append(supervisor.run(stop)), daemon=True)
    print(
        f"[demo] starting {', '.join(NODES)} (profile {profile.name}); node logs in {work / 'logs'}",
        flush=True,
    )
    supervising.start()

    keep_large_buffers()  # the recorder receives the debug images
    rclpy.init()
    node = rclpy.create_node("demo_recorder")
    stats = DemoStats(profile.name)
    t0 = [time.monotonic()]
    recorder = Recorder(node, stats, t0, qos_file)
    driver = RosEpisodeDriver(node)
    planner = ActionClient(node, ExecuteInstruction, "/planner/execute")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    writer = None
    try:
        wait(lambda: node.count_publishers("/perception/detections") > 0, 180, "perception_node", supervisor)
        wait(driver.reset_client.service_is_ready, 180, "tabletop_sim", supervisor)
        wait(driver.enable_client.service_is_ready, 180, "vla_node", supervisor)
        wait(planner.server_is_ready, 180, "planner_node", supervisor)
        wait(
            lambda: stats.diagnostics.get("planner_node: planner", {}).get("busy") == "False",
            600,
            "the planner reading its prompt into the model's cache",
            supervisor,
        )
        for person in script.enrolments:
            paths = [str(asset_path(PHOTOS[p].asset)) for p in person.photos]
            request = Enroll.Request(name=person.name, consent=True, track_id=-1, image_paths=paths)
            reply = call(node, Enroll, "/memory/enroll", request, supervisor)
            if not reply.success:
                raise RuntimeError(f"enrolling {person.name} failed: {reply.message}")
            print(f"[demo] enrolled {person.name} with consent: {reply.message}", flush=True)
        asking = PlannerScript(planner, driver, recorder, stats)
        asking.plan_first()
        call(node, Trigger, "/people_scene/start", Trigger.Request(), supervisor)
        t0[0] = time.monotonic()
        recorder.recording = True
        writer = cv2.VideoWriter(
            str(out / "demo.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (WIDTH, HEIGHT)
        )
        if not writer.isOpened():
            raise RuntimeError("OpenCV cannot write out/demo.mp4 (no MPEG-4 encoder in this OpenCV build)")
        frames = [0]

        def record_frames() -> None:
            next_at = time.monotonic()
            while not stop.is_set() and recorder.now() < script.duration_s:
                with recorder.lock:
                    recorder.scene.clock_s = recorder.now()
                    recorder.scene.episodes = len(stats.episodes)
                    recorder.scene.successes = sum(e.success for e in stats.episodes)
                    frame = compose(recorder.scene)
                writer.write(frame)
                frames[0] += 1
                next_at += 1.0 / VIDEO_FPS
                time.sleep(max(0.0, next_at - time.monotonic()))

        filming = threading.Thread(target=record_frames, daemon=True)
        filming.start()
        rng = np.random.default_rng(args.seed)
        asking.thread.start()
        armed_for_plan = False
        while recorder.now() < script.duration_s - EPISODE_TIMEOUT_S:
            if supervisor.failure or asking.failure:
                raise RuntimeError(supervisor.failure or f"asking the planner: {asking.failure}")
            if asking.wants_arm.is_set():  # the planner's plan has a task for the arm: it goes first
                if not armed_for_plan:  # the operator (this script) enables motion: the planner never does
                    driver.enable(True)
                    armed_for_plan = True
                time.sleep(0.2)
                continue
            armed_for_plan = False
            instruction, target = random_instruction(rng)
            stats.episodes.append(driver.episode(instruction, target, EPISODE_TIMEOUT_S))
            events = ", ".join(f"{e.kind} {e.name}".strip() for e in stats.events[-3:]) or "none yet"
            print(
                f"[demo] {recorder.now():4.0f}/{script.duration_s:g} s  tasks "
                f"{sum(e.success for e in stats.episodes)}/{len(stats.episodes)}  "
                f"detections {stats.rate_hz('/perception/detections'):.1f} Hz  events: {events}",
                flush=True,
            )
        wait(
            lambda: recorder.now() >= script.duration_s, script.duration_s, "the end of the scene", supervisor
        )
        asking.thread.join(PLANNER_TIMEOUT_S)  # a request still being planned or carried out
        driver.enable(False)
        filming.join(timeout=5)
        stats.scene_s = recorder.now()
    finally:
        stop.set()
        if writer is not None:
            writer.release()
        supervising.join(timeout=60)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    stats.wall_s = time.monotonic() - started
    (out / "report.md").write_text(render_report(stats, script, LATENCIES))
    print(f"[demo] wrote {out / 'demo.mp4'} ({frames[0]} frames) and {out / 'report.md'}")
    print(f"[demo] {stats.wall_s:.0f} s in all")
    return status[0] if status else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="desktop_cpu", help="robot profile (config/profiles)")
    parser.add_argument("--out", type=Path, default=REPO / "out", help="output folder (default out/)")
    parser.add_argument("--seed", type=int, default=7, help="sim layouts and instructions")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
