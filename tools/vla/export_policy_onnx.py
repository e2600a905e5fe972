#!/usr/bin/env python3
"""Export the reference policy to ONNX and check that ONNX Runtime agrees with PyTorch.

Writes ``policy.onnx`` and ``policy.json`` (the description vla_node.backends.OnnxPolicy reads) into
the checkpoint folder. Inputs: ``image`` (B, 3, H, W) float32 in [0, 1], ``state`` (B, joints) rad,
``instruction_embedding`` (B, 384) MiniLM; output ``chunk`` (B, horizon, joints) absolute targets.
The check runs both on rendered scenes of the reference task and fails on a difference above --atol.

    python tools/vla/export_policy_onnx.py --checkpoint vla_node/models/reference
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tabletop_sim.instructions import random_instruction
from tabletop_sim.render import Camera, render
from tabletop_sim.world import World
from vla_node.backends import OnnxPolicy
from vla_node.policy import Observation
from vla_node.reference_policy import IMAGE_KEY, ReferencePolicy, load_network
from vla_node.text_encoder import load_text_encoder

OPSET = 17


def export(checkpoint: Path) -> Path:
    net, _ = load_network(checkpoint)
    config = net.config
    example = (
        torch.rand(1, 3, config.image_height, config.image_width),
        torch.zeros(1, config.joints),
        torch.zeros(1, config.text_dim),
    )
    onnx_path = checkpoint / "policy.onnx"
    tmp = checkpoint / "policy.onnx.tmp"
    torch.onnx.export(
        net,
        example,
        str(tmp),
        input_names=["image", "state", "instruction_embedding"],
        output_names=["chunk"],
        dynamic_axes={name: {0: "batch"} for name in ("image", "state", "instruction_embedding", "chunk")},
        opset_version=OPSET,
        dynamo=False,
    )
    tmp.replace(onnx_path)
    return onnx_path


def write_description(checkpoint: Path, policy: ReferencePolicy) -> None:
    meta = dataclasses.asdict(policy.metadata)
    meta["name"] = f"onnx:{checkpoint / 'policy.onnx'}"
    description = {
        "metadata": meta,
        "inputs": {"images": {IMAGE_KEY: "image"}, "state": "state", "instruction": "instruction_embedding"},
        "output": "chunk",
        "text_encoder": "minilm",
    }
    tmp = checkpoint / "policy.json.tmp"
    tmp.write_text(json.dumps(description, indent=2) + "\n")
    tmp.replace(checkpoint / "policy.json")


def compare(checkpoint: Path, samples: int, seed: int) -> float:
    """Largest |ONNX Runtime - PyTorch| over `samples` rendered observations (radians)."""
    encode = load_text_encoder()
    reference = ReferencePolicy(checkpoint, instruction_encoder=encode)
    onnx = OnnxPolicy(checkpoint, instruction_encoder=encode)
    rng = np.random.default_rng(seed)
    world = World(seed=seed)
    camera = Camera()
    worst = 0.0
    for _ in range(samples):
        world.reset(np.array([rng.uniform(-0.6, 2.9), rng.uniform(-1.5, 2.5)]))
        instruction, _ = random_instruction(rng)
        observation = Observation({IMAGE_KEY: render(world, camera)}, world.q.astype(np.float32), instruction)
        worst = max(
            worst, float(np.abs(reference.predict_chunk(observation) - onnx.predict_chunk(observation)).max())
        )
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("vla_node/models/reference"))
    parser.add_argument("--samples", type=int, default=20, help="rendered observations to compare")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest accepted difference (rad)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    path = export(args.checkpoint)
    write_description(
        args.checkpoint, ReferencePolicy(args.checkpoint, instruction_encoder=lambda _: np.zeros(384))
    )
    worst = compare(args.checkpoint, args.samples, args.seed)
    print(f"{path} ({path.stat().st_size / 1e3:.0f} kB): max |ONNX Runtime - PyTorch| = {worst:.2e} rad")
    if worst > args.atol:
        print(f"error: difference above --atol {args.atol}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
