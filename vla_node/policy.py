"""The policy interface every VLA backend implements (plain Python, no rclpy).

A policy maps one observation (named camera images, the joint state vector, an instruction) to a
chunk of future actions: `horizon` steps of absolute joint position targets, one every
`control_period_s`. Backends: the project's reference policy (PyTorch), ONNX Runtime exports,
LeRobot checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class PolicyMetadata:
    """What a policy consumes and produces."""

    name: str  # backend and checkpoint, e.g. "reference:vla_node/models/reference"
    image_keys: tuple[str, ...]  # observation image names, e.g. ("camera",)
    image_size: dict[str, tuple[int, int]]  # image name → (height, width) the policy expects
    state_dim: int
    action_dim: int
    joint_names: tuple[str, ...]  # order of the state and action vectors
    chunk_length: int  # steps per predicted chunk (the horizon)
    control_period_s: float  # seconds between consecutive steps of a chunk

    def __post_init__(self) -> None:
        if len(self.joint_names) != self.action_dim:
            raise ValueError(
                f"policy {self.name}: {len(self.joint_names)} joint names for an action dimension of "
                f"{self.action_dim}"
            )
        if self.chunk_length < 1 or self.control_period_s <= 0:
            raise ValueError(f"policy {self.name}: chunk_length must be >= 1 and control_period_s > 0")
        missing = set(self.image_keys) - set(self.image_size)
        if missing:
            raise ValueError(f"policy {self.name}: no image size for {sorted(missing)}")


@dataclass
class Observation:
    """One observation, as the node assembles it from its topics."""

    images: dict[str, np.ndarray]  # image name → (H, W, 3) uint8 RGB
    state: np.ndarray  # (state_dim,) float32 joint positions, in metadata.joint_names order
    instruction: str
    stamp_ns: int = 0  # stamp of the newest input that went into it
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # backend-specific additional inputs


@runtime_checkable
class Policy(Protocol):
    """A loaded policy. `predict_chunk` may be slow; callers run it off the control loop."""

    metadata: PolicyMetadata

    def reset(self) -> None:
        """Forget any episode state (called on a new instruction or after a reset)."""

    def predict_chunk(self, observation: Observation) -> np.ndarray:
        """(chunk_length, action_dim) float32 absolute joint position targets."""
