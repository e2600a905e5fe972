"""What every launch file of humanoid_stack shares: the arguments, the profile, one Node per node.

humanoid.launch.py starts a robot profile's nodes (or the `nodes` subset); perception.launch.py,
memory.launch.py, vla.launch.py, sim.launch.py and governor.launch.py start one node each with the
same arguments. All parameter values come from the profile (config/profiles/<name>.yaml, read by
humanoid_bringup.profiles, the same files run_stack uses) and the optional params file; the launch
arguments add only use_sim_time, autostart and qos_file. Launch files are not a Python package, so
the others load this file by its path.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessExit
from launch.events.process import ProcessExited
from launch_ros.actions import Node

from humanoid_bringup.profiles import NODES, available_profiles, load_profile
from humanoid_common.config import EXIT_CANNOT_START, PROFILE_VARIABLES, apply_fastdds_profile

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


def stack_description(node: str | None = None) -> LaunchDescription:
    """The launch description of one node of NODES, or (None) of the profile's nodes / `nodes`."""
    return LaunchDescription(
        [
            *declare_arguments(with_nodes=node is None),
            OpaqueFunction(function=_launch_nodes, kwargs={"only": node}),
        ]
    )


def use_sim_time_argument() -> DeclareLaunchArgument:
    return DeclareLaunchArgument(
        "use_sim_time",
        default_value="false",
        description="true: the nodes follow /clock, e.g. of `ros2 bag play --clock` (true | false)",
    )


def declare_arguments(*, with_nodes: bool) -> list[DeclareLaunchArgument]:
    """The arguments of humanoid.launch.py; the one-node files leave out `nodes`."""
    nodes = [
        DeclareLaunchArgument(
            "nodes",
            default_value="",
            description=f"Comma-separated subset of {', '.join(NODES)}; empty: the profile's nodes",
        )
    ]
    return [
        DeclareLaunchArgument(
            "profile",
            default_value="desktop_cpu",
            description=f"Robot profile: {' | '.join(available_profiles())} (config/profiles) "
            "or the path of a profile file",
        ),
        DeclareLaunchArgument(
            "namespace",
            default_value="",
            description="Namespace of the nodes (their topics are absolute names: remap those to move them)",
        ),
        use_sim_time_argument(),
        *(nodes if with_nodes else []),
        DeclareLaunchArgument(
            "params_file",
            default_value="",
            description="Parameter file applied after the profile (same format: /**/<node>: "
            "ros__parameters: ...); empty: none",
        ),
        DeclareLaunchArgument(
            "qos_file",
            default_value="",
            description="QoS file for every node with a qos_file parameter; empty: config/qos.yaml",
        ),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=list(LOG_LEVELS), description="Log level of the nodes"
        ),
        DeclareLaunchArgument(
            "respawn",
            default_value="true",
            description="Start a node again when it dies (true | false). A node that exits with status "
            f"{EXIT_CANNOT_START} (its configuration cannot work), or dies with respawn false, stops the "
            "launch with an error (exit status 1)",
        ),
        DeclareLaunchArgument(
            "respawn_delay", default_value="2.0", description="Seconds before a node that died is restarted"
        ),
    ]


def fastdds_environment() -> list[SetEnvironmentVariable]:
    """Our Fast DDS profile (config/fastdds.xml: 16 MB shared memory for camera images) for every
    process started, also those not written in Python (robot_state_publisher, rviz2); a profile the
    user set under either variable name is kept (humanoid_common.config.apply_fastdds_profile)."""
    profile = apply_fastdds_profile()
    return [SetEnvironmentVariable(name, profile) for name in PROFILE_VARIABLES]


def selected_nodes(requested: str, profile_nodes: list[str]) -> list[str]:
    """The `nodes` argument as names in start order (NODES order); empty: the profile's nodes."""
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in NODES]
    if unknown:
        raise ValueError(f"nodes: unknown node(s) {', '.join(unknown)}; the suite has {', '.join(NODES)}")
    return [name for name in NODES if name in names] or profile_nodes


def _flag(value: str, argument: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"{argument}: expected true or false, got {value!r}")
    return value.lower() == "true"


def _seconds(value: str, argument: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ValueError(f"{argument}: expected seconds >= 0, got {value!r}")
    return seconds


def _launch_nodes(context: LaunchContext, only: str | None) -> list:
    """Resolve the profile and the node list, then one Node (and its exit watch) per node."""
    config = context.launch_configurations
    profile = load_profile(config["profile"])
    names = [only] if only else selected_nodes(config["nodes"], profile.nodes)
    params_file = config["params_file"]
    if params_file and not Path(params_file).is_file():
        raise ValueError(f"params_file: {params_file} does not exist")
    files = [str(profile.path), *([params_file] if params_file else [])]
    use_sim_time = _flag(config["use_sim_time"], "use_sim_time")
    respawn = _flag(config["respawn"], "respawn")
    respawn_delay = _seconds(config["respawn_delay"], "respawn_delay")
    actions: list = fastdds_environment()
    for name in names:
        spec = NODES[name]
        overrides = {"use_sim_time": use_sim_time, "autostart": True}
        if config["qos_file"] and spec.qos_file:
            overrides["qos_file"] = config["qos_file"]
        node = Node(
            package="humanoid_stack",
            executable=spec.executable,
            name=spec.name,
            namespace=config["namespace"],
            parameters=[*files, overrides],
            respawn=respawn,
            respawn_delay=respawn_delay,
            arguments=["--ros-args", "--log-level", config["log_level"]],
            ros_arguments=["--enclave", enclave(name)],
            output="screen",
        )
        exit_watch = OnProcessExit(target_action=node, on_exit=partial(_fail_if_lost, name, respawn))
        actions += [node, RegisterEventHandler(exit_watch)]
    return actions


def enclave(node: str) -> str:
    """The node's SROS2 enclave (config/security/policy.xml). Given always: without ROS_SECURITY_ENABLE
    it only labels the process in the graph; with it, the process's keys and permissions come from
    `$ROS_SECURITY_KEYSTORE/enclaves/humanoid_stack/<node>` (docs/security.md)."""
    return f"/humanoid_stack/{node}"


class LaunchError(RuntimeError):
    """Why the launch stops with an error."""


def fail(reason: str) -> OpaqueFunction:
    """An action that stops the launch with an error. Upstream launch (Humble to Rolling) exits
    non-zero only when an action raises: it logs "Caught exception in launch (see debug for
    traceback): <reason>", shuts everything down and `ros2 launch` exits 1. A Shutdown action would
    exit 0 and never show its reason."""

    def raise_failure(context: LaunchContext) -> None:
        raise LaunchError(reason)

    return OpaqueFunction(function=raise_failure)


def require_package(package: str, install: str) -> OpaqueFunction:
    """An action that stops the launch with `install` as the fix when `package` is not installed;
    put it before the actions that need the package."""

    def check(context: LaunchContext) -> None:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix

        try:
            get_package_prefix(package)
        except PackageNotFoundError:
            raise LaunchError(f"{package} is not installed: {install}") from None

    return OpaqueFunction(function=check)


def _fail_if_lost(name: str, respawn: bool, event: ProcessExited, context: LaunchContext) -> list | None:
    """Stop the launch with an error when a node is lost for good: it exited with EXIT_CANNOT_START
    (its configuration cannot work, and its error is logged above: a restart cannot help, as in
    run_stack), or it died while respawn is off. Exits while the launch shuts down are its own."""
    if context.is_shutdown:
        return None
    if event.returncode == EXIT_CANNOT_START:
        return [fail(f"{name} cannot start (exit status {EXIT_CANNOT_START}): its reason is logged above")]
    if not respawn and event.returncode != 0:
        return [fail(f"{name} died (exit status {event.returncode}) and respawn is false")]
    return None
