"""Unit tests of perception_node's plain-Python core: newest-frame worker, throttle, settings, drawing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml

from humanoid_common.config import config_dir
from humanoid_common.latest import LatestSlot, LatestWorker, RateLimiter
from humanoid_common.throttle import KeyedThrottle, problem_kind
from perception_node.debug_draw import draw_detections, label_for
from perception_node.detector import Detection, DetectorError, Keypoint, resolve_classes
from perception_node.settings import PARAMETERS, PerceptionSettings, SettingsError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_slot_keeps_only_the_newest_and_counts_replaced_items():
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.put(i)
    (taken,) = slot.take(timeout=0)
    assert taken.item == 4
    assert slot.skipped == 4
    assert slot.take(timeout=0) == []


def test_slot_keeps_the_newest_item_of_each_key_and_hands_them_over_together():
    slot: LatestSlot[str] = LatestSlot()
    for item, key in (("head 1", "head"), ("wrist 1", "wrist"), ("head 2", "head")):
        slot.put(item, key)
    assert [(s.key, s.item) for s in slot.take(timeout=0)] == [("head", "head 2"), ("wrist", "wrist 1")]
    assert slot.skipped == 1
    slot.put("wrist 2", "wrist")
    assert [s.item for s in slot.take(timeout=0)] == ["wrist 2"]


def test_rate_limiter_allows_one_event_per_period_without_catch_up_bursts():
    clock = FakeClock()
    limiter = RateLimiter(5.0, clock)
    assert limiter.ready()
    limiter.mark()
    assert limiter.wait_s() == pytest.approx(0.2)
    clock.now += 1.0  # a long stall: one event allowed, then a full period again
    assert limiter.ready()
    limiter.mark()
    assert not limiter.ready()
    assert RateLimiter(0.0, clock).wait_s() == 0.0


def test_rate_limiter_rate_change_applies_from_the_last_event():
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock)
    limiter.mark()
    limiter.set_rate(5.0)  # a governor raising the rate: no need to sit out the old 1 s period
    assert limiter.wait_s() == pytest.approx(0.2)
    limiter.set_rate(0.5)
    assert limiter.wait_s() == pytest.approx(2.0)
    limiter.set_rate(0.0)
    assert limiter.ready()


def test_worker_processes_only_the_newest_frame_and_never_queues():
    release = threading.Event()
    seen: list[int] = []

    def process(batch):
        seen.extend(stamped.item for stamped in batch)
        release.wait(5)

    worker: LatestWorker[int] = LatestWorker(process, 0.0, on_error=pytest.fail)
    worker.start()
    worker.submit(0)
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.005)
    for i in range(1, 50):  # arrive while frame 0 is being processed
        worker.submit(i)
    release.set()
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert worker.stop()
    assert seen == [0, 49]
    assert worker.slot.skipped == 48


def test_worker_survives_a_failing_frame():
    errors: list[BaseException] = []
    done = threading.Event()

    def process(batch):
        (stamped,) = batch
        if stamped.item == "bad":
            raise RuntimeError("boom")
        done.set()

    worker: LatestWorker[str] = LatestWorker(process, 0.0, on_error=errors.append)
    worker.start()
    worker.submit("bad")
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.005)
    worker.submit("good")
    assert done.wait(5)
    assert worker.stop()
    assert [str(e) for e in errors] == ["boom"]


def test_throttle_reports_each_kind_once_per_period_and_counts_the_rest():
    clock = FakeClock()
    throttle = KeyedThrottle(5.0, clock)
    size = problem_kind("image has zero size: width=0, height=480")
    assert size == problem_kind("image has zero size: width=640, height=0")
    length = problem_kind("data length 10 does not match step*height = 1920*480 = 921600")
    assert throttle.allow(size) == (True, 0)
    assert throttle.allow(size) == (False, 0)
    assert throttle.allow(length) == (True, 0)  # another kind is reported at once
    clock.now += 5.0
    assert throttle.allow(size) == (True, 1)


def test_throttle_message_carries_the_suppressed_count():
    clock = FakeClock()
    throttle = KeyedThrottle(5.0, clock)
    assert throttle.message("k", "bad image") == "bad image"
    assert throttle.message("k", "bad image") is None
    clock.now += 5.0
    assert throttle.message("k", "bad image") == "bad image (1 more since the last report)"


def test_parameter_file_lists_every_parameter_with_its_default():
    data = yaml.safe_load((config_dir() / "perception.yaml").read_text())
    params = data["perception_node"]["ros__parameters"]
    assert params.pop("autostart") is True
    assert params == {spec.name: spec.default for spec in PARAMETERS}


def test_settings_defaults_resolve_model_and_tracker():
    settings = PerceptionSettings.from_parameters({})
    assert settings.detector.model.endswith("yolo11n.onnx")
    assert settings.detector.tracker.endswith("trackers/bytetrack.yaml")
    assert settings.max_rate_hz == 5.0
    assert settings.detector.backend == "onnx"
    pose = PerceptionSettings.from_parameters({"task": "pose", "tracker": "none", "backend": "ultralytics"})
    assert pose.detector.model.endswith("yolo11n-pose.pt")
    assert pose.detector.tracker is None
    with pytest.raises(SettingsError, match="task pose with backend onnx needs a pose ONNX model"):
        PerceptionSettings.from_parameters({"task": "pose"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"task": "segment"}, "task: expected one of detect, pose"),
        ({"confidence": 1.5}, "confidence must be in [0, 1]"),
        ({"imgsz": 500}, "imgsz must be a multiple of 32"),
        ({"half": True}, "half precision needs a CUDA device"),
        ({"device": "gpu0"}, "device must be 'cpu' or 'cuda:N'"),
        ({"model": "/nonexistent/model.onnx"}, "parameter 'model': /nonexistent/model.onnx does not exist"),
        ({"model": "yolo11x.pt"}, "asset 'yolo11x.pt' is not in"),
        ({"tracker": "sort"}, "tracker: expected bytetrack, botsort, none"),
        ({"backend": "tensorrt"}, "backend must be one of ultralytics, onnx, gpu"),
        ({"cameras": ["head", "head"]}, "cameras: camera names repeat"),
        ({"cameras": ["/head"]}, "cameras: camera name '/head' is not a topic namespace"),
        ({"max_rate_hz": -1.0}, "max_rate_hz: expected >= 0"),
        ({"image_reliability": "reliabel"}, "image_reliability: expected"),
    ],
)
def test_bad_settings_name_the_parameter(values, message):
    with pytest.raises(SettingsError) as info:
        PerceptionSettings.from_parameters(values)
    assert message in str(info.value)


def test_class_names_resolve_to_ids_and_unknown_names_are_explained():
    names = {0: "person", 1: "bicycle", 2: "car"}
    assert resolve_classes(names, []) is None
    assert resolve_classes(names, ["car", "person"]) == [2, 0]
    with pytest.raises(DetectorError, match=r"'persn' is not a class of this model \(did you mean person"):
        resolve_classes(names, ["persn"])


def test_debug_drawing_marks_boxes_and_labels_tracks():
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    det = Detection(
        0, "person", 0.9, 160.0, 120.0, 80.0, 100.0, track_id=7, keypoints=(Keypoint(160, 100, 0.9),)
    )
    canvas = draw_detections(image, [det], fps=5.0)
    assert canvas.shape == image.shape
    assert not image.any()  # the input is not drawn on
    assert canvas[70, 120:200].any()  # top edge of the box
    assert label_for(det) == "person #7 0.90"
    assert label_for(Detection(2, "car", 0.5, 1, 1, 1, 1)) == "car 0.50"
