"""Shared by the vla_node tests: small real policies exported to ONNX, and a camera/robot feeder."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sensor_msgs.msg import Image, JointState
from torch import nn

from humanoid_common.images import numpy_to_image
from humanoid_common.qos import load_qos_config

JOINTS = ("shoulder_joint", "elbow_joint")  # as in config/vla_limits.yaml
HORIZON = 12


class DriftPolicyNet(nn.Module):
    """Moves every joint by `step` per chunk step from the current state, brightness-dependent.
    With `nan_above`, a shoulder position above it makes the whole chunk NaN (invalid actions)."""

    def __init__(self, step: float, nan_above: float | None) -> None:
        super().__init__()
        self.step = step
        self.nan_above = nan_above

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        brightness = image.mean(dim=(1, 2, 3))[:, None, None]
        steps = torch.arange(1, HORIZON + 1, dtype=torch.float32)[None, :, None]
        chunk = state[:, None, :] + self.step * steps * (0.5 + brightness)
        if self.nan_above is not None:
            bad = (state[:, :1] > self.nan_above)[:, :, None]
            chunk = torch.where(bad, torch.full_like(chunk, float("nan")), chunk)
        return chunk


def export_drift_policy(folder: Path, step: float = 0.002, nan_above: float | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(1, 3, 32, 32), torch.zeros(1, len(JOINTS)))
    with warnings.catch_warnings():  # the legacy exporter needs no onnxscript; it warns about itself
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            DriftPolicyNet(step, nan_above).eval(),
            example,
            str(folder / "policy.onnx"),
            input_names=["image", "state"],
            output_names=["chunk"],
            dynamo=False,
        )
    metadata = {
        "name": f"drift{step}",
        "image_keys": ["camera"],
        "image_size": {"camera": [32, 32]},
        "state_dim": len(JOINTS),
        "action_dim": len(JOINTS),
        "joint_names": list(JOINTS),
        "chunk_length": HORIZON,
        "control_period_s": 0.04,
    }
    spec = {
        "metadata": metadata,
        "inputs": {"images": {"camera": "image"}, "state": "state"},
        "output": "chunk",
    }
    (folder / "policy.json").write_text(json.dumps(spec))
    return folder


class Feeder:
    """Publishes a camera image (30 Hz) and joint states (100 Hz) on a node; either can be paused."""

    def __init__(self, node, positions=(0.0, 0.0), image_shape=(48, 64, 3), joint_names=JOINTS) -> None:
        qos = load_qos_config()
        self.node = node
        self.camera_on = True
        self.joints_on = True
        self.positions = list(positions)
        self.joint_names = list(joint_names)
        self.last_image_s: float | None = None
        self._image = numpy_to_image(np.full(image_shape, 128, np.uint8), "rgb8")
        self._image_pub = node.create_publisher(Image, "/camera/image_raw", qos.profile("/camera/image_raw"))
        self._joint_pub = node.create_publisher(JointState, "/joint_states", qos.profile("/joint_states"))
        node.create_timer(1 / 30, self._publish_image)
        node.create_timer(1 / 100, self._publish_joints)

    def _publish_image(self) -> None:
        if self.camera_on:
            self._image.header.stamp = self.node.get_clock().now().to_msg()
            self._image_pub.publish(self._image)
            self.last_image_s = time.monotonic()

    def _publish_joints(self) -> None:
        if self.joints_on:
            msg = JointState(name=self.joint_names, position=[float(p) for p in self.positions])
            msg.header.stamp = self.node.get_clock().now().to_msg()
            self._joint_pub.publish(msg)
