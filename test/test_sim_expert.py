"""The scripted expert solves every layout; its chunks are smooth and within the limits."""

from __future__ import annotations

import numpy as np

from tabletop_sim.episode import LoopSpec, run_episodes
from tabletop_sim.expert import ExpertSpec, expert_chunk, goal_joints
from tabletop_sim.render import Camera
from tabletop_sim.world import World


def test_chunk_moves_towards_the_goal_no_faster_than_the_expert_speed():
    q, goal, dt = np.array([0.0, 0.0]), np.array([2.0, -1.0]), 1 / 24
    chunk = expert_chunk(q, goal, 16, dt)
    assert chunk.shape == (16, 2)
    assert chunk.dtype == np.float32
    steps = np.abs(np.diff(np.vstack([q, chunk]), axis=0))
    assert steps.max() <= ExpertSpec().speed_rad_s * dt + 1e-6
    distance = np.abs(chunk - goal).max(axis=1)
    assert np.all(np.diff(distance) < 0)
    np.testing.assert_allclose(expert_chunk(goal, goal, 4, dt), np.repeat(goal[None], 4, 0))


def test_expert_solves_100_random_layouts():
    world = World(seed=0)

    def expert_for():
        goal = {}

        def act(image, q, instruction):
            if "goal" not in goal:
                goal["goal"] = goal_joints(world, world.target)
            return expert_chunk(q, goal["goal"], 16, 1 / 24)

        return act

    results = run_episodes(expert_for, 100, 11, Camera(64, 48), LoopSpec(execute_steps=4), world=world)
    assert all(r.success for r in results), [r for r in results if not r.success]
    assert max(r.time_to_success_s for r in results) < 5.0
