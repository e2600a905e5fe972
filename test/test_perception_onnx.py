"""The ``onnx`` backend (ONNX Runtime, numpy pre/post) against Ultralytics' own predict on the same
ONNX models: detect and pose on bus.jpg, zidane.jpg and vtest.avi frames; class filter, batching,
blank frames, unusable models; and a process that runs it imports neither torch nor Ultralytics."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from ultralytics import YOLO
from ultralytics.utils import ASSETS

from humanoid_common.assets import asset_path
from perception_node.detector import DetectorConfig, DetectorError, Rows
from perception_node.onnx_backend import OnnxRunner, execution_providers

ROOT = Path(__file__).resolve().parents[1]
VIDEO_FRAMES = 32
MIN_MATCHED = 0.99


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """bus.jpg, zidane.jpg and every third of the first frames of vtest.avi (a street)."""
    capture = cv2.VideoCapture(str(asset_path("vtest.avi")))
    video = [capture.read()[1] for _ in range(3 * VIDEO_FRAMES)][::3]
    capture.release()
    assert all(frame is not None for frame in video)
    return [cv2.imread(str(ASSETS / "bus.jpg")), cv2.imread(str(ASSETS / "zidane.jpg")), *video]


def export_pose(folder: Path, *flags: str) -> str:
    """yolo11n-pose.pt exported to ONNX by tools/export_model.py in ``folder`` (offline, seconds)."""
    folder.mkdir()
    weights = folder / "yolo11n-pose.pt"
    shutil.copy(asset_path("yolo11n-pose.pt"), weights)
    tool = str(ROOT / "tools" / "export_model.py")
    command = [sys.executable, tool, str(weights), "--format", "onnx", *flags]
    subprocess.run(command, check=True, capture_output=True, timeout=240)
    return str(folder / "yolo11n-pose.onnx")


@pytest.fixture(scope="module")
def pose_models(tmp_path_factory) -> dict[str, str]:
    """The pose model exported twice: dynamic batch and size (like yolo11n.onnx), and fixed 1×640×640."""
    root = tmp_path_factory.mktemp("pose")
    return {"dynamic": export_pose(root / "dynamic", "--dynamic"), "fixed": export_pose(root / "fixed")}


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def count_matches(ours: Rows, theirs) -> tuple[int, int]:
    """(matched, unmatched on either side) between our rows and an Ultralytics Results: same class, box
    IoU ≥ 0.9, score within 0.02, keypoints within 2 px; each of theirs takes its best free match."""
    boxes, scores = theirs.boxes.xyxy.numpy(), theirs.boxes.conf.numpy()
    classes = theirs.boxes.cls.numpy().astype(int)
    keypoints = theirs.keypoints.data.numpy() if theirs.keypoints is not None else None
    free = set(range(len(ours)))
    for j in range(len(boxes)):
        fits = [
            (box_iou(ours.xyxy[i], boxes[j]), i)
            for i in free
            if ours.class_ids[i] == classes[j]
            and abs(ours.scores[i] - scores[j]) <= 0.02
            and (keypoints is None or np.abs(ours.keypoints[i, :, :2] - keypoints[j, :, :2]).max() <= 2.0)
        ]
        best = max(fits, default=(0.0, -1))
        if best[0] >= 0.9:
            free.remove(best[1])
    matched = len(ours) - len(free)
    return matched, len(free) + len(boxes) - matched


def assert_matches_ultralytics(model: str, task: str, images: list[np.ndarray]) -> None:
    runner = OnnxRunner(DetectorConfig(model, task=task))
    reference = YOLO(model, task=task)
    matched = unmatched = 0
    for bgr in images:
        result = reference.predict(bgr, conf=0.25, iou=0.7, imgsz=640, max_det=300, verbose=False)[0]
        counts = count_matches(runner.infer([bgr])[0], result)
        matched, unmatched = matched + counts[0], unmatched + counts[1]
    print(f"{task} {Path(model).name}: {matched} detections matched, {unmatched} unmatched")
    assert matched >= 20  # not a vacuous comparison
    assert matched >= MIN_MATCHED * (matched + unmatched)


@pytest.mark.slow
def test_detect_matches_ultralytics(images):
    assert_matches_ultralytics(str(asset_path("yolo11n.onnx")), "detect", images)


@pytest.mark.slow
@pytest.mark.parametrize("export", ["dynamic", "fixed"])
def test_pose_matches_ultralytics(images, pose_models, export):
    assert_matches_ultralytics(pose_models[export], "pose", images)


@pytest.mark.slow
def test_pose_rows_hold_17_keypoints_and_blank_frames_none(images, pose_models):
    runner = OnnxRunner(DetectorConfig(pose_models["dynamic"], task="pose"))
    rows = runner.infer([images[0]])[0]
    assert len(rows)
    assert rows.keypoints.shape == (len(rows), 17, 3)
    assert runner.names == {0: "person"}
    blank = runner.infer([np.zeros((480, 640, 3), dtype=np.uint8)])[0]
    assert len(blank) == 0
    assert blank.xyxy.shape == (0, 4)
    assert blank.keypoints.shape == (0, 17, 3)


def test_blank_frame_gives_no_rows():
    runner = OnnxRunner(DetectorConfig(str(asset_path("yolo11n.onnx"))))
    rows = runner.infer([np.zeros((576, 768, 3), dtype=np.uint8)])[0]
    assert len(rows) == 0
    assert rows.xyxy.shape == (0, 4)
    assert rows.keypoints is None
    assert (rows.xyxy.dtype, rows.scores.dtype, rows.class_ids.dtype) == (np.float32, np.float32, np.int64)


def test_class_filter_keeps_the_same_rows_of_those_classes(images):
    model = str(asset_path("yolo11n.onnx"))
    everything = OnnxRunner(DetectorConfig(model)).infer([images[0]])[0]
    runner = OnnxRunner(DetectorConfig(model, classes=("bus", "tie")))
    assert runner.names[5] == "bus"
    buses = runner.infer([images[0]])[0]
    assert len(buses)
    assert set(buses.class_ids.tolist()) == {5}
    wanted = np.isin(everything.class_ids, [5, 27])
    np.testing.assert_array_equal(buses.xyxy, everything.xyxy[wanted])
    np.testing.assert_array_equal(buses.scores, everything.scores[wanted])


def test_a_batch_gives_what_each_frame_alone_gives(images):
    """Frames of different sizes run apart (each its own input shape); frames of one size run as one
    (N, 3, h, w) batch."""
    runner = OnnxRunner(DetectorConfig(str(asset_path("yolo11n.onnx"))))
    bus, street, street_later = images[0], images[2], images[5]
    alone = [runner.infer([frame])[0] for frame in (bus, street, street_later)]
    shapes = []
    session_run = runner._session.run
    runner._session.run = lambda names, feed: shapes.append(feed["images"].shape) or session_run(names, feed)
    together = runner.infer([bus, street, street_later])
    assert sorted(shapes) == [(1, 3, 640, 480), (2, 3, 480, 640)]
    for one, batched in zip(alone, together, strict=True):
        np.testing.assert_array_equal(one.class_ids, batched.class_ids)
        np.testing.assert_allclose(one.xyxy, batched.xyxy, atol=0.05)
        np.testing.assert_allclose(one.scores, batched.scores, atol=1e-4)


def test_unusable_models_and_settings_are_explained(tmp_path):
    detect = str(asset_path("yolo11n.onnx"))
    with pytest.raises(DetectorError, match="is a detect model, but task is 'pose'"):
        OnnxRunner(DetectorConfig(detect, task="pose"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="cannot load model"):
        OnnxRunner(DetectorConfig(str(broken)))
    with pytest.raises(DetectorError, match="not an Ultralytics YOLO ONNX export"):
        OnnxRunner(DetectorConfig(str(asset_path("scrfd_500m_bnkps.onnx"))))
    with pytest.raises(DetectorError, match="'bus stop' is not a class of this model"):
        OnnxRunner(DetectorConfig(detect, classes=("bus stop",)))
    with pytest.raises(DetectorError, match="half precision is not implemented by the onnx backend"):
        OnnxRunner(DetectorConfig(detect, device="cuda:0", half=True))
    with pytest.raises(ValueError, match="frames must be"):
        OnnxRunner(DetectorConfig(detect)).infer([np.zeros((48, 64), dtype=np.uint8)])


@pytest.mark.slow
def test_a_fixed_size_model_needs_its_own_imgsz(pose_models):
    with pytest.raises(DetectorError, match="takes 640x640 images only, but imgsz is 320"):
        OnnxRunner(DetectorConfig(pose_models["fixed"], task="pose", imgsz=320))


def test_cuda_device_picks_gpu_providers_or_says_what_to_install():
    assert execution_providers("cpu", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert execution_providers("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        ("CUDAExecutionProvider", {"device_id": 1}),
        "CPUExecutionProvider",
    ]
    with pytest.raises(DetectorError, match="has only AzureExecutionProvider, CPUExecutionProvider: install"):
        execution_providers("cuda:0", ["AzureExecutionProvider", "CPUExecutionProvider"])


FOOTPRINT = """
import json, re, sys
import cv2
from humanoid_common.assets import asset_path
from perception_node.detector import DetectorConfig, load_detector
from perception_node.onnx_backend import OnnxRunner

config = DetectorConfig(str(asset_path("yolo11n.onnx")), backend="onnx")
capture = cv2.VideoCapture(str(asset_path("vtest.avi")))
frames = [capture.read()[1] for _ in range(5)]
if sys.argv[1] == "load_detector":
    detector = load_detector(config)
    found = sum(len(detector.detect(frame).detections) for frame in frames)
else:
    runner = OnnxRunner(config)
    found = sum(len(rows) for frame in frames for rows in runner.infer([frame]))
status = dict(re.findall(r"(VmHWM|VmRSS):\\s+(\\d+) kB", open("/proc/self/status").read()))
heavy = [name for name in ("torch", "ultralytics") if name in sys.modules]
print(json.dumps({"found": found, "heavy": heavy, **{k: int(v) // 1024 for k, v in status.items()}}))
"""


@pytest.mark.parametrize("entry", ["runner", "load_detector"])
def test_the_onnx_path_imports_neither_torch_nor_ultralytics(entry):
    done = subprocess.run(
        [sys.executable, "-c", FOOTPRINT, entry], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"onnx backend via {entry}: peak RSS {report['VmHWM']} MB, RSS {report['VmRSS']} MB")
    assert report["heavy"] == []
    assert report["found"] > 0
    assert report["VmHWM"] < 250  # MB; the whole node's budget is 350
