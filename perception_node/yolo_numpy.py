"""YOLO11 pre- and post-processing in numpy and OpenCV, with Ultralytics' predict semantics.

Pre: letterbox (linear resize, each side rounded, centred padding of grey 114), BGR → RGB, / 255,
NCHW float32, written into a reused batch buffer. Post: the raw output of one image, (4 + nc + extra,
anchors) with boxes as centre and size in input pixels (``extra`` = k × 3 keypoint values for pose),
goes through the confidence and class filters, class-aware NMS and ``max_det``, and is mapped back to
the source image and clipped, as ``ultralytics.utils.nms.non_max_suppression`` and ``ops.scale_boxes``
do it. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perception_node.detector import Rows

PAD_VALUE = 114
MAX_NMS = 30_000  # candidates kept (best first) before NMS
MAX_WH = 7_680  # per-class box offset that keeps classes apart in one NMS call


@dataclass(frozen=True)
class Placement:
    """Where a source image lies in the model input: its resized size and the padding around it."""

    width: int
    height: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def canvas(self) -> tuple[int, int]:
        """The model input's (height, width) for this image."""
        return self.top + self.height + self.bottom, self.left + self.width + self.right


def place(source: tuple[int, int], target: tuple[int, int], stride: int, minimal: bool) -> Placement:
    """Fit a (height, width) image into ``target`` keeping its aspect ratio; with ``minimal`` the canvas
    shrinks to the smallest multiple of ``stride`` around it (Ultralytics' ``auto``, used with models
    of dynamic input size)."""
    height, width = source
    ratio = min(target[0] / height, target[1] / width)
    new_width, new_height = max(round(width * ratio), 1), max(round(height * ratio), 1)
    pad_x, pad_y = target[1] - new_width, target[0] - new_height
    if minimal:
        pad_x, pad_y = pad_x % stride, pad_y % stride
    return Placement(
        width=new_width,
        height=new_height,
        top=round(pad_y / 2 - 0.1),
        bottom=round(pad_y / 2 + 0.1),
        left=round(pad_x / 2 - 0.1),
        right=round(pad_x / 2 + 0.1),
    )


def letterbox_into(bgr: np.ndarray, placement: Placement, out: np.ndarray) -> None:
    """Write one (H, W, 3) uint8 BGR image into ``out``, a (3, h, w) float32 slot of the batch: RGB in
    [0, 1], padding 114 / 255."""
    if bgr.shape[:2] != (placement.height, placement.width):
        bgr = cv2.resize(bgr, (placement.width, placement.height), interpolation=cv2.INTER_LINEAR)
    borders = (placement.top, placement.bottom, placement.left, placement.right)
    if any(borders):
        bgr = cv2.copyMakeBorder(bgr, *borders, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    np.divide(bgr.transpose(2, 0, 1)[::-1], np.float32(255), out=out)


class BatchBuffer:
    """One float32 input buffer, grown when a batch needs more room and reused for every call."""

    def __init__(self) -> None:
        self._data = np.empty(0, dtype=np.float32)

    def take(self, count: int, height: int, width: int) -> np.ndarray:
        """A contiguous (count, 3, height, width) view of the buffer (its contents are stale)."""
        size = count * 3 * height * width
        if self._data.size < size:
            self._data = np.empty(size, dtype=np.float32)
        return self._data[:size].reshape(count, 3, height, width)


@dataclass(frozen=True)
class Decoding:
    """How to read one image's raw output into kept rows."""

    num_classes: int
    confidence: float
    iou: float
    max_det: int
    classes: tuple[int, ...] | None = None  # class ids kept; None keeps every class
    keypoint_shape: tuple[int, int] | None = None  # (k, 3) for pose models, None for detect


def decode(raw: np.ndarray, decoding: Decoding, canvas: tuple[int, int], source: tuple[int, int]) -> Rows:
    """Kept rows of one image from its raw (4 + nc + extra, anchors) output; ``canvas`` is the model
    input's (height, width), ``source`` the image's."""
    boxes, scores, class_ids, extra = _candidates(raw, decoding)
    kept = class_aware_nms(boxes, scores, class_ids, decoding.iou, decoding.max_det)
    boxes, scores, class_ids, extra = boxes[kept], scores[kept], class_ids[kept], extra[kept]
    gain_x, gain_y, pad_x, pad_y = _inverse_placement(canvas, source)
    height, width = source
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - pad_x) / gain_x).clip(0, width)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - pad_y) / gain_y).clip(0, height)
    keypoints = None
    if decoding.keypoint_shape is not None:
        keypoints = extra.reshape(len(kept), *decoding.keypoint_shape)
        keypoints[..., 0] = ((keypoints[..., 0] - pad_x) / gain_x).clip(0, width)
        keypoints[..., 1] = ((keypoints[..., 1] - pad_y) / gain_y).clip(0, height)
    return Rows(xyxy=boxes, scores=scores, class_ids=class_ids, keypoints=keypoints)


def _candidates(raw: np.ndarray, decoding: Decoding) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (x1, y1, x2, y2), best-class scores, class ids and extra columns of the anchors whose best
    class beats the confidence threshold and passes the class filter, at most MAX_NMS (best first)."""
    class_rows = raw[4 : 4 + decoding.num_classes]
    picked = raw[:, np.flatnonzero(class_rows.max(axis=0) > decoding.confidence)].T
    class_ids = picked[:, 4 : 4 + decoding.num_classes].argmax(axis=1)
    scores = picked[np.arange(len(picked)), 4 + class_ids]
    if decoding.classes is not None:
        wanted = np.isin(class_ids, decoding.classes)
        picked, scores, class_ids = picked[wanted], scores[wanted], class_ids[wanted]
    if len(picked) > MAX_NMS:
        best = np.argsort(-scores, kind="stable")[:MAX_NMS]
        picked, scores, class_ids = picked[best], scores[best], class_ids[best]
    centre, half = picked[:, :2], picked[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    return boxes, scores, class_ids.astype(np.int64), picked[:, 4 + decoding.num_classes :]


def class_aware_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float, max_det: int
) -> np.ndarray:
    """Indices of the boxes kept, best first: each class apart (boxes shifted by class × MAX_WH in
    float32, as Ultralytics does before torchvision's NMS), at most ``max_det``."""
    shifted = boxes + (class_ids * MAX_WH).astype(np.float32)[:, None]
    return nms(shifted, scores, iou, max_det)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Greedy NMS with torchvision's semantics: best score first, a box is dropped when its IoU with a
    kept one is above ``iou``; stops after ``max_det`` kept boxes."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    kept = []
    while order.size and len(kept) < max_det:
        best, rest = order[0], order[1:]
        kept.append(best)
        width = (np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])).clip(0)
        height = (np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])).clip(0)
        overlap = width * height
        order = rest[overlap / (areas[best] + areas[rest] - overlap) <= np.float64(iou)]
    return np.asarray(kept, dtype=np.int64)


def _inverse_placement(canvas: tuple[int, int], source: tuple[int, int]) -> tuple[float, float, int, int]:
    """Gains (x, y) and padding (x, y) that map model-input pixels back to the source image, derived
    from the two shapes alone as Ultralytics' ``scale_boxes`` derives them."""
    gain = min(canvas[0] / source[0], canvas[1] / source[1])
    new_height, new_width = (max(round(side * gain), 1) for side in source)
    pad_x = round((canvas[1] - new_width) / 2 - 0.1)
    pad_y = round((canvas[0] - new_height) / 2 - 0.1)
    return new_width / source[1], new_height / source[0], pad_x, pad_y
