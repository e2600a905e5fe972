"""tabletop_sim alone, the simulated arm of the VLA reference task (camera, /joint_states, /sim/status),
arguments as humanoid.launch.py without `nodes` (launch/_stack.py). No profile configures it: it runs with
its own defaults (config/sim.yaml) unless params_file sets /**/tabletop_sim parameters.

    ros2 launch humanoid_stack sim.launch.py
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
    return stack.stack_description("tabletop_sim")
