"""The debug image: boxes, class labels with score, track ids and the processing rate."""

from __future__ import annotations

import cv2
import numpy as np

from perception_node.detector import NO_TRACK, Detection

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colour_for(key: int) -> tuple[int, int, int]:
    """A stable, well separated BGR colour per class or track id."""
    hue = (key * 47) % 180
    hsv = np.uint8([[[hue, 220, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def label_for(det: Detection) -> str:
    track = f" #{det.track_id}" if det.track_id != NO_TRACK else ""
    return f"{det.class_name}{track} {det.score:.2f}"


def draw_detections(bgr: np.ndarray, detections: list[Detection], fps: float | None = None) -> np.ndarray:
    """A copy of ``bgr`` with every detection drawn (and the rate, when given, top left)."""
    canvas = bgr.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 900)
    thickness = max(1, round(scale * 2))
    for det in detections:
        colour = colour_for(det.track_id if det.track_id != NO_TRACK else det.class_id)
        x0, y0 = round(det.center_x - det.size_x / 2), round(det.center_y - det.size_y / 2)
        x1, y1 = round(det.center_x + det.size_x / 2), round(det.center_y + det.size_y / 2)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
        label = label_for(det)
        (tw, th), base = cv2.getTextSize(label, _FONT, scale, thickness)
        top = max(y0, th + base)
        cv2.rectangle(canvas, (x0, top - th - base), (x0 + tw, top), colour, cv2.FILLED)
        cv2.putText(canvas, label, (x0, top - base), _FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
        for kp in det.keypoints:
            if kp.score >= 0.5:
                cv2.circle(canvas, (round(kp.x), round(kp.y)), thickness + 1, colour, cv2.FILLED)
    if fps is not None:
        text = f"{fps:.1f} Hz"
        cv2.putText(canvas, text, (8, 8 + round(30 * scale)), _FONT, scale * 1.2, (0, 255, 0), thickness + 1)
    return canvas
