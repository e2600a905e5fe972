"""The shared lifecycle plumbing: a node that cannot start exits non-zero, one that can runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import REPO


@pytest.mark.integration
def test_a_node_whose_autostart_fails_exits_with_status_1():
    result = subprocess.run(
        [sys.executable, "-m", "tabletop_sim.node", "--ros-args", "-p", "physics_rate_hz:=0.0"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    log = result.stdout + result.stderr
    assert "physics_rate_hz" in log
    assert "autostart failed" in log


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
