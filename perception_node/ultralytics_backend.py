"""The ``ultralytics`` backend: Ultralytics' own predict/track, the reference the others are
measured against, and the way to run TensorRT ``.engine`` files on a Jetson. Any model Ultralytics
loads works (.pt, .onnx, .engine). Importing this module does not import Ultralytics (or torch):
loading a model does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perception_node.detector import (
    NO_TRACK,
    BatchDetector,
    Detection,
    DetectorConfig,
    DetectorError,
    FrameResult,
    Keypoint,
    resolve_classes,
)


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


class UltralyticsDetector(BatchDetector):
    """A YOLO model run by Ultralytics' predict/track (the reference backend)."""

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
            # The first call loads the runtime; class names come with it.
            self._run(np.zeros((config.imgsz, config.imgsz, 3), np.uint8))
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

    def detect_batch(
        self, frames: Sequence[np.ndarray], cameras: Sequence[int] | None = None
    ) -> list[FrameResult]:
        cameras = range(len(frames)) if cameras is None else cameras
        start = time.perf_counter()
        if self.tracking:  # one call per camera, each with its camera's trackers
            results = [self._track(camera, bgr)[0] for camera, bgr in zip(cameras, frames, strict=True)]
        else:
            results = self._run(list(frames))
        elapsed_ms = (time.perf_counter() - start) * 1e3
        return [
            FrameResult(self._convert(result), elapsed_ms, bgr.shape[1], bgr.shape[0])
            for result, bgr in zip(results, frames, strict=True)
        ]

    def _track(self, camera: int, bgr: np.ndarray) -> list:
        """Ultralytics keeps one tracker per predictor for a list of images: each camera's trackers are
        swapped in for its call (Ultralytics makes them on a camera's first call)."""
        predictor = self._model.predictor
        if predictor is not None:
            if camera in self._trackers:
                predictor.trackers = self._trackers[camera]
            elif hasattr(predictor, "trackers"):
                del predictor.trackers
        results = self._run(bgr)
        self._trackers[camera] = self._model.predictor.trackers
        return results

    def _run(self, frames: np.ndarray | list[np.ndarray]) -> list:
        if self.tracking:
            return self._model.track(frames, persist=True, tracker=self.config.tracker, **self._args)
        return self._model.predict(frames, **self._args)

    def reset_tracks(self) -> None:
        """Drop every camera's trackers: the next call makes new ones."""
        self._trackers: dict[int, Any] = {}
        predictor = self._model.predictor
        if predictor is not None and hasattr(predictor, "trackers"):
            del predictor.trackers

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
