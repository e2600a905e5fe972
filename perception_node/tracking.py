"""ByteTrack in numpy for the ``onnx`` and ``gpu`` backends (no torch, no Ultralytics).

``ByteTracker.update`` gives for a frame's ``Rows`` what Ultralytics' ``model.track(frame, persist=True,
tracker=yaml)`` gives for the same detections (Ultralytics 8.4): its Kalman filter (state x, y, aspect,
height and their velocities), its three association stages, its bookkeeping of lost and removed tracks, and
its rules for what a tracked frame returns. The configuration is Ultralytics' tracker YAML;
``tracker_type: botsort`` stays with the ``ultralytics`` backend (no camera-motion compensation here).
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass, fields, replace
from pathlib import Path

import lap
import numpy as np
import yaml

from perception_node.detector import DetectorError, Rows

SECOND_STAGE_COST = 0.5  # cost limit (1 - IoU, scores not fused) for low-score detections
UNCONFIRMED_COST = 0.7  # cost limit for tracks born on the previous frame
DUPLICATE_COST = 0.15  # a tracked and a lost track closer than this are one object: the younger goes
REMOVED_MEMORY = 1000  # ids of removed tracks remembered (a lost track with such an id is dropped)

_POSITION_WEIGHT = 1.0 / 20  # Kalman noise, relative to the box height
_VELOCITY_WEIGHT = 1.0 / 160
_MOTION = np.eye(8) + np.eye(8, k=4)  # constant velocity, one frame per step


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack's settings, as named in Ultralytics' tracker YAML."""

    track_high_thresh: float  # detections at or above it take part in the first stage
    track_low_thresh: float  # detections above it (and below the high one) in the second
    new_track_thresh: float  # an unmatched detection starts a track at or above it
    track_buffer: int  # processed frames a lost track is kept
    match_thresh: float  # first-stage cost limit (1 - IoU, times the score when fuse_score)
    fuse_score: bool

    def validate(self) -> None:
        """Raise DetectorError naming the first bad field."""
        for name in ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise DetectorError(f"{name} must be a number in [0, 1], got {value!r}")
        if (
            isinstance(self.track_buffer, bool)
            or not isinstance(self.track_buffer, int)
            or self.track_buffer < 0
        ):
            raise DetectorError(
                f"track_buffer must be a whole number of frames (0 or more), got {self.track_buffer!r}"
            )
        if not isinstance(self.fuse_score, bool):
            raise DetectorError(f"fuse_score must be true or false, got {self.fuse_score!r}")
        if self.track_low_thresh > self.track_high_thresh:
            raise DetectorError(
                f"track_low_thresh ({self.track_low_thresh}) must not be above "
                f"track_high_thresh ({self.track_high_thresh})"
            )


def load_tracker_config(path: str) -> TrackerConfig:
    """Read an Ultralytics tracker YAML; DetectorError says what to change when it cannot be used."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise DetectorError(f"cannot read tracker config {path}: {error}") from error
    if not isinstance(data, dict):
        raise DetectorError(f"tracker config {path} must be a mapping of settings, got {type(data).__name__}")
    kind = data.get("tracker_type")
    if kind != "bytetrack":
        raise DetectorError(
            f"tracker_type {kind!r} in {path} is available with backend 'ultralytics' only (this backend "
            "implements ByteTrack; BoT-SORT's camera-motion compensation is not implemented here): "
            "use tracker:=bytetrack or backend:=ultralytics"
        )
    missing = [field.name for field in fields(TrackerConfig) if field.name not in data]
    if missing:
        raise DetectorError(f"tracker config {path} lacks {', '.join(missing)}")
    config = TrackerConfig(**{field.name: data[field.name] for field in fields(TrackerConfig)})
    try:
        config.validate()
    except DetectorError as error:
        raise DetectorError(f"tracker config {path}: {error}") from None
    return config


class _State(enum.Enum):
    TRACKED = 1
    LOST = 2
    REMOVED = 3


@dataclass(eq=False)
class _Track:
    """One object's Kalman state and bookkeeping. ``confirmed`` is Ultralytics' ``is_activated``: a track
    born after the first frame is shown once a second detection continues it."""

    track_id: int
    mean: np.ndarray  # (8,) x, y, aspect, height and their velocities
    covariance: np.ndarray  # (8, 8)
    start_frame: int
    last_frame: int  # the last frame a detection updated it
    det_index: int  # that detection's row
    confirmed: bool
    state: _State = _State.TRACKED


@dataclass(frozen=True)
class _Detections:
    """Detections of one stage, boxes as Ultralytics' tracker derives them (float32, via centre and size)."""

    xyxy: np.ndarray  # (n, 4) float32
    xyah: np.ndarray  # (n, 4) float64: the Kalman measurement
    scores: np.ndarray  # (n,) float32
    rows: np.ndarray  # (n,) int64: index into the frame's Rows

    @classmethod
    def of(cls, rows: Rows) -> tuple[_Detections, np.ndarray]:
        """All rows as detections, and which have a positive width and height."""
        xyxy = np.asarray(rows.xyxy, dtype=np.float32).reshape(-1, 4)
        size = xyxy[:, 2:] - xyxy[:, :2]
        top_left = (xyxy[:, :2] + xyxy[:, 2:]) / 2 - size / 2
        centre = top_left + size / 2
        with np.errstate(divide="ignore", invalid="ignore"):  # in rows of no height, which are left out
            aspect = size[:, 0] / size[:, 1]
        xyah = np.stack([centre[:, 0], centre[:, 1], aspect, size[:, 1]], axis=1).astype(np.float64)
        scores = np.asarray(rows.scores, dtype=np.float32).reshape(-1)
        xyxy = np.concatenate([top_left, top_left + size], axis=1)
        valid = (size[:, 0] > 0) & (size[:, 1] > 0)
        return cls(xyxy, xyah, scores, np.arange(len(scores))), valid

    def take(self, keep: np.ndarray) -> _Detections:
        return _Detections(self.xyxy[keep], self.xyah[keep], self.scores[keep], self.rows[keep])


# Kalman noise standard deviations: the box height times a weight, plus a floor for the aspect terms
_START_WEIGHTS = (
    np.array([2, 2, 0, 2, 0, 0, 0, 0]) * _POSITION_WEIGHT
    + np.array([0, 0, 0, 0, 10, 10, 0, 10]) * _VELOCITY_WEIGHT
)
_START_FLOOR = np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])
_STEP_WEIGHTS = (
    np.array([1, 1, 0, 1, 0, 0, 0, 0]) * _POSITION_WEIGHT
    + np.array([0, 0, 0, 0, 1, 1, 0, 1]) * _VELOCITY_WEIGHT
)
_MEASUREMENT_WEIGHTS = np.array([1, 1, 0, 1]) * _POSITION_WEIGHT
_MEASUREMENT_FLOOR = np.array([0, 0, 1e-1, 0])


def _variances(height: np.ndarray, weights: np.ndarray, floor: np.ndarray) -> np.ndarray:
    return np.square(height[..., None] * weights + floor)


def _initiate(xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A new track's state: the measurement at rest, uncertainty relative to its height."""
    return np.concatenate([xyah, np.zeros(4)]), np.diag(_variances(xyah[3], _START_WEIGHTS, _START_FLOOR))


def _states(tracks: list[_Track]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8) means and (n, 8, 8) covariances of the tracks (copies)."""
    return np.array([track.mean for track in tracks]), np.array([track.covariance for track in tracks])


def _store(tracks: list[_Track], means: np.ndarray, covariances: np.ndarray) -> None:
    for track, mean, covariance in zip(tracks, means, covariances, strict=True):
        track.mean, track.covariance = mean, covariance


def _predict(tracks: list[_Track]) -> None:
    """One constant-velocity step for all tracks at once; a track not tracked stops growing in height."""
    if not tracks:
        return
    means, covariances = _states(tracks)
    means[[track.state is not _State.TRACKED for track in tracks], 7] = 0.0
    variances = _variances(means[:, 3], _STEP_WEIGHTS, _START_FLOOR)
    covariances = _MOTION @ covariances @ _MOTION.T
    covariances[:, range(8), range(8)] += variances
    _store(tracks, means @ _MOTION.T, covariances)


def _correct(tracks: list[_Track], measurements: np.ndarray) -> None:
    """Kalman update of each track with its xyah measurement, all at once."""
    if not tracks:
        return
    means, covariances = _states(tracks)
    projected = covariances[:, :4, :4].copy()
    projected[:, range(4), range(4)] += _variances(means[:, 3], _MEASUREMENT_WEIGHTS, _MEASUREMENT_FLOOR)
    gain = np.linalg.solve(projected, covariances[:, :, :4].transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = measurements - means[:, :4]
    means += np.einsum("nj,nij->ni", innovation, gain)
    covariances -= gain @ projected @ gain.transpose(0, 2, 1)
    _store(tracks, means, covariances)


def _boxes(tracks: list[_Track]) -> np.ndarray:
    """(n, 4) float64 x1, y1, x2, y2 of the tracks' states."""
    xyah = np.array([track.mean[:4] for track in tracks]).reshape(-1, 4)
    size = xyah[:, 2:].copy()
    size[:, 0] *= size[:, 1]
    top_left = xyah[:, :2] - size / 2
    return np.concatenate([top_left, top_left + size], axis=1)


def _iou_cost(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """1 - IoU of every pair of x1, y1, x2, y2 boxes, computed in float32 as Ultralytics does."""
    a = first.astype(np.float32)
    b = second.astype(np.float32)
    overlap = np.maximum(
        np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0
    )
    inter = overlap[..., 0] * overlap[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return 1 - inter / (area_b + area_a[:, None] - inter + 1e-7)


def _assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost pairs (row, column) with cost up to ``limit`` (lap's LAPJV, as Ultralytics), then
    the unpaired rows and columns, each in ascending order."""
    rows, columns = cost.shape
    if cost.size == 0:
        return [], list(range(rows)), list(range(columns))
    _, row_to_column, column_to_row = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    pairs = [(row, int(column)) for row, column in enumerate(row_to_column) if column >= 0]
    return pairs, np.flatnonzero(row_to_column < 0).tolist(), np.flatnonzero(column_to_row < 0).tolist()


class ByteTracker:
    """Tracks of one camera: ``update`` once per processed frame, ``reset`` when a new sequence starts."""

    def __init__(self, config: TrackerConfig) -> None:
        config.validate()
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again from 1."""
        self._frame = 0
        self._tracked: list[_Track] = []  # confirmed and unconfirmed, in Ultralytics' order
        self._lost: list[_Track] = []
        self._removed_ids: deque[int] = deque(maxlen=REMOVED_MEMORY)
        self._ids = itertools.count(1)

    def update(self, rows: Rows, frame_shape: tuple[int, ...]) -> Rows:
        """Track one frame's detections; ``frame_shape`` is the frame's (height, width[, channels]), to which
        track boxes are clipped. Returns the confirmed tracks (box after the Kalman update, score, class and
        keypoints of the detection each continues, ``track_ids`` set), in Ultralytics' order; when there is
        none, nothing while a new track awaits confirmation and otherwise ``rows`` unchanged (untracked)."""
        self._frame += 1
        detections, valid = _Detections.of(rows)
        high = valid & (detections.scores >= self.config.track_high_thresh)
        low = (
            valid
            & (detections.scores > self.config.track_low_thresh)
            & (detections.scores < self.config.track_high_thresh)
        )
        strong, weak = detections.take(high), detections.take(low)

        unconfirmed = [track for track in self._tracked if not track.confirmed]
        pool = [track for track in self._tracked if track.confirmed] + self._lost
        _predict(pool)
        refound, free_tracks, free_strong = self._first_stage(pool, strong)
        newly_lost = self._second_stage(
            [pool[i] for i in free_tracks if pool[i].state is _State.TRACKED], weak
        )
        leftovers = strong.take(np.asarray(free_strong, dtype=np.int64))
        removed, unused = self._confirm(unconfirmed, leftovers)
        born = self._start(leftovers.take(np.asarray(unused, dtype=np.int64)))
        removed += self._expire()
        self._merge(born, refound, newly_lost, removed)
        return self._result(rows, frame_shape)

    def _cost(self, tracks: list[_Track], detections: _Detections, fuse: bool) -> np.ndarray:
        """(tracks, detections) association cost: 1 - IoU, or 1 - IoU × score when ``fuse``."""
        if not tracks or not len(detections.rows):
            return np.zeros((len(tracks), len(detections.rows)), dtype=np.float32)
        cost = _iou_cost(_boxes(tracks), detections.xyxy)
        return 1 - (1 - cost) * detections.scores[None] if fuse else cost

    def _follow(self, tracks: list[_Track], detections: _Detections, pairs: list[tuple[int, int]]) -> None:
        """Continue each paired track with its detection."""
        chosen = [tracks[row] for row, _ in pairs]
        columns = np.asarray([column for _, column in pairs], dtype=np.int64)
        _correct(chosen, detections.xyah[columns])
        for track, row in zip(chosen, detections.rows[columns].tolist(), strict=True):
            track.state, track.confirmed, track.last_frame, track.det_index = (
                _State.TRACKED,
                True,
                self._frame,
                row,
            )

    def _first_stage(
        self, pool: list[_Track], strong: _Detections
    ) -> tuple[list[_Track], list[int], list[int]]:
        """Confirmed and lost tracks against confident detections. Returns the lost tracks found again and
        the unpaired tracks and detections."""
        pairs, free_tracks, free_detections = _assign(
            self._cost(pool, strong, self.config.fuse_score), self.config.match_thresh
        )
        refound = [pool[row] for row, _ in pairs if pool[row].state is not _State.TRACKED]
        self._follow(pool, strong, pairs)
        return refound, free_tracks, free_detections

    def _second_stage(self, tracks: list[_Track], weak: _Detections) -> list[_Track]:
        """Tracked tracks left over against weak detections (IoU only); those still unpaired are lost."""
        pairs, free_tracks, _ = _assign(self._cost(tracks, weak, fuse=False), SECOND_STAGE_COST)
        self._follow(tracks, weak, pairs)
        lost = [tracks[i] for i in free_tracks]
        for track in lost:
            track.state = _State.LOST
        return lost

    def _confirm(self, unconfirmed: list[_Track], leftovers: _Detections) -> tuple[list[_Track], list[int]]:
        """Last frame's new tracks against the confident detections left; an unpaired one is removed.
        Returns those removed and the detections still unused."""
        pairs, free_tracks, free_detections = _assign(
            self._cost(unconfirmed, leftovers, self.config.fuse_score), UNCONFIRMED_COST
        )
        self._follow(unconfirmed, leftovers, pairs)
        removed = [unconfirmed[i] for i in free_tracks]
        for track in removed:
            track.state = _State.REMOVED
        return removed, free_detections

    def _start(self, candidates: _Detections) -> list[_Track]:
        """New tracks from confident enough unused detections, confirmed at once on the first frame only."""
        born = []
        xyah = candidates.xyah
        for i, (score, row) in enumerate(zip(candidates.scores, candidates.rows.tolist(), strict=True)):
            if score < self.config.new_track_thresh:
                continue
            mean, covariance = _initiate(xyah[i])
            track_id = next(self._ids)
            born.append(_Track(track_id, mean, covariance, self._frame, self._frame, row, self._frame == 1))
        return born

    def _expire(self) -> list[_Track]:
        """Lost tracks not seen for more than ``track_buffer`` frames are removed."""
        stale = [track for track in self._lost if self._frame - track.last_frame > self.config.track_buffer]
        for track in stale:
            track.state = _State.REMOVED
        return stale

    def _merge(
        self, born: list[_Track], refound: list[_Track], newly_lost: list[_Track], removed: list[_Track]
    ) -> None:
        """End-of-frame bookkeeping in Ultralytics' order. As there, a lost track removed this frame stays
        in the lost list until the next frame (and can be found again then): the removed ids it is checked
        against are those of earlier frames."""
        self._tracked = [track for track in self._tracked if track.state is _State.TRACKED] + born + refound
        tracked_ids = {track.track_id for track in self._tracked}
        removed_ids = set(self._removed_ids)
        lost = [track for track in self._lost if track.track_id not in tracked_ids] + newly_lost
        self._lost = [track for track in lost if track.track_id not in removed_ids]
        self._drop_duplicates()
        self._removed_ids.extend(track.track_id for track in removed)

    def _drop_duplicates(self) -> None:
        """A tracked and a lost track on the same spot: the one followed for fewer frames goes."""
        if not self._tracked or not self._lost:
            return
        close = np.argwhere(_iou_cost(_boxes(self._tracked), _boxes(self._lost)) < DUPLICATE_COST)
        drop_tracked, drop_lost = set(), set()
        for i, j in close.tolist():
            tracked, lost = self._tracked[i], self._lost[j]
            if tracked.last_frame - tracked.start_frame > lost.last_frame - lost.start_frame:
                drop_lost.add(j)
            else:
                drop_tracked.add(i)
        self._tracked = [track for i, track in enumerate(self._tracked) if i not in drop_tracked]
        self._lost = [track for j, track in enumerate(self._lost) if j not in drop_lost]

    def _result(self, rows: Rows, frame_shape: tuple[int, ...]) -> Rows:
        """What Ultralytics' tracking callback leaves in the frame's result."""
        shown = [track for track in self._tracked if track.confirmed]
        if not shown:
            if len(shown) < len(self._tracked):  # new tracks await confirmation: hide their detections
                return _select(rows, np.zeros(0, dtype=np.int64))
            return rows
        height, width = frame_shape[:2]
        xyxy = _boxes(shown).astype(np.float32)
        xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0, width)
        xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0, height)
        chosen = _select(rows, np.asarray([track.det_index for track in shown], dtype=np.int64))
        ids = np.asarray([track.track_id for track in shown], dtype=np.int64)
        return replace(chosen, xyxy=xyxy, track_ids=ids)


def _select(rows: Rows, index: np.ndarray) -> Rows:
    """The given rows (in that order), untracked."""
    return Rows(
        xyxy=np.asarray(rows.xyxy, dtype=np.float32).reshape(-1, 4)[index],
        scores=np.asarray(rows.scores, dtype=np.float32)[index],
        class_ids=np.asarray(rows.class_ids, dtype=np.int64)[index],
        keypoints=rows.keypoints[index] if rows.keypoints is not None else None,
    )
