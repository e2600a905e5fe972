"""One closed-loop episode of the reference task without ROS: a controller sees the camera image
and the joint state every control period and returns a chunk of joint targets (no rclpy).

Used to record expert demonstrations and to measure a policy's own success rate offline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tabletop_sim.instructions import random_instruction
from tabletop_sim.render import Camera, render
from tabletop_sim.world import World

# controller(image RGB uint8, joint positions, instruction) → (horizon, joints) absolute targets
Controller = Callable[[np.ndarray, np.ndarray, str], np.ndarray]


@dataclass(frozen=True)
class LoopSpec:
    control_period_s: float = 1 / 24
    physics_substeps: int = 4  # world steps per control period
    execute_steps: int = 8  # chunk steps executed before the controller is asked again
    timeout_s: float = 8.0
    linger_s: float = 0.0  # keep running this long after success (demonstrations of holding still)


@dataclass(frozen=True)
class EpisodeResult:
    instruction: str
    target: str
    success: bool
    time_to_success_s: float | None  # from the instruction to success (including the hold time)
    final_distance_m: float
    controller_calls: int


def run_episode(
    world: World, instruction: str, target: str, controller: Controller, camera: Camera, spec: LoopSpec
) -> EpisodeResult:
    """Run from the world's current state until success (+ linger) or timeout."""
    world.set_target(target)
    chunk: np.ndarray | None = None
    index = 0
    calls = 0
    dt = spec.control_period_s / spec.physics_substeps
    while world.elapsed_s() < spec.timeout_s:
        if world.success and world.elapsed_s() >= world.success_time_s + spec.linger_s:
            break
        if chunk is None or index >= min(spec.execute_steps, len(chunk)):
            chunk = np.asarray(controller(render(world, camera), world.q.copy(), instruction))
            index = 0
            calls += 1
        world.set_command(chunk[index])
        index += 1
        for _ in range(spec.physics_substeps):
            world.step(dt)
    return EpisodeResult(
        instruction, target, world.success, world.success_time_s, float(world.target_distance()), calls
    )


def run_episodes(
    controller_for: Callable[[], Controller],
    episodes: int,
    seed: int,
    camera: Camera,
    spec: LoopSpec,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    world: World | None = None,
) -> list[EpisodeResult]:
    """`episodes` random layouts with random instructions, all drawn from `seed` (reproducible).

    `controller_for()` is called at the start of each episode (a fresh controller, e.g. after a
    policy reset). `world`: the world to use (its layouts then come from its own seed).
    """
    rng = np.random.default_rng(seed)
    world = World(seed=seed) if world is None else world
    results = []
    for _ in range(episodes):
        world.reset()
        instruction, target = random_instruction(rng)
        results.append(run_episode(world, instruction, target, controller_for(), camera, spec))
        if on_episode:
            on_episode(results[-1])
    return results
