"""run_stack: start a robot profile's nodes where `ros2 launch` is not available (like here).

It reads the same profile as launch/humanoid.launch.py and starts each node as its own process
(default: a crash takes one node down and it is respawned) or all of them in one process
(`--composed`). Ctrl-C stops everything cleanly; the exit status is non-zero when a node cannot
start. It starts, watches, restarts and stops; everything else belongs in the profile.

    run_stack --profile desktop_cpu
    run_stack --profile orin_nano --nodes perception_node,vla_node --params-file my_robot.yaml
    run_stack --profile desktop_cpu --composed --use-sim-time
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from humanoid_bringup.profiles import NODES, Profile, ProfileError, load_profile, ros_arguments
from humanoid_bringup.supervisor import ChildSpec, Supervisor
from humanoid_common.config import apply_fastdds_profile


@dataclass(frozen=True)
class StackOptions:
    """What the runner and the launch file share: which nodes, which files, how to start them."""

    profile: Profile
    nodes: list[str]
    params_files: list[Path] = field(default_factory=list)
    qos_file: str = ""
    namespace: str = ""
    use_sim_time: bool = False
    log_level: str = ""
    remaps: dict[str, dict[str, str]] = field(default_factory=dict)  # node → remappings

    def ros_args(self, node: str | None) -> list[str]:
        """The --ros-args of one node's process (None: the composed process of all nodes)."""
        return ros_arguments(
            [self.profile.path, *self.params_files],
            namespace=self.namespace,
            use_sim_time=self.use_sim_time,
            log_level=self.log_level,
            remaps=self.remaps.get(node or "", {}),
            parameters={"qos_file": self.qos_file} if self.qos_file and _takes_qos(node) else None,
        )


def _takes_qos(node: str | None) -> bool:
    return node is None or NODES[node].qos_file


def child_specs(options: StackOptions, *, composed: bool = False, respawn: bool = True) -> list[ChildSpec]:
    """One child per node, or one composed child; environment with our Fast DDS profile."""
    apply_fastdds_profile()  # children inherit the profile variables
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if composed:
        command = [sys.executable, "-m", "humanoid_bringup.composed", ",".join(options.nodes)]
        return [ChildSpec("composed", [*command, *options.ros_args(None)], env, respawn)]
    return [
        ChildSpec(
            name,
            [sys.executable, "-m", "humanoid_bringup.composed", name, *options.ros_args(name)],
            env,
            respawn,
        )
        for name in options.nodes
    ]


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, StackOptions]:
    parser = argparse.ArgumentParser(
        prog="run_stack", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--profile", default="desktop_cpu", help="profile name (config/profiles) or file")
    parser.add_argument(
        "--nodes", default="", help=f"comma-separated subset of the profile's nodes ({', '.join(NODES)})"
    )
    parser.add_argument(
        "--params-file", action="append", default=[], type=Path, help="applied after the profile"
    )
    parser.add_argument("--qos-file", default="", help="QoS YAML for every node (default: config/qos.yaml)")
    parser.add_argument("--namespace", default="", help="ROS namespace of every node")
    parser.add_argument(
        "--use-sim-time", action="store_true", help="nodes follow /clock (ros2 bag play --clock)"
    )
    parser.add_argument("--log-level", default="", help="debug | info | warn | error")
    parser.add_argument("--composed", action="store_true", help="all nodes in one process")
    parser.add_argument("--no-respawn", action="store_true", help="a node that dies stops the stack")
    parser.add_argument("--log-dir", type=Path, help="also write each node's output to DIR/<node>.log")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
    except ProfileError as error:
        parser.error(str(error))
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()] or profile.nodes
    unknown = [n for n in nodes if n not in NODES]
    if unknown:
        parser.error(f"unknown node(s) {', '.join(unknown)}; the suite has {', '.join(NODES)}")
    missing = [f for f in args.params_file if not f.is_file()]
    if missing:
        parser.error(f"params file(s) not found: {', '.join(map(str, missing))}")
    options = StackOptions(
        profile, [n for n in NODES if n in nodes], args.params_file, args.qos_file,
        args.namespace, args.use_sim_time, args.log_level,
    )  # fmt: skip
    return args, options


def main(argv: list[str] | None = None) -> int:
    args, options = parse_args(argv)
    specs = child_specs(options, composed=args.composed, respawn=not args.no_respawn)
    supervisor = Supervisor(specs, log_dir=args.log_dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    mode = "one process" if args.composed else "one process each"
    print(f"[run_stack] profile {options.profile.name} ({options.profile.path}): {', '.join(options.nodes)}")
    print(f"[run_stack] {mode}; Ctrl-C stops them all")
    return supervisor.run(stop)


if __name__ == "__main__":
    sys.exit(main())
