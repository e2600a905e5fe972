"""Start nodes of the suite in one process: `python -m humanoid_bringup.composed NODE[,NODE] --ros-args ...`.

Every node executable starts here (humanoid_bringup.executables), run_stack's children too, so
that a missing Python package is one clear line and exit status EXIT_CANNOT_START, not a traceback
that a respawn repeats forever. With several nodes it is the runner's `--composed` mode (no DDS hop
between the nodes, one Python, shared failure); the ROS arguments apply to every node, each picks
its own section of the profile.
"""

from __future__ import annotations

import sys

from humanoid_bringup.profiles import NODES
from humanoid_common.config import EXIT_CANNOT_START
from humanoid_common.lifecycle import exit_now, run_nodes

INSTALL_HINT = (
    "install the robot's dependencies: `rosdep install --from-paths src --ignore-src -y` and "
    "`pip install -r requirements/robot.txt` (README, On a robot)"
)


def start(names: list[str], args: list[str]) -> int:
    """Import the nodes' modules, then run them together (lifecycle.run_nodes); the exit status."""
    try:
        classes = [NODES[name].node_class() for name in names]
    except ImportError as error:
        missing = f"the Python module {error.name!r} is not installed" if error.name else "an import failed"
        print(f"[{','.join(names)}] cannot start: {missing} ({error}); {INSTALL_HINT}", file=sys.stderr)
        return EXIT_CANNOT_START
    if "vla_node" in names:
        from vla_node.node import SWITCH_INTERVAL_S

        sys.setswitchinterval(SWITCH_INTERVAL_S)  # as vla_node's own main: the control thread first
    return run_nodes(classes, args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1].startswith("-"):
        print(f"usage: {argv[0]} NODE[,NODE...] [--ros-args ...]; nodes: {', '.join(NODES)}", file=sys.stderr)
        return 2
    names = argv[1].split(",")
    unknown = [n for n in names if n not in NODES]
    if unknown:
        print(f"unknown node(s) {', '.join(unknown)}; the suite has {', '.join(NODES)}", file=sys.stderr)
        return 2
    return start(names, [argv[0], *argv[2:]])


if __name__ == "__main__":
    exit_now(main())
