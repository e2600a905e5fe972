"""The project's reference vision-language policy (PyTorch): network, checkpoint files, Policy backend.

Network: a small CNN over the camera image (plus two pixel-coordinate channels), modulated by the
instruction embedding (FiLM), reduced to keypoints by a spatial softmax. From keypoints and the
projected instruction embedding a small MLP estimates the goal joint positions (trained against the
expert's goal as an auxiliary target); keypoints, instruction features, the normalised joint state
and the goal estimate go through an MLP that predicts the chunk as offsets from the current joint
positions. The output is absolute joint targets.

Checkpoint folder: ``model.safetensors`` (weights only, nothing executes on load) and
``metadata.yaml`` (policy metadata, network configuration, how it was trained and how well it did).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from humanoid_common.config import read_yaml
from vla_node.backends import PolicyLoadError, check_chunk, image_to_chw
from vla_node.policy import Observation, PolicyMetadata

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.yaml"
IMAGE_KEY = "camera"


@dataclass(frozen=True)
class NetConfig:
    """Shapes and sizes of the network; stored in metadata.yaml to rebuild it."""

    image_height: int = 48
    image_width: int = 64
    joints: int = 2
    horizon: int = 16
    text_dim: int = 384
    channels: int = 16
    keypoints: int = 16
    text_features: int = 64
    hidden: int = 256
    state_centre: tuple[float, ...] = (1.05, 0.0)  # joint-range centres (rad), for normalisation
    state_half_range: tuple[float, ...] = (2.25, 2.6)


class SpatialSoftmax(nn.Module):
    """Each feature map → the expected (x, y) of its softmax, in [-1, 1] image coordinates."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, channels = features.shape[:2]
        weights = torch.softmax(features.reshape(batch, channels, -1) / self.log_temperature.exp(), dim=-1)
        return (weights @ self.grid).reshape(batch, channels * 2)


class ReferencePolicyNet(nn.Module):
    """(image (B,3,H,W) in [0,1], state (B,J) rad, instruction (B,384)) → chunk (B,horizon,J) rad."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, config.image_height),
            torch.linspace(-1, 1, config.image_width),
            indexing="ij",
        )
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        self.register_buffer("state_centre", torch.tensor(config.state_centre), persistent=False)
        self.register_buffer("state_half_range", torch.tensor(config.state_half_range), persistent=False)
        self.conv1 = nn.Conv2d(5, c, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(c, c, 3, padding=1)
        self.to_keypoints = nn.Conv2d(c, config.keypoints, 1)
        self.film = nn.Linear(config.text_dim, 4 * c)  # scale and shift after conv2 and conv3
        self.softmax = SpatialSoftmax((config.image_height + 3) // 4, (config.image_width + 3) // 4)
        self.text = nn.Sequential(nn.Linear(config.text_dim, config.text_features), nn.ReLU())
        scene = 2 * config.keypoints + config.text_features
        self.goal_head = nn.Sequential(
            nn.Linear(scene, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.joints)
        )
        inputs = scene + 2 * config.joints
        self.head = nn.Sequential(
            nn.Linear(inputs, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.horizon * config.joints),
        )

    def forward(self, image: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        return self.predict(image, state, instruction)[0]

    def predict(
        self, image: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(chunk (B, horizon, J), goal estimate (B, J)), both in radians."""
        batch = image.shape[0]
        x = torch.cat([image, self.coords.expand(batch, -1, -1, -1)], dim=1)
        scale2, shift2, scale3, shift3 = self.film(instruction)[:, :, None, None].chunk(4, dim=1)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x) * (1 + scale2) + shift2)
        x = torch.relu(self.conv3(x) * (1 + scale3) + shift3)
        keypoints = self.softmax(self.to_keypoints(x))
        scene = torch.cat([keypoints, self.text(instruction)], dim=1)
        goal = self.goal_head(scene)  # normalised joint coordinates
        normalised = (state - self.state_centre) / self.state_half_range
        offsets = self.head(torch.cat([scene, normalised, goal], dim=1))
        chunk = state[:, None, :] + offsets.reshape(batch, self.config.horizon, self.config.joints)
        return chunk, self.state_centre + goal * self.state_half_range


def build_metadata(config: NetConfig, joint_names: tuple[str, ...], control_period_s: float, name: str):
    return PolicyMetadata(
        name=name,
        image_keys=(IMAGE_KEY,),
        image_size={IMAGE_KEY: (config.image_height, config.image_width)},
        state_dim=config.joints,
        action_dim=config.joints,
        joint_names=joint_names,
        chunk_length=config.horizon,
        control_period_s=control_period_s,
    )


def save_checkpoint(directory: Path, net: ReferencePolicyNet, metadata: dict[str, Any]) -> None:
    """Write weights and metadata.yaml (each through a temporary file and an atomic rename)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(weights, str(tmp))
    tmp.chmod(0o644)  # a versioned file, readable like the rest of the checkout
    tmp.replace(directory / WEIGHTS_FILE)
    tmp = directory / (METADATA_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump({**metadata, "network": asdict(net.config)}, sort_keys=False))
    tmp.replace(directory / METADATA_FILE)


def read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    data = read_yaml(path, "reference policy metadata")
    for key in ("network", "joint_names", "control_period_s"):
        if not isinstance(data, dict) or key not in data:
            raise ValueError(
                f"{path}: missing '{key}' (re-create it with tools/vla/train_reference_policy.py)"
            )
    return data


def load_network(directory: Path, device: str = "cpu") -> tuple[ReferencePolicyNet, dict[str, Any]]:
    """The network with its weights (eval mode, on `device`) and the checkpoint's metadata."""
    from safetensors.torch import load_file

    data = read_metadata(directory)
    network = data["network"]
    config = NetConfig(
        **{
            **network,
            "state_centre": tuple(network["state_centre"]),
            "state_half_range": tuple(network["state_half_range"]),
        }
    )
    net = ReferencePolicyNet(config)
    net.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return net.to(device).eval(), data


class ReferencePolicy:
    """The Policy backend: one chunk per observation, instruction embeddings cached per string."""

    def __init__(self, directory: str | Path, device: str = "cpu", *, instruction_encoder=None) -> None:
        directory = Path(directory)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise PolicyLoadError(f"device {device!r}: this PyTorch sees no CUDA device (use cpu)")
        self.net, data = load_network(directory, str(self.device))
        self.metadata = build_metadata(
            self.net.config,
            tuple(data["joint_names"]),
            float(data["control_period_s"]),
            f"reference:{directory}",
        )
        if instruction_encoder is None:
            from vla_node.text_encoder import load_text_encoder

            instruction_encoder = load_text_encoder()
        self._encode = instruction_encoder
        self._embeddings: dict[str, torch.Tensor] = {}

    def reset(self) -> None:
        """Stateless between chunks; nothing to forget."""

    def _embedding(self, text: str) -> torch.Tensor:
        if text not in self._embeddings:
            vector = np.asarray(self._encode(text), dtype=np.float32).reshape(1, -1)
            self._embeddings[text] = torch.from_numpy(vector).to(self.device)
        return self._embeddings[text]

    def predict_chunk(self, observation: Observation) -> np.ndarray:
        meta = self.metadata
        image = image_to_chw(observation.images[IMAGE_KEY], meta.image_size[IMAGE_KEY])
        state = np.asarray(observation.state, dtype=np.float32).reshape(1, meta.state_dim)
        with torch.inference_mode():
            chunk = self.net(
                torch.from_numpy(image[None]).to(self.device),
                torch.from_numpy(state).to(self.device),
                self._embedding(observation.instruction),
            )
        return check_chunk(chunk[0].cpu().numpy(), meta)


def load_reference_policy(path: str | Path, device: str = "cpu", **options: Any) -> ReferencePolicy:
    """Entry point of the `reference:<dir>` backend (vla_node.backends.load_policy)."""
    return ReferencePolicy(path, device, **options)
