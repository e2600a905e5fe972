"""SCRFD face detector (InsightFace `scrfd_500m_bnkps.onnx`) decoded with numpy.

The network outputs, per stride 8/16/32, two anchors per feature-map cell: a score, box distances
(left, top, right, bottom) and five keypoint offsets, all in units of the stride from the cell's
corner. Input: letterboxed RGB, (pixel − 127.5) / 128.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


@dataclass(frozen=True)
class RawDetection:
    """One detector output in input-image pixels; keypoints image-left first, as the model emits."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    keypoints: np.ndarray  # (5, 2)
    score: float


def letterbox(bgr: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio into a size×size canvas (top-left aligned); returns canvas, scale."""
    height, width = bgr.shape[:2]
    scale = size / max(height, width)
    resized = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))))
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas, scale


def _anchor_centers(size: int, stride: int) -> np.ndarray:
    cells = size // stride
    ys, xs = np.mgrid[:cells, :cells]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, ANCHORS_PER_CELL, axis=0)


class ScrfdDetector:
    """Runs SCRFD on one BGR image and returns boxes, keypoints and scores after NMS."""

    def __init__(
        self,
        session: ort.InferenceSession,
        input_size: int = 640,
        score_threshold: float = 0.4,
        nms_threshold: float = 0.4,
    ) -> None:
        if input_size % max(STRIDES):
            raise ValueError(f"SCRFD input size must be a multiple of {max(STRIDES)}, got {input_size}")
        self._session = session
        self._input_name = session.get_inputs()[0].name
        names = [output.name for output in session.get_outputs()]
        expected = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in STRIDES]
        if sorted(names) != sorted(expected):
            raise ValueError(f"not an SCRFD model with keypoints: outputs {names}, expected {expected}")
        self._output_names = expected
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._centers = {stride: _anchor_centers(input_size, stride) for stride in STRIDES}

    def __call__(self, bgr: np.ndarray) -> list[RawDetection]:
        canvas, scale = letterbox(bgr, self.input_size)
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128.0, (self.input_size,) * 2, (127.5,) * 3, swapRB=True)
        results = self._session.run(self._output_names, {self._input_name: blob})
        outputs = dict(zip(self._output_names, results, strict=True))
        boxes, keypoints, scores = [], [], []
        for stride in STRIDES:
            score = outputs[f"score_{stride}"].reshape(-1)
            keep = np.flatnonzero(score >= self.score_threshold)
            if keep.size == 0:
                continue
            centers = self._centers[stride][keep]
            distances = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep] * stride
            offsets = outputs[f"kps_{stride}"].reshape(-1, 5, 2)[keep] * stride
            boxes.append(np.hstack([centers - distances[:, :2], centers + distances[:, 2:]]))
            keypoints.append(centers[:, None, :] + offsets)
            scores.append(score[keep])
        if not scores:
            return []
        all_boxes = np.concatenate(boxes) / scale
        all_keypoints = np.concatenate(keypoints) / scale
        all_scores = np.concatenate(scores)
        xywh = np.hstack([all_boxes[:, :2], all_boxes[:, 2:] - all_boxes[:, :2]])
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), all_scores.tolist(), self.score_threshold, self.nms_threshold)
        order = sorted(np.asarray(kept).reshape(-1).tolist(), key=lambda i: -all_scores[i])
        return [RawDetection(all_boxes[i], all_keypoints[i], float(all_scores[i])) for i in order]
