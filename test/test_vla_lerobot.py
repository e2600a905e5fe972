"""The LeRobot backend end to end: a random-weight ACT checkpoint made in .venv-lerobot, served by
the worker process, driving the vla_node over real topics."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
from rclpy.parameter import Parameter
from std_msgs.msg import String
from test_vla_node import set_enabled
from trajectory_msgs.msg import JointTrajectory
from vla_fixtures import JOINTS, Feeder

from harness import REPO, wait_for
from humanoid_common.qos import load_qos_config
from humanoid_stack.msg import ActionChunk
from vla_node.backends import LEROBOT_VENV
from vla_node.node import VlaNode

LEROBOT_PYTHON = LEROBOT_VENV / "bin" / "python"
# 48 steps at 24 Hz = 2 s of actions: longer than the worker's latency on a loaded 2-core machine,
# so latency-aware alignment keeps part of every chunk (a 10-step chunk can arrive entirely stale).
CHUNK = 48
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # needs .venv-lerobot (make setup creates it)


@pytest.fixture(scope="module")
def act_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("act") / "checkpoint"
    env = {
        k: v for k, v in os.environ.items() if k not in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH")
    }
    subprocess.run(
        [
            str(LEROBOT_PYTHON),
            "-m",
            "vla_node.lerobot_act_checkpoint",
            str(out),
            "--joints",
            "2",
            "--chunk",
            str(CHUNK),
        ],
        cwd=REPO,
        env={**env, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
        check=True,
        timeout=180,
    )
    return out


def test_act_checkpoint_drives_the_node(ros, act_checkpoint):
    node = VlaNode(
        context=ros.context,
        parameter_overrides=[
            Parameter("policy", value=f"lerobot:{act_checkpoint}"),
            # a slow model on a shared CPU: generous ages so the test is about the data path
            Parameter("max_camera_age_ms", value=1000.0),
            Parameter("max_joint_state_age_ms", value=1000.0),
        ],
    )
    ros.add(node)
    try:
        assert node.policy is not None, "the LeRobot policy did not load"
        meta = node.policy.metadata
        assert meta.joint_names == JOINTS
        assert meta.chunk_length == CHUNK
        assert meta.image_keys == ("camera",)
        helper = ros.node("lerobot_driver")
        qos = load_qos_config()
        commands = ros.collect(JointTrajectory, "/vla/joint_command", qos.profile("/vla/joint_command"))
        chunks = ros.collect(ActionChunk, "/vla/action_chunk", qos.profile("/vla/action_chunk"))
        Feeder(helper)
        helper.create_publisher(String, "/vla/instruction", qos.profile("/vla/instruction")).publish(
            String(data="touch the green block")
        )
        set_enabled(ros, helper, True)
        wait_for(lambda: len(chunks) >= 2, 60, "ACT chunks from the LeRobot worker")
        assert chunks[0].policy.startswith("lerobot:")
        assert chunks[0].horizon == CHUNK
        assert np.isfinite(chunks[0].positions).all()
        wait_for(lambda: node.safety.counts["sent"] >= 5, 30, "commands from ACT actions")
        assert commands
        assert all(len(c.points[0].positions) == 2 for c in commands)
    finally:
        node.release()
    assert node.policy is None
