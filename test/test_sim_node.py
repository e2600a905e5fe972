"""The sim node over real rclpy topics: images, joint states, commands, instructions, reset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Duration
from fuzz.observe import StatusBoard
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from harness import wait_for
from humanoid_common.images import image_to_numpy
from humanoid_common.qos import load_qos_config
from tabletop_sim.node import TabletopSimNode
from tabletop_sim.world import JOINT_NAMES

pytestmark = pytest.mark.integration


def command(positions, names=JOINT_NAMES) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    msg.points = [JointTrajectoryPoint(positions=list(positions), time_from_start=Duration())]
    return msg


def test_sim_node_publishes_follows_commands_and_resets(ros):
    sim = ros.add(
        TabletopSimNode(
            context=ros.context,
            parameter_overrides=[rclpy.parameter.Parameter("seed", value=3)],
        )
    )
    qos = load_qos_config()
    images = ros.collect(Image, "/camera/image_raw", qos.profile("/camera/image_raw", for_subscription=True))
    infos = ros.collect(
        CameraInfo, "/camera/camera_info", qos.profile("/camera/camera_info", for_subscription=True)
    )
    joints = ros.collect(JointState, "/joint_states", qos.profile("/joint_states", for_subscription=True))
    statuses = ros.collect(String, "/sim/status", qos.profile("/sim/status", for_subscription=True))
    diagnostics = StatusBoard(ros.node("sim_diagnostics"), {"tabletop_sim: inputs"})
    client_node = ros.node("sim_client")
    commands = client_node.create_publisher(
        JointTrajectory, "/vla/joint_command", qos.profile("/vla/joint_command")
    )
    instructions = client_node.create_publisher(String, "/vla/instruction", qos.profile("/vla/instruction"))
    reset = client_node.create_client(Trigger, "/tabletop_sim/reset")

    wait_for(
        lambda: images and infos and len(joints) > 5 and statuses, 10, "images, camera_info, joint states"
    )
    image = image_to_numpy(images[-1])
    assert image.shape == (240, 320, 3)
    assert images[-1].encoding == "rgb8"
    assert infos[-1].width == 320
    assert infos[-1].k[0] > 0
    assert list(joints[-1].name) == list(JOINT_NAMES)
    home = np.array(joints[-1].position)

    # Malformed commands and instructions are dropped and counted, a good command moves the arm.
    wait_for(lambda: commands.get_subscription_count() > 0, 10, "the sim subscribing to commands")
    bad_commands = [
        command([1.0], names=["shoulder_joint"]),
        command([float("nan"), 0.0]),
        command([0.0, 0.0], names=["x" * 100_000, "elbow_joint"]),
        command([0.0, 0.0], names=["shoulder_joint", "shoulder_joint"]),
        command([0.0, 0.0, 0.0], names=[*JOINT_NAMES, "wrist_joint"]),
    ]
    bad_commands[-1].header.stamp.sec = -5
    for count, bad in enumerate(bad_commands, start=1):  # reliable, depth 1: one at a time
        commands.publish(bad)
        wait_for(lambda n=count: sim.command_sub.health.dropped == n, 10, f"bad command {count} counted")
    instructions.publish(String(data="touch the " + "red cup " * 100_000))
    wait_for(lambda: sim.instruction_sub.health.dropped == 1, 10, "the 800 kB instruction being counted")

    def counted() -> dict | None:
        inputs = diagnostics.get("tabletop_sim: inputs")
        return inputs if inputs and inputs["dropped./vla/joint_command"] == "5" else None

    inputs = wait_for(counted, 10, "the drops on /diagnostics")
    assert inputs["dropped./vla/instruction"] == "1"
    assert len(inputs["last_problem./vla/joint_command"]) < 300
    goal = home + np.array([-0.4, -0.6])
    commands.publish(command(goal))
    wait_for(lambda: np.allclose(joints[-1].position, goal, atol=0.01), 10, "the arm reaching the command")

    # The instruction sets the target the status reports.
    instructions.publish(String(data="touch the green ball"))
    wait_for(
        lambda: json.loads(statuses[-1].data)["target"] == "green ball", 10, "the status naming the target"
    )
    status = json.loads(statuses[-1].data)
    assert status["success"] is False
    assert status["distance_m"] > 0

    # Reset: a new layout and the arm back home.
    layout = status["objects"]
    assert reset.wait_for_service(timeout_sec=10)
    future = reset.call_async(Trigger.Request())
    wait_for(future.done, 10, "the reset service")
    assert future.result().success
    assert "episode 1" in future.result().message
    wait_for(lambda: json.loads(statuses[-1].data)["episode"] == 1, 10, "the status of episode 1")
    status = json.loads(statuses[-1].data)
    assert status["objects"] != layout
    assert status["target"] is None
    # The last command still holds after a reset only until the next one: the arm starts at home.
    commands.publish(command(home))
    wait_for(lambda: np.allclose(joints[-1].position, home, atol=0.01), 10, "the arm at home")
