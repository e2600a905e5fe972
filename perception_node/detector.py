"""Ultralytics YOLO behind a small interface: load, warm up, detect (and track) one BGR frame.

Plain Python (no rclpy): results are dataclasses, so the ROS shell and the tests share one path.
Any model Ultralytics loads works (.pt, .onnx, TensorRT .engine on a Jetson); the task is detect or pose.
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Never reach for the network: no hub downloads, no pip AutoUpdate of "missing" packages.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

TASKS = ("detect", "pose")
NO_TRACK = -1


class DetectorError(ValueError):
    """The detector cannot be built as configured; the message says what to change."""


@dataclass(frozen=True)
class DetectorConfig:
    """What to load and how to run it. ``tracker`` is a tracker YAML path or None (no tracking)."""

    model: str
    task: str = "detect"
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


def without_spinning(model: Any, weights: str) -> bool:
    """Rebuild the CPU ONNX Runtime session of a loaded Ultralytics model so that its idle threads do
    not busy-wait after each frame (they would take CPU from the other nodes: perception runs at a
    few Hz beside memory and the VLA). Ultralytics builds that session itself with default options;
    other backends (PyTorch, TensorRT, CUDA sessions) are left alone. True when rebuilt."""
    import onnxruntime as ort

    backend = getattr(getattr(getattr(model, "predictor", None), "model", None), "backend", None)
    session = getattr(backend, "session", None)
    if (
        not isinstance(session, ort.InferenceSession)
        or session.get_providers() != ["CPUExecutionProvider"]
        or getattr(backend, "use_io_binding", False)
    ):
        return False
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    backend.session = ort.InferenceSession(weights, options, providers=["CPUExecutionProvider"])
    return True


class Detector:
    """A loaded YOLO model. ``detect`` is not thread-safe: call it from one worker thread."""

    def __init__(self, config: DetectorConfig) -> None:
        config.validate()
        from ultralytics import YOLO  # heavy import, only when a model is really loaded

        self.config = config
        self.model_name = Path(config.model).name
        self._args = {
            "conf": config.confidence,
            "iou": config.iou,
            "imgsz": config.imgsz,
            "device": config.device,
            "quantize": 16 if config.half else None,
            "max_det": config.max_det,
            "verbose": False,
        }
        try:
            self._model = YOLO(config.model, task=config.task)
            self._run(self._blank())  # the first call loads the runtime; class names come with it
            names = self._model.names
            without_spinning(self._model, config.model)
        except Exception as error:  # Ultralytics raises many types for unreadable models or devices
            reason = f"{type(error).__name__}: {error}"
            raise DetectorError(
                f"cannot load model {config.model} on {config.device} for task {config.task!r}: {reason} "
                "(is it a model of that task, and does the device exist?)"
            ) from error
        if self._model.task != config.task:
            raise DetectorError(
                f"model {self.model_name} is a {self._model.task} model, but task is {config.task!r}"
            )
        self.names: dict[int, str] = dict(names)
        self._args["classes"] = resolve_classes(self.names, config.classes)
        self.reset_tracks()

    @property
    def tracking(self) -> bool:
        return self.config.tracker is not None

    def warm_up(self, frames: int = 2, progress: Callable[[int, int], None] | None = None) -> None:
        """Run a few blank frames so that the first real frame is not slow; resets the tracker after."""
        blank = self._blank()
        for i in range(frames):
            self._run(blank)
            if progress:
                progress(i + 1, frames)
        self.reset_tracks()

    def detect(self, bgr: np.ndarray) -> FrameResult:
        """Detect (and track, when configured) objects in one (H, W, 3) uint8 BGR frame."""
        start = time.perf_counter()
        results = self._run(bgr)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        height, width = bgr.shape[:2]
        return FrameResult(self._convert(results[0]), elapsed_ms, width, height)

    def _run(self, bgr: np.ndarray) -> list:
        if self.tracking:
            return self._model.track(bgr, persist=True, tracker=self.config.tracker, **self._args)
        return self._model.predict(bgr, **self._args)

    def _blank(self) -> np.ndarray:
        return np.zeros((self.config.imgsz, self.config.imgsz, 3), dtype=np.uint8)

    def reset_tracks(self) -> None:
        """Forget all tracks (a new sequence starts); ids start again from 1."""
        predictor = self._model.predictor
        for tracker in getattr(predictor, "trackers", ()) if predictor else ():
            tracker.reset()

    def _convert(self, result: object) -> list[Detection]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xywh = boxes.xywh.cpu().numpy().astype(float)
        cls = boxes.cls.cpu().numpy().astype(int)
        conf = boxes.conf.cpu().numpy().astype(float)
        ids = boxes.id.cpu().numpy().astype(int) if boxes.id is not None else None
        kpts = result.keypoints.data.cpu().numpy().astype(float) if result.keypoints is not None else None
        detections = []
        for i in range(len(cls)):
            keypoints = ()
            if kpts is not None:
                points = kpts[i]
                scores = points[:, 2] if points.shape[1] > 2 else np.zeros(len(points))
                keypoints = tuple(
                    Keypoint(float(p[0]), float(p[1]), float(s)) for p, s in zip(points, scores, strict=True)
                )
            detections.append(
                Detection(
                    class_id=int(cls[i]),
                    class_name=self.names.get(int(cls[i]), str(cls[i])),
                    score=float(conf[i]),
                    center_x=float(xywh[i, 0]),
                    center_y=float(xywh[i, 1]),
                    size_x=float(xywh[i, 2]),
                    size_y=float(xywh[i, 3]),
                    track_id=int(ids[i]) if ids is not None else NO_TRACK,
                    keypoints=keypoints,
                )
            )
        return detections

    def close(self) -> None:
        """Drop the model (and with it any GPU memory it holds)."""
        self._model = None
        if self.config.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
