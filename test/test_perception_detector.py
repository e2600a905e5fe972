"""The detector core against Ultralytics called directly (no ROS): detect, pose, class filter, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from ultralytics import YOLO
from ultralytics.utils import ASSETS

from humanoid_common.assets import asset_path
from perception_node.detector import NO_TRACK, DetectorConfig, DetectorError, load_detector


def direct_predict(model_path: str, bgr: np.ndarray, **kwargs) -> list[tuple[str, float, np.ndarray]]:
    """(class name, score, xywh) per box from Ultralytics' own predict."""
    result = YOLO(model_path, task=kwargs.pop("task", "detect")).predict(bgr, verbose=False, **kwargs)[0]
    names = result.names
    return [
        (names[int(c)], float(s), box.numpy())
        for c, s, box in zip(result.boxes.cls, result.boxes.conf, result.boxes.xywh, strict=True)
    ]


def assert_same_detections(ours, theirs) -> None:
    """Same objects: class equal, score within 0.01, box centre/size within 2 px."""
    assert len(ours) == len(theirs), (ours, theirs)
    unmatched = list(theirs)
    for det in ours:
        box = np.array([det.center_x, det.center_y, det.size_x, det.size_y])
        match = next(
            (t for t in unmatched if t[0] == det.class_name and abs(t[1] - det.score) <= 0.01
             and np.abs(t[2] - box).max() <= 2.0),
            None,
        )  # fmt: skip
        assert match is not None, f"{det} has no counterpart in {unmatched}"
        unmatched.remove(match)


@pytest.fixture(scope="module")
def bus() -> np.ndarray:
    return cv2.imread(str(ASSETS / "bus.jpg"))


def test_detect_matches_ultralytics_and_class_filter_keeps_only_people(bus):
    model = str(asset_path("yolo11n.onnx"))
    detector = load_detector(DetectorConfig(model))
    result = detector.detect(bus)
    assert (result.width, result.height) == (bus.shape[1], bus.shape[0])
    assert result.inference_ms > 0
    assert {d.class_name for d in result.detections} == {"person", "bus"}
    assert all(d.track_id == NO_TRACK and not d.keypoints for d in result.detections)
    assert_same_detections(result.detections, direct_predict(model, bus))

    people = load_detector(DetectorConfig(model, classes=("person",))).detect(bus).detections
    assert people
    assert {d.class_name for d in people} == {"person"}


def test_pose_model_fills_keypoints_inside_the_box(bus):
    detector = load_detector(DetectorConfig(str(asset_path("yolo11n-pose.pt")), task="pose"))
    detections = detector.detect(bus).detections
    assert detections
    for det in detections:
        assert len(det.keypoints) == 17  # COCO order
        visible = [k for k in det.keypoints if k.score > 0.5]
        for k in visible:
            assert abs(k.x - det.center_x) <= det.size_x / 2 + 5
            assert abs(k.y - det.center_y) <= det.size_y / 2 + 5


def test_unusable_models_are_explained(tmp_path):
    with pytest.raises(DetectorError, match="is it a model of that task"):
        load_detector(DetectorConfig(str(asset_path("yolo11n.onnx")), task="pose"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="cannot load model"):
        load_detector(DetectorConfig(str(broken)))
    with pytest.raises(DetectorError, match="'bus stop' is not a class of this model"):
        load_detector(DetectorConfig(str(asset_path("yolo11n.onnx")), classes=("bus stop",)))
