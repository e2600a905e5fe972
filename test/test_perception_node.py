"""perception_node over rclpy: equality with Ultralytics, tracking, freshness, stall, bad input, QoS.

In-process nodes (the `ros` fixture) for what can be read from messages; a separate process (the real
entry point) where the log must be read.
"""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from test_perception_detector import assert_same_detections, direct_predict
from ultralytics.utils import ASSETS

from harness import wait_for
from humanoid_common.assets import asset_path
from humanoid_common.images import numpy_to_compressed, numpy_to_image
from humanoid_stack.msg import DetectionArray
from perception_node.cameras import COMPRESSED_TOPIC, DETECTIONS_TOPIC, IMAGE_TOPIC
from perception_node.detector import load_detector
from perception_node.node import PerceptionNode

pytestmark = pytest.mark.integration

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def start_node(ros, **params) -> PerceptionNode:
    overrides = [Parameter(k, value=v) for k, v in {"warmup_frames": 1, **params}.items()]
    node = PerceptionNode(context=ros.context, parameter_overrides=overrides)
    return ros.add(node)


def video_frames(count: int, step: int = 1) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(asset_path("vtest.avi")))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, "vtest.avi ended early"
        frames.append(frame)
        for _ in range(step - 1):
            capture.read()
    capture.release()
    return frames


class Camera:
    """Publishes frames with increasing stamps; ``send_and_wait`` is lockstep with the node."""

    def __init__(
        self,
        ros,
        qos: QoSProfile = RELIABLE,
        topic: str = IMAGE_TOPIC,
        msg_type=Image,
        detections_topic: str = DETECTIONS_TOPIC,
    ) -> None:
        self.node = ros.node("test_camera")
        self.publisher = self.node.create_publisher(msg_type, topic, qos)
        self.detections: list[DetectionArray] = ros.collect(DetectionArray, detections_topic, RELIABLE)
        self.diagnostics: list[DiagnosticArray] = ros.collect(DiagnosticArray, "/diagnostics", RELIABLE)
        # A node in its own process first imports Ultralytics and loads the model: slow on a busy CI host.
        wait_for(lambda: self.publisher.get_subscription_count() >= 1, 90, f"the node subscribing {topic}")
        wait_for(lambda: self.node.count_subscribers(detections_topic) >= 1, 10, "the detections collector")

    def send(self, msg) -> int:
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = "head_camera"
        self.publisher.publish(msg)
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def send_and_wait(self, msg, timeout: float = 20.0) -> DetectionArray:
        stamp = self.send(msg)
        return wait_for(lambda: self.result_for(stamp), timeout, "detections of the frame just sent")

    def result_for(self, stamp_ns: int) -> DetectionArray | None:
        for det in reversed(self.detections):
            if det.header.stamp.sec * 1_000_000_000 + det.header.stamp.nanosec == stamp_ns:
                return det
        return None

    def status(self, task: str) -> dict | None:
        """The newest diagnostics status of a task: level, message and values."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name == f"perception_node: {task}":
                    values = {kv.key: kv.value for kv in status.values}
                    return {"level": status.level[0], "message": status.message, **values}
        return None


@pytest.mark.parametrize("backend", ["onnx", "ultralytics"])
def test_detections_equal_ultralytics_and_lifecycle_releases_everything(ros, backend):
    node = start_node(ros, autostart=False, tracker="none", max_rate_hz=0.0, backend=backend)
    assert node.trigger_configure().name == "SUCCESS"
    assert node.trigger_activate().name == "SUCCESS"
    camera = Camera(ros)  # a reliable publisher matches the default best-effort subscription
    model = str(asset_path("yolo11n.onnx"))
    for name in ("bus.jpg", "zidane.jpg"):
        bgr = cv2.imread(str(ASSETS / name))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out = camera.send_and_wait(numpy_to_image(rgb, "rgb8"))  # rgb8 input is converted to BGR
        assert out.header.frame_id == "head_camera"
        assert (out.image_width, out.image_height) == (bgr.shape[1], bgr.shape[0])
        assert out.model == "yolo11n.onnx"
        assert 0 < out.inference_ms <= out.latency_ms
        assert all(d.track_id == -1 for d in out.detections)
        assert_same_detections(out.detections, direct_predict(model, bgr))

    assert node.trigger_deactivate().name == "SUCCESS"
    wait_for(lambda: camera.publisher.get_subscription_count() == 0, 10, "the image subscription to go")
    assert node.trigger_cleanup().name == "SUCCESS"
    assert not node.model_loaded


def test_compressed_input_gives_the_same_detections_as_the_decoded_frame(ros):
    start_node(ros, tracker="none", max_rate_hz=0.0, compressed_input=True)
    from sensor_msgs.msg import CompressedImage

    camera = Camera(ros, topic=COMPRESSED_TOPIC, msg_type=CompressedImage)
    msg = numpy_to_compressed(cv2.imread(str(ASSETS / "bus.jpg")), "bgr8", "jpeg", 90)
    out = camera.send_and_wait(msg)
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    assert_same_detections(out.detections, direct_predict(str(asset_path("yolo11n.onnx")), decoded))


def xywh(d) -> np.ndarray:
    return np.array([d.center_x, d.center_y, d.size_x, d.size_y])


def corners(d) -> tuple[float, float, float, float]:
    return (
        d.center_x - d.size_x / 2,
        d.center_y - d.size_y / 2,
        d.center_x + d.size_x / 2,
        d.center_y + d.size_y / 2,
    )


def iou(a, b) -> float:
    ax0, ay0, ax1, ay1 = corners(a)
    bx0, by0, bx1, by1 = corners(b)
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    return inter / (a.size_x * a.size_y + b.size_x * b.size_y - inter)


def test_the_same_person_keeps_the_same_track_id_across_a_street_sequence(ros):
    start_node(ros, tracker="bytetrack", max_rate_hz=0.0, classes=["person"])
    camera = Camera(ros)
    # Consecutive frames: the people in vtest.avi are ~30 px wide and walk ~8 px per frame.
    outputs = [camera.send_and_wait(numpy_to_image(f, "bgr8")) for f in video_frames(8)]
    tracks = [{d.track_id: d for d in out.detections} for out in outputs]
    assert all(-1 not in frame for frame in tracks)
    kept = set(tracks[0]).intersection(*tracks[1:])
    assert len(kept) >= 3, f"too few people kept their id through the sequence: {tracks}"
    for track_id in kept:  # the id follows one person: boxes of consecutive frames overlap
        for before, after in itertools.pairwise(tracks):
            assert iou(before[track_id], after[track_id]) > 0.3, f"track {track_id} jumped"


def test_two_cameras_run_as_one_batch_each_with_its_topics_header_and_tracks(ros):
    node = start_node(ros, cameras=["head", "wrist"], tracker="bytetrack", max_rate_hz=1.0)
    head = Camera(ros, topic="/head/image_raw", detections_topic="/perception/head/detections")
    wrist = Camera(ros, topic="/wrist/image_raw", detections_topic="/perception/wrist/detections")
    assert [c.topics.markers for c in node.cameras] == [
        "/perception/head/markers",
        "/perception/wrist/markers",
    ]
    frames = video_frames(5)
    mirrored = [np.ascontiguousarray(f[:, ::-1]) for f in frames]  # other people in other places
    head.send_and_wait(numpy_to_image(frames[0], "bgr8"))  # the worker just ran: the next two frames wait
    outputs = []
    for head_frame, wrist_frame in zip(frames[1:], mirrored[1:], strict=True):
        stamps = (
            head.send(numpy_to_image(head_frame, "bgr8")),
            wrist.send(numpy_to_image(wrist_frame, "bgr8")),
        )

        def both(s=stamps):
            found = head.result_for(s[0]), wrist.result_for(s[1])
            return found if all(found) else None

        outputs.append(wait_for(both, 10, "both cameras' detections"))
    for out_head, out_wrist in outputs:
        assert out_head.inference_ms == out_wrist.inference_ms  # one model call for both
    # Each camera is tracked on its own: its boxes and ids are those of the same detector run on that
    # camera's frames alone (the tracker's boxes are its filtered states, so mixing cameras shows).
    for camera_frames, index in ((frames, 0), (mirrored[1:], 1)):
        alone = load_detector(node.settings.detector)
        expected = [alone.detect(f) for f in camera_frames][-len(outputs) :]
        for out, result in zip([o[index] for o in outputs], expected, strict=True):
            assert [d.track_id for d in out.detections] == [d.track_id for d in result.detections]
            assert_same_detections(
                out.detections, [(d.class_name, d.score, xywh(d)) for d in result.detections]
            )
    inference = wait_for(lambda: head.status("inference"), 10, "inference diagnostics")
    assert inference["cameras"] == "2"
    wrist_status = wait_for(lambda: head.status("camera wrist"), 10, "the wrist camera's status")
    assert wrist_status["topic"] == "/wrist/image_raw"

    # Malformed images on one camera are dropped and counted on its topic; the other camera goes on.
    dropped = "dropped./wrist/image_raw"
    for count, (kind, msg) in enumerate(malformed_images().items(), start=1):
        wrist.send(msg)
        inputs = wait_for(lambda n=count: (s := head.status("inputs")) and s.get(dropped) == str(n) and s,
                          30, f"{dropped} = {count}")  # fmt: skip
        assert kind in inputs["last_problem./wrist/image_raw"]
    assert head.send_and_wait(numpy_to_image(frames[0], "bgr8")).detections
    assert head.status("inputs").get("dropped./head/image_raw") == "0"


def test_30hz_camera_5hz_node_processes_only_fresh_frames_and_reports_a_stall(ros):
    period_s = 1 / 30
    start_node(ros, tracker="none", max_rate_hz=5.0, diagnostics_period_s=0.25)
    camera = Camera(ros, qos=BEST_EFFORT)
    frame = numpy_to_image(video_frames(1)[0], "bgr8")

    def stream(seconds: float) -> int:
        sent = 0
        end = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < end:
            camera.send(frame)
            sent += 1
            next_at += period_s
            time.sleep(max(0.0, next_at - time.monotonic()))
        return sent

    sent = stream(3.0)
    wait_for(lambda: camera.detections, 10, "detections")
    outputs = list(camera.detections)
    assert len(outputs) <= 3.0 * 5 + 2, "the node ran faster than max_rate_hz"
    # Age of the frame when processing began = latency - inference. The acceptance bound: under one
    # camera period plus the inference time (the previous frame's, which was running while this one
    # waited; the node's own measurement, so the bound follows a loaded host), plus 20 ms of transport.
    # A queued stale frame would be older by at least one whole processing cycle.
    ages_ms = [out.latency_ms - out.inference_ms for out in outputs]
    bounds_ms = [period_s * 1e3 + prev.inference_ms + 20 for prev in [outputs[0], *outputs[:-1]]]
    assert all(age < bound for age, bound in zip(ages_ms, bounds_ms, strict=True)), (ages_ms, bounds_ms)
    inference = wait_for(lambda: camera.status("inference"), 10, "inference diagnostics")
    assert int(inference["skipped_stale"]) > sent / 2  # most frames were replaced, not queued

    # The stall shows from the image's age; the QoS deadline event that counts the miss is handled by
    # the executor in a turn of its own, so a loaded host can report the stall one period earlier.
    stalled = wait_for(
        lambda: (
            (s := camera.status("camera"))
            and s["message"].startswith("camera stalled")
            and int(s["deadline_misses"]) >= 1
            and s
        ),
        10,
        "a stall with its deadline miss counted",
    )
    assert stalled["level"] == 1  # WARN
    stream(0.5)
    wait_for(lambda: camera.status("camera")["message"] == "receiving images", 10, "recovery on /diagnostics")
    assert camera.status("camera")["level"] == 0


def malformed_images() -> dict[str, Image]:
    good = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "bgr8")
    cases = {}
    cases["unsupported image encoding"] = Image(
        height=48, width=64, encoding="yuv422", step=128, data=bytes(48 * 128)
    )
    cases["zero size"] = Image(height=0, width=64, encoding="bgr8", step=192, data=b"")
    cases["data length"] = Image(height=48, width=64, encoding="bgr8", step=192, data=bytes(good.data)[:-7])
    cases["exceeds the limit"] = Image(height=9000, width=1, encoding="mono8", step=1, data=bytes(9000))
    depth = numpy_to_image(np.zeros((48, 64), np.uint16), "16UC1")
    cases["is not a colour image"] = depth
    return cases


def test_malformed_images_are_dropped_with_a_warning_and_incompatible_qos_is_named(ros, processes):
    proc = processes.start(
        ["-m", "perception_node.node", "--ros-args", "-p", "tracker:=none", "-p", "warmup_frames:=0",
         "-p", "max_rate_hz:=0.0", "-p", "image_reliability:=reliable", "-p", "diagnostics_period_s:=0.25"],
        "perception_node",
    )  # fmt: skip
    camera = Camera(ros)
    cases = malformed_images()
    dropped, problem = f"dropped.{IMAGE_TOPIC}", f"last_problem.{IMAGE_TOPIC}"
    for count, (kind, msg) in enumerate(cases.items(), start=1):  # one at a time: the queue depth is 1
        camera.send(msg)
        inputs = wait_for(lambda n=count: (s := camera.status("inputs")) and s.get(dropped) == str(n) and s,
                          30, f"{dropped} = {count} on /diagnostics")  # fmt: skip
        assert kind in inputs[problem]
        assert inputs["level"] == 1  # WARN
    total = str(len(cases))
    inference = wait_for(lambda: (s := camera.status("inference")) and s["malformed_dropped"] == total and s,
                         10, "the drops in the inference status")  # fmt: skip
    assert inference["level"] == 1  # WARN for WARN_PERIOD_S after a drop
    out = camera.send_and_wait(numpy_to_image(cv2.imread(str(ASSETS / "bus.jpg")), "bgr8"), timeout=60)
    assert out.detections, "a good frame after the bad ones is still processed"

    # A best-effort publisher cannot serve a reliable subscription: named in the log and diagnostics.
    ros.node("best_effort_camera").create_publisher(Image, IMAGE_TOPIC, BEST_EFFORT)
    wait_for(lambda: "incompatible" in processes.log(proc), 15, "the incompatible-QoS warning")
    wait_for(lambda: int(camera.status("camera")["incompatible_qos"]) >= 1, 10, "incompatible_qos count")

    assert proc.poll() is None, processes.log(proc)
    log = processes.log(proc)
    first = next(iter(cases))  # the drops are logged once per period, the first at once
    assert f"dropped a message: {first}" in log, log
    assert "RELIABILITY" in log
    assert processes.stop(proc) == 0, log
