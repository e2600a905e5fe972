"""The `ros2 run humanoid_stack <node>` executables (setup.cfg console_scripts): each starts its node
through humanoid_bringup.composed.start, which reports a missing dependency instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from humanoid_bringup.composed import start
from humanoid_common.lifecycle import exit_now


def _executable(name: str) -> Callable[[], NoReturn]:
    def main() -> NoReturn:
        exit_now(start([name], sys.argv))

    main.__name__ = name
    return main


perception_node = _executable("perception_node")
memory_node = _executable("memory_node")
vla_node = _executable("vla_node")
planner_node = _executable("planner_node")
tabletop_sim = _executable("tabletop_sim")
people_scene = _executable("people_scene")
governor = _executable("governor")
