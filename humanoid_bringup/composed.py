"""Several nodes of the suite in one process: `python -m humanoid_bringup.composed NODE,NODE --ros-args ...`.

The runner's `--composed` mode (no DDS hop between the nodes' processes, one Python, shared
failure). The ROS arguments apply to every node; each picks its own section of the profile.
"""

from __future__ import annotations

import sys

from humanoid_bringup.profiles import NODES
from humanoid_common.lifecycle import run_nodes


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
    if "vla_node" in names:
        from vla_node.node import SWITCH_INTERVAL_S

        sys.setswitchinterval(SWITCH_INTERVAL_S)  # as vla_node's own main: the control thread first
    return run_nodes([NODES[n].node_class() for n in names], [argv[0], *argv[2:]])


if __name__ == "__main__":
    sys.exit(main())
