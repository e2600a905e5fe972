"""The ``onnx`` backend: a YOLO11 ONNX export run by ONNX Runtime, pre- and post-processing in numpy
(``yolo_numpy``). Neither torch nor Ultralytics is imported: the node stays small on a robot.

Frames are letterboxed as Ultralytics' predict does: for a model of dynamic input size, each into the
smallest stride multiple around it at ``imgsz`` (so an image alone gives what ``YOLO.predict`` gives);
for a fixed-size model, into its input size. Frames of the same input shape go through one
``session.run`` as one batch when the model's batch axis is dynamic; a model exported with a fixed
batch of 1 runs them one by one.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception_node.detector import DetectorConfig, DetectorError, Rows, resolve_classes
from perception_node.yolo_numpy import BatchBuffer, Decoding, Placement, decode, letterbox_into, place

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
EXPORT_HINT = "export one with tools/export_model.py MODEL.pt --format onnx --dynamic"


@dataclass(frozen=True)
class ModelInfo:
    """What Ultralytics writes into an exported model's metadata, as far as inference needs it."""

    names: dict[int, str]
    task: str
    stride: int
    keypoint_shape: tuple[int, int] | None

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], model: str) -> ModelInfo:
        """Read ``names``, ``task``, ``stride`` (and ``kpt_shape`` of pose models); DetectorError when
        the model is not a YOLO export with NMS left to us."""
        missing = [key for key in ("names", "task", "stride") if key not in metadata]
        if missing:
            raise DetectorError(
                f"model {model} is not an Ultralytics YOLO ONNX export (its metadata lacks "
                f"{', '.join(missing)}): {EXPORT_HINT}"
            )
        args = ast.literal_eval(metadata.get("args", "{}"))
        if args.get("nms") or metadata.get("end2end") == "True":
            raise DetectorError(f"model {model} was exported with NMS inside; {EXPORT_HINT} (without nms)")
        kpt_shape = ast.literal_eval(metadata["kpt_shape"]) if "kpt_shape" in metadata else None
        return cls(
            names={int(k): str(v) for k, v in ast.literal_eval(metadata["names"]).items()},
            task=metadata["task"],
            stride=int(metadata["stride"]),
            keypoint_shape=tuple(kpt_shape) if kpt_shape else None,
        )


def execution_providers(device: str, available: Sequence[str]) -> list[str | tuple[str, dict[str, int]]]:
    """ONNX Runtime providers for ``cpu`` or ``cuda:N``; DetectorError when this onnxruntime has no
    GPU provider."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    index = device.partition(":")[2] or "0"
    if not index.isdigit():
        raise DetectorError(f"device must be 'cpu' or 'cuda:N', got {device!r}")
    gpu = [name for name in GPU_PROVIDERS if name in available]
    if not gpu:
        raise DetectorError(
            f"device {device} needs ONNX Runtime's CUDA or TensorRT provider, but this onnxruntime has only "
            f"{', '.join(available)}: install onnxruntime-gpu, or set device:=cpu"
        )
    return [(name, {"device_id": int(index)}) for name in gpu] + ["CPUExecutionProvider"]


def open_session(config: DetectorConfig) -> ort.InferenceSession:
    """The model's session; idle threads sleep instead of busy-waiting (perception shares the CPU with
    the other nodes)."""
    if config.half:
        raise DetectorError(
            "half precision is not implemented by the onnx backend (it runs the model's FP32 graph): set "
            "half:=false, or use the gpu backend or a TensorRT engine exported with --half"
        )
    providers = execution_providers(config.device, ort.get_available_providers())
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.enable_mem_pattern = False  # per-shape allocation plans: more memory, no faster on CPU
    options.log_severity_level = 3  # errors only; a CPU fallback of single nodes is not news
    try:
        return ort.InferenceSession(config.model, options, providers=providers)
    except Exception as error:  # onnxruntime raises several types for unreadable files
        raise DetectorError(
            f"cannot load model {config.model} on {config.device}: {type(error).__name__}: {error} "
            f"(is it an ONNX model? {EXPORT_HINT})"
        ) from error


class OnnxRunner:
    """A YOLO11 detect or pose ONNX model behind the ``Runner`` protocol (see the module docstring)."""

    def __init__(self, config: DetectorConfig) -> None:
        self._session = open_session(config)
        model_name = Path(config.model).name
        info = ModelInfo.from_metadata(self._session.get_modelmeta().custom_metadata_map, config.model)
        if info.task != config.task:
            raise DetectorError(f"model {model_name} is a {info.task} model, but task is {config.task!r}")
        self.names = info.names
        classes = resolve_classes(self.names, config.classes)
        self._decoding = Decoding(
            num_classes=len(self.names),
            confidence=config.confidence,
            iou=config.iou,
            max_det=config.max_det,
            classes=tuple(classes) if classes is not None else None,
            keypoint_shape=info.keypoint_shape if config.task == "pose" else None,
        )
        self._stride = info.stride
        self._input = self._session.get_inputs()[0]
        batch, _, height, width = self._input.shape
        self._batched = not isinstance(batch, int)
        if not self._batched and batch != 1:
            raise DetectorError(f"model {model_name} has a fixed batch of {batch}; {EXPORT_HINT}")
        self._dynamic_size = not (isinstance(height, int) and isinstance(width, int))
        self._target = (config.imgsz, config.imgsz) if self._dynamic_size else (height, width)
        if not self._dynamic_size and max(height, width) != config.imgsz:
            raise DetectorError(
                f"model {model_name} takes {height}x{width} images only, but imgsz is {config.imgsz}: set "
                f"imgsz:={max(height, width)}, or {EXPORT_HINT}"
            )
        self._buffer = BatchBuffer()
        self._check_output(model_name)

    def _check_output(self, model_name: str) -> None:
        """One small blank frame through the model; DetectorError when its output is not
        (1, 4 + classes + keypoint values, anchors)."""
        size = (2 * self._stride,) * 2 if self._dynamic_size else self._target
        output = self._run([np.zeros((*size, 3), dtype=np.uint8)], [place(size, size, self._stride, False)])
        extra = int(np.prod(self._decoding.keypoint_shape)) if self._decoding.keypoint_shape else 0
        channels = 4 + self._decoding.num_classes + extra
        if output.ndim != 3 or output.shape[1] != channels:
            raise DetectorError(
                f"model {model_name} gives output {output.shape}, expected (batch, {channels}, anchors) for "
                f"a YOLO {'pose' if extra else 'detect'} model with {self._decoding.num_classes} classes"
            )

    def infer(self, frames: Sequence[np.ndarray]) -> list[Rows]:
        """Kept rows of each (H, W, 3) uint8 BGR frame, boxes in that frame's pixels."""
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be (H, W, 3) uint8 BGR, got {frame.shape} {frame.dtype}")
        placements = [place(f.shape[:2], self._target, self._stride, self._dynamic_size) for f in frames]
        rows: list[Rows | None] = [None] * len(frames)
        for group in self._groups(placements):
            output = self._run([frames[i] for i in group], [placements[i] for i in group])
            for raw, i in zip(output, group, strict=True):
                rows[i] = decode(raw, self._decoding, placements[i].canvas, frames[i].shape[:2])
        return rows

    def _groups(self, placements: Sequence[Placement]) -> list[list[int]]:
        """Frame indices run together: those of one input shape when the batch axis is dynamic, else
        each frame alone."""
        if not self._batched:
            return [[i] for i in range(len(placements))]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, placement in enumerate(placements):
            groups.setdefault(placement.canvas, []).append(i)
        return list(groups.values())

    def _run(self, frames: Sequence[np.ndarray], placements: Sequence[Placement]) -> np.ndarray:
        """Letterbox the frames (all of one input shape) into the batch buffer and run the model once."""
        batch = self._buffer.take(len(frames), *placements[0].canvas)
        for frame, placement, slot in zip(frames, placements, batch, strict=True):
            letterbox_into(frame, placement, slot)
        return self._session.run(None, {self._input.name: batch})[0]

    def close(self) -> None:
        """Release the session and the input buffer."""
        self._session = None
        self._buffer = BatchBuffer()
