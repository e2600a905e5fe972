"""The detector interface: configuration, results, and the choice of backend.

Plain Python (no rclpy): results are dataclasses, so the ROS shell and the tests share one path. The
backends (``BACKENDS``) are imported only when chosen, so the ``onnx`` path never imports torch:
- ``ultralytics``: Ultralytics' predict/track; any model it loads (.pt, .onnx, TensorRT .engine).
- ``onnx``: ONNX Runtime with letterbox, decode and NMS in numpy (``onnx_backend``).
- ``gpu``: PyTorch CUDA, pre- and post-processing on the GPU, the forward pass in a CUDA graph.
``onnx`` and ``gpu`` return kept rows (``Rows``); ``RowsDetector`` tracks and converts them.
"""

from __future__ import annotations

import difflib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

# Never reach for the network: no hub downloads, no pip AutoUpdate of "missing" packages.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

TASKS = ("detect", "pose")
BACKENDS = ("ultralytics", "onnx", "gpu")
NO_TRACK = -1


class DetectorError(ValueError):
    """The detector cannot be built as configured; the message says what to change."""


@dataclass(frozen=True)
class DetectorConfig:
    """What to load and how to run it. ``tracker`` is a tracker YAML path or None (no tracking)."""

    model: str
    task: str = "detect"
    backend: str = "ultralytics"
    confidence: float = 0.25
    iou: float = 0.7
    classes: tuple[str, ...] = ()
    imgsz: int = 640
    device: str = "cpu"
    half: bool = False
    max_det: int = 300
    tracker: str | None = None

    def validate(self) -> None:
        """Raise DetectorError naming the first bad field."""
        if self.task not in TASKS:
            raise DetectorError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.backend not in BACKENDS:
            raise DetectorError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise DetectorError(f"confidence must be in [0, 1], got {self.confidence}")
        if not 0.0 < self.iou <= 1.0:
            raise DetectorError(f"iou must be in (0, 1], got {self.iou}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise DetectorError(f"imgsz must be a multiple of 32 and at least 32, got {self.imgsz}")
        if self.max_det < 1:
            raise DetectorError(f"max_det must be at least 1, got {self.max_det}")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise DetectorError(f"device must be 'cpu' or 'cuda:N', got {self.device!r}")
        if self.half and self.device == "cpu":
            raise DetectorError("half precision needs a CUDA device; set half:=false or device:=cuda:0")
        if not Path(self.model).is_file():
            raise DetectorError(f"model file {self.model} does not exist")
        if self.tracker is not None and not Path(self.tracker).is_file():
            raise DetectorError(f"tracker config {self.tracker} does not exist")


@dataclass(frozen=True)
class Keypoint:
    x: float
    y: float
    score: float


@dataclass(frozen=True)
class Detection:
    """One object, box as centre and size in pixels of the source image."""

    class_id: int
    class_name: str
    score: float
    center_x: float
    center_y: float
    size_x: float
    size_y: float
    track_id: int = NO_TRACK
    keypoints: tuple[Keypoint, ...] = ()


@dataclass(frozen=True)
class Rows:
    """The kept detections of one frame as arrays, in pixels of the source image (what the ``onnx``
    and ``gpu`` backends return, and what the tracker takes and gives)."""

    xyxy: np.ndarray  # (n, 4) float32: x1, y1, x2, y2
    scores: np.ndarray  # (n,) float32
    class_ids: np.ndarray  # (n,) int64
    keypoints: np.ndarray | None = None  # (n, k, 3) float32: x, y, score; None for detect models
    track_ids: np.ndarray | None = None  # (n,) int64 once tracked

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class FrameResult:
    """All detections of one frame and the time the model call took (pre/forward/post/tracking)."""

    detections: list[Detection] = field(default_factory=list)
    inference_ms: float = 0.0
    width: int = 0
    height: int = 0


def resolve_classes(names: dict[int, str], wanted: Sequence[str]) -> list[int] | None:
    """Class names → ids of the model; None when no filter is wanted. Unknown names raise."""
    if not wanted:
        return None
    by_name = {name: idx for idx, name in names.items()}
    ids = []
    for name in wanted:
        if name not in by_name:
            close = difflib.get_close_matches(name, by_name, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise DetectorError(
                f"class {name!r} is not a class of this model{hint}; it knows: {', '.join(by_name)}"
            )
        ids.append(by_name[name])
    return ids


class Detector(Protocol):
    """What the node calls. Not thread-safe: one worker thread calls ``detect``/``detect_batch``."""

    config: DetectorConfig
    model_name: str
    names: dict[int, str]

    @property
    def tracking(self) -> bool: ...

    def warm_up(
        self, frames: int = 2, progress: Callable[[int, int], None] | None = None, cameras: int = 1
    ) -> None:
        """Run ``frames`` blank batches of each size from 1 to ``cameras`` so that the first real ones
        are not slow (the ``gpu`` backend captures a graph per batch size); tracks are reset after."""

    def detect(self, bgr: np.ndarray) -> FrameResult:
        """Detect (and track, when configured) objects in one (H, W, 3) uint8 BGR frame."""

    def detect_batch(
        self, frames: Sequence[np.ndarray], cameras: Sequence[int] | None = None
    ) -> list[FrameResult]:
        """One result per frame, in one model call; frame i comes from camera ``cameras[i]`` (default
        i), whose tracks are kept apart from the other cameras'. Each result's ``inference_ms`` is the
        whole batch's time."""

    def reset_tracks(self) -> None:
        """Forget all tracks (a new sequence starts); ids start again from 1."""

    def close(self) -> None:
        """Release the model (and any GPU memory it holds)."""


class BatchDetector(ABC):
    """``warm_up`` and ``detect`` of a Detector, written once over its ``detect_batch``."""

    config: DetectorConfig

    @abstractmethod
    def detect_batch(
        self, frames: Sequence[np.ndarray], cameras: Sequence[int] | None = None
    ) -> list[FrameResult]:
        """As ``Detector.detect_batch``."""

    @abstractmethod
    def reset_tracks(self) -> None:
        """As ``Detector.reset_tracks``."""

    def warm_up(
        self, frames: int = 2, progress: Callable[[int, int], None] | None = None, cameras: int = 1
    ) -> None:
        blank = np.zeros((self.config.imgsz, self.config.imgsz, 3), np.uint8)
        for i in range(frames):
            for size in range(1, cameras + 1):
                self.detect_batch([blank] * size)
            if progress:
                progress(i + 1, frames)
        self.reset_tracks()

    def detect(self, bgr: np.ndarray) -> FrameResult:
        return self.detect_batch([bgr])[0]


class Runner(Protocol):
    """A model behind the ``onnx`` or ``gpu`` backend: frames in, kept rows out (confidence and class
    filters, NMS and ``max_det`` applied as Ultralytics applies them), no tracking."""

    names: dict[int, str]

    def infer(self, frames: Sequence[np.ndarray]) -> list[Rows]:
        """Kept rows of each (H, W, 3) uint8 BGR frame, boxes in that frame's pixels."""

    def close(self) -> None: ...


def load_detector(config: DetectorConfig) -> Detector:
    """The configured backend, loaded; DetectorError says what to change when it cannot be."""
    config.validate()
    if config.backend == "ultralytics":
        from perception_node.ultralytics_backend import UltralyticsDetector

        return UltralyticsDetector(config)
    from perception_node.rows_detector import RowsDetector

    if config.backend == "onnx":
        from perception_node.onnx_backend import OnnxRunner

        return RowsDetector(OnnxRunner(config), config)
    from perception_node.gpu_backend import GpuRunner

    return RowsDetector(GpuRunner(config), config)
