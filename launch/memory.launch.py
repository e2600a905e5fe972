"""memory_node alone (face memory: /memory/people, /memory/events), arguments as humanoid.launch.py without
`nodes` (launch/_stack.py):

    ros2 launch humanoid_stack memory.launch.py profile:=orin_nano
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
    return stack.stack_description("memory_node")
