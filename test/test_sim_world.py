"""Tabletop world core: kinematics, limits, tracking, layouts, success check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabletop_sim.world import (
    ArmSpec,
    LayoutSpec,
    World,
    forward_kinematics,
    inverse_kinematics,
    random_layout,
)


def test_forward_kinematics_of_a_straight_arm():
    arm = ArmSpec()
    elbow, ee = forward_kinematics(np.array([math.pi / 2, 0.0]), arm)
    np.testing.assert_allclose(elbow, [0.0, 0.30], atol=1e-12)
    np.testing.assert_allclose(ee, [0.0, 0.55], atol=1e-12)


def test_inverse_kinematics_round_trips_and_bends_the_elbow_one_way():
    arm = ArmSpec()
    rng = np.random.default_rng(3)
    for _ in range(200):
        r, a = rng.uniform(0.2, 0.52), rng.uniform(0.2, math.pi - 0.2)
        point = np.array([r * math.cos(a), r * math.sin(a)])
        q = inverse_kinematics(point, arm)
        assert q[1] >= 0
        np.testing.assert_allclose(forward_kinematics(q, arm)[1], point, atol=1e-9)


def test_inverse_kinematics_refuses_unreachable_points():
    with pytest.raises(ValueError, match="out of the arm's reach"):
        inverse_kinematics(np.array([0.0, 0.7]), ArmSpec())


def test_tracking_respects_velocity_and_position_limits():
    world = World(seed=0)
    world.set_command(np.array([10.0, -10.0]))  # beyond the limits: clipped
    np.testing.assert_allclose(world.command, [world.arm.upper[0], world.arm.lower[1]])
    start = world.q.copy()
    world.step(0.1)
    assert np.all(np.abs(world.q - start) <= np.asarray(world.arm.velocity_limit) * 0.1 + 1e-12)
    for _ in range(1000):
        world.step(0.01)
    np.testing.assert_allclose(world.q, world.command, atol=1e-6)
    assert np.all(world.q >= world.arm.lower)
    assert np.all(world.q <= world.arm.upper)


def test_tracking_is_first_order_for_small_moves():
    world = World(seed=0)
    target = world.q + np.array([0.01, 0.0])
    world.set_command(target)
    world.step(world.arm.tracking_time_constant_s / 10)
    assert 0.0 < world.q[0] - (target[0] - 0.01) < 0.01


def test_non_finite_commands_are_refused():
    world = World(seed=0)
    with pytest.raises(ValueError, match="finite"):
        world.set_command(np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="2 finite numbers"):
        world.set_command(np.array([0.0, 0.0, 0.0]))


def test_layouts_are_reproducible_reachable_and_separated():
    arm, spec = ArmSpec(), LayoutSpec()
    first = random_layout(np.random.default_rng(5), arm, spec)
    assert first == random_layout(np.random.default_rng(5), arm, spec)
    rng = np.random.default_rng(6)
    for _ in range(200):
        objects = random_layout(rng, arm, spec)
        assert sorted(o.name for o in objects) == ["blue block", "green ball", "red cup"]
        points = np.array([o.position for o in objects])
        for i in range(3):
            inverse_kinematics(points[i], arm)
            for j in range(i + 1, 3):
                assert np.linalg.norm(points[i] - points[j]) >= spec.min_separation_m


def test_reset_changes_the_layout_and_homes_the_arm():
    world = World(seed=1)
    before = world.objects
    world.set_command(np.array([0.0, 0.0]))
    world.step(1.0)
    world.reset()
    assert world.objects != before
    np.testing.assert_allclose(world.q, world.arm.home)
    assert world.target is None


def test_success_needs_the_end_effector_to_stay_on_the_target():
    world = World(seed=2)
    target = world.objects[0]
    world.set_target(target.name)
    goal = inverse_kinematics(np.asarray(target.position), world.arm)
    world.q = goal.copy()
    world.set_command(goal)
    for _ in range(20):
        world.step(0.01)
    assert not world.success  # inside, but not for hold_s yet
    for _ in range(10):
        world.step(0.01)
    assert world.success
    assert world.success_time_s == pytest.approx(0.26, abs=0.011)  # from the first step inside + hold_s
    assert world.target_distance() < 1e-9
    with pytest.raises(KeyError, match="no object named"):
        world.set_target("purple pyramid")


def test_homing_drives_the_arm_home_within_its_velocity_limit_and_ignores_commands():
    world = World(seed=3)
    world.set_command(np.array([-1.0, -2.0]))
    for _ in range(400):
        world.step(0.01)
    start = world.q.copy()
    world.home()
    assert world.homing
    assert not world.set_command(np.array([0.0, 0.0]))  # the homing owns the arm
    assert world.ignored_commands == 1
    positions = [world.q.copy()]
    while world.homing:
        world.step(0.01)
        positions.append(world.q.copy())
        assert len(positions) < 1000, "homing never ended"
    steps = np.abs(np.diff(positions, axis=0)) / 0.01
    assert steps.max() <= max(world.arm.velocity_limit) + 1e-9
    np.testing.assert_allclose(world.q, world.arm.home, atol=1e-3)
    assert np.abs(start - world.q).max() > 1.0  # it really travelled
    assert world.set_command(np.array([0.0, 0.0]))
