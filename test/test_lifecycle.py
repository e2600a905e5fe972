"""The shared lifecycle plumbing: a node that cannot start exits non-zero, one that can runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import REPO
from humanoid_common.config import EXIT_CANNOT_START


@pytest.mark.integration
def test_a_node_whose_autostart_fails_exits_with_the_cannot_start_status():
    bad = ["-p", "physics_rate_hz:=0.0", "-p", "physics_rat:=1.0"]  # an invalid value, a typo
    result = subprocess.run(
        [sys.executable, "-m", "tabletop_sim.node", "--ros-args", *bad],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == EXIT_CANNOT_START, result.stdout + result.stderr
    log = result.stdout + result.stderr
    assert "physics_rate_hz" in log
    assert "autostart failed" in log
    assert "ignoring parameters this node does not have: physics_rat" in log  # a typo is named


@pytest.mark.integration
def test_a_node_started_by_hand_configures_only_when_asked(ros):
    from lifecycle_msgs.msg import State
    from rclpy.parameter import Parameter

    from tabletop_sim.node import TabletopSimNode

    node = TabletopSimNode(context=ros.context, parameter_overrides=[Parameter("autostart", value=False)])
    ros.add(node)
    assert node.autostart_ok
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
    node.trigger_configure()
    node.trigger_activate()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_ACTIVE
    node.trigger_deactivate()
    node.trigger_cleanup()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


BROKEN_NODE = """
import sys
from humanoid_common.lifecycle import ManagedNode, run_node

class Boom(Exception):
    pass

class Broken(ManagedNode):
    def __init__(self):
        super().__init__("broken")
        self.autostart()

    def on_configure(self, state):
        raise Boom("the reason a user must see")

sys.exit(run_node(Broken))
"""


@pytest.mark.integration
def test_any_exception_in_a_transition_is_printed_with_its_reason():
    result = _run(BROKEN_NODE)
    log = result.stdout + result.stderr
    assert result.returncode == EXIT_CANNOT_START, log
    assert "cannot configure: Boom: the reason a user must see" in log
    assert "Traceback" in log  # not a foreseen error: where it happened
    assert "in on_configure" in log


@pytest.mark.integration
@pytest.mark.parametrize("node", ["perception_node", "memory_node", "vla_node", "people_scene"])
def test_a_node_without_its_assets_says_how_to_get_them(node, tmp_path):
    args = ["--ros-args", "-p", "policy:=onnx:vla_node/models/reference"] if node == "vla_node" else []
    start = (
        f"import sys; sys.argv += {args}; from humanoid_bringup.executables import {node}; sys.exit({node}())"
    )
    result = _run(start, {"HUMANOID_ASSETS": str(tmp_path / "none")})
    log = result.stdout + result.stderr
    assert result.returncode == EXIT_CANNOT_START, log
    assert f"no asset index found (searched {tmp_path / 'none' / 'index.json'})" in log
    assert "ros2 run humanoid_stack fetch_assets" in log


@pytest.mark.integration
def test_a_missing_python_package_is_one_line_and_no_respawn():
    block = "import sys; sys.modules['onnxruntime'] = None; "  # as if it were not installed
    result = _run(block + "from humanoid_bringup.executables import memory_node; sys.exit(memory_node())")
    assert result.returncode == EXIT_CANNOT_START, result.stderr
    assert "[memory_node] cannot start: the Python module 'onnxruntime' is not installed" in result.stderr
    assert "requirements/robot.txt" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (["backend:=gpu", "device:=cuda:0"], "backend gpu needs a CUDA device"),
        (["tracker:=botsort"], "is available with backend 'ultralytics' only"),
    ],
)
def test_perception_refuses_what_its_backend_cannot_do_with_the_reason(params, reason):
    if reason.startswith("backend gpu"):
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA: the gpu backend would start")
    args = [arg for param in params for arg in ("-p", param)]
    result = subprocess.run(
        [sys.executable, "-m", "perception_node.node", "--ros-args", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    log = result.stdout + result.stderr
    assert result.returncode == EXIT_CANNOT_START, log
    assert reason in log
