"""YOLO pre- and post-processing as torch tensor maths on any device: the ``gpu`` backend runs it on
CUDA, the tests on CPU. The geometry and the filters are Ultralytics' predict (``LetterBox``,
``non_max_suppression``, ``scale_boxes``/``scale_coords``), done for a whole batch of frames at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchvision
from torch.nn import functional

from perception_node.detector import Rows

PAD_VALUE = 114  # Ultralytics' letterbox grey
FIRST_EXTRA = 7  # decoded table columns: image, x1, y1, x2, y2, score, class, then the keypoints


@dataclass(frozen=True)
class Placement:
    """Where one source frame lands in the model input: resized to ``size`` at ``offset``."""

    source: tuple[int, int]  # height, width of the frame
    size: tuple[int, int]  # height, width after resizing
    offset: tuple[int, int]  # top, left padding


def resized(source: tuple[int, int], imgsz: int) -> tuple[int, int]:
    """The frame's size scaled to fit ``imgsz`` (aspect kept, each side at least 1 px)."""
    height, width = source
    ratio = min(imgsz / height, imgsz / width)
    return max(round(height * ratio), 1), max(round(width * ratio), 1)


def input_shape(sources: Sequence[tuple[int, int]], imgsz: int, stride: int, rect: bool) -> tuple[int, int]:
    """Model input (height, width) for a batch: imgsz square or, when ``rect`` and all frames share one
    size, the smallest stride multiple around the resized frame (Ultralytics' ``auto`` letterbox)."""
    if not rect or len(set(sources)) != 1:
        return imgsz, imgsz
    height, width = resized(sources[0], imgsz)
    return height + (imgsz - height) % stride, width + (imgsz - width) % stride


def place(source: tuple[int, int], imgsz: int, shape: tuple[int, int]) -> Placement:
    """The frame resized as for ``imgsz`` and centred in an input of ``shape``."""
    height, width = resized(source, imgsz)
    top = round((shape[0] - height) / 2 - 0.1)
    left = round((shape[1] - width) / 2 - 0.1)
    return Placement(source, (height, width), (top, left))


def frame_table(placements: Sequence[Placement], device: torch.device) -> torch.Tensor:
    """(N, 6) float32 per frame: top, left, gain y, gain x, height, width (what rescaling needs)."""
    rows = [(*p.offset, p.size[0] / p.source[0], p.size[1] / p.source[1], *p.source) for p in placements]
    return torch.tensor(rows, dtype=torch.float32).to(device)


def letterbox(frames: Sequence[torch.Tensor], placements: Sequence[Placement], out: torch.Tensor) -> None:
    """Write (H, W, 3) uint8 BGR frames into ``out`` (N, 3, H', W'): RGB in [0, 1], padded with 114.

    Resizing is bilinear with half-pixel centres and no antialiasing, as cv2.INTER_LINEAR; cv2 rounds to
    uint8 in fixed point, here values stay unrounded (within one level of cv2's; rounding them moved
    keypoints further from Ultralytics'). The division by 255 happens in ``out``'s dtype, as there.
    """
    out.fill_(PAD_VALUE)
    for i, (frame, placement) in enumerate(zip(frames, placements, strict=True)):
        rgb = frame.permute(2, 0, 1).flip(0)
        if placement.size != placement.source:
            rgb = functional.interpolate(
                rgb[None].float(), size=placement.size, mode="bilinear", align_corners=False
            )
            rgb = rgb[0]
        top, left = placement.offset
        out[i, :, top : top + placement.size[0], left : left + placement.size[1]].copy_(rgb)
    out.div_(255)


@dataclass(frozen=True)
class Decoder:
    """Ultralytics' non_max_suppression (best class per box, class-aware) and rescaling, batched.

    ``classes`` holds the class ids to keep (on the prediction's device), None for all.
    """

    confidence: float
    iou: float
    num_classes: int
    classes: torch.Tensor | None = None
    keypoint_dims: int = 3  # x, y, score

    def __call__(self, prediction: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """(N, 4 + classes + extra, anchors) raw output and ``frame_table`` → kept rows (K, 7 + extra),
        float32, sorted by image then score: image, x1, y1, x2, y2, score, class, extra (keypoints as
        x, y, score), in source pixels. Not limited to max_det yet: ``split_rows`` does that."""
        scores, classes = prediction[:, 4 : 4 + self.num_classes].max(1)
        candidates = scores > self.confidence
        if self.classes is not None:
            candidates &= torch.isin(classes, self.classes)
        image, anchor = candidates.nonzero(as_tuple=True)
        rows = prediction[image, :, anchor].float()
        scores, classes = scores[image, anchor].float(), classes[image, anchor]
        boxes = torch.cat((rows[:, :2] - rows[:, 2:4] / 2, rows[:, :2] + rows[:, 2:4] / 2), 1)
        kept = torchvision.ops.batched_nms(boxes, scores, image * self.num_classes + classes, self.iou)
        kept = kept[torch.sort(image[kept], stable=True).indices]  # by image, each still by score
        image = image[kept]
        geometry = frames[image]
        boxes = rescale(boxes[kept].view(-1, 2, 2), geometry).view(-1, 4)
        extra = rows[kept, 4 + self.num_classes :]
        if extra.shape[1]:
            points = extra.view(len(kept), extra.shape[1] // self.keypoint_dims, self.keypoint_dims)
            extra = torch.cat((rescale(points[..., :2], geometry), points[..., 2:]), 2).flatten(1)
        columns = (image[:, None].float(), boxes, scores[kept, None], classes[kept, None].float(), extra)
        return torch.cat(columns, 1)


def rescale(points: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(K, P, 2) x, y in model input pixels → source pixels, clipped to the frame; ``frames`` is the
    ``frame_table`` row of each of the K objects."""
    offset = frames[:, None, [1, 0]]
    gain = frames[:, None, [3, 2]]
    limit = frames[:, None, [5, 4]]
    return torch.minimum(((points - offset) / gain).clamp_(min=0), limit)


def split_rows(table: np.ndarray, count: int, max_det: int, keypoints: tuple[int, int] | None) -> list[Rows]:
    """A decoded table (sorted by image, then score) → one Rows per frame, at most ``max_det`` each."""
    starts = np.searchsorted(table[:, 0], np.arange(count + 1))
    result = []
    for i in range(count):
        part = table[starts[i] : min(starts[i + 1], starts[i] + max_det)]
        result.append(
            Rows(
                xyxy=np.ascontiguousarray(part[:, 1:5]),
                scores=np.ascontiguousarray(part[:, 5]),
                class_ids=part[:, 6].astype(np.int64),
                keypoints=part[:, FIRST_EXTRA:].reshape(len(part), *keypoints) if keypoints else None,
            )
        )
    return result
