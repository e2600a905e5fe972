"""Our numpy ByteTrack against Ultralytics' own, fed the same detections of a street video.

The reference is Ultralytics' BYTETracker built from the YAML as track.py builds it, with its tracking
callback (``on_predict_postprocess_end``) deciding what each frame's result holds; and once, end to end,
``model.track`` itself.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from ultralytics import YOLO
from ultralytics.engine.results import Results
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.trackers.track import on_predict_postprocess_end
from ultralytics.utils import ROOT, YAML, IterableSimpleNamespace

from humanoid_common.assets import asset_path
from perception_node.detector import DetectorError, Rows
from perception_node.tracking import ByteTracker, TrackerConfig, load_tracker_config

REPO = Path(__file__).resolve().parents[1]
OURS = REPO / "config" / "trackers" / "bytetrack.yaml"
ULTRALYTICS_DEFAULT = ROOT / "cfg" / "trackers" / "bytetrack.yaml"
FRAMES = 70
SHAPE = (576, 768, 3)  # vtest.avi
KEYPOINTS = 5


def video_frames(count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(asset_path("vtest.avi")))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, f"vtest.avi has fewer than {count} frames"
        frames.append(frame)
    capture.release()
    return frames


def fake_keypoints(xyxy: np.ndarray) -> np.ndarray:
    """(n, KEYPOINTS, 3) points spread over each box, so a mix-up of rows shows."""
    steps = np.linspace(0.1, 0.9, KEYPOINTS, dtype=np.float32)
    x = xyxy[:, None, 0] + steps * (xyxy[:, None, 2] - xyxy[:, None, 0])
    y = xyxy[:, None, 1] + steps * (xyxy[:, None, 3] - xyxy[:, None, 1])
    return np.stack([x, y, np.broadcast_to(steps, x.shape)], axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> YOLO:
    return YOLO(str(asset_path("yolo11n.onnx")), task="detect")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return video_frames(FRAMES)


@pytest.fixture(scope="module")
def detections(model, frames) -> list[Rows]:
    """Ultralytics' predictions at confidence 0.1 (so the low-score stage has work), as Rows."""
    rows = []
    for frame in frames:
        boxes = model.predict(frame, conf=0.1, verbose=False)[0].boxes
        xyxy = boxes.xyxy.numpy().astype(np.float32)
        rows.append(
            Rows(
                xyxy=xyxy,
                scores=boxes.conf.numpy().astype(np.float32),
                class_ids=boxes.cls.numpy().astype(np.int64),
                keypoints=fake_keypoints(xyxy),
            )
        )
    return rows


def empty_rows() -> Rows:
    return Rows(
        xyxy=np.zeros((0, 4), np.float32),
        scores=np.zeros(0, np.float32),
        class_ids=np.zeros(0, np.int64),
        keypoints=np.zeros((0, KEYPOINTS, 3), np.float32),
    )


def with_gaps(detections: list[Rows]) -> list[Rows]:
    """Detections with runs of empty frames: 3 (lost tracks found again), 16 and 31 (one past our and
    Ultralytics' track_buffer: tracks removed, and on the next frame still findable, as in Ultralytics)."""
    gap = [empty_rows()]
    return (
        detections[:20]
        + gap * 3
        + detections[20:35]
        + gap * 16
        + detections[35:50]
        + gap * 31
        + detections[50:]
    )


class Reference:
    """Ultralytics' tracker and tracking callback, on results built from the same rows."""

    def __init__(self, yaml_path: Path) -> None:
        tracker = BYTETracker(args=IterableSimpleNamespace(**YAML.load(str(yaml_path))))
        self._image = np.zeros(SHAPE, np.uint8)
        self._predictor = SimpleNamespace(
            args=SimpleNamespace(mode="track", task="detect"),
            dataset=SimpleNamespace(mode="image", bs=1),
            trackers=[tracker],
            vid_path=[None],
            results=[],
        )

    def update(self, rows: Rows) -> Rows:
        boxes = np.concatenate([rows.xyxy, rows.scores[:, None], rows.class_ids[:, None]], axis=1)
        result = Results(
            self._image,
            "frame",
            {0: "person"},
            boxes=torch.from_numpy(boxes.astype(np.float32)),
            keypoints=torch.from_numpy(rows.keypoints),
        )
        self._predictor.results = [result]
        on_predict_postprocess_end(self._predictor, persist=True)
        return rows_of(self._predictor.results[0])


def rows_of(result) -> Rows:
    boxes = result.boxes
    return Rows(
        xyxy=boxes.xyxy.numpy(),
        scores=boxes.conf.numpy(),
        class_ids=boxes.cls.numpy().astype(np.int64),
        keypoints=result.keypoints.data.numpy() if result.keypoints is not None else None,
        track_ids=boxes.id.numpy().astype(np.int64) if boxes.id is not None else None,
    )


def assert_same(ours: Rows, theirs: Rows, frame: int) -> None:
    where = f"frame {frame}"
    if theirs.track_ids is None:
        assert ours.track_ids is None, where
    else:
        np.testing.assert_array_equal(ours.track_ids, theirs.track_ids, err_msg=where)
    np.testing.assert_array_equal(ours.class_ids, theirs.class_ids, err_msg=where)
    np.testing.assert_array_equal(ours.scores, theirs.scores, err_msg=where)
    np.testing.assert_allclose(ours.xyxy, theirs.xyxy, rtol=0, atol=1e-3, err_msg=where)
    np.testing.assert_array_equal(ours.keypoints, theirs.keypoints, err_msg=where)


def run_both(yaml_path: Path, sequence: list[Rows]) -> list[Rows]:
    """Feed both trackers; assert they agree frame by frame; return our outputs."""
    reference, ours = Reference(yaml_path), ByteTracker(load_tracker_config(str(yaml_path)))
    outputs = []
    for frame, rows in enumerate(sequence):
        theirs = reference.update(rows)
        mine = ours.update(rows, SHAPE)
        assert_same(mine, theirs, frame)
        outputs.append(mine)
    return outputs


@pytest.mark.parametrize("yaml_path", [OURS, ULTRALYTICS_DEFAULT], ids=["ours", "ultralytics-default"])
def test_same_tracks_as_ultralytics(detections, yaml_path):
    outputs = run_both(yaml_path, detections)
    ids = {int(i) for rows in outputs if rows.track_ids is not None for i in rows.track_ids}
    assert len(ids) >= 5, "the video should give several tracks"
    assert sum(len(rows) for rows in detections) > sum(len(rows) for rows in outputs), "some rows untracked"


@pytest.mark.parametrize("yaml_path", [OURS, ULTRALYTICS_DEFAULT], ids=["ours", "ultralytics-default"])
def test_same_tracks_as_ultralytics_across_gaps(detections, yaml_path):
    run_both(yaml_path, with_gaps(detections))


def test_same_as_model_track_end_to_end(model, frames, detections):
    """model.track itself (its detections are predict's, at the same confidence) gives our tracks."""
    model.predictor = None
    ours = ByteTracker(load_tracker_config(str(OURS)))
    for frame, (bgr, rows) in enumerate(zip(frames[:30], detections, strict=False)):
        theirs = rows_of(model.track(bgr, persist=True, tracker=str(OURS), conf=0.1, verbose=False)[0])
        mine = ours.update(rows, bgr.shape)
        assert_same(mine, replace(theirs, keypoints=mine.keypoints), frame)


def test_first_frame_tracks_show_at_once_later_ones_after_a_second_sighting():
    tracker = ByteTracker(config())
    first = tracker.update(rows_at([[10, 10, 50, 90]]), SHAPE)
    assert first.track_ids.tolist() == [1]
    second = tracker.update(rows_at([[12, 10, 52, 90], [300, 300, 340, 380]]), SHAPE)
    assert second.track_ids.tolist() == [1]
    third = tracker.update(rows_at([[14, 10, 54, 90], [302, 300, 342, 380]]), SHAPE)
    assert third.track_ids.tolist() == [1, 2]


def test_reset_restarts_ids_at_one():
    tracker = ByteTracker(config())
    for _ in range(3):
        tracker.update(rows_at([[10, 10, 50, 90], [300, 300, 340, 380]]), SHAPE)
    tracker.update(rows_at([[500, 100, 540, 180]]), SHAPE)
    tracker.reset()
    assert tracker.update(rows_at([[500, 100, 540, 180]]), SHAPE).track_ids.tolist() == [1]


def test_empty_frames():
    tracker = ByteTracker(config())
    empty = tracker.update(rows_at([]), SHAPE)
    assert len(empty) == 0
    assert empty.track_ids is None
    tracker.update(rows_at([[10, 10, 50, 90]]), SHAPE)
    assert len(tracker.update(rows_at([]), SHAPE)) == 0


def test_with_nothing_to_show_the_rows_come_back_untracked_unless_a_track_awaits_confirmation():
    tracker = ByteTracker(config())
    tracker.update(rows_at([]), SHAPE)
    weak = rows_at([[10, 10, 50, 90]], scores=[0.2])  # below new_track_thresh: no track
    assert tracker.update(weak, SHAPE) is weak
    hidden = tracker.update(rows_at([[10, 10, 50, 90]]), SHAPE)  # a new, unconfirmed track
    assert len(hidden) == 0


def test_keypoints_follow_their_detection_and_boxes_are_clipped():
    tracker = ByteTracker(config())
    boxes = [[700, 10, 767, 90], [10, 10, 50, 90]]
    tracker.update(rows_at(boxes), SHAPE)
    swapped = rows_at(boxes[::-1], keypoints=True)
    out = tracker.update(swapped, SHAPE)
    assert out.track_ids.tolist() == [1, 2]
    np.testing.assert_array_equal(out.keypoints, swapped.keypoints[[1, 0]])
    np.testing.assert_array_equal(out.class_ids, swapped.class_ids[[1, 0]])
    clipped = tracker.update(rows_at([[720, 10, 790, 90], [10, 10, 50, 90]]), (576, 768))
    assert clipped.xyxy[:, 2].max() <= 768


def test_botsort_config_is_refused_with_what_to_do():
    with pytest.raises(DetectorError, match=r"botsort.*backend 'ultralytics' only.*tracker:=bytetrack"):
        load_tracker_config(str(REPO / "config" / "trackers" / "botsort.yaml"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tracker_type: bytetrack\ntrack_high_thresh: [0.3\n", "cannot read"),
        ("- bytetrack\n", "must be a mapping"),
        ("track_high_thresh: 0.3\n", "tracker_type None"),
        ("tracker_type: bytetrack\ntrack_high_thresh: 0.3\n", "lacks track_low_thresh"),
        (OURS.read_text().replace("match_thresh: 0.85", "match_thresh: high"), "match_thresh must be"),
        (OURS.read_text().replace("track_buffer: 15", "track_buffer: 1.5"), "track_buffer must be"),
        (OURS.read_text().replace("fuse_score: true", "fuse_score: 1"), "fuse_score must be"),
        (
            OURS.read_text().replace("track_low_thresh: 0.1", "track_low_thresh: 0.5"),
            "track_low_thresh .0.5.",
        ),
    ],
)
def test_broken_config_names_the_field(tmp_path, text, message):
    path = tmp_path / "tracker.yaml"
    path.write_text(text)
    with pytest.raises(DetectorError, match=message):
        load_tracker_config(str(path))


def test_missing_config_file():
    with pytest.raises(DetectorError, match="cannot read tracker config"):
        load_tracker_config("/nonexistent/bytetrack.yaml")


def config() -> TrackerConfig:
    return load_tracker_config(str(OURS))


def rows_at(boxes: list[list[float]], scores: list[float] | None = None, keypoints: bool = False) -> Rows:
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Rows(
        xyxy=xyxy,
        scores=np.asarray(scores if scores is not None else [0.9] * len(xyxy), np.float32),
        class_ids=np.arange(len(xyxy), dtype=np.int64),
        keypoints=fake_keypoints(xyxy) if keypoints else None,
    )
