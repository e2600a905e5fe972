"""The ``gpu`` backend against Ultralytics' predict: letterbox and decode maths on CPU tensors here, the
CUDA-graph runner where a CUDA device exists (skipped otherwise), and the errors it gives."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest
import torch
from ultralytics import YOLO
from ultralytics.data.augment import LetterBox
from ultralytics.utils import ASSETS

from humanoid_common.assets import asset_path
from perception_node.detector import DetectorConfig, DetectorError, Rows
from perception_node.gpu_backend import GpuRunner, Weights, load_weights, prediction
from perception_node.yolo_torch import Decoder, frame_table, input_shape, letterbox, place, split_rows

VIDEO_FRAMES = 32
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the H200)")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """bus.jpg, zidane.jpg and street video frames (768 × 576): resized, padded, many people."""
    images = [cv2.imread(str(ASSETS / name)) for name in ("bus.jpg", "zidane.jpg")]
    capture = cv2.VideoCapture(str(asset_path("vtest.avi")))
    for _ in range(VIDEO_FRAMES):
        ok, frame = capture.read()
        assert ok
        images.append(frame)
    return images


def ultralytics_rows(model: str, frames: Sequence[np.ndarray], batch: bool = False, **kwargs) -> list[Rows]:
    """Ultralytics' predict, one frame at a time (or all in one call), as Rows; on the CPU unless
    ``device`` says otherwise (its ONNX path wants onnxruntime-gpu on a CUDA device)."""
    kwargs.setdefault("device", "cpu")
    yolo = YOLO(model)
    calls = [list(frames)] if batch else [[frame] for frame in frames]
    results = [result for call in calls for result in yolo.predict(call, verbose=False, **kwargs)]
    return [
        Rows(
            xyxy=r.boxes.xyxy.cpu().numpy(),
            scores=r.boxes.conf.cpu().numpy(),
            class_ids=r.boxes.cls.cpu().numpy().astype(np.int64),
            keypoints=r.keypoints.data.cpu().numpy() if r.keypoints is not None else None,
        )
        for r in results
    ]


class EagerPipeline:
    """The gpu backend's maths on CPU tensors, the network called op by op (specialised per input shape,
    as for a graph: ONNX traced and frozen)."""

    def __init__(self, weights: Weights, config: DetectorConfig) -> None:
        self.weights, self.config = weights, config
        self._networks: dict[tuple[int, ...], object] = {}

    def __call__(self, frames: Sequence[np.ndarray]) -> list[Rows]:
        weights, config = self.weights, self.config
        sources = [frame.shape[:2] for frame in frames]
        shape = input_shape(sources, config.imgsz, weights.stride, weights.rect)
        placements = [place(source, config.imgsz, shape) for source in sources]
        batch = torch.empty((len(frames), 3, *shape))
        letterbox([torch.from_numpy(frame) for frame in frames], placements, batch)
        with torch.inference_mode():
            if batch.shape not in self._networks:
                self._networks[batch.shape] = weights.specialise(batch)
            output = prediction(self._networks[batch.shape](batch))
            decode = Decoder(
                config.confidence, config.iou, len(weights.names), classes_tensor(weights, config)
            )
            table = decode(output, frame_table(placements, torch.device("cpu")))
        return split_rows(table.numpy(), len(frames), config.max_det, weights.keypoint_shape)


def classes_tensor(weights: Weights, config: DetectorConfig) -> torch.Tensor | None:
    ids = [idx for idx, name in weights.names.items() if name in config.classes]
    return torch.tensor(ids) if ids else None


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def matches(ours: Rows, theirs: Rows, pixel: float) -> int:
    """Detections of ``ours`` with a counterpart in ``theirs``: same class, box IoU ≥ 0.9, score within
    0.02, every keypoint within 2 px of the model input (``pixel``: one input pixel in frame pixels;
    resizing rounds a little differently from cv2, which moves a keypoint by up to about 1.7 px there),
    each counterpart used once."""
    if not len(ours) or not len(theirs):
        return 0
    iou = box_iou(ours.xyxy, theirs.xyxy)
    free = np.ones(len(theirs), bool)
    found = 0
    for i in np.argsort(-ours.scores):
        j = int(np.argmax(np.where(free, iou[i], -1)))
        same = (
            free[j]
            and iou[i, j] >= 0.9
            and ours.class_ids[i] == theirs.class_ids[j]
            and abs(ours.scores[i] - theirs.scores[j]) <= 0.02
            and (
                ours.keypoints is None
                or np.abs(ours.keypoints[i, :, :2] - theirs.keypoints[j, :, :2]).max() <= 2 * pixel
            )
        )
        if same:
            free[j] = False
            found += 1
    return found


def assert_same_detections(
    ours: list[Rows], theirs: list[Rows], frames: Sequence[np.ndarray], fraction: float = 0.99
) -> None:
    """At least ``fraction`` of all detections (the larger count of each frame) are matched."""
    assert len(ours) == len(theirs) == len(frames)
    total = sum(max(len(a), len(b)) for a, b in zip(ours, theirs, strict=True))
    pixels = [max(frame.shape[:2]) / 640 for frame in frames]
    found = sum(matches(a, b, pixel) for a, b, pixel in zip(ours, theirs, pixels, strict=True))
    assert total > 0
    assert found >= fraction * total, f"{found} of {total} detections match Ultralytics"
    assert all(rows.xyxy.dtype == np.float32 and rows.class_ids.dtype == np.int64 for rows in ours)


def test_letterbox_geometry_and_pixels_match_ultralytics(frames):
    small = cv2.resize(frames[2], (320, 240))  # upscaled
    exact = cv2.resize(frames[2], (640, 480))  # no resize: identical pixels
    for image in [*frames[:3], small, exact]:
        for rect in (True, False):
            shape = input_shape([image.shape[:2]], 640, 32, rect)
            batch = torch.empty((1, 3, *shape))
            letterbox([torch.from_numpy(image)], [place(image.shape[:2], 640, shape)], batch)
            ours = (batch[0] * 255).round().permute(1, 2, 0).numpy()[..., ::-1]
            theirs = LetterBox(640, auto=rect, stride=32)(image=image).astype(np.float32)
            assert ours.shape == theirs.shape
            assert np.abs(ours - theirs).max() <= (0 if image is exact else 1)  # cv2 rounds in fixed point


def test_pose_pt_matches_ultralytics(frames):
    config = DetectorConfig(str(asset_path("yolo11n-pose.pt")), task="pose")
    weights = load_weights(config, torch.device("cpu"))
    assert weights.keypoint_shape == (17, 3)
    assert weights.rect
    assert not weights.traced
    pipeline = EagerPipeline(weights, config)
    ours = [pipeline([frame])[0] for frame in frames]
    assert_same_detections(ours, ultralytics_rows(config.model, frames), frames)
    assert all(rows.keypoints.shape == (len(rows), 17, 3) for rows in ours)


def test_detect_onnx_via_onnx2torch_matches_ultralytics_with_class_filter(frames):
    model = str(asset_path("yolo11n.onnx"))
    config = DetectorConfig(model)
    weights = load_weights(config, torch.device("cpu"))
    assert weights.traced  # onnx2torch: traced and frozen per input shape
    assert weights.rect  # a dynamic export
    pipeline = EagerPipeline(weights, config)
    ours = [pipeline([frame])[0] for frame in frames]
    assert_same_detections(ours, ultralytics_rows(model, frames), frames)
    assert all(rows.keypoints is None for rows in ours)

    pipeline.config = DetectorConfig(model, classes=("person",))
    ours = [pipeline([frame])[0] for frame in frames[:3]]
    assert {int(c) for rows in ours for c in rows.class_ids} == {0}
    assert_same_detections(ours, ultralytics_rows(model, frames[:3], classes=[0]), frames[:3])


def test_mixed_sizes_batch_is_letterboxed_square_as_ultralytics_does(frames):
    config = DetectorConfig(str(asset_path("yolo11n-pose.pt")), task="pose")
    weights = load_weights(config, torch.device("cpu"))
    batch = frames[:12]  # bus, zidane and ten video frames: three sizes, one 640 × 640 batch
    ours = EagerPipeline(weights, config)(batch)
    assert_same_detections(ours, ultralytics_rows(config.model, batch, batch=True), batch)


def test_split_rows_keeps_max_det_best_per_frame():
    table = np.array(
        [[0, 0, 0, 1, 1, 0.9, 2], [0, 0, 0, 2, 2, 0.8, 2], [0, 0, 0, 3, 3, 0.7, 1], [2, 1, 1, 4, 4, 0.6, 0]],
        np.float32,
    )
    rows = split_rows(table, 3, max_det=2, keypoints=None)
    assert [len(r) for r in rows] == [2, 0, 1]
    np.testing.assert_allclose(rows[0].scores, [0.9, 0.8])
    assert rows[2].class_ids.tolist() == [0]


def test_unusable_models_are_explained(tmp_path):
    cpu = torch.device("cpu")
    with pytest.raises(DetectorError, match="is a detect model, but task is 'pose'"):
        load_weights(DetectorConfig(str(asset_path("yolo11n.onnx")), task="pose"), cpu)
    engine = tmp_path / "yolo11n.engine"
    engine.write_bytes(b"")
    with pytest.raises(DetectorError, match=r"use backend ultralytics for \.engine"):
        load_weights(DetectorConfig(str(engine)), cpu)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="cannot load model"):
        load_weights(DetectorConfig(str(broken)), cpu)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_without_cuda_the_error_says_so():
    config = DetectorConfig(str(asset_path("yolo11n-pose.pt")), task="pose", backend="gpu")
    with pytest.raises(DetectorError, match=r"backend gpu needs a CUDA device .*here: torch .* without CUDA"):
        GpuRunner(config)


@pytest.fixture(scope="module")
def pose_runner() -> GpuRunner:
    config = DetectorConfig(str(asset_path("yolo11n-pose.pt")), task="pose", device="cuda:0", half=True)
    runner = GpuRunner(config)
    yield runner
    runner.close()


@needs_cuda
def test_cuda_pose_fp16_matches_ultralytics(frames, pose_runner):
    ours = [pose_runner.infer([frame])[0] for frame in frames]
    theirs = ultralytics_rows(str(asset_path("yolo11n-pose.pt")), frames, device="cuda:0", quantize=16)
    assert_same_detections(ours, theirs, frames)


@needs_cuda
def test_cuda_batch_of_two_equals_each_alone(frames, pose_runner):
    together, alone = [], []
    for first, second in zip(frames[2::2], frames[3::2], strict=False):
        together += pose_runner.infer([first, second])
        alone += [pose_runner.infer([first])[0], pose_runner.infer([second])[0]]
    assert_same_detections(together, alone, frames[2 : 2 + len(alone)], fraction=1.0)
    mixed = pose_runner.infer(frames[:3])  # three sizes: one square batch
    assert len(mixed) == 3
    assert all(len(rows) for rows in mixed)


@needs_cuda
def test_cuda_graph_replay_equals_eager(frames, pose_runner):
    pose_runner.infer(frames[2:4])
    with torch.inference_mode():
        for forward in pose_runner._graphs.values():
            replayed = forward.replay().clone()
            torch.testing.assert_close(replayed, forward.eager(), rtol=1e-3, atol=1e-2)


@needs_cuda
def test_cuda_detect_onnx_fp16_matches_ultralytics(frames):
    model = str(asset_path("yolo11n.onnx"))
    runner = GpuRunner(DetectorConfig(model, device="cuda:0", half=True))
    try:
        ours = [runner.infer([frame])[0] for frame in frames]
        batched = runner.infer(frames[2:6])
    finally:
        runner.close()
    theirs = ultralytics_rows(model, frames)
    assert_same_detections(ours, theirs, frames)
    assert_same_detections(batched, theirs[2:6], frames[2:6])
