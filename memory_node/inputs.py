"""What memory_node reads from its topics, checked before use (no rclpy; issue 10).

Each function returns what the node needs or raises InvalidMessageError; the node's WatchedSubscription
then drops the message, counts it per topic on /diagnostics ("inputs") and logs the reason shortened,
at most once per period. Checked here: in detections their count, class name length and box numbers
(NaN, infinite, negative sizes, absurd magnitudes). Headers (stamps negative, with nanosec ≥ 1e9 or
far ahead of the node's clock; frame_id length) are checked by humanoid_common.validation, pixels
(encoding, size, step, data length) by humanoid_common.images.
"""

from __future__ import annotations

from humanoid_common.validation import bounded_count, bounded_text, finite_number
from humanoid_stack.msg import DetectionArray
from memory_node.tracks import PersonBox

MAX_DETECTIONS = 1000  # per message; YOLO keeps at most 300
MAX_CLASS_NAME_CHARS = 64
MAX_BOX_PX = 100_000.0  # box centres and sizes beyond this many pixels belong to no camera


def person_boxes(msg: DetectionArray) -> list[PersonBox]:
    """The "person" detections as boxes (x1, y1, x2, y2); every detection of the message is checked."""
    bounded_count(msg.detections, "detections", MAX_DETECTIONS)
    boxes = []
    for i, d in enumerate(msg.detections):
        where = f"detections[{i}]"
        bounded_text(d.class_name, f"{where}.class_name", MAX_CLASS_NAME_CHARS)
        cx, cy = (
            finite_number(v, f"{where}.{name}", low=-MAX_BOX_PX, high=MAX_BOX_PX)
            for name, v in (("center_x", d.center_x), ("center_y", d.center_y))
        )
        sx, sy = (
            finite_number(v, f"{where}.{name}", low=0.0, high=MAX_BOX_PX)
            for name, v in (("size_x", d.size_x), ("size_y", d.size_y))
        )
        if d.class_name == "person":
            boxes.append(PersonBox(d.track_id, (cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2)))
    return boxes
