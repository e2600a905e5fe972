"""Create a small LeRobot ACT checkpoint with random weights (runs inside .venv-lerobot).

For tests and benchmarks of the LeRobot backend without any hub access: no pretrained backbone,
random weights, identity normalisation statistics. Its actions are meaningless; it exercises the
real loading and inference code of lerobot.

    .venv-lerobot/bin/python -m vla_node.lerobot_act_checkpoint OUT_DIR [--joints 3] [--image 96 96]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def make_checkpoint(out: Path, joints: int, height: int, width: int, chunk: int, seed: int = 0) -> None:
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(seed)
    config = ACTConfig(
        input_features={
            "observation.images.camera": PolicyFeature(FeatureType.VISUAL, (3, height, width)),
            "observation.state": PolicyFeature(FeatureType.STATE, (joints,)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (joints,))},
        chunk_size=chunk,
        n_action_steps=chunk,
        pretrained_backbone_weights=None,
        dim_model=64,
        n_heads=2,
        dim_feedforward=128,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
        device="cpu",
    )
    policy = ACTPolicy(config)
    stats = {
        key: {"mean": torch.zeros(joints), "std": torch.ones(joints)}
        for key in ("observation.state", "action")
    }
    stats["observation.images.camera"] = {"mean": torch.zeros(3, 1, 1), "std": torch.ones(3, 1, 1)}
    preprocess, postprocess = make_pre_post_processors(config, dataset_stats=stats)
    out.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out)
    preprocess.save_pretrained(out)
    postprocess.save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--joints", type=int, default=3)
    parser.add_argument("--image", type=int, nargs=2, default=(96, 96), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--chunk", type=int, default=20)
    args = parser.parse_args()
    make_checkpoint(args.out, args.joints, *args.image, args.chunk)
    print(f"ACT checkpoint with random weights written to {args.out}")


if __name__ == "__main__":
    main()
