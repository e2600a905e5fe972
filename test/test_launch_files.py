"""launch/ and config/humanoid.rviz, checked without ROS 2 launch or rviz2 (neither installs here).

Two ways. Statically, on the source text (ast): every file parses, each *.launch.py defines
generate_launch_description, every executable a Node names is installed (setup.cfg console scripts or
CMakeLists.txt install(PROGRAMS)), every package is ours or an exec_depend of package.xml, and every
config file named exists in config/. Then by running the files against stand-ins for the launch API
that only record their arguments: which Node actions a file produces for a profile and arguments. The
stand-ins provide exactly the names the files import (all present in Humble's and Jazzy's launch and
launch_ros); how real launch then treats those actions is not tested here.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import re
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from humanoid_bringup.profiles import NODES, ProfileError, load_profile
from humanoid_common.config import EXIT_CANNOT_START, PROFILE_VARIABLES
from humanoid_common.qos import load_qos_config

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
CONFIG = REPO / "config"
PACKAGE = "humanoid_stack"
CONFIG_NAME = re.compile(r"[\w./-]+\.(yaml|xml|urdf|rviz)")
ONE_NODE_FILES = {
    "perception.launch.py": "perception_node",
    "memory.launch.py": "memory_node",
    "vla.launch.py": "vla_node",
    "sim.launch.py": "tabletop_sim",
    "people_scene.launch.py": "people_scene",
    "governor.launch.py": "governor",
    "planner.launch.py": "planner_node",
}
# Started by a launch file but no run dependency: rviz2 (visualisation, installed apart on the machine
# that shows it; rviz.launch.py says so when it is missing). Everything else must be an exec_depend.
OPTIONAL_PACKAGES = frozenset({"rviz2"})
ARGUMENTS = {
    "profile", "namespace", "use_sim_time", "nodes", "params_file", "qos_file", "log_level", "respawn",
    "respawn_delay",
}  # fmt: skip


# ------------------------------------------------------------------------------ static checks
def console_scripts() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return {line.split("=")[0].strip() for line in lines}


def cmake_programs() -> set[str]:
    text = (REPO / "CMakeLists.txt").read_text()
    blocks = re.findall(r"install\(PROGRAMS(.*?)DESTINATION", text, re.DOTALL)
    return {Path(word).name for block in blocks for word in block.split()}


def exec_depends() -> set[str]:
    return {e.text.strip() for e in ET.parse(REPO / "package.xml").getroot().iter("exec_depend")}


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_problems(name: str, call: ast.Call, installed: set[str]) -> list[str]:
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    function = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    line = f"{name}:{call.lineno}"
    problems = []
    if "executable" in keywords:
        package, executable = _literal(keywords.get("package")), keywords["executable"]
        if package is None:
            problems.append(f"{line}: a Node needs a literal package= (ours or an exec_depend)")
        elif package != PACKAGE and package not in exec_depends() | OPTIONAL_PACKAGES:
            problems.append(f"{line}: package {package!r} is not an <exec_depend> of package.xml")
        elif package == PACKAGE and _literal(executable) is not None:
            if _literal(executable) not in installed:
                problems.append(
                    f"{line}: executable {_literal(executable)!r} is not installed by the package"
                )
        elif package == PACKAGE and isinstance(executable, ast.Attribute) and executable.attr == "executable":
            missing = sorted(spec.executable for spec in NODES.values() if spec.executable not in installed)
            if missing:
                problems.append(f"{line}: NodeSpec executables {missing} are not installed by the package")
        elif package == PACKAGE:
            problems.append(f"{line}: executable= must be a literal or a NodeSpec's .executable")
    if function == "stack_description":
        for arg in call.args:
            if _literal(arg) not in NODES:
                problems.append(f"{line}: {ast.unparse(arg)} is not a node of NODES ({', '.join(NODES)})")
    if (
        function == "DeclareLaunchArgument"
        and _literal(keywords.get("description")) in (None, "")
        and not (isinstance(keywords.get("description"), ast.JoinedStr | ast.BinOp))
    ):
        problems.append(f"{line}: launch argument {ast.unparse(call.args[0])} has no description")
    return problems


def launch_file_problems(name: str, source: str) -> list[str]:
    """What is wrong with one file of launch/ (empty: nothing found)."""
    try:
        tree = ast.parse(source, name)
    except SyntaxError as error:
        return [f"{name}: not valid Python: {error.msg} (line {error.lineno})"]
    problems = []
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    if name.endswith(".launch.py") and "generate_launch_description" not in functions:
        problems.append(f"{name}: defines no generate_launch_description()")
    installed = console_scripts() | cmake_programs()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            problems += _call_problems(name, node, installed)
        value = _literal(node) if isinstance(node, ast.Constant) else None
        if value and CONFIG_NAME.fullmatch(value) and not (CONFIG / value).is_file():
            problems.append(f"{name}:{node.lineno}: config file {value!r} is not in config/")
    return problems


def test_the_files_the_checks_rely_on_list_what_they_should():
    assert {"perception_node", "governor", "run_stack"} <= console_scripts()
    assert {"bag_record.py", "topic.py"} <= cmake_programs()
    assert {"launch", "launch_ros", "robot_state_publisher"} <= exec_depends()
    assert not OPTIONAL_PACKAGES & exec_depends(), "a headless robot must not pull in a GUI stack"


@pytest.mark.parametrize("path", sorted(LAUNCH.glob("*.py")), ids=lambda p: p.name)
def test_launch_file_passes_the_static_checks(path):
    assert launch_file_problems(path.name, path.read_text()) == []


GOOD = "def generate_launch_description():\n    pass\n"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            GOOD + "Node(package='humanoid_stack', executable='perception_nod')",
            "'perception_nod' is not installed",
        ),
        (GOOD + "Node(package='rviz3', executable='rviz2')", "'rviz3' is not an <exec_depend>"),
        (GOOD + "Node(executable='rviz2')", "needs a literal package="),
        (GOOD + "Node(package='humanoid_stack', executable=name)", "must be a literal or a NodeSpec"),
        (GOOD + "path = config / 'tabletop-arm.urdf'", "config file 'tabletop-arm.urdf' is not in config/"),
        (GOOD + "stack.stack_description('perception')", "'perception' is not a node of NODES"),
        (GOOD + "DeclareLaunchArgument('profile', default_value='')", "'profile' has no description"),
        ("def generate(): pass\n", "defines no generate_launch_description()"),
        ("def generate_launch_description(:\n", "not valid Python"),
    ],
)
def test_the_static_checks_catch_mistakes(source, message):
    problems = launch_file_problems("bad.launch.py", source)
    assert len(problems) == 1
    assert message in problems[0]


def test_every_node_has_a_launch_file_of_its_own():
    started = {}
    for name in ONE_NODE_FILES:
        tree = ast.parse((LAUNCH / name).read_text())
        calls = [
            c
            for c in ast.walk(tree)
            if isinstance(c, ast.Call) and getattr(c.func, "attr", "") == "stack_description"
        ]
        started[name] = [_literal(arg) for call in calls for arg in call.args]
    assert started == {name: [node] for name, node in ONE_NODE_FILES.items()}
    assert set(ONE_NODE_FILES.values()) == set(NODES)


# ------------------------------------------------------------------------------ running the files
#: The launch API the files use: module → names (all in Humble's and Jazzy's launch / launch_ros).
LAUNCH_API = {
    "launch": ("LaunchContext", "LaunchDescription"),
    "launch.actions": (
        "DeclareLaunchArgument", "OpaqueFunction", "RegisterEventHandler", "SetEnvironmentVariable",
    ),
    "launch.event_handlers": ("OnProcessExit",),
    "launch.events": (),
    "launch.events.process": ("ProcessExited",),
    "launch.substitutions": ("LaunchConfiguration",),
    "launch_ros": (),
    "launch_ros.actions": ("Node",),
    "launch_ros.parameter_descriptions": ("ParameterValue",),
}  # fmt: skip


class Recorded:
    """Stands in for a launch class: keeps what it was given."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def fake_launch(monkeypatch):
    for module_name, names in LAUNCH_API.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, type(name, (Recorded,), {}))
        monkeypatch.setitem(sys.modules, module_name, module)
    for variable in PROFILE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def description_of(file_name: str) -> list:
    """The entities of a launch file's generate_launch_description()."""
    spec = importlib.util.spec_from_file_location("launch_file_under_test", LAUNCH / file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description().args[0]


def of_type(entities: list, type_name: str) -> list:
    return [e for e in entities if type(e).__name__ == type_name]


def declared(entities: list) -> dict[str, str]:
    return {a.args[0]: a.kwargs["default_value"] for a in of_type(entities, "DeclareLaunchArgument")}


def run(file_name: str, **arguments: str) -> list:
    """What the file's OpaqueFunction returns with these launch arguments (the rest: defaults)."""
    entities = description_of(file_name)
    values = declared(entities)
    assert set(arguments) <= set(values), f"{file_name} declares no {set(arguments) - set(values)}"
    context = SimpleNamespace(launch_configurations={**values, **arguments})
    (opaque,) = of_type(entities, "OpaqueFunction")
    return opaque.kwargs["function"](context, **opaque.kwargs["kwargs"])


def nodes_of(actions: list) -> dict[str, dict]:
    return {node.kwargs["name"]: node.kwargs for node in of_type(actions, "Node")}


@pytest.mark.usefixtures("fake_launch")
def test_the_profile_nodes_start_with_the_profile_and_the_argument_defaults():
    entities = description_of("humanoid.launch.py")
    assert set(declared(entities)) == ARGUMENTS
    actions = run("humanoid.launch.py")
    profile = load_profile("desktop_cpu")
    nodes = nodes_of(actions)
    assert list(nodes) == profile.nodes
    for name, node in nodes.items():
        assert (node["package"], node["executable"]) == (PACKAGE, NODES[name].executable)
        assert node["parameters"] == [str(profile.path), {"use_sim_time": False, "autostart": True}]
        assert (node["namespace"], node["respawn"], node["respawn_delay"]) == ("", True, 2.0)
        assert node["arguments"] == ["--ros-args", "--log-level", "info"]
        assert node["output"] == "screen"
    environment = of_type(actions, "SetEnvironmentVariable")
    assert actions[: len(environment)] == environment, "the environment is set before any node starts"
    assert {e.args for e in environment} == {(v, str(CONFIG / "fastdds.xml")) for v in PROFILE_VARIABLES}


@pytest.mark.usefixtures("fake_launch")
def test_arguments_pick_nodes_files_time_and_respawn(tmp_path):
    params = tmp_path / "robot.yaml"
    params.write_text("/**/vla_node:\n  ros__parameters: {control_rate_hz: 30.0}\n")
    actions = run(
        "humanoid.launch.py", profile="orin_nano", nodes="governor, vla_node", params_file=str(params),
        qos_file="/robot/qos.yaml", use_sim_time="true", respawn="false", respawn_delay="5",
        log_level="debug", namespace="robot1",
    )  # fmt: skip
    nodes = nodes_of(actions)
    assert list(nodes) == ["vla_node", "governor"]  # start order of NODES, governor last
    profile = str(load_profile("orin_nano").path)
    assert nodes["vla_node"]["parameters"] == [
        profile, str(params), {"use_sim_time": True, "autostart": True, "qos_file": "/robot/qos.yaml"}
    ]  # fmt: skip
    assert nodes["governor"]["parameters"] == [
        profile,
        str(params),
        {"use_sim_time": True, "autostart": True},
    ]
    assert all(
        (n["respawn"], n["respawn_delay"], n["namespace"]) == (False, 5.0, "robot1") for n in nodes.values()
    )
    assert all(n["arguments"] == ["--ros-args", "--log-level", "debug"] for n in nodes.values())


@pytest.mark.usefixtures("fake_launch")
@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"nodes": "perception_node,vla"}, ValueError, "unknown node(s) vla; the suite has perception_node"),
        (
            {"params_file": "/nonexistent/robot.yaml"},
            ValueError,
            "params_file: /nonexistent/robot.yaml does not",
        ),
        ({"respawn": "maybe"}, ValueError, "respawn: expected true or false, got 'maybe'"),
        ({"respawn_delay": "-1"}, ValueError, "respawn_delay: expected seconds >= 0"),
        ({"use_sim_time": "yes"}, ValueError, "use_sim_time: expected true or false"),
        ({"profile": "orin_nanoo"}, ProfileError, "no profile 'orin_nanoo': choose one of"),
    ],
)
def test_bad_arguments_stop_the_launch_with_a_message(arguments, error, message):
    with pytest.raises(error) as info:
        run("humanoid.launch.py", **arguments)
    assert message in str(info.value)


@pytest.mark.usefixtures("fake_launch")
@pytest.mark.parametrize(("file_name", "node"), ONE_NODE_FILES.items())
def test_a_one_node_file_starts_that_node_with_the_same_arguments_but_nodes(file_name, node):
    assert set(declared(description_of(file_name))) == ARGUMENTS - {"nodes"}
    nodes = nodes_of(run(file_name, profile="agx_orin", use_sim_time="true"))
    assert list(nodes) == [node]
    assert nodes[node]["executable"] == NODES[node].executable
    assert nodes[node]["parameters"][0] == str(load_profile("agx_orin").path)
    assert nodes[node]["parameters"][-1]["use_sim_time"] is True


def exit_watch(respawn: str) -> Any:
    """perception_node's exit handler in humanoid.launch.py with this respawn argument."""
    actions = run("humanoid.launch.py", nodes="perception_node", respawn=respawn)
    (node,) = of_type(actions, "Node")
    (register,) = of_type(actions, "RegisterEventHandler")
    (watch,) = register.args
    assert watch.kwargs["target_action"] is node
    return watch.kwargs["on_exit"]


def failure_of(actions: list | None) -> str:
    """The reason the handler's one action stops the launch with (it raises, so launch exits 1)."""
    (action,) = actions
    assert type(action).__name__ == "OpaqueFunction"
    with pytest.raises(RuntimeError) as error:
        action.kwargs["function"](None)
    return str(error.value)


@pytest.mark.usefixtures("fake_launch")
def test_a_node_lost_for_good_fails_the_launch_other_exits_respawn():
    on_exit, running = exit_watch("true"), SimpleNamespace(is_shutdown=False)
    cannot_start = failure_of(on_exit(SimpleNamespace(returncode=EXIT_CANNOT_START), running))
    assert "perception_node cannot start (exit status 78): its reason is logged above" in cannot_start
    assert on_exit(SimpleNamespace(returncode=1), running) is None  # respawned by launch
    stopping = SimpleNamespace(is_shutdown=True)
    assert on_exit(SimpleNamespace(returncode=EXIT_CANNOT_START), stopping) is None  # the launch's own stop
    died = failure_of(exit_watch("false")(SimpleNamespace(returncode=-11), running))
    assert "perception_node died (exit status -11) and respawn is false" in died
    assert exit_watch("false")(SimpleNamespace(returncode=0), running) is None


@pytest.mark.usefixtures("fake_launch")
def test_a_fast_dds_profile_the_user_chose_is_kept(monkeypatch):
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/robot/dds.xml")
    environment = of_type(run("humanoid.launch.py"), "SetEnvironmentVariable")
    assert {e.args for e in environment} == {(v, "/robot/dds.xml") for v in PROFILE_VARIABLES}


@pytest.mark.usefixtures("fake_launch")
def test_rviz_launch_starts_rviz_and_a_measured_and_a_commanded_state_publisher():
    entities = description_of("rviz.launch.py")
    assert set(declared(entities)) == {"use_sim_time", "rviz_config"}
    assert declared(entities)["rviz_config"] == str(CONFIG / "humanoid.rviz")
    nodes = nodes_of(entities)
    assert set(nodes) == {"measured_state_publisher", "commanded_state_publisher", "rviz2"}
    urdf = (CONFIG / "tabletop_arm.urdf").read_text()
    for name in ("measured_state_publisher", "commanded_state_publisher"):
        (parameters,) = nodes[name]["parameters"]
        description = parameters["robot_description"]
        assert description.args == (urdf,)
        assert description.kwargs == {"value_type": str}
    commanded = nodes["commanded_state_publisher"]
    assert commanded["parameters"][0]["frame_prefix"] == "commanded/"
    assert dict(commanded["remappings"]) == {
        "joint_states": "/vla/commanded_joint_states",
        "robot_description": "/commanded/robot_description",
    }
    assert "remappings" not in nodes["measured_state_publisher"]  # joint_states, robot_description
    assert nodes["rviz2"]["arguments"][0] == "-d"
    assert nodes["rviz2"]["arguments"][1].args == ("rviz_config",)
    assert of_type(entities, "SetEnvironmentVariable"), "rviz2 and the publishers get the Fast DDS profile"


# ------------------------------------------------------------------------------ the rviz2 configuration
def displays() -> dict[str, dict]:
    config = yaml.safe_load((CONFIG / "humanoid.rviz").read_text())
    return {d["Name"]: d for d in config["Visualization Manager"]["Displays"]}


def test_rviz_fixed_frame_is_the_root_of_the_arm():
    config = yaml.safe_load((CONFIG / "humanoid.rviz").read_text())
    root = ET.parse(CONFIG / "tabletop_arm.urdf").getroot()
    children = {j.find("child").get("link") for j in root.iter("joint")}
    (base,) = {link.get("name") for link in root.iter("link")} - children
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == base
    assert f"commanded/{base}" in children, "the commanded model's tree hangs from the fixed frame"


def test_rviz_displays_show_the_topics_with_qos_that_matches_their_publishers():
    shown = displays()
    classes = {name: d["Class"].split("/")[1] for name, d in shown.items()}
    assert classes == {
        "Grid": "Grid", "TF": "TF", "measured": "RobotModel", "commanded": "RobotModel",
        "detections": "MarkerArray", "debug image": "Image", "camera": "Image",
    }  # fmt: skip
    topics = {name: d["Topic"]["Value"] for name, d in shown.items() if "Topic" in d}
    assert topics == {
        "detections": "/perception/markers",
        "debug image": "/perception/debug_image",
        "camera": "/camera/image_raw",
    }
    qos = load_qos_config()
    for name, topic in topics.items():
        wanted = shown[name]["Topic"]["Reliability Policy"]
        if qos[topic].reliability == "best_effort":  # a reliable subscription would receive nothing
            assert wanted == "Best Effort", name
    assert shown["detections"]["Namespaces"] == {"boxes": True, "labels": True}


def test_rviz_robot_models_read_the_descriptions_the_state_publishers_latch():
    shown = displays()
    measured, commanded = shown["measured"], shown["commanded"]
    assert measured["Description Topic"]["Value"] == "/robot_description"
    assert commanded["Description Topic"]["Value"] == "/commanded/robot_description"
    for model in (measured, commanded):  # robot_state_publisher publishes it once, transient local
        assert model["Description Topic"]["Durability Policy"] == "Transient Local"
    assert (measured["TF Prefix"], commanded["TF Prefix"]) == ("", "commanded")  # rviz2 adds the "/"
    assert commanded["Alpha"] < 1 == measured["Alpha"]
