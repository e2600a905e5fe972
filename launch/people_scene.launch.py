"""people_scene alone, the scripted head camera of the demo (street video with portraits that come and go:
/camera/image_raw, /camera/camera_info), arguments as humanoid.launch.py without `nodes` (launch/_stack.py).
No profile configures it: it runs with its own defaults unless params_file sets /**/people_scene parameters.

    ros2 launch humanoid_stack people_scene.launch.py
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
    return stack.stack_description("people_scene")
