"""The shared lifecycle plumbing: a node that cannot start exits non-zero, one that can runs."""

from __future__ import annotations

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
