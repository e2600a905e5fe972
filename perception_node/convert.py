"""Core results → humanoid_stack/DetectionArray (the only place that knows both)."""

from __future__ import annotations

from std_msgs.msg import Header

from humanoid_stack.msg import Detection as DetectionMsg
from humanoid_stack.msg import DetectionArray, Keypoint2D
from perception_node.detector import Detection, FrameResult


def detection_to_msg(det: Detection) -> DetectionMsg:
    return DetectionMsg(
        class_id=det.class_id,
        class_name=det.class_name,
        score=det.score,
        center_x=det.center_x,
        center_y=det.center_y,
        size_x=det.size_x,
        size_y=det.size_y,
        track_id=det.track_id,
        keypoints=[Keypoint2D(x=k.x, y=k.y, score=k.score) for k in det.keypoints],
    )


def result_to_msg(result: FrameResult, header: Header, model: str) -> DetectionArray:
    """The array for one frame; ``latency_ms`` is filled by the caller right before publishing."""
    return DetectionArray(
        header=header,
        image_width=result.width,
        image_height=result.height,
        model=model,
        inference_ms=result.inference_ms,
        detections=[detection_to_msg(d) for d in result.detections],
    )
