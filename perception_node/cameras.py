"""Which topics each camera of perception_node uses (plain Python, no rclpy).

With no camera names (the default) the node has one camera and the suite's fixed names:
/camera/image_raw (or .../compressed) and /camera/camera_info in, /perception/detections,
/perception/debug_image and /perception/markers out. With names (``cameras:=[head, wrist]``) camera
``head`` reads /head/image_raw and /head/camera_info and publishes under /perception/head/; all cameras'
frames go through the model together, as one batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from humanoid_common.qos import QosConfig

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
CAMERA_INFO_TOPIC = "/camera/camera_info"
DETECTIONS_TOPIC = "/perception/detections"
DEBUG_TOPIC = "/perception/debug_image"
MARKERS_TOPIC = "/perception/markers"
MAX_CAMERAS = 8
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*")


class CameraNameError(ValueError):
    """A camera name that cannot be a topic namespace, a repeated name, or too many cameras."""


@dataclass(frozen=True)
class CameraTopics:
    """One camera's topics; ``name`` is "" for the single default camera."""

    name: str
    image: str
    camera_info: str
    detections: str
    debug_image: str
    markers: str


def camera_topics(names: Sequence[str], compressed: bool) -> list[CameraTopics]:
    """The cameras' topics in the order of ``names`` (their batch order)."""
    image_suffix = "/image_raw/compressed" if compressed else "/image_raw"
    if not names:
        return [
            CameraTopics(
                "",
                COMPRESSED_TOPIC if compressed else IMAGE_TOPIC,
                CAMERA_INFO_TOPIC,
                DETECTIONS_TOPIC,
                DEBUG_TOPIC,
                MARKERS_TOPIC,
            )
        ]
    if len(names) > MAX_CAMERAS:
        raise CameraNameError(f"at most {MAX_CAMERAS} cameras, got {len(names)}")
    for name in names:
        if not _NAME.fullmatch(name):
            raise CameraNameError(
                f"camera name {name!r} is not a topic namespace (letters, digits, '_', '/' between "
                "parts, no leading '/')"
            )
    if len(set(names)) != len(names):
        raise CameraNameError(f"camera names repeat: {list(names)}")
    return [
        CameraTopics(
            name,
            f"/{name}{image_suffix}",
            f"/{name}/camera_info",
            f"/perception/{name}/detections",
            f"/perception/{name}/debug_image",
            f"/perception/{name}/markers",
        )
        for name in names
    ]


def with_camera_qos(qos: QosConfig, cameras: Sequence[CameraTopics], image_reliability: str) -> QosConfig:
    """A copy of ``qos`` where each camera's topics have the QoS of the default camera's topic of the
    same role, unless the file names that topic itself; ``image_reliability`` (when not empty)
    replaces the images' reliability (the node parameter of that name)."""
    default = camera_topics((), cameras[0].image.endswith("/compressed"))[0]
    topics = {name: qos[name] for name in qos.topics} | {"": qos[""]}
    for camera in cameras:
        for role in ("image", "camera_info", "detections", "debug_image", "markers"):
            topic = getattr(camera, role)
            if topic not in qos:
                topics[topic] = qos[getattr(default, role)]
        if image_reliability:
            topics[camera.image] = replace(topics[camera.image], reliability=image_reliability)
    note = f" (reliability of images: {image_reliability})" if image_reliability else ""
    return QosConfig(topics, qos.source + note)
