"""rviz2 with config/humanoid.rviz, and the two robot_state_publishers its robot models need.

    ros2 launch humanoid_stack rviz.launch.py
    ros2 launch humanoid_stack rviz.launch.py use_sim_time:=true    # beside `ros2 bag play --clock`

Both publishers describe the tabletop arm (config/tabletop_arm.urdf): "measured" follows /joint_states
(tabletop_sim or the robot), "commanded" follows vla_node's /vla/commanded_joint_states with the frame
prefix commanded/ and its description on /commanded/robot_description. docs/launch_and_rviz.md.
"""

import importlib.util
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from humanoid_common.config import config_dir


def generate_launch_description() -> LaunchDescription:
    spec = importlib.util.spec_from_file_location(
        "humanoid_stack_launch", Path(__file__).with_name("_stack.py")
    )
    stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stack)
    # value_type=str: the URDF text is the parameter as it is, never parsed as YAML by launch_ros.
    description = ParameterValue((config_dir() / "tabletop_arm.urdf").read_text(), value_type=str)
    use_sim_time = {"use_sim_time": LaunchConfiguration("use_sim_time")}
    return LaunchDescription(
        [
            stack.use_sim_time_argument(),
            DeclareLaunchArgument(
                "rviz_config",
                default_value=str(config_dir() / "humanoid.rviz"),
                description="rviz2 configuration file",
            ),
            *stack.fastdds_environment(),
            stack.require_package(
                "rviz2",
                "it is no dependency of humanoid_stack (headless robots stay lean); on the machine that "
                "shows it: sudo apt install ros-$ROS_DISTRO-rviz2",
            ),
            Node(
                package="robot_state_publisher",
                executable="robot_state_publisher",
                name="measured_state_publisher",
                parameters=[{"robot_description": description, **use_sim_time}],
                output="screen",
            ),
            Node(
                package="robot_state_publisher",
                executable="robot_state_publisher",
                name="commanded_state_publisher",
                parameters=[{"robot_description": description, "frame_prefix": "commanded/", **use_sim_time}],
                remappings=[
                    ("joint_states", "/vla/commanded_joint_states"),
                    ("robot_description", "/commanded/robot_description"),
                ],
                output="screen",
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", LaunchConfiguration("rviz_config")],
                parameters=[use_sim_time],
                output="screen",
            ),
        ]
    )
