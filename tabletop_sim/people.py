"""A scripted head-camera scene: the street video with people (bundled face photos) who come and go.

The robot's head camera for the demo and the face-sequence bags: deterministic frames from a script
(config/demo/scene.yaml), so the memory node sees Alice arrive, leave, a stranger, Alice again, and
perception sees and tracks the pedestrians of the street behind them. Plain Python, no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from humanoid_common.assets import asset_path
from humanoid_common.config import read_yaml


class SceneError(ValueError):
    """A scene script is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class Photo:
    """A bundled photo and the face box in it (x1, y1, x2, y2 pixels, from the SCRFD detector)."""

    asset: str
    face_box: tuple[int, int, int, int]


#: The bundled portraits (DESIGN §5). Three photos of one man, one of another.
PHOTOS: dict[str, Photo] = {
    "obama": Photo("face_obama.jpg", (378, 84, 609, 426)),
    "obama2": Photo("face_obama2.jpg", (208, 227, 469, 635)),
    "obama3": Photo("face_obama3.jpg", (643, 255, 909, 615)),
    "biden": Photo("face_biden.jpg", (424, 159, 711, 563)),
}


@dataclass(frozen=True)
class Appearance:
    """`who` (ground truth, for reports) is in view as `photo` from `start_s` to `end_s`, the portrait
    centred at `x` (fraction of the width) and `height` pixels tall, standing on the bottom edge."""

    who: str
    photo: str
    start_s: float
    end_s: float
    x: float = 0.8
    height: int = 340


@dataclass(frozen=True)
class Enrolment:
    """A person enrolled (with consent) from photos before the scene starts."""

    name: str
    photos: tuple[str, ...]


@dataclass(frozen=True)
class SceneScript:
    appearances: tuple[Appearance, ...]
    duration_s: float
    width: int = 640
    height: int = 480
    background: str = "vtest.avi"  # an asset video, or "" for a plain grey background
    enrolments: tuple[Enrolment, ...] = ()

    def visible(self, t: float) -> list[Appearance]:
        return [a for a in self.appearances if a.start_s <= t < a.end_s]


def load_script(path: str | Path) -> SceneScript:
    data = read_yaml(path, "scene script", SceneError)
    try:
        appearances = tuple(
            Appearance(
                str(p["who"]),
                str(p["photo"]),
                float(p["from"]),
                float(p["to"]),
                float(p.get("x", 0.8)),
                int(p.get("height", 340)),
            )
            for p in data.get("people", [])
        )
        enrolments = tuple(
            Enrolment(str(e["name"]), tuple(str(p) for p in e["photos"])) for e in data.get("enroll", [])
        )
        script = SceneScript(
            appearances, float(data["duration_s"]), int(data.get("width", 640)), int(data.get("height", 480)),
            str(data.get("background", "vtest.avi")), enrolments,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise SceneError(
            f"{path}: each person needs who, photo, from, to; the script duration_s ({error})"
        ) from error
    for e in script.enrolments:
        unknown = [p for p in e.photos if p not in PHOTOS]
        if unknown or not e.photos:
            raise SceneError(f"{path}: {e.name} is enrolled from unknown or no photos {unknown or []}")
    for a in script.appearances:
        if a.photo not in PHOTOS:
            raise SceneError(f"{path}: photo {a.photo!r} of {a.who} is not one of {', '.join(PHOTOS)}")
        if not 0 <= a.start_s < a.end_s:
            raise SceneError(f"{path}: {a.who} must leave after arriving (from {a.start_s} to {a.end_s})")
        if not 16 <= a.height <= script.height:
            raise SceneError(f"{path}: {a.who}'s height {a.height} must be within 16..{script.height} px")
    return script


def portrait(photo: Photo, height: int) -> np.ndarray:
    """Head and shoulders around the photo's face, scaled to `height` pixels."""
    image = cv2.imread(str(asset_path(photo.asset)), cv2.IMREAD_COLOR)
    if image is None:
        raise SceneError(f"cannot read {photo.asset} from the asset cache (run `make setup`)")
    x1, y1, x2, y2 = photo.face_box
    w, h = x2 - x1, y2 - y1
    crop = image[max(0, int(y1 - 0.5 * h)) : int(y2 + 1.3 * h), max(0, int(x1 - 0.9 * w)) : int(x2 + 0.9 * w)]
    return cv2.resize(crop, (max(1, round(height * crop.shape[1] / crop.shape[0])), height), cv2.INTER_AREA)


class PeopleScene:
    """Renders the script's frame at time t (seconds from the scene start), BGR uint8."""

    def __init__(self, script: SceneScript) -> None:
        self.script = script
        self._portraits = {
            (a.photo, a.height): portrait(PHOTOS[a.photo], a.height) for a in script.appearances
        }
        self._video: cv2.VideoCapture | None = None
        self._video_fps = 25.0
        self._video_frames = 0
        self._video_index = -1
        self._background = np.full((script.height, script.width, 3), 96, np.uint8)
        if script.background:
            self._open_video()

    def _open_video(self) -> None:
        self._video = cv2.VideoCapture(str(asset_path(self.script.background)))
        if not self._video.isOpened():
            raise SceneError(f"OpenCV cannot open the background video {self.script.background}")
        self._video_fps = self._video.get(cv2.CAP_PROP_FPS) or 25.0
        self._video_frames = int(self._video.get(cv2.CAP_PROP_FRAME_COUNT))
        self._video_index = -1

    def _background_at(self, t: float) -> np.ndarray:
        if self._video is None:
            return self._background.copy()
        index = int(t * self._video_fps) % max(1, self._video_frames)
        if index < self._video_index:  # looped or went back: read from the start again
            self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._video_index = -1
        while self._video_index < index:
            if not self._video.grab():
                break
            self._video_index += 1
        ok, frame = self._video.retrieve()
        if ok:
            self._background = cv2.resize(frame, (self.script.width, self.script.height), cv2.INTER_AREA)
        return self._background.copy()

    def background(self, t: float) -> np.ndarray:
        """The background alone (the street before the script starts)."""
        return self._background_at(t)

    def frame(self, t: float) -> np.ndarray:
        canvas = self._background_at(t)
        width, height = self.script.width, self.script.height
        for a in self.script.visible(t):
            image = self._portraits[(a.photo, a.height)]
            w = min(image.shape[1], width)
            x0 = int(np.clip(a.x * width - w / 2, 0, width - w))
            canvas[height - a.height :, x0 : x0 + w] = image[:, :w]
        return canvas
