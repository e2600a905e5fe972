"""/perception/markers: pinhole geometry and marker layout (plain Python), the parameters, and the node
publishing markers only while subscribed, placed with /camera/camera_info (integration)."""

from __future__ import annotations

import cv2
import pytest
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from test_perception_node import Camera, start_node
from ultralytics.utils import ASSETS
from visualization_msgs.msg import Marker, MarkerArray

from harness import wait_for
from humanoid_common.images import numpy_to_image
from humanoid_common.qos import load_qos_config
from perception_node.cameras import CAMERA_INFO_TOPIC, MARKERS_TOPIC
from perception_node.debug_draw import colour_for
from perception_node.detector import Detection
from perception_node.markers import (
    LINE_WIDTH_PER_M,
    TEXT_HEIGHT_PER_M,
    Intrinsics,
    box_outline,
    camera_intrinsics,
    detection_markers,
)
from perception_node.settings import PerceptionSettings, SettingsError

PERSON = Detection(0, "person", 0.9, 400.0, 300.0, 100.0, 200.0, track_id=7)
CAR = Detection(2, "car", 0.5, 100.0, 100.0, 40.0, 20.0)


def camera_info(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> CameraInfo:
    return CameraInfo(width=width, height=height, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])


def xyz(point) -> tuple[float, float, float]:
    return (point.x, point.y, point.z)


def flat(points) -> list[float]:
    """x, y, z of every point in one list (pytest.approx compares flat sequences)."""
    return [c for p in points for c in xyz(p)]


def test_intrinsics_fall_back_to_a_focal_length_of_the_image_width():
    assert camera_intrinsics(None, 640, 480) == Intrinsics(640.0, 640.0, 320.0, 240.0)
    uncalibrated = CameraInfo(width=640, height=480)  # K all zeros
    assert camera_intrinsics(uncalibrated, 640, 480) == Intrinsics(640.0, 640.0, 320.0, 240.0)


def test_intrinsics_come_from_camera_info_scaled_to_the_image_size():
    info = camera_info(1000.0, 990.0, 640.0, 470.0, 1280, 960)
    assert camera_intrinsics(info, 1280, 960) == Intrinsics(1000.0, 990.0, 640.0, 470.0)
    assert camera_intrinsics(info, 640, 480) == Intrinsics(500.0, 495.0, 320.0, 235.0)
    no_size = camera_info(1000.0, 990.0, 640.0, 470.0, 0, 0)
    assert camera_intrinsics(no_size, 640, 480) == Intrinsics(1000.0, 990.0, 640.0, 470.0)


def test_box_corners_lie_on_the_plane_and_project_back_onto_the_pixel_box():
    intrinsics = Intrinsics(500.0, 400.0, 320.0, 240.0)
    outline = box_outline(PERSON, intrinsics, 2.0)
    assert len(outline) == 5
    assert xyz(outline[0]) == xyz(outline[-1])  # closed
    assert {p.z for p in outline} == {2.0}
    pixels = [c for p in outline[:4] for c in (500.0 * p.x / p.z + 320.0, 400.0 * p.y / p.z + 240.0)]
    assert pixels == pytest.approx([350.0, 200.0, 450.0, 200.0, 450.0, 400.0, 350.0, 400.0])
    # Twice as far: twice as large, the same directions.
    assert flat(box_outline(PERSON, intrinsics, 4.0)) == pytest.approx([2 * c for c in flat(outline)])


def test_markers_delete_old_boxes_then_draw_a_box_and_a_label_per_detection():
    header = Header(frame_id="head_camera_optical_frame")
    header.stamp.sec = 42
    intrinsics = Intrinsics(500.0, 500.0, 320.0, 240.0)
    markers = detection_markers([PERSON, CAR], header, intrinsics, 2.0).markers
    assert [m.action for m in markers] == [Marker.DELETEALL] + [Marker.ADD] * 4
    assert markers[0].ns == ""  # DELETEALL without a namespace clears every one
    assert all(m.header.frame_id == "head_camera_optical_frame" and m.header.stamp.sec == 42 for m in markers)
    boxes, labels = markers[1::2], markers[2::2]
    assert [(m.ns, m.id, m.type) for m in boxes] == [("boxes", i, Marker.LINE_STRIP) for i in (0, 1)]
    assert [(m.ns, m.id, m.type) for m in labels] == [("labels", i, Marker.TEXT_VIEW_FACING) for i in (0, 1)]
    assert [m.text for m in labels] == ["person #7 0.90", "car 0.50"]
    assert flat(boxes[0].points) == flat(box_outline(PERSON, intrinsics, 2.0))
    assert boxes[0].scale.x == pytest.approx(LINE_WIDTH_PER_M * 2.0)
    assert labels[0].scale.z == pytest.approx(TEXT_HEIGHT_PER_M * 2.0)
    top_edge_y = boxes[0].points[0].y
    assert labels[0].pose.position.y < top_edge_y  # above the box (optical y points down)
    assert labels[0].pose.position.x == pytest.approx(intrinsics.point(400.0, 0.0, 2.0).x)  # centred
    b, g, r = colour_for(7)  # the debug image's colour of track 7
    assert (boxes[0].color.r, boxes[0].color.g, boxes[0].color.b, boxes[0].color.a) == pytest.approx(
        (r / 255, g / 255, b / 255, 1.0)
    )
    assert detection_markers([], header, intrinsics, 2.0).markers[0].action == Marker.DELETEALL
    assert len(detection_markers([], header, intrinsics, 2.0).markers) == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"marker_distance_m": 0.0}, "marker_distance_m: expected > 0"),
        ({"markers_max_hz": -1.0}, "markers_max_hz: expected > 0"),
    ],
)
def test_bad_marker_settings_name_the_parameter(values, message):
    with pytest.raises(SettingsError, match=message):
        PerceptionSettings.from_parameters({"tracker": "none", **values})


@pytest.mark.integration
def test_node_publishes_markers_only_while_subscribed_placed_with_camera_info(ros):
    node = start_node(ros, tracker="none", max_rate_hz=0.0, marker_distance_m=1.5)
    camera = Camera(ros)
    image = numpy_to_image(cv2.imread(str(ASSETS / "bus.jpg")), "bgr8")  # 810 x 1080
    assert camera.send_and_wait(image).detections
    assert node.cameras[0].markers.health.messages == 0, "markers were built with nobody subscribed"

    qos = load_qos_config()
    info_pub = ros.node("test_camera_info").create_publisher(
        CameraInfo, CAMERA_INFO_TOPIC, qos.profile(CAMERA_INFO_TOPIC)
    )
    info = camera_info(900.0, 880.0, 400.0, 530.0, 810, 1080)

    def info_arrived() -> bool:
        info_pub.publish(info)
        return node.cameras[0].info is not None

    wait_for(info_arrived, 10, "the node receiving camera_info", interval=0.05)
    received: list[MarkerArray] = ros.collect(MarkerArray, MARKERS_TOPIC, qos.profile(MARKERS_TOPIC))
    markers = node.cameras[0].markers.publisher
    wait_for(lambda: markers.get_subscription_count() >= 1, 10, "the markers collector")

    def markers_of(out) -> MarkerArray | None:
        return next((a for a in received if a.markers[0].header.stamp == out.header.stamp), None)

    out = camera.send_and_wait(image)
    array = wait_for(lambda: markers_of(out), 10, "the markers of the frame just sent")
    assert len(array.markers) == 1 + 2 * len(out.detections)
    assert {m.header.frame_id for m in array.markers} == {"head_camera"}
    d = out.detections[0]
    as_core = Detection(d.class_id, d.class_name, d.score, d.center_x, d.center_y, d.size_x, d.size_y)
    expected = box_outline(as_core, Intrinsics(900.0, 880.0, 400.0, 530.0), 1.5)
    assert flat(array.markers[1].points) == pytest.approx(flat(expected))
