"""The fixed top-down camera: draws table, objects and arm with OpenCV (RGB uint8, no rclpy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from tabletop_sim.world import PlacedObject, World, forward_kinematics

# Table area the camera sees (metres): x from -0.55 to 0.55, y from -0.15 to 0.62.
VIEW_X = (-0.55, 0.55)
VIEW_Y = (-0.15, 0.62)

TABLE_RGB = (205, 180, 140)
EDGE_RGB = (150, 120, 85)
ARM_RGB = (90, 90, 100)
JOINT_RGB = (40, 40, 45)
COLOURS = {"red": (210, 40, 35), "blue": (40, 80, 215), "green": (45, 170, 60)}


@dataclass(frozen=True)
class Camera:
    """Pixel mapping of the top-down view for a given image size."""

    width: int = 320
    height: int = 240

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ValueError(f"camera size {self.width}x{self.height} must be within 16..4096 pixels")

    @property
    def scale(self) -> float:
        """Pixels per metre (the same along both axes)."""
        return min(self.width / (VIEW_X[1] - VIEW_X[0]), self.height / (VIEW_Y[1] - VIEW_Y[0]))

    def to_pixel(self, point: np.ndarray | tuple[float, float]) -> tuple[int, int]:
        cx = self.width / 2 - self.scale * (VIEW_X[0] + VIEW_X[1]) / 2
        cy = self.height / 2 + self.scale * (VIEW_Y[0] + VIEW_Y[1]) / 2
        return round(cx + self.scale * point[0]), round(cy - self.scale * point[1])

    def intrinsics(self) -> np.ndarray:
        """3x3 pinhole matrix of an ideal camera 1 m above the table that yields this view."""
        cx, cy = self.to_pixel((0.0, 0.0))
        return np.array([[self.scale, 0, cx], [0, self.scale, cy], [0, 0, 1]], dtype=np.float64)


def _draw_object(image: np.ndarray, obj: PlacedObject, camera: Camera) -> None:
    centre = camera.to_pixel(obj.position)
    size = max(2, round(obj.kind.size_m * camera.scale))
    colour = COLOURS[obj.kind.colour]
    dark = tuple(int(c * 0.55) for c in colour)
    if obj.kind.shape == "cup":  # rim, dark inside, a handle
        handle_end = camera.to_pixel(
            (obj.position[0] + 1.6 * obj.kind.size_m * math.cos(obj.yaw), obj.position[1])
        )
        cv2.line(image, centre, handle_end, colour, max(2, size // 3), cv2.LINE_AA)
        cv2.circle(image, centre, size, colour, -1, cv2.LINE_AA)
        cv2.circle(image, centre, max(1, round(size * 0.65)), dark, -1, cv2.LINE_AA)
    elif obj.kind.shape == "block":
        box = cv2.boxPoints((centre, (2 * size, 2 * size), math.degrees(obj.yaw)))
        cv2.fillConvexPoly(image, np.round(box).astype(np.int32), colour, cv2.LINE_AA)
        cv2.polylines(image, [np.round(box).astype(np.int32)], True, dark, 1, cv2.LINE_AA)
    else:  # ball: shaded disc with a highlight
        cv2.circle(image, centre, size, dark, -1, cv2.LINE_AA)
        cv2.circle(image, centre, max(1, round(size * 0.8)), colour, -1, cv2.LINE_AA)
        light = (centre[0] - size // 3, centre[1] - size // 3)
        cv2.circle(image, light, max(1, size // 4), (235, 245, 235), -1, cv2.LINE_AA)


def render(world: World, camera: Camera) -> np.ndarray:
    """The camera image of the current state, (height, width, 3) uint8 RGB."""
    image = np.empty((camera.height, camera.width, 3), dtype=np.uint8)
    image[:] = TABLE_RGB
    edge = camera.to_pixel((0.0, VIEW_Y[0] + 0.05))[1]
    image[edge:] = EDGE_RGB  # the table's near edge, where the robot stands
    for obj in world.objects:
        _draw_object(image, obj, camera)
    base = camera.to_pixel((0.0, 0.0))
    elbow, ee = forward_kinematics(world.q, world.arm)
    thickness = max(2, round(0.035 * camera.scale))
    cv2.line(image, base, camera.to_pixel(elbow), ARM_RGB, thickness, cv2.LINE_AA)
    cv2.line(
        image, camera.to_pixel(elbow), camera.to_pixel(ee), ARM_RGB, max(2, thickness * 3 // 4), cv2.LINE_AA
    )
    for point, radius in ((base, 0.03), (camera.to_pixel(elbow), 0.022), (camera.to_pixel(ee), 0.015)):
        cv2.circle(image, point, max(2, round(radius * camera.scale)), JOINT_RGB, -1, cv2.LINE_AA)
    return image
