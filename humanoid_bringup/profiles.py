"""Robot profiles: which nodes a robot runs and with which parameters (config/profiles/<name>.yaml).

A profile is an ordinary ROS 2 parameter file, so `ros2 launch` hands it to the nodes unchanged and
the stack runner passes it with `--params-file`. Each top-level key is `/**/<node name>` (any
namespace) holding `ros__parameters`; the nodes present are the nodes the profile starts. This module
reads and checks profiles and knows, per node, its executable, module and class; it imports no rclpy.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from humanoid_common.config import config_dir, read_yaml


class ProfileError(ValueError):
    """A profile cannot be found or read; the message names the file and the key."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of the suite: its ROS node name, `ros2 run` executable, Python module and class."""

    name: str
    executable: str
    module: str
    class_name: str
    qos_file: bool = True  # declares the qos_file parameter

    def node_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.class_name)


#: Every node a profile may start, in start order (the governor last: it tunes the others).
NODES: dict[str, NodeSpec] = {
    spec.name: spec
    for spec in (
        NodeSpec("perception_node", "perception_node", "perception_node.node", "PerceptionNode"),
        NodeSpec("memory_node", "memory_node", "memory_node.node", "MemoryNode"),
        NodeSpec("vla_node", "vla_node", "vla_node.node", "VlaNode"),
        NodeSpec("planner_node", "planner_node", "planner_node.node", "PlannerNode"),
        NodeSpec("tabletop_sim", "tabletop_sim", "tabletop_sim.node", "TabletopSimNode"),
        NodeSpec("people_scene", "people_scene", "tabletop_sim.people_node", "PeopleSceneNode"),
        NodeSpec("governor", "governor", "humanoid_bringup.governor_node", "GovernorNode", qos_file=False),
    )
}
KEY_PREFIX = "/**/"


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    parameters: dict[str, dict[str, Any]]  # node name → its parameters, in file order

    @property
    def nodes(self) -> list[str]:
        """The nodes this profile starts, in NODES order."""
        return [name for name in NODES if name in self.parameters]


def profiles_dir() -> Path:
    return config_dir() / "profiles"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def profile_path(profile: str | Path) -> Path:
    """A profile name (`orin_nano`) or a path to a profile file."""
    path = Path(profile)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        return path
    path = profiles_dir() / f"{profile}.yaml"
    if not path.is_file():
        raise ProfileError(
            f"no profile {str(profile)!r}: choose one of {', '.join(available_profiles())} "
            f"(files in {profiles_dir()}) or give a path to a profile file"
        )
    return path


def load_profile(profile: str | Path) -> Profile:
    path = profile_path(profile)
    data = read_yaml(path, "robot profile", ProfileError)
    if not isinstance(data, dict) or not data:
        raise ProfileError(f"{path}: a profile maps '{KEY_PREFIX}<node name>' to ros__parameters")
    parameters: dict[str, dict[str, Any]] = {}
    for key, section in data.items():
        name = str(key).removeprefix(KEY_PREFIX)
        if not str(key).startswith(KEY_PREFIX) or name not in NODES:
            known = ", ".join(KEY_PREFIX + n for n in NODES)
            raise ProfileError(f"{path}: top-level key {key!r} is not one of {known}")
        values = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(values, dict):
            raise ProfileError(f"{path}: {key}: expected a 'ros__parameters' mapping")
        parameters[name] = values
    return Profile(path.stem, path, parameters)


def ros_arguments(
    params_files: list[Path],
    *,
    namespace: str = "",
    use_sim_time: bool = False,
    log_level: str = "",
    remaps: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> list[str]:
    """The `--ros-args ...` a node process gets: parameter files in order (later ones win), then
    single parameters, remappings, namespace and log level."""
    args = ["--ros-args"]
    for path in params_files:
        args += ["--params-file", str(path)]
    for name, value in {"use_sim_time": use_sim_time, **(parameters or {})}.items():
        args += ["-p", f"{name}:={_param_text(value)}"]
    for source, target in (remaps or {}).items():
        args += ["-r", f"{source}:={target}"]
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    if log_level:
        args += ["--log-level", log_level]
    return args


def _param_text(value: Any) -> str:
    """A parameter value as `-p name:=value` text: rcl parses it as YAML, of which JSON is a subset
    (strings stay strings, `true` and `5.0` keep their types)."""
    return json.dumps(list(value) if isinstance(value, tuple) else value)
