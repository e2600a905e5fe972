"""Inputs from ROS messages turned into policy observations (plain Python, no rclpy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from humanoid_common.config import read_yaml
from humanoid_common.images import to_bgr8
from humanoid_common.validation import InvalidMessageError, bounded_count, quoted

#: More joints than any robot has: a joint state this long is refused before it is indexed.
MAX_JOINTS = 1024


def rgb_image(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """Any 8-bit colour or mono image as an owned (H, W, 3) uint8 RGB array."""
    if encoding == "rgb8":
        return np.array(pixels, dtype=np.uint8, copy=True)
    return cv2.cvtColor(to_bgr8(pixels, encoding), cv2.COLOR_BGR2RGB)


class JointOrderError(InvalidMessageError):
    """A joint state lacks joints the policy needs, names one twice, or is malformed."""


def joint_positions(names: Sequence[str], positions: Sequence[float], order: Sequence[str]) -> np.ndarray:
    """Positions of `order`'s joints, picked by name from a JointState's names/positions (float64:
    the safety layer compares them with limits and commands as they are)."""
    bounded_count(names, "joint state names", MAX_JOINTS)
    if len(names) != len(positions):
        raise JointOrderError(f"joint state has {len(names)} names but {len(positions)} positions")
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise JointOrderError(f"joint state names {quoted(twice)} more than once")
    missing = [name for name in order if name not in index]
    if missing:
        raise JointOrderError(f"joint state lacks joints {missing} (has {len(names)} others)")
    values = np.array([positions[index[name]] for name in order], dtype=np.float64)
    if not np.isfinite(values).all():
        raise JointOrderError(f"joint state has non-finite positions {values.tolist()}")
    return values


@dataclass(frozen=True)
class VlaConfig:
    """config/vla.yaml: which topics feed which observation keys, and backend options."""

    images: dict[str, str]  # policy image key → image topic
    joint_states: str
    backend_options: dict[str, dict]  # backend name → keyword options of load_policy

    @classmethod
    def load(cls, path: str | Path) -> VlaConfig:
        path = Path(path)
        data = read_yaml(path, "VLA config") or {}
        observation = data.get("observation")
        if not isinstance(observation, dict):
            raise ValueError(f"{path}: expected an 'observation' mapping with 'images' and 'joint_states'")
        images = observation.get("images")
        if (
            not isinstance(images, dict)
            or not images
            or not all(isinstance(t, str) and t.startswith("/") for t in images.values())
        ):
            raise ValueError(f"{path}: observation.images must map policy image keys to absolute topics")
        joints = observation.get("joint_states", "/joint_states")
        options = data.get("backends") or {}
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise ValueError(f"{path}: backends must map a backend name to its options")
        return cls({str(k): v for k, v in images.items()}, joints, options)
