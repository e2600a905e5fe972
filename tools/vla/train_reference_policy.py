#!/usr/bin/env python3
"""Train the reference vision-language policy on expert demonstrations (CPU, a few minutes).

Reads the .npz of tools/vla/make_dataset.py, embeds each distinct instruction once with MiniLM,
fits vla_node.reference_policy.ReferencePolicyNet by behaviour cloning (smooth L1 on the chunk),
then measures the policy's own closed-loop success offline and writes the checkpoint
(model.safetensors + metadata.yaml with the command, dataset seed, version and metrics).

    python tools/vla/make_dataset.py --episodes 1000 --seed 0
    python tools/vla/train_reference_policy.py --dataset out/vla/dataset.npz
"""

from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tabletop_sim.episode import LoopSpec, run_episodes
from tabletop_sim.render import Camera
from vla_node.policy import Observation
from vla_node.reference_policy import (
    IMAGE_KEY,
    NetConfig,
    ReferencePolicy,
    ReferencePolicyNet,
    save_checkpoint,
)
from vla_node.text_encoder import TextEncoder

REPO = Path(__file__).resolve().parents[2]

CHECKPOINT_VERSION = "reference-v1"


def git_version() -> str:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def split_by_episode(episode_ids: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    episodes = np.unique(episode_ids)
    held_out = np.random.default_rng(seed).choice(
        episodes, size=max(1, int(len(episodes) * fraction)), replace=False
    )
    validation = np.isin(episode_ids, held_out)
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def batch_tensors(data: dict[str, torch.Tensor], index: np.ndarray) -> tuple[torch.Tensor, ...]:
    picked = torch.from_numpy(index)
    images = data["images"][picked].permute(0, 3, 1, 2).float().div_(255.0)
    return (
        images,
        data["states"][picked],
        data["embeddings"][data["instruction_ids"][picked]],
        data["chunks"][picked],
        data["goals"][picked],
    )


def evaluate_loss(net: ReferencePolicyNet, data: dict[str, torch.Tensor], index: np.ndarray) -> float:
    net.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(index), 512):
            images, states, texts, chunks, _ = batch_tensors(data, index[start : start + 512])
            total += float(
                torch.nn.functional.smooth_l1_loss(
                    net(images, states, texts), chunks, beta=0.05, reduction="sum"
                )
            )
    net.train()
    return total / (len(index) * chunks.shape[1] * chunks.shape[2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("out/vla/dataset.npz"))
    parser.add_argument("--out", type=Path, default=Path("vla_node/models/reference"))
    parser.add_argument("--steps", type=int, default=2500, help="optimiser steps")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--goal-weight", type=float, default=1.0, help="weight of the auxiliary goal loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core machine)"
    )
    parser.add_argument("--max-minutes", type=float, default=9.0, help="stop training early after this long")
    parser.add_argument(
        "--eval-episodes", type=int, default=50, help="offline closed-loop episodes after training"
    )
    parser.add_argument("--eval-seed", type=int, default=1000)
    args = parser.parse_args(argv)
    command = "python tools/vla/train_reference_policy.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.monotonic()

    raw = np.load(args.dataset)
    print(f"dataset {args.dataset}: {len(raw['states'])} samples, {len(raw['instructions'])} instructions")
    encoder = TextEncoder()
    embeddings = encoder.encode_batch([str(s) for s in raw["instructions"]])
    data = {
        "images": torch.from_numpy(raw["images"]),
        "states": torch.from_numpy(raw["states"]),
        "chunks": torch.from_numpy(raw["chunks"]),
        "goals": torch.from_numpy(raw["goals"]),
        "instruction_ids": torch.from_numpy(raw["instruction_ids"]).long(),
        "embeddings": torch.from_numpy(embeddings),
    }
    height, width = raw["images"].shape[1:3]
    horizon, joints = raw["chunks"].shape[1:]
    config = NetConfig(image_height=height, image_width=width, joints=joints, horizon=horizon)
    train, validation = split_by_episode(raw["episode_ids"], 0.05, args.seed)

    net = ReferencePolicyNet(config)
    optimiser = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
    )
    rng = np.random.default_rng(args.seed)
    train_started = time.monotonic()
    steps_done = 0
    progress = tqdm(range(args.steps), desc="training", unit="step")
    for step in progress:
        images, states, texts, chunks, goals = batch_tensors(data, rng.choice(train, size=args.batch))
        predicted_chunks, predicted_goals = net.predict(images, states, texts)
        chunk_loss = torch.nn.functional.smooth_l1_loss(predicted_chunks, chunks, beta=0.05)
        goal_loss = torch.nn.functional.smooth_l1_loss(predicted_goals, goals, beta=0.05)
        loss = chunk_loss + args.goal_weight * goal_loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        steps_done = step + 1
        if step % 50 == 0:
            progress.set_postfix(chunk=f"{chunk_loss.item():.4f}", goal=f"{goal_loss.item():.4f}")
        if time.monotonic() - train_started > args.max_minutes * 60:
            print(f"stopping after {steps_done} steps: --max-minutes {args.max_minutes} reached")
            break
    train_s = time.monotonic() - train_started
    metrics = {
        "train_steps": steps_done,
        "train_time_s": round(train_s, 1),
        "train_loss": round(evaluate_loss(net, data, train[:4096]), 5),
        "validation_loss": round(evaluate_loss(net, data, validation), 5),
    }
    print(f"trained {steps_done} steps in {train_s:.0f} s; losses {metrics}")

    metadata = {
        "version": CHECKPOINT_VERSION,
        "git": git_version(),
        "joint_names": [str(n) for n in raw["joint_names"]],
        "image_key": IMAGE_KEY,
        "image_size": [int(height), int(width)],
        "chunk_length": int(horizon),
        "control_period_s": float(raw["control_period_s"]),
        "text_encoder": "all-MiniLM-L6-v2 (mean pooling, L2-normalised, 384-d)",
        "training_command": command,
        "dataset": {
            "path": str(args.dataset),
            "seed": int(raw["seed"]),
            "episodes": int(raw["episodes"]),
            "samples": len(raw["states"]),
        },
        "metrics": metrics,
    }
    save_checkpoint(args.out, net, metadata)
    if args.eval_episodes:
        policy = ReferencePolicy(args.out, instruction_encoder=encoder.encode)
        bar = tqdm(total=args.eval_episodes, desc="offline evaluation", unit="ep")

        def controller_for():
            policy.reset()
            return lambda image, q, text: policy.predict_chunk(Observation({IMAGE_KEY: image}, q, text))

        results = run_episodes(
            controller_for, args.eval_episodes, args.eval_seed, Camera(), LoopSpec(), lambda _: bar.update()
        )
        bar.close()
        successes = [r for r in results if r.success]
        metrics["offline_eval"] = {
            "episodes": len(results),
            "seed": args.eval_seed,
            "success_rate": round(len(successes) / len(results), 3),
            "median_time_to_success_s": round(float(np.median([r.time_to_success_s for r in successes])), 3)
            if successes
            else None,
        }
        save_checkpoint(args.out, net, metadata)
        print(f"offline closed loop: {metrics['offline_eval']}")
    print(f"checkpoint → {args.out} (total {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
