#!/usr/bin/env python3
"""Record expert demonstrations of the tabletop reference task (offline, no ROS) into one .npz.

Each episode: a random layout, a random instruction, the arm at home or at a random pose; the
expert is asked every control period for a chunk (the label) and the executed command carries a
smooth random perturbation on some episodes, so the data also shows how to recover from being off
the expert's path. Samples are taken at a random subset of control steps to keep the file small.

    python tools/vla/make_dataset.py --episodes 1000 --seed 0 --out out/vla/dataset.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from tabletop_sim.episode import LoopSpec, run_episode
from tabletop_sim.expert import expert_chunk, goal_joints
from tabletop_sim.instructions import random_instruction
from tabletop_sim.render import Camera
from tabletop_sim.world import JOINT_NAMES, World

HORIZON = 16
CONTROL_PERIOD_S = 1 / 24
START_RANGES = ((-0.6, 2.9), (-1.5, 2.5))  # random start poses (rad), inside the joint limits


class DemonstrationRecorder:
    """The controller of a demonstration episode: labels with the expert, records, perturbs."""

    def __init__(
        self, rng: np.random.Generator, world: World, sample_fraction: float, image_size: tuple[int, int]
    ) -> None:
        self.rng, self.world, self.sample_fraction, self.image_size = rng, world, sample_fraction, image_size
        self.images: list[np.ndarray] = []
        self.states: list[np.ndarray] = []
        self.chunks: list[np.ndarray] = []
        self.goals: list[np.ndarray] = []
        self.instruction_ids: list[int] = []
        self.episode_ids: list[int] = []
        self.instructions: dict[str, int] = {}

    def start_episode(self, episode: int, goal: np.ndarray, perturbed: bool) -> None:
        self.episode, self.goal = episode, goal
        self.noise_scale = 0.05 if perturbed else 0.0
        self.noise_until_s = self.rng.uniform(0.5, 2.5)  # then the perturbation fades, the expert finishes
        self.offset = np.zeros(2)

    def __call__(self, image: np.ndarray, q: np.ndarray, instruction: str) -> np.ndarray:
        label = expert_chunk(q, self.goal, HORIZON, CONTROL_PERIOD_S)
        if self.rng.random() < self.sample_fraction:
            self.images.append(cv2.resize(image, self.image_size[::-1], interpolation=cv2.INTER_AREA))
            self.states.append(q.astype(np.float32))
            self.chunks.append(label)
            self.goals.append(self.goal.astype(np.float32))
            self.instruction_ids.append(self.instructions.setdefault(instruction, len(self.instructions)))
            self.episode_ids.append(self.episode)
        perturbing = self.world.elapsed_s() < self.noise_until_s
        noise = self.rng.normal(0.0, self.noise_scale, size=2) if perturbing else 0.0
        self.offset = 0.9 * self.offset + noise
        return label + self.offset.astype(np.float32)


def make_dataset(
    episodes: int,
    seed: int,
    sample_fraction: float,
    perturbed_fraction: float,
    camera: Camera,
    image_size: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Demonstrations with images already resized to the policy's (height, width) `image_size`."""
    rng = np.random.default_rng(seed)
    world = World(seed=seed)
    loop = LoopSpec(control_period_s=CONTROL_PERIOD_S, execute_steps=1, timeout_s=8.0, linger_s=0.5)
    recorder = DemonstrationRecorder(rng, world, sample_fraction, image_size)
    failures = 0
    for episode in tqdm(range(episodes), desc="episodes", unit="ep"):
        start = None if rng.random() < 0.5 else np.array([rng.uniform(*r) for r in START_RANGES])
        world.reset(start)
        instruction, target = random_instruction(rng)
        recorder.start_episode(
            episode, goal_joints(world, target), perturbed=rng.random() < perturbed_fraction
        )
        failures += not run_episode(world, instruction, target, recorder, camera, loop).success
    if failures:
        print(f"warning: the perturbed expert failed {failures} of {episodes} episodes", file=sys.stderr)
    return {
        "images": np.stack(recorder.images),
        "states": np.stack(recorder.states),
        "chunks": np.stack(recorder.chunks),
        "goals": np.stack(recorder.goals),  # the expert's goal joints (an auxiliary training target)
        "instruction_ids": np.asarray(recorder.instruction_ids, dtype=np.int32),
        "episode_ids": np.asarray(recorder.episode_ids, dtype=np.int32),
        "instructions": np.asarray(list(recorder.instructions)),
        "joint_names": np.asarray(JOINT_NAMES),
        "control_period_s": np.float64(CONTROL_PERIOD_S),
        "seed": np.int64(seed),
        "episodes": np.int64(episodes),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-fraction", type=float, default=0.25, help="share of control steps kept")
    parser.add_argument("--perturbed-fraction", type=float, default=0.6, help="share of perturbed episodes")
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=(48, 64),
        metavar=("H", "W"),
        help="image size the policy sees (the camera renders 320x240)",
    )
    parser.add_argument("--out", type=Path, default=Path("out/vla/dataset.npz"))
    args = parser.parse_args(argv)
    if args.episodes < 1 or not 0 < args.sample_fraction <= 1 or not 0 <= args.perturbed_fraction <= 1:
        parser.error("--episodes must be >= 1, --sample-fraction in (0, 1], --perturbed-fraction in [0, 1]")
    started = time.monotonic()
    data = make_dataset(
        args.episodes,
        args.seed,
        args.sample_fraction,
        args.perturbed_fraction,
        Camera(),
        tuple(args.image_size),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(tmp, **data)
    tmp.replace(args.out)
    size_mb = args.out.stat().st_size / 1e6
    print(
        f"{len(data['states'])} samples from {args.episodes} episodes, {len(data['instructions'])} distinct "
        f"instructions → {args.out} ({size_mb:.1f} MB, {time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
