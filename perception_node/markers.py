"""Detections as rviz2 markers: each box drawn on a plane at a fixed distance in front of the camera.

A pixel (u, v) of a pinhole camera lies on the ray ((u - cx) / fx, (v - cy) / fy, 1) of the camera's
optical frame (REP 103: x right, y down, z forward), so its point at depth d is that ray times d. The
image's frame_id is taken to be that optical frame. Intrinsics come from /camera/camera_info; until it
has arrived (or when its K is all zeros, an uncalibrated camera) the fallback is a focal length equal
to the image width (a horizontal field of view of about 53°) with the principal point at the image
centre: directions are then only roughly right, but the boxes still appear.
Messages are plain classes: nothing here needs rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from geometry_msgs.msg import Point
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from perception_node.debug_draw import colour_for, label_for
from perception_node.detector import NO_TRACK, Detection

#: Line width and text height, in metres per metre of distance (constant apparent size).
LINE_WIDTH_PER_M = 0.004
TEXT_HEIGHT_PER_M = 0.03


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole focal lengths and principal point, in pixels of the detections' image."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def fallback(cls, width: int, height: int) -> Intrinsics:
        return cls(float(width), float(width), width / 2, height / 2)

    def point(self, u: float, v: float, distance_m: float) -> Point:
        """The point of pixel (u, v) on the plane z = distance_m of the optical frame."""
        return Point(
            x=(u - self.cx) / self.fx * distance_m, y=(v - self.cy) / self.fy * distance_m, z=distance_m
        )


def camera_intrinsics(info: CameraInfo | None, width: int, height: int) -> Intrinsics:
    """Intrinsics for an image of width x height from camera_info's K (row-major 3x3), scaled when the
    camera_info describes another resolution; the fallback without a usable camera_info. The node
    keeps only camera_info that passed `perception_node.inputs.check_camera_info`."""
    if info is None or not (info.k[0] > 0 and info.k[4] > 0):  # zeros: uncalibrated
        return Intrinsics.fallback(width, height)
    sx = width / info.width if info.width else 1.0
    sy = height / info.height if info.height else 1.0
    k = info.k
    return Intrinsics(k[0] * sx, k[4] * sy, k[2] * sx, k[5] * sy)


def box_outline(det: Detection, intrinsics: Intrinsics, distance_m: float) -> list[Point]:
    """The box's corners, top-left first and again at the end (a closed LINE_STRIP)."""
    x0, x1 = det.center_x - det.size_x / 2, det.center_x + det.size_x / 2
    y0, y1 = det.center_y - det.size_y / 2, det.center_y + det.size_y / 2
    corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))
    return [intrinsics.point(u, v, distance_m) for u, v in corners]


def _colour(det: Detection) -> ColorRGBA:
    """The debug image's colour of this track (or class), as RGBA in [0, 1]."""
    b, g, r = colour_for(det.track_id if det.track_id != NO_TRACK else det.class_id)
    return ColorRGBA(r=r / 255, g=g / 255, b=b / 255, a=1.0)


def detection_markers(
    detections: list[Detection], header: Header, intrinsics: Intrinsics, distance_m: float
) -> MarkerArray:
    """A DELETEALL (so boxes of earlier frames disappear), then per detection a LINE_STRIP box
    (namespace "boxes") and a TEXT_VIEW_FACING label "class #track score" just above its top edge
    (namespace "labels"); ids are the detection's index, the header is the image's."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    line_width = LINE_WIDTH_PER_M * distance_m
    text_height = TEXT_HEIGHT_PER_M * distance_m
    for index, det in enumerate(detections):
        colour = _colour(det)
        box = Marker(
            header=header, ns="boxes", id=index, type=Marker.LINE_STRIP, action=Marker.ADD, color=colour
        )
        box.points = box_outline(det, intrinsics, distance_m)
        box.scale.x = line_width
        label = Marker(
            header=header, ns="labels", id=index, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
            color=colour, text=label_for(det),
        )  # fmt: skip
        top = intrinsics.point(det.center_x, det.center_y - det.size_y / 2, distance_m)
        label.pose.position = Point(x=top.x, y=top.y - 0.6 * text_height, z=top.z)  # y points down
        label.scale.z = text_height
        markers += [box, label]
    return MarkerArray(markers=markers)
