"""planner_node alone (on-device model, plan checker, executor: /planner/execute), arguments as
humanoid.launch.py without `nodes` (launch/_stack.py):

    ros2 launch humanoid_stack planner.launch.py profile:=thor
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
    return stack.stack_description("planner_node")
