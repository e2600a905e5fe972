"""The ``gpu`` backend: YOLO in PyTorch on a CUDA device, pre- and post-processing on the GPU too.

Per batch (one frame per camera): each frame copied once into pinned host memory, one non-blocking
upload; letterbox, BGR→RGB and scaling to [0, 1] on the GPU into a static input buffer
(``yolo_torch``); the forward pass replayed from a CUDA graph captured once per batch size and input
shape; confidence and class filters, class-aware NMS and rescaling on the GPU; only the kept rows come
back. Weights: a ``.pt`` through Ultralytics (fused), or an ``.onnx`` converted by onnx2torch and
frozen per input shape. TensorRT ``.engine`` files run in the ``ultralytics`` backend.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from perception_node.detector import DetectorConfig, DetectorError, Rows, resolve_classes
from perception_node.yolo_torch import (
    PAD_VALUE,
    Decoder,
    Placement,
    frame_table,
    input_shape,
    letterbox,
    place,
    split_rows,
)

WARMUP_RUNS = 3  # eager runs on a side stream before a capture (cuDNN picks its kernels there)


@dataclasses.dataclass(frozen=True)
class Weights:
    """A YOLO network on its device and what decoding needs to know about it."""

    module: torch.nn.Module
    task: str
    names: dict[int, str]
    keypoint_shape: tuple[int, int] | None
    stride: int
    rect: bool  # any stride multiple as input: a batch of one size is letterboxed to the smallest rectangle
    traced: bool  # onnx2torch computes shapes in Python: freeze a traced copy per input shape

    def specialise(self, example: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """A copy of the network for inputs shaped like ``example``, safe to capture in a CUDA graph:
        no state shared with other copies (Ultralytics caches anchors per shape), no host syncs."""
        if not self.traced:
            return copy.deepcopy(self.module)
        with warnings.catch_warnings():  # trace's notes on Python values frozen as constants: wanted here
            warnings.simplefilter("ignore")
            return torch.jit.freeze(torch.jit.trace(self.module, example, check_trace=False))


def prediction(output: torch.Tensor | Sequence) -> torch.Tensor:
    """The (N, 4 + classes + extra, anchors) tensor of a network's output (Ultralytics adds features)."""
    return output if isinstance(output, torch.Tensor) else output[0]


def load_weights(config: DetectorConfig, device: torch.device) -> Weights:
    """The configured model on ``device`` (FP16 when ``config.half``), checked against ``config.task``."""
    suffix = Path(config.model).suffix
    if suffix == ".engine":
        raise DetectorError(
            "backend gpu cannot run TensorRT engines: use backend ultralytics for .engine files"
        )
    if suffix not in (".pt", ".onnx"):
        raise DetectorError(f"backend gpu loads .pt or .onnx models, got {config.model}")
    try:
        weights = _load_pt(config.model) if suffix == ".pt" else _load_onnx(config.model, config.imgsz)
    except DetectorError:
        raise
    except Exception as error:  # unreadable files raise many types (pickle, protobuf, onnx2torch)
        raise DetectorError(f"cannot load model {config.model}: {type(error).__name__}: {error}") from error
    if weights.task != config.task:
        name = Path(config.model).name
        raise DetectorError(f"model {name} is a {weights.task} model, but task is {config.task!r}")
    module = weights.module.to(device)
    return dataclasses.replace(weights, module=module.half() if config.half else module.float())


def _load_pt(path: str) -> Weights:
    from ultralytics import YOLO

    yolo = YOLO(path)
    model = yolo.model
    if getattr(model, "end2end", False):
        raise DetectorError(f"{path} is an end-to-end (NMS-free) model: backend gpu decodes NMS models only")
    module = model.fuse(verbose=False).eval().requires_grad_(False)
    kpt_shape = getattr(model, "kpt_shape", None)
    stride = max(int(model.stride.max()), 32)
    keypoints = tuple(kpt_shape) if kpt_shape else None
    return Weights(module, yolo.task, dict(model.names), keypoints, stride, rect=True, traced=False)


def _load_onnx(path: str, imgsz: int) -> Weights:
    import onnx
    import onnx2torch

    from perception_node.onnx_backend import ModelInfo

    graph = onnx.load(path)
    info = ModelInfo.from_metadata({prop.key: prop.value for prop in graph.metadata_props}, path)
    height, width = (dim.dim_value or None for dim in graph.graph.input[0].type.tensor_type.shape.dim[2:])
    if (height or imgsz, width or imgsz) != (imgsz, imgsz):
        raise DetectorError(f"{path} was exported for {height}x{width} inputs: set imgsz to match")
    return Weights(
        onnx2torch.convert(graph).eval().requires_grad_(False),
        info.task,
        info.names,
        info.keypoint_shape,
        info.stride,
        rect=height is None and width is None,
        traced=True,
    )


class CapturedForward:
    """The network for one batch size and input shape, its forward pass captured in a CUDA graph.

    ``input`` is the static buffer to fill before ``replay``; ``output`` is overwritten by each replay.
    """

    def __init__(self, weights: Weights, shape: tuple[int, int, int, int], dtype: torch.dtype) -> None:
        device = next(weights.module.parameters()).device
        self.input = torch.full(shape, PAD_VALUE / 255, dtype=dtype, device=device)
        self._network = weights.specialise(self.input)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self._network(self.input)
        torch.cuda.current_stream(device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self.output = prediction(self._network(self.input))

    def replay(self) -> torch.Tensor:
        self._graph.replay()
        return self.output

    def eager(self) -> torch.Tensor:
        """The same forward pass run op by op (to check the graph against)."""
        return prediction(self._network(self.input))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each frame of a batch of these sizes goes in the model input."""

    shape: tuple[int, int]
    placements: tuple[Placement, ...]
    frames: torch.Tensor  # frame_table on the device


def cuda_device(config: DetectorConfig) -> torch.device:
    """``config.device`` when it names a usable CUDA device; DetectorError otherwise."""
    if not torch.cuda.is_available():
        raise DetectorError(
            f"backend gpu needs a CUDA device (device:=cuda:0 on a machine with an NVIDIA GPU), "
            f"here: torch {torch.__version__} without CUDA; use backend onnx or ultralytics"
        )
    if not config.device.startswith("cuda"):
        raise DetectorError(f"backend gpu needs a CUDA device: set device:=cuda:0 (got {config.device!r})")
    device = torch.device(config.device)
    index = device.index or 0
    if index >= torch.cuda.device_count():
        raise DetectorError(
            f"device {config.device} does not exist: {torch.cuda.device_count()} CUDA device(s)"
        )
    return torch.device("cuda", index)


class GpuRunner:
    """YOLO on one CUDA device: frames in, kept rows out (the ``Runner`` of the ``gpu`` backend).

    The first batch of each new size (cameras) and frame size captures a graph (tens of ms).
    Not thread-safe: one worker calls ``infer``.
    """

    def __init__(self, config: DetectorConfig) -> None:
        config.validate()
        self._device = cuda_device(config)
        self._config = config
        self._dtype = torch.float16 if config.half else torch.float32
        self._weights = load_weights(config, self._device)
        self.names = self._weights.names
        classes = resolve_classes(self.names, config.classes)
        keypoints = self._weights.keypoint_shape
        self._decoder = Decoder(
            confidence=config.confidence,
            iou=config.iou,
            num_classes=len(self.names),
            classes=torch.tensor(classes, device=self._device) if classes is not None else None,
            keypoint_dims=keypoints[1] if keypoints else 3,
        )
        self._channels = 4 + len(self.names) + (keypoints[0] * keypoints[1] if keypoints else 0)
        self._graphs: dict[tuple[int, int, int, int], CapturedForward] = {}
        self._layouts: dict[tuple[tuple[int, int], ...], Layout] = {}
        self._host = torch.empty(0, dtype=torch.uint8)
        self._staging = torch.empty(0, dtype=torch.uint8, device=self._device)

    def infer(self, frames: Sequence[np.ndarray]) -> list[Rows]:
        if not frames:
            return []
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"expected (H, W, 3) uint8 BGR frames, got {frame.shape} {frame.dtype}")
        with torch.cuda.device(self._device), torch.inference_mode():
            layout = self._layout(tuple(frame.shape[:2] for frame in frames))
            forward = self._forward((len(frames), 3, *layout.shape))
            letterbox(self._upload(frames), layout.placements, forward.input)
            table = self._decoder(forward.replay(), layout.frames)
            rows = table.cpu().numpy()  # the one wait for the GPU
        return split_rows(rows, len(frames), self._config.max_det, self._weights.keypoint_shape)

    def _layout(self, sources: tuple[tuple[int, int], ...]) -> Layout:
        if sources not in self._layouts:
            imgsz = self._config.imgsz
            shape = input_shape(sources, imgsz, self._weights.stride, self._weights.rect)
            placements = tuple(place(source, imgsz, shape) for source in sources)
            self._layouts[sources] = Layout(shape, placements, frame_table(placements, self._device))
        return self._layouts[sources]

    def _forward(self, shape: tuple[int, int, int, int]) -> CapturedForward:
        if shape not in self._graphs:
            forward = CapturedForward(self._weights, shape, self._dtype)
            if forward.output.shape[1] != self._channels:
                raise DetectorError(
                    f"{self._config.model} gives {forward.output.shape[1]} values per box, expected "
                    f"{self._channels} (4 box + {len(self.names)} classes + keypoints): not a YOLO NMS head"
                )
            self._graphs[shape] = forward
        return self._graphs[shape]

    def _upload(self, frames: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Copy the frames into pinned memory back to back, upload them in one non-blocking copy; views
        of each on the device. The buffers are reused: the previous batch has finished (infer waits)."""
        total = sum(frame.size for frame in frames)
        if self._host.numel() < total:
            self._host = torch.empty(total, dtype=torch.uint8, pin_memory=True)
            self._staging = torch.empty(total, dtype=torch.uint8, device=self._device)
        host = self._host.numpy()
        views, offset = [], 0
        for frame in frames:
            np.copyto(host[offset : offset + frame.size].reshape(frame.shape), frame)
            views.append(self._staging[offset : offset + frame.size].view(frame.shape))
            offset += frame.size
        self._staging[:total].copy_(self._host[:total], non_blocking=True)
        return views

    def replay_ms(self, repeats: int = 200) -> dict[str, float]:
        """Median milliseconds of each captured forward pass replayed alone, timed with CUDA events,
        by input shape "NxCxHxW" (what the benchmark reports as the model's share of a call)."""
        result = {}
        for shape, forward in self._graphs.items():
            times = []
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                forward.replay()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            result["x".join(map(str, shape))] = float(np.median(times))
        return result

    def close(self) -> None:
        """Drop the graphs, buffers and weights and return their GPU memory."""
        self._graphs.clear()
        self._layouts.clear()
        self._weights = None
        self._host = self._staging = torch.empty(0, dtype=torch.uint8)
        torch.cuda.empty_cache()
