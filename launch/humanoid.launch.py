"""The whole suite on a robot: the nodes of a robot profile, each its own process, respawned when they die.

    ros2 launch humanoid_stack humanoid.launch.py profile:=orin_nano
    ros2 launch humanoid_stack humanoid.launch.py profile:=desktop_cpu nodes:=perception_node,vla_node
    ros2 launch humanoid_stack humanoid.launch.py --show-args

Arguments and node start-up: launch/_stack.py; the same profiles run here with run_stack
(docs/launch_and_rviz.md).
"""

import importlib.util
from pathlib import Path

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    spec = importlib.util.spec_from_file_location(
        "humanoid_stack_launch", Path(__file__).with_name("_stack.py")
    )
    stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stack)
    return stack.stack_description()
