"""Camera rendering: sizes, colours where the objects are, the arm visible."""

from __future__ import annotations

import numpy as np
import pytest

from tabletop_sim.render import COLOURS, Camera, render
from tabletop_sim.world import World


@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 480), (96, 72)])
def test_image_shape_and_type(width, height):
    image = render(World(seed=0), Camera(width, height))
    assert image.shape == (height, width, 3)
    assert image.dtype == np.uint8


def test_objects_appear_in_their_colour_at_their_position():
    world = World(seed=4)
    world.q = np.array([-1.0, 0.0])  # arm pointing away from the objects' sector
    camera = Camera()
    image = render(world, camera)
    for obj in world.objects:
        u, v = camera.to_pixel(obj.position)
        colour = np.asarray(COLOURS[obj.kind.colour])
        patch = image[v - 9 : v + 10, u - 9 : u + 10].reshape(-1, 3).astype(int)
        closest = np.abs(patch - colour).sum(axis=1).min()
        assert closest < 120, f"{obj.name}: no pixel near its colour around ({u}, {v})"


def test_the_arm_moves_in_the_image():
    world = World(seed=4)
    camera = Camera()
    before = render(world, camera)
    world.q = np.array([0.3, 0.5])
    assert (render(world, camera) != before).any(axis=2).sum() > 500


def test_camera_size_is_validated():
    with pytest.raises(ValueError, match="camera size"):
        Camera(4, 4)
