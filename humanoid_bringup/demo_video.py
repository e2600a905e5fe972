"""The demo video's frames (plain Python, no rclpy): what the robot saw and did, side by side.

Left, the head camera with perception's boxes and track ids and the memory's faces (name and band).
Right, the table camera with the arm as commanded by the VLA node drawn over the measured one, the
instruction and the task count; below, the latest memory events and the load governor's level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from perception_node.debug_draw import draw_detections
from perception_node.detector import Detection
from tabletop_sim.render import Camera
from tabletop_sim.world import ArmSpec, forward_kinematics

WIDTH, HEIGHT = 1120, 480
HEAD = (640, 480)
TABLE = (480, 360)
BANDS = {2: ("KNOWN", (60, 200, 60)), 1: ("TENTATIVE", (0, 190, 255)), 0: ("UNKNOWN", (180, 180, 180))}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Face:
    """A face of /memory/people as drawn: box (x1, y1, x2, y2), name (may be empty), band, track."""

    box: tuple[float, float, float, float]
    name: str
    band: int
    track_id: int
    similarity: float


@dataclass
class Scene:
    """Everything one video frame shows; the recorder keeps it current from the topics."""

    head: np.ndarray | None = None  # BGR
    detections: list[Detection] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    table: np.ndarray | None = None  # BGR
    commanded: np.ndarray | None = None  # joint positions
    instruction: str = ""
    episodes: int = 0
    successes: int = 0
    events: list[str] = field(default_factory=list)  # newest last
    asked: str = ""  # the request the planner works on
    said: str = ""  # what the robot said last
    governor_level: int = 0
    clock_s: float = 0.0


def _blank(size: tuple[int, int], text: str) -> np.ndarray:
    image = np.full((size[1], size[0], 3), 30, np.uint8)
    cv2.putText(image, text, (20, size[1] // 2), _FONT, 0.7, (200, 200, 200), 1, cv2.LINE_AA)
    return image


def _label(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    (tw, th), base = cv2.getTextSize(text, _FONT, 0.5, 1)
    x, y = origin
    cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 4, y), colour, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y - base), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


def head_panel(scene: Scene) -> np.ndarray:
    if scene.head is None:
        return _blank(HEAD, "waiting for the head camera")
    image = draw_detections(scene.head, scene.detections)
    for face in scene.faces:
        name, colour = BANDS.get(face.band, BANDS[0])
        x1, y1, x2, y2 = (round(v) for v in face.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        who = face.name or ("stranger" if face.band == 0 else "unnamed")
        _label(image, f"{who} {name} {face.similarity:.2f}", (x1, y2 + 18), colour)
    if image.shape[1::-1] != HEAD:
        image = cv2.resize(image, HEAD, interpolation=cv2.INTER_AREA)
    return image


ARM = ArmSpec()


def table_panel(scene: Scene, arm: ArmSpec = ARM) -> np.ndarray:
    if scene.table is None:
        return _blank(TABLE, "waiting for the table camera")
    image = scene.table.copy()
    if scene.commanded is not None and len(scene.commanded) == 2:
        camera = Camera(image.shape[1], image.shape[0])
        elbow, tip = forward_kinematics(np.asarray(scene.commanded, float), arm)
        points = [camera.to_pixel((0.0, 0.0)), camera.to_pixel(elbow), camera.to_pixel(tip)]
        overlay = image.copy()
        cv2.polylines(overlay, [np.array(points, np.int32)], False, (255, 200, 0), 3, cv2.LINE_AA)
        cv2.circle(overlay, points[-1], 5, (255, 200, 0), cv2.FILLED)
        image = cv2.addWeighted(overlay, 0.6, image, 0.4, 0)
    return cv2.resize(image, TABLE, interpolation=cv2.INTER_LINEAR)


def compose(scene: Scene) -> np.ndarray:
    """One 1120x480 BGR frame."""
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[:, : HEAD[0]] = head_panel(scene)
    frame[: TABLE[1], HEAD[0] :] = table_panel(scene)
    x = HEAD[0] + 8
    lines = [
        (f"t {scene.clock_s:5.1f} s   tasks {scene.successes}/{scene.episodes}   governor level "
         f"{scene.governor_level}", (255, 255, 255)),
        (f"instruction: {scene.instruction or '-'}", (255, 200, 0)),
        (f"asked: {scene.asked or '-'}", (120, 200, 255)),
        (f"robot says: {scene.said or '-'}", (120, 200, 255)),
        *((text, (200, 230, 200)) for text in scene.events[-3:]),
    ]  # fmt: skip
    for i, (text, colour) in enumerate(lines):
        cv2.putText(frame, text[:60], (x, TABLE[1] + 22 + 22 * i), _FONT, 0.5, colour, 1, cv2.LINE_AA)
    cv2.putText(frame, "commanded arm", (x, 20), _FONT, 0.5, (255, 200, 0), 1, cv2.LINE_AA)
    return frame
