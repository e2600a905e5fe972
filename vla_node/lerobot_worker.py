"""The LeRobot policy worker: runs inside .venv-lerobot, started by vla_node.backends.LeRobotPolicy.

Reads frames (vla_node/framing.py) on stdin and answers each on stdout; logs go to stderr.
Requests: {"op": "load", "path", "device"} → the checkpoint's features; {"op": "reset"};
{"op": "predict", "instruction"} with one (3, h, w) float32 array per image feature (named by the
policy's image key) and "state" → "chunk" (horizon, action_dim) float32; {"op": "close"}.
Any failure is answered with {"op": "error", "message"}; the worker keeps serving.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vla_node.framing import ProtocolError, read_frame, write_frame

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
log = logging.getLogger("lerobot_worker")


class Worker:
    def __init__(self) -> None:
        self.policy = None
        self.preprocess = None
        self.postprocess = None
        self.image_features: dict[str, str] = {}  # image key → LeRobot feature key

    def load(self, path: str, device: str) -> dict[str, Any]:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.configs.types import FeatureType
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        config = PreTrainedConfig.from_pretrained(path)
        config.device = device
        log.info("loading %s policy from %s on %s", config.type, path, device)
        self.policy = get_policy_class(config.type).from_pretrained(path, config=config)
        self.policy.eval()
        if (Path(path) / "policy_preprocessor.json").is_file():
            self.preprocess, self.postprocess = make_pre_post_processors(config, pretrained_path=path)
        visual = {k: f for k, f in config.input_features.items() if f.type is FeatureType.VISUAL}
        self.image_features = {k.removeprefix(IMAGE_PREFIX): k for k in visual}
        state = config.input_features.get(STATE_KEY)
        action = config.output_features["action"]
        return {
            "op": "loaded",
            "policy_type": config.type,
            "image_features": self.image_features,
            "image_size": {
                key: list(visual[feature].shape[1:]) for key, feature in self.image_features.items()
            },
            "state_dim": int(state.shape[0]) if state else 0,
            "action_dim": int(action.shape[0]),
            "chunk_length": int(getattr(config, "chunk_size", None) or config.n_action_steps),
        }

    def predict(self, instruction: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        batch: dict[str, Any] = {STATE_KEY: torch.from_numpy(arrays["state"].astype(np.float32))}
        for key, feature in self.image_features.items():
            batch[feature] = torch.from_numpy(arrays[key].astype(np.float32))
        batch["task"] = instruction
        if self.preprocess is not None:
            batch = self.preprocess(batch)
        else:
            device = self.policy.config.device
            batch = {k: v[None].to(device) if isinstance(v, torch.Tensor) else [v] for k, v in batch.items()}
        with torch.inference_mode():
            chunk = self.policy.predict_action_chunk(batch)
        if self.postprocess is not None:
            chunk = self.postprocess(chunk)
        return chunk[0].detach().cpu().numpy().astype(np.float32)

    def handle(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
        op = header.get("op")
        if op == "load":
            return self.load(header["path"], header.get("device", "cpu")), {}
        if self.policy is None:
            raise RuntimeError(f"request {op!r} before a successful load")
        if op == "reset":
            self.policy.reset()
            return {"op": "ok"}, {}
        if op == "predict":
            missing = {*self.image_features, "state"} - set(arrays)
            if missing:
                raise ValueError(f"predict lacks arrays {sorted(missing)}")
            return {"op": "chunk"}, {"chunk": self.predict(str(header.get("instruction", "")), arrays)}
        raise ValueError(f"unknown request {op!r}")


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    worker = Worker()
    while True:
        try:
            header, arrays = read_frame(requests)
        except ProtocolError as error:
            log.info("input closed or invalid (%s): exiting", error)
            return
        if header.get("op") == "close":
            return
        try:
            reply, out = worker.handle(header, arrays)
        except Exception as error:  # report every failure to the node, keep serving
            log.exception("request %s failed", header.get("op"))
            reply, out = {"op": "error", "message": f"{type(error).__name__}: {error}"}, {}
        write_frame(replies, reply, out)


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[lerobot_worker] %(message)s")
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints of libraries must not corrupt frames
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
