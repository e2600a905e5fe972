"""A Runner (``onnx`` or ``gpu`` backend) made into a Detector: our ByteTrack per camera, then results.

Torch-free itself: what the ``onnx`` path imports stays without torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perception_node.detector import (
    NO_TRACK,
    BatchDetector,
    Detection,
    DetectorConfig,
    FrameResult,
    Keypoint,
    Rows,
    Runner,
)
from perception_node.tracking import ByteTracker, TrackerConfig, load_tracker_config


class RowsDetector(BatchDetector):
    """Runs frames through a Runner in one batch and tracks each camera's rows on its own."""

    def __init__(self, runner: Runner, config: DetectorConfig) -> None:
        self.config = config
        self.model_name = Path(config.model).name
        self.names = runner.names
        self.runner = runner
        self._tracker_config: TrackerConfig | None = (
            load_tracker_config(config.tracker) if config.tracker is not None else None
        )
        self._trackers: dict[int, ByteTracker] = {}

    @property
    def tracking(self) -> bool:
        return self._tracker_config is not None

    def detect_batch(
        self, frames: Sequence[np.ndarray], cameras: Sequence[int] | None = None
    ) -> list[FrameResult]:
        cameras = range(len(frames)) if cameras is None else cameras
        start = time.perf_counter()
        batch = self.runner.infer(frames)
        if self._tracker_config is not None:
            batch = [
                self._tracker(camera).update(rows, bgr.shape)
                for camera, rows, bgr in zip(cameras, batch, frames, strict=True)
            ]
        elapsed_ms = (time.perf_counter() - start) * 1e3
        return [
            FrameResult(self._detections(rows), elapsed_ms, bgr.shape[1], bgr.shape[0])
            for rows, bgr in zip(batch, frames, strict=True)
        ]

    def _tracker(self, camera: int) -> ByteTracker:
        if camera not in self._trackers:
            self._trackers[camera] = ByteTracker(self._tracker_config)
        return self._trackers[camera]

    def reset_tracks(self) -> None:
        self._trackers.clear()

    def _detections(self, rows: Rows) -> list[Detection]:
        """Rows → Detection objects: the arithmetic on whole arrays, one tolist() per column."""
        if not len(rows):
            return []
        xyxy = rows.xyxy.astype(np.float64)
        centres = ((xyxy[:, :2] + xyxy[:, 2:]) / 2).tolist()
        sizes = (xyxy[:, 2:] - xyxy[:, :2]).tolist()
        class_ids = rows.class_ids.tolist()
        scores = rows.scores.astype(np.float64).tolist()
        track_ids = rows.track_ids.tolist() if rows.track_ids is not None else [NO_TRACK] * len(rows)
        keypoints: list[tuple[Keypoint, ...]] = [()] * len(rows)
        if rows.keypoints is not None:
            points = rows.keypoints.astype(np.float64).tolist()
            keypoints = [tuple(Keypoint(*point) for point in person) for person in points]
        return [
            Detection(
                class_id=class_id,
                class_name=self.names.get(class_id, str(class_id)),
                score=score,
                center_x=centre[0],
                center_y=centre[1],
                size_x=size[0],
                size_y=size[1],
                track_id=track_id,
                keypoints=points,
            )
            for class_id, score, centre, size, track_id, points in zip(
                class_ids, scores, centres, sizes, track_ids, keypoints, strict=True
            )
        ]

    def close(self) -> None:
        self.runner.close()
        self._trackers.clear()
