"""Bag-replay regression: bundled bags replayed with /clock into the running nodes (use_sim_time).

The bags (.cache/bags) come from tools/setup/build_bags.py, which `make setup` runs; each test runs it
again for its bag, a no-op when the bag is current. docs/replay.md describes bags and tests.

- street → perception_node: per frame (header stamp) the detections of test/data/street_expected.json.
- faces → memory_node: the identity events of test/data/faces_scene.yaml's story, in order.
- sim_gap → vla_node: the robot holds during the camera gap, the stale-camera holds rise on
  /diagnostics, and motion resumes once images return.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from harness import REPO, wait_for
from humanoid_common.assets import asset_path, assets_dir
from humanoid_common.qos import load_qos_config
from humanoid_stack.msg import DetectionArray, MemoryEvent
from humanoid_stack.srv import Enroll
from memory_node.crypto import new_key_text
from memory_node.memory import EventKind
from tabletop_sim.people import PHOTOS, SceneScript, load_script

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUILD_BAGS = "tools/setup/build_bags.py"
REPLAY = "tools/bag_replay.py"
BAGS = REPO / ".cache" / "bags"
IMAGE_TOPIC = "/camera/image_raw"
RELIABLE = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
NODE_START_S = 120  # importing the models' runtimes and loading them, on a busy 2-core machine


def stamp_s(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_ns(stamp: Any) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def run_tool(processes, args: list[str], name: str, timeout: float) -> str:
    """Run a tool to its end (bounded); its log. Fails the test on a timeout or a non-zero exit."""
    proc = processes.start(args, name)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        processes.stop(proc)
        raise AssertionError(f"{name} did not finish within {timeout:g} s:\n{processes.log(proc)}") from None
    log = processes.log(proc)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{log}"
    return log


def bag(processes, name: str) -> Path:
    """The bag `name`, rebuilt first if its inputs changed since `make setup`."""
    run_tool(processes, [BUILD_BAGS, name], f"build_{name}", timeout=180)
    return BAGS / name


def bag_seconds(path: Path) -> float:
    with Reader(path) as reader:
        return reader.duration / 1e9


def bag_start_ns(path: Path) -> int:
    with Reader(path) as reader:
        return reader.start_time


def replay(processes, path: Path, rate: float, topics: list[str]) -> None:
    """Replay `topics` of a bag with /clock at `rate`, once every topic has a subscriber; to its end."""
    args = [REPLAY, str(path), "--clock", "--rate", str(rate), "--topics", *topics]
    args += ["--wait-subscribers", "1", "--wait-timeout", "30", "-q"]
    log = run_tool(processes, args, f"replay_{path.name}", timeout=bag_seconds(path) / rate + 60)
    assert "replayed" in log, log
    assert "fewer than" not in log, log  # a node that never subscribed would make the test meaningless


def start_node(ros, processes, module: str, parameters: dict[str, Any], service: str = "", **env: str):
    """A node's process with use_sim_time, once it is up: subscribed to the camera (each node does
    that after loading its models) and serving `service`. Fails the test with its log if it exits."""
    args = ["-m", module, "--ros-args", "-p", "use_sim_time:=true"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    name = module.split(".")[0]
    proc = processes.start(args, name, env=env)
    probe = ros.node(f"probe_{name}")

    def ready() -> bool:
        if proc.poll() is not None:
            return True
        services = {n for n, _ in probe.get_service_names_and_types()}
        return probe.count_subscribers(IMAGE_TOPIC) >= 1 and (not service or service in services)

    wait_for(ready, NODE_START_S, f"{module} to start", interval=0.2)
    assert proc.poll() is None, processes.log(proc)
    return proc


def settle(items: list, quiet_s: float, timeout: float) -> None:
    """Wait until `items` has not grown for `quiet_s` (at most `timeout`): the last results are in."""
    seen = [len(items), time.monotonic()]

    def quiet() -> bool:
        if len(items) != seen[0]:
            seen[:] = [len(items), time.monotonic()]
        return time.monotonic() - seen[1] >= quiet_s

    wait_for(quiet, timeout, f"no new message for {quiet_s:g} s")


def report(capsys, line: str) -> None:
    """A summary line in the test log even when pytest captures output (a passing CI run)."""
    with capsys.disabled():
        print(f"\n{line}")


def call(node, srv_type: Any, name: str, request: Any, timeout: float = 60.0) -> Any:
    client = node.create_client(srv_type, name)
    wait_for(client.service_is_ready, 30, f"service {name}")
    future = client.call_async(request)
    wait_for(future.done, timeout, f"the answer of {name}")
    return future.result()


# --- street → perception_node -------------------------------------------------------------------

EXPECTED = REPO / "test" / "data" / "street_expected.json"
# One frame per 400 ms: inference takes ~90 ms on two idle cores; up to ~370 ms was seen on a loaded
# machine, where a frame may then be replaced by the next one before it is processed (MIN_FRAMES).
STREET_RATE = 0.25
SCORE_TOLERANCE = 0.02
BOX_TOLERANCE_PX = 3.0
MIN_FRAMES = 0.95  # share of the frames that must arrive (best-effort images, newest-frame slot)


def mismatch(expected: list[dict[str, Any]], got: list[Any]) -> str | None:
    """Why one frame's detections differ from the expectation, or None: the same count per class,
    and every expected one paired with a detection of its class within the score and box tolerance."""
    want, have = Counter(e["class"] for e in expected), Counter(d.class_name for d in got)
    if want != have:
        return f"classes {dict(have)}, expected {dict(want)}"
    pairs = []
    for i, e in enumerate(expected):
        for j, d in enumerate(got):
            box_error = float(
                np.max(np.abs(np.subtract(e["box"], (d.center_x, d.center_y, d.size_x, d.size_y))))
            )
            score_error = abs(e["score"] - d.score)
            if (
                d.class_name == e["class"]
                and box_error <= BOX_TOLERANCE_PX
                and score_error <= SCORE_TOLERANCE
            ):
                pairs.append((box_error, score_error, i, j))
    matched_expected, matched_got = set(), set()
    for _, _, i, j in sorted(pairs):
        if i not in matched_expected and j not in matched_got:
            matched_expected.add(i)
            matched_got.add(j)
    missing = [expected[i] for i in range(len(expected)) if i not in matched_expected]
    return f"nothing within tolerance of {missing}" if missing else None


def test_street_bag_gives_the_recorded_detections(ros, processes, capsys):
    expected = {f["stamp_ns"]: f["detections"] for f in json.loads(EXPECTED.read_text())["frames"]}
    street = bag(processes, "street")
    detections: list[DetectionArray] = ros.collect(DetectionArray, "/perception/detections", RELIABLE)
    proc = start_node(
        ros,
        processes,
        "perception_node.node",
        {"tracker": "none", "max_rate_hz": 0.0},
    )
    replay(processes, street, STREET_RATE, [IMAGE_TOPIC])
    settle(detections, 1.5, 15)  # the last frame may still be in inference

    got = {stamp_ns(d.header.stamp): d.detections for d in detections}
    assert set(got) <= set(expected), (
        f"detections for stamps the bag does not have: {set(got) - set(expected)}"
    )
    problems = {s: p for s in sorted(got) if (p := mismatch(expected[s], got[s]))}
    compared = sum(len(expected[s]) for s in got)
    inference_ms = [d.inference_ms for d in detections]
    report(
        capsys,
        f"street replay: {len(got)}/{len(expected)} frames compared ({compared} detections), "
        f"{len(problems)} frames differ; inference median {np.median(inference_ms):.0f} ms, "
        f"max {max(inference_ms):.0f} ms",
    )
    missing = [f"{(s - min(expected)) / 1e9:g}" for s in sorted(set(expected) - set(got))]
    assert len(got) >= MIN_FRAMES * len(expected), f"no detections for the frames at {', '.join(missing)} s"
    assert not problems, "\n".join(f"frame {s}: {p}" for s, p in problems.items())
    assert processes.stop(proc) == 0, processes.log(proc)


# --- faces → memory_node ------------------------------------------------------------------------

FACES_SCRIPT = REPO / "test" / "data" / "faces_scene.yaml"
FACES_RATE = 0.5  # 400 ms per 5 fps frame: the face pipeline keeps up on a slow machine
E = MemoryEvent
# Short times, so the 23 s scene tells the whole story; the script's gaps (3 s) are twice left_after_s.
MEMORY_CONFIG = {
    "memory": {
        "voting": {"window": 5, "known_votes": 2, "min_votes": 2},
        "strangers": {"min_samples": 3, "min_span_s": 0.5},
        "events": {"welcome_back_after_s": 3.0, "left_after_s": 1.5},
        "requests": {"image_dirs": [str(assets_dir())]},  # enrolment photos come from the assets
    }
}


def expected_events(script: SceneScript) -> list[tuple[int, str]]:
    """The story of the script: an enrolled person is welcomed back and leaves; a stranger is met
    (first unknown, then remembered unnamed) and leaves."""
    enrolled = {e.name for e in script.enrolments}
    events = []
    for a in sorted(script.appearances, key=lambda a: a.start_s):
        if a.who in enrolled:
            events += [(E.WELCOME_BACK, a.who), (E.LEFT, a.who)]
        else:
            events += [(E.NEW_PERSON, ""), (E.NEW_PERSON, ""), (E.LEFT, "")]
    return events


@contextlib.contextmanager
def clock_held_at(ros, time_ns: int, who: str) -> Iterator[None]:
    """Publish /clock at `time_ns` until `who`'s /diagnostics are stamped with it, and while in the
    block. Before a replay a node on sim time is at time 0: without this, what it does then (an
    enrolment) would be stamped 54 years before the bag instead of at its start, as on a robot."""
    node = ros.node("clock_holder")
    publisher = node.create_publisher(Clock, "/clock", load_qos_config().profile("/clock"))
    diagnostics: list[DiagnosticArray] = ros.collect(DiagnosticArray, "/diagnostics", RELIABLE)
    clock = Clock(clock=Time(sec=time_ns // 1_000_000_000, nanosec=time_ns % 1_000_000_000))
    timer = node.create_timer(0.05, lambda: publisher.publish(clock))

    def arrived() -> bool:
        return any(
            stamp_ns(d.header.stamp) >= time_ns and any(s.name.startswith(f"{who}:") for s in d.status)
            for d in diagnostics
        )

    try:
        wait_for(arrived, 30, f"{who}'s clock at {time_ns / 1e9:.0f} s")
        yield
    finally:
        timer.cancel()  # the replay's /clock goes on from the same time


def enroll(node, script: SceneScript) -> dict[str, str]:
    """Enroll the script's people (with consent) from their photos; name → person id."""
    enrolled = {}
    for enrolment in script.enrolments:
        paths = [str(asset_path(PHOTOS[photo].asset)) for photo in enrolment.photos]
        request = Enroll.Request(name=enrolment.name, consent=True, image_paths=paths)
        reply = call(node, Enroll, "/memory/enroll", request)
        assert reply.success, reply.message
        assert reply.samples_added == len(paths), reply.message
        enrolled[enrolment.name] = reply.person_id
    return enrolled


def story(events: list[tuple[int, str]]) -> str:
    return ", ".join(f"{EventKind(kind).name} {name or '(unnamed)'}" for kind, name in events)


def test_faces_bag_gives_the_identity_events_in_order(ros, processes, tmp_path, capsys):
    script = load_script(FACES_SCRIPT)
    expected = expected_events(script)
    faces = bag(processes, "faces")
    config = tmp_path / "memory.yaml"
    config.write_text(yaml.safe_dump(MEMORY_CONFIG))
    events: list[MemoryEvent] = ros.collect(
        MemoryEvent, "/memory/events", load_qos_config().profile("/memory/events")
    )
    parameters = {
        "config_file": config,
        "data_dir": tmp_path / "data",
        "use_detections": "false",
        "tick_period_s": 0.2,
    }
    proc = start_node(
        ros, processes, "memory_node.node", parameters, "/memory/enroll", HUMANOID_MEMORY_KEY=new_key_text()
    )
    with clock_held_at(ros, bag_start_ns(faces), "memory_node"):
        enrolled = enroll(ros.node("enroller"), script)
    replay(processes, faces, FACES_RATE, [IMAGE_TOPIC])
    settle(events, 2.0, 20)  # the last lookups and ticks
    got = [(e.type, e.display_name) for e in events]
    report(capsys, f"faces replay events: {story(got)}")
    assert got == expected, f"events {story(got)}; expected {story(expected)}"
    for event in events:
        if event.display_name:
            assert event.person_id == enrolled[event.display_name]
    strangers = [e.person_id for e in events if not e.display_name]
    for first_met, remembered, left in zip(strangers[::3], strangers[1::3], strangers[2::3], strict=True):
        assert first_met == ""  # not yet known
        assert remembered != ""  # an unnamed provisional identity
        assert left == remembered
    assert processes.stop(proc) == 0, processes.log(proc)


# --- sim_gap → vla_node --------------------------------------------------------------------------

VLA_RATE = 0.5
INSTRUCTION = "touch the red cup"
MAX_CAMERA_AGE_S = 0.2  # vla_node's default max_camera_age_ms
SLACK_S = 0.1  # bag time for commands in flight around a boundary (sim clocks of two processes)
RESUME_S = 0.4  # bag time for fresh images to become a new chunk after the gap
# The recorded arm does not follow the replayed node's commands: without a wide tolerance its safety
# layer rightly calls that a fault and stops (docs/replay.md).
OPEN_LOOP_TOLERANCE = 10.0


def camera_gap(path: Path) -> tuple[float, float, float, float]:
    """(first image, last image before the longest gap, first image after it, last message) in s."""
    with Reader(path) as reader:
        connections = [c for c in reader.connections if c.topic == IMAGE_TOPIC]
        stamps = np.array([t for _, t, _ in reader.messages(connections=connections)], dtype=np.int64)
        end = reader.end_time
    i = int(np.argmax(np.diff(stamps)))
    return stamps[0] / 1e9, stamps[i] / 1e9, stamps[i + 1] / 1e9, end / 1e9


def stale_holds(array: DiagnosticArray) -> int | None:
    for status in array.status:
        if status.name == "vla_node: control":
            return int({kv.key: kv.value for kv in status.values}["holds.stale_camera"])
    return None


def test_vla_holds_through_the_camera_gap_and_moves_again(ros, processes, capsys):
    sim = bag(processes, "sim_gap")
    first, gap_start, gap_end, end = camera_gap(sim)
    assert gap_end - gap_start > 0.5, "the sim_gap bag has no camera gap"
    node = ros.node("vla_replay_test", parameter_overrides=[Parameter("use_sim_time", value=True)])
    qos = load_qos_config()
    commands: list[tuple[float, tuple[float, ...]]] = []  # (sim time of arrival, positions)
    node.create_subscription(
        JointTrajectory,
        "/vla/joint_command",
        lambda m: commands.append((node.get_clock().now().nanoseconds / 1e9, tuple(m.points[0].positions))),
        QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE),
    )
    holds: list[tuple[float, int]] = []  # (diagnostics stamp, holds.stale_camera)

    def on_diagnostics(msg: DiagnosticArray) -> None:
        count = stale_holds(msg)
        if count is not None:
            holds.append((stamp_s(msg.header.stamp), count))

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, RELIABLE)
    # Open loop: the bag's joint states do not follow this node's commands (OPEN_LOOP_TOLERANCE).
    parameters = {"policy": "onnx:vla_node/models/reference", "tracking_tolerance": OPEN_LOOP_TOLERANCE}
    proc = start_node(ros, processes, "vla_node.node", parameters, "/vla/enable")
    node.create_publisher(String, "/vla/instruction", qos.profile("/vla/instruction")).publish(
        String(data=INSTRUCTION)
    )
    assert call(node, SetBool, "/vla/enable", SetBool.Request(data=True)).success

    replay(processes, sim, VLA_RATE, [IMAGE_TOPIC, "/joint_states"])
    wait_for(lambda: holds and holds[-1][0] >= gap_end, 10, "diagnostics after the camera gap")

    def between(start: float, stop: float) -> list[tuple[float, ...]]:
        return [p for t, p in commands if start <= t < stop]

    moving = between(first + RESUME_S, gap_start)
    held = between(gap_start + MAX_CAMERA_AGE_S + SLACK_S, gap_end)
    resumed = between(gap_end + RESUME_S, end)
    before = max((n for t, n in holds if t < gap_start), default=0)
    after = max(n for t, n in holds if t >= gap_end)
    report(
        capsys,
        f"sim_gap replay: {len(commands)} commands; distinct positions {len(set(moving))} before the "
        f"camera gap, {len(set(held))} during it ({len(held)} commands), {len(set(resumed))} after; "
        f"stale-camera holds {before} -> {after}",
    )
    assert len(set(moving)) > 1, "no motion before the camera gap"
    assert len(held) >= 5, f"only {len(held)} commands during the camera gap"
    assert len(set(held)) == 1, f"{len(set(held))} different positions commanded during the camera gap"
    assert after - before >= len(held), "the stale-camera holds on /diagnostics did not rise with the gap"
    assert len(set(resumed)) > 1, "no motion after the camera gap"
    assert processes.stop(proc) == 0, processes.log(proc)
