"""Bags: typestore and writer (unit), record → replay identity and timing, video → bag → replay."""

from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosbags.interfaces import QosReliability
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String

from harness import wait_for
from humanoid_common.assets import asset_path
from humanoid_common.bags import (
    BAG_VERSION,
    BagError,
    add_topic,
    ensure_type,
    import_message,
    normalize_type,
    open_writer,
    qos_from_bag,
    qos_to_bag,
    ros_distro,
    store_for_distro,
    typestore,
)
from humanoid_stack.msg import Detection, DetectionArray, Keypoint2D

RECORD = "tools/bag_record.py"
REPLAY = "tools/bag_replay.py"
VIDEO_TO_BAG = "tools/video_to_bag.py"
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def make_detections(seq: int) -> DetectionArray:
    msg = DetectionArray(image_width=640, image_height=480, model=f"test-{seq}", inference_ms=3.5)
    msg.header.frame_id = "camera"
    msg.header.stamp.sec = seq
    msg.detections = [
        Detection(
            class_id=0,
            class_name="person",
            score=0.5 + seq / 1000,
            center_x=10.0 * seq,
            center_y=20.0,
            size_x=5.0,
            size_y=6.0,
            track_id=seq,
            keypoints=[Keypoint2D(x=1.0, y=2.0, score=0.9)],
        )
    ]
    return msg


def make_image(seq: int) -> Image:
    pixels = np.full((48, 64, 3), seq % 256, np.uint8)
    msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3)
    msg.header.frame_id = "camera"
    msg.data = pixels.tobytes()
    return msg


def pad4(cdr: bytes) -> bytes:
    """CDR bytes as a subscriber receives them: Fast DDS pads a payload to a multiple of 4 bytes.
    Bytes recorded from a live topic are padded already; rclpy's serialize_message() output is not."""
    return cdr + b"\0" * (-len(cdr) % 4)


def read_bag(path: Path) -> list[tuple[str, int, bytes]]:
    with Reader(path) as reader:
        return [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]


def write_chatter_bag(path: Path, gaps_ms: list[float], topic: str = "/bagtest/chatter") -> list[int]:
    """A bag of std_msgs/String with exactly known gaps; returns the timestamps (ns)."""
    store = typestore()
    stamps = [1_700_000_000_000_000_000]
    for gap in gaps_ms:
        stamps.append(stamps[-1] + round(gap * 1e6))
    with open_writer(path) as writer:
        connection = add_topic(writer, topic, "std_msgs/msg/String", store)
        for seq, stamp in enumerate(stamps):
            writer.write(connection, stamp, serialize_message(String(data=f"msg {seq}")))
    return stamps


@dataclass
class Arrival:
    topic: str
    time: float  # monotonic, s, when the callback ran
    received_ns: int  # when DDS received the sample (rmw message info, system clock)
    data: bytes


class RawSink:
    """Raw subscriptions on one node, noting each message's bytes and reception time."""

    def __init__(self, ros, topics: dict[str, type], qos: QoSProfile = RELIABLE) -> None:
        self.node = ros.node("raw_sink")
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        group = MutuallyExclusiveCallbackGroup()
        for topic, msg_type in topics.items():
            self.node.create_subscription(
                msg_type, topic, self._callback(topic), qos, raw=True, callback_group=group
            )

    def _callback(self, topic: str):
        def on_message(data: bytes, info: dict) -> None:
            now = time.monotonic()
            with self._lock:
                self.arrivals.append(Arrival(topic, now, info["received_timestamp"], bytes(data)))

        return on_message

    def in_order(self) -> list[Arrival]:
        """Arrivals in DDS reception order. Callback order can differ: when the executor falls
        behind, it serves ready subscriptions in creation order, not in arrival order."""
        return sorted(self.arrivals, key=lambda a: a.received_ns)

    def received_s(self) -> list[float]:
        return [a.received_ns / 1e9 for a in self.in_order()]


def gap_errors_ms(arrival_times: list[float], bag_stamps: list[int], rate: float = 1.0) -> np.ndarray:
    replay = np.diff(np.asarray(arrival_times)) * 1e3
    expected = np.diff(np.asarray(bag_stamps, dtype=np.int64)) / 1e6 / rate
    return np.abs(replay - expected)


def timing_stats(errors: np.ndarray) -> str:
    p50, p95, worst = np.percentile(errors, 50), np.percentile(errors, 95), errors.max()
    return f"median {p50:.2f} ms, p95 {p95:.2f} ms, max {worst:.2f} ms (n={errors.size})"


def timing_problem(sink: RawSink, bag_stamps: list[int], label: str, rate: float) -> str | None:
    """Why the gaps between DDS receptions do not match the bag's gaps / rate, or None if they do.

    Bound: p95 within 5 ms and every gap within 15 ms. Reception times (rmw message info) rather
    than callback times: the collecting executor's own Python scheduling is not the player's error
    (both are printed). The allowance beyond 5 ms is for this 2-vCPU VM, where a bare time.sleep()
    overshoots by 6-9 ms now and then (steal time), so no scheduler can promise every gap.
    """
    errors = gap_errors_ms(sink.received_s(), bag_stamps, rate)
    callback = gap_errors_ms([a.time for a in sink.in_order()], bag_stamps, rate)
    print(f"{label}: gap error at DDS reception {timing_stats(errors)}; at callback {timing_stats(callback)}")
    if np.percentile(errors, 95) > 5.0 or errors.max() > 15.0:
        return f"{label}: gap error {timing_stats(errors)} exceeds p95 5 ms / max 15 ms"
    return None


def replay_checking_timing(
    processes,
    sink: RawSink,
    bag: Path,
    expected: list[tuple[str, int, bytes]],
    *options: str,
    rate: float = 1.0,
) -> None:
    """Replay `bag` into `sink`: same bytes in the same order, gaps as in the bag (scaled by 1/rate).

    A replay that misses the timing bound is repeated once (a stall of the shared machine hits one
    replay, a scheduling defect hits both); content must be right every time.
    """
    stamps = [stamp for _, stamp, _ in expected]
    failures = []
    for attempt in (1, 2):
        sink.arrivals.clear()
        args = [REPLAY, str(bag), "--wait-subscribers", "1", "-q", "--rate", str(rate), *options]
        log = run_to_end(processes, args, f"replay_{attempt}")
        wait_for(lambda: len(sink.arrivals) >= len(expected), 5, "all replayed messages")
        assert f"replayed {len(expected)} messages" in log
        print(log.splitlines()[-1])
        assert [(a.topic, a.data) for a in sink.in_order()] == [(t, pad4(d)) for t, _, d in expected]
        problem = timing_problem(sink, stamps, f"rate {rate:g}, replay {attempt}", rate)
        if problem is None:
            return
        failures.append(problem)
    pytest.fail("; ".join(failures))


def run_to_end(processes, args: list[str], name: str, timeout: float = 20.0) -> str:
    proc = processes.start(args, name)
    try:
        proc.wait(timeout=timeout)
    except Exception:
        processes.stop(proc)
        raise AssertionError(f"{name} did not finish in {timeout} s:\n{processes.log(proc)}") from None
    log = processes.log(proc)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{log}"
    return log


# --- unit: typestore, writer, QoS ------------------------------------------------------------------


def test_normalize_and_import_message_types():
    assert normalize_type("sensor_msgs/Image") == "sensor_msgs/msg/Image"
    assert normalize_type("/humanoid_stack/msg/DetectionArray") == "humanoid_stack/msg/DetectionArray"
    assert import_message("humanoid_stack/msg/DetectionArray") is DetectionArray
    with pytest.raises(BagError, match="not a message type"):
        normalize_type("Image")
    with pytest.raises(BagError, match="cannot import no_such_pkg/msg/X"):
        import_message("no_such_pkg/msg/X")


def test_store_follows_ros_distro(monkeypatch):
    monkeypatch.setenv("ROS_DISTRO", "humble")
    assert store_for_distro() == Stores.ROS2_HUMBLE
    monkeypatch.delenv("ROS_DISTRO")
    assert store_for_distro() == Stores.ROS2_JAZZY
    assert store_for_distro("no-such-distro") == Stores.ROS2_JAZZY


def test_unknown_types_register_from_installed_msg_files(tmp_path, monkeypatch):
    msg = tmp_path / "share" / "fake_msgs" / "msg"
    msg.mkdir(parents=True)
    (msg / "Thing.msg").write_text("std_msgs/Header header\nOther[] others\nint32 count\n")
    (msg / "Other.msg").write_text("float64 value\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    store = get_typestore(Stores.ROS2_JAZZY)
    ensure_type(store, "fake_msgs/Thing")
    assert {"fake_msgs/msg/Thing", "fake_msgs/msg/Other"} <= set(store.fielddefs)
    cls = store.types
    thing = cls["fake_msgs/msg/Thing"](
        header=cls["std_msgs/msg/Header"](
            stamp=cls["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="f"
        ),
        others=[cls["fake_msgs/msg/Other"](value=2.5)],
        count=3,
    )
    data = store.serialize_cdr(thing, "fake_msgs/msg/Thing")
    assert store.deserialize_cdr(data, "fake_msgs/msg/Thing").others[0].value == 2.5
    with pytest.raises(BagError, match=r"no definition of fake_msgs/msg/Missing"):
        ensure_type(store, "fake_msgs/msg/Missing")


def test_bag_is_version_8_and_custom_type_deserialises(tmp_path):
    """rclpy's CDR of our own message decodes with the typestore; metadata is Humble-readable."""
    store = typestore()
    assert "humanoid_stack/msg/DetectionArray" in store.fielddefs
    offered = qos_to_bag(RELIABLE)
    with open_writer(tmp_path / "bag") as writer:
        connection = add_topic(
            writer, "/perception/detections", "humanoid_stack/DetectionArray", store, [offered]
        )
        writer.write(connection, 42, serialize_message(make_detections(7)))

    info = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == BAG_VERSION == 8
    topic = info["topics_with_message_count"][0]["topic_metadata"]
    assert topic["type"] == "humanoid_stack/msg/DetectionArray"
    # Humble parses offered QoS from a YAML string with integer enums (version 9 breaks it).
    assert isinstance(topic["offered_qos_profiles"], str)
    assert yaml.safe_load(topic["offered_qos_profiles"])[0]["reliability"] == 1

    with Reader(tmp_path / "bag") as reader:
        ((conn, stamp, data),) = list(reader.messages())
        assert conn.ext.offered_qos_profiles[0].reliability == QosReliability.RELIABLE
    msg = store.deserialize_cdr(data, conn.msgtype)
    assert stamp == 42
    assert (msg.model, msg.image_width, msg.header.frame_id) == ("test-7", 640, "camera")
    assert msg.detections[0].class_name == "person"
    assert msg.detections[0].track_id == 7
    assert msg.detections[0].keypoints[0].score == pytest.approx(0.9)


def test_writer_refuses_existing_output_and_unknown_storage(tmp_path):
    with pytest.raises(BagError, match="exists already"):
        open_writer(tmp_path)
    with pytest.raises(BagError, match="unknown storage"):
        open_writer(tmp_path / "new", storage="rosbag1")


def test_mcap_storage_round_trip(tmp_path):
    with open_writer(tmp_path / "bag", storage="mcap") as writer:
        connection = add_topic(writer, "/t", "std_msgs/msg/String", typestore())
        writer.write(connection, 5, serialize_message(String(data="hi")))
    assert [m[1:] for m in read_bag(tmp_path / "bag")] == [(5, serialize_message(String(data="hi")))]


def test_replay_qos_from_recorded_offers():
    reliable, best_effort = qos_to_bag(RELIABLE), qos_to_bag(QoSProfile(depth=1, reliability=2))
    assert qos_from_bag([]) is None
    assert qos_from_bag([reliable]).reliability == ReliabilityPolicy.RELIABLE
    assert qos_from_bag([reliable, best_effort]).reliability == ReliabilityPolicy.BEST_EFFORT
    latched = qos_to_bag(QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    assert qos_from_bag([latched]).durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert qos_from_bag([latched, reliable]).durability == DurabilityPolicy.VOLATILE


# --- integration: record → replay ------------------------------------------------------------------


@pytest.mark.integration
def test_record_then_replay_is_byte_identical_with_original_timing(ros, processes, tmp_path):
    topics = {"/bagtest/chatter": String, "/bagtest/detections": DetectionArray, "/bagtest/image": Image}
    source = ros.node("bag_source")
    publishers = {t: source.create_publisher(cls, t, RELIABLE) for t, cls in topics.items()}
    bag = tmp_path / "recorded"
    recorder = processes.start([RECORD, "-o", str(bag), *topics], "record")
    wait_for(
        lambda: all(p.get_subscription_count() >= 1 for p in publishers.values()),
        15,
        "the recorder to subscribe to every topic",
    )

    rng = random.Random(3)
    for seq in range(50):
        kind = seq % 3
        if kind == 0:
            publishers["/bagtest/chatter"].publish(String(data=f"seq {seq}"))
        elif kind == 1:
            publishers["/bagtest/detections"].publish(make_detections(seq))
        else:
            publishers["/bagtest/image"].publish(make_image(seq))
        time.sleep(rng.uniform(0.010, 0.040))
    time.sleep(0.3)
    assert processes.stop(recorder) == 0, processes.log(recorder)
    assert "50 messages" in processes.log(recorder), processes.log(recorder)

    recorded = read_bag(bag)
    assert len(recorded) == 50
    assert [m[0] for m in recorded] == [list(topics)[seq % 3] for seq in range(50)]
    store = typestore()
    strings = [
        store.deserialize_cdr(d, "std_msgs/msg/String").data for t, _, d in recorded if t.endswith("chatter")
    ]
    assert strings == [f"seq {s}" for s in range(0, 50, 3)]
    detections = store.deserialize_cdr(recorded[1][2], "humanoid_stack/msg/DetectionArray")
    assert detections.detections[0].track_id == 1
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 8
    assert info["ros_distro"] == ros_distro() != "rosbags"

    for publisher in publishers.values():
        source.destroy_publisher(publisher)
    sink = RawSink(ros, topics)
    replay_checking_timing(processes, sink, bag, recorded)


@pytest.mark.integration
def test_replay_rate_2_halves_the_gaps(ros, processes, tmp_path):
    rng = random.Random(5)
    stamps = write_chatter_bag(tmp_path / "bag", [rng.uniform(20, 60) for _ in range(30)])
    sink = RawSink(ros, {"/bagtest/chatter": String})
    replay_checking_timing(processes, sink, tmp_path / "bag", read_bag(tmp_path / "bag"), rate=2.0)
    arrivals = sink.received_s()
    assert arrivals[-1] - arrivals[0] == pytest.approx((stamps[-1] - stamps[0]) / 2e9, abs=0.015)


@pytest.mark.integration
def test_replay_clock_follows_bag_time(ros, processes, tmp_path):
    gaps = [40.0] * 25  # 1 s of bag time
    stamps = write_chatter_bag(tmp_path / "bag", gaps)
    clock: list[tuple[float, int]] = []
    node = ros.node("clock_sink")
    node.create_subscription(
        Clock,
        "/clock",
        lambda m, info: clock.append(
            (info["received_timestamp"] / 1e9, m.clock.sec * 10**9 + m.clock.nanosec)
        ),
        RELIABLE,  # deep: a reader history of 1 (qos.yaml) would drop ticks whenever this executor lags
    )
    sink = RawSink(ros, {"/bagtest/chatter": String})
    args = [REPLAY, str(tmp_path / "bag"), "--clock", "50", "--wait-subscribers", "1", "-q"]
    run_to_end(processes, args, "replay")
    wait_for(lambda: len(sink.arrivals) >= len(stamps), 5, "all replayed messages")

    values = [v for _, v in clock]
    assert values == sorted(values), "bag time went backwards"
    assert stamps[0] <= values[0]
    assert values[-1] <= stamps[-1]
    # One tick before each message (26) plus 50 Hz ticks over 1 s (~50, half of them land on a
    # message time); under a stall late ticks are skipped, hence the margin.
    seen = set(values)
    assert seen >= set(stamps), "clock is not published before every message"
    assert len(values) >= 60, f"only {len(values)} clock messages"
    assert len(seen - set(stamps)) >= 20, "too few clock ticks between messages"
    # Bag time advances with wall time (rate 1): each tick's value matches its DDS reception time, up
    # to a constant. A loaded 2-core machine delays a tick now and then (49 ms once in a full run); a
    # rate error or a stall would move most of them.
    clock.sort()
    t0, v0 = clock[0]
    offsets = [(v - v0) / 1e6 - (t - t0) * 1e3 for t, v in clock]
    centre = statistics.median(offsets)
    drift_ms = sorted(abs(offset - centre) for offset in offsets)
    p90 = drift_ms[int(0.9 * (len(drift_ms) - 1))]
    shown = f"clock drifts from bag time: p90 {p90:.1f} ms, max {drift_ms[-1]:.1f} ms"
    assert p90 < 20, shown
    assert drift_ms[-1] < 200, shown


# --- integration: video → bag → replay -------------------------------------------------------------


@pytest.mark.integration
def test_video_to_bag_then_replay(ros, processes, tmp_path):
    bag = tmp_path / "video"
    start = 1_700_000_000
    options = f"--max-frames 30 --width 320 --start-time {start}".split()
    run_to_end(
        processes, [VIDEO_TO_BAG, str(asset_path("vtest.avi")), "-o", str(bag), *options], "video_to_bag"
    )

    store = typestore()
    with Reader(bag) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == {
            "/camera/image_raw": 30,
            "/camera/camera_info": 30,
        }
        images, infos = [], []
        for connection, stamp, data in reader.messages():
            msg = store.deserialize_cdr(data, connection.msgtype)
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
            (images if connection.topic == "/camera/image_raw" else infos).append((stamp, msg))
    fps = 10.0  # vtest.avi
    assert [s for s, _ in images] == [start * 10**9 + round(i * 1e9 / fps) for i in range(30)]
    first = images[0][1]
    assert (first.width, first.height, first.encoding, first.step) == (320, 240, "bgr8", 960)
    assert len(first.data) == 240 * 960
    info = infos[0][1]
    assert (info.width, info.height, info.distortion_model) == (320, 240, "plumb_bob")
    assert info.k[0] == pytest.approx(160 / np.tan(np.radians(30)))
    assert info.k[2] == pytest.approx(159.5)

    capture = cv2.VideoCapture(str(asset_path("vtest.avi")))
    originals = []
    for _ in range(30):
        ok, frame = capture.read()
        assert ok
        originals.append(cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA))

    received: list[Image] = ros.collect(Image, "/camera/image_raw", QoSProfile(depth=30, reliability=2))
    run_to_end(
        processes,
        [REPLAY, str(bag), "--topics", "/camera/image_raw", "--rate", "5", "--wait-subscribers", "1", "-q"],
        "replay",
    )
    # qos.yaml makes /camera/image_raw best effort: a frame may be lost on a busy machine.
    wait_for(lambda: len(received) >= 27, 5, "at least 27 of 30 replayed images")
    time.sleep(0.2)
    print(f"video replay: {len(received)} of 30 best-effort images received")
    for msg in received:
        frame = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        index = round((msg.header.stamp.sec - start + msg.header.stamp.nanosec / 1e9) * fps)
        assert frame.shape == (240, 320, 3)
        assert np.array_equal(frame, originals[index])


@pytest.mark.integration
def test_record_reports_a_topic_that_never_appears(processes, tmp_path):
    proc = processes.start([RECORD, "-o", str(tmp_path / "bag"), "/bagtest/nobody", "--wait", "1"], "record")
    assert proc.wait(timeout=15) == 2
    assert "no publisher of /bagtest/nobody appeared within 1 s" in processes.log(proc)
    assert not (tmp_path / "bag").exists()
