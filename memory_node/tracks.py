"""Which track each face belongs to: a perception person track when available, else a light IoU tracker.

`FaceTracks` runs the IoU face tracker on every frame and remembers which perception person track a
face track was last attached to, so a face keeps one track id also on frames whose detections are
too old to associate (perception and memory run at their own rates): no track fragments, no
"left" while someone is still in view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 pixels

# Face-tracker ids live far above perception's so the two never collide in Tier 1.
FACE_TRACK_BASE = 1 << 40


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _intersection(a: Box, b: Box) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(a: Box, b: Box) -> float:
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class PersonBox:
    track_id: int
    box: Box


def associate_to_people(
    faces: Sequence[Box], people: Sequence[PersonBox], min_inside: float = 0.8
) -> list[int]:
    """Perception track id for each face (or -1): the face box lies inside the person box.

    A face must have at least `min_inside` of its area inside the person box; among several person
    boxes the one where the face sits highest (relative to the box height) wins, then each track is
    given to at most one face, best pairs first.
    """
    pairs = []
    for fi, face in enumerate(faces):
        face_area = _area(face)
        if face_area <= 0:
            continue
        for pi, person in enumerate(people):
            if person.track_id < 0:
                continue
            inside = _intersection(face, person.box) / face_area
            if inside >= min_inside:
                height = max(person.box[3] - person.box[1], 1e-6)
                top = ((face[1] + face[3]) / 2 - person.box[1]) / height  # 0 = top of the person box
                pairs.append((inside - top, fi, pi))
    result = [-1] * len(faces)
    used: set[int] = set()
    for _, fi, pi in sorted(pairs, reverse=True):
        if result[fi] == -1 and pi not in used:
            result[fi] = people[pi].track_id
            used.add(pi)
    return result


class IouFaceTracker:
    """Greedy IoU tracker for faces when no perception tracks are available."""

    def __init__(self, min_iou: float = 0.3, max_age_s: float = 1.0) -> None:
        self.min_iou = min_iou
        self.max_age_s = max_age_s
        self._tracks: dict[int, tuple[Box, float]] = {}
        self._next = FACE_TRACK_BASE

    @property
    def track_ids(self) -> set[int]:
        return set(self._tracks)

    def update(self, faces: Sequence[Box], now: float) -> list[int]:
        self._tracks = {t: (b, s) for t, (b, s) in self._tracks.items() if now - s <= self.max_age_s}
        ids = list(self._tracks)
        scores = np.array([[iou(f, self._tracks[t][0]) for t in ids] for f in faces]).reshape(
            len(faces), len(ids)
        )
        result = [-1] * len(faces)
        while scores.size and scores.max() >= self.min_iou:
            fi, ti = np.unravel_index(int(np.argmax(scores)), scores.shape)
            result[fi] = ids[ti]
            scores[fi, :] = -1
            scores[:, ti] = -1
        for fi, face in enumerate(faces):
            if result[fi] == -1:
                result[fi] = self._next
                self._next += 1
            self._tracks[result[fi]] = (face, now)
        return result


class FaceTracks:
    """Stable track ids for the faces of each frame (see the module docstring)."""

    def __init__(self, tracker: IouFaceTracker | None = None) -> None:
        self.tracker = tracker or IouFaceTracker()
        self._person_of: dict[int, int] = {}  # face track id → the person track it was last inside

    def assign(self, faces: Sequence[Box], people: Sequence[PersonBox] | None, now: float) -> list[int]:
        """Track id per face; `people` are the person boxes of a fresh detection, else None."""
        face_ids = self.tracker.update(faces, now)
        if people:
            for face_id, person_id in zip(face_ids, associate_to_people(faces, people), strict=True):
                if person_id >= 0:
                    self._person_of[face_id] = person_id
        live = self.tracker.track_ids
        self._person_of = {f: p for f, p in self._person_of.items() if f in live}
        return [self._person_of.get(f, f) for f in face_ids]
