"""package.xml and requirements/robot.txt declare every package that the installed Python code imports.

A robot installs with `rosdep install` (package.xml) and `pip install -r requirements/robot.txt`; an
import that neither covers is a node that exits with ModuleNotFoundError there (and is respawned
forever). Imports are read with `ast`, so nothing is imported and no ROS graph is needed.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON_PACKAGES = (
    "humanoid_common",
    "perception_node",
    "memory_node",
    "vla_node",
    "planner_node",
    "tabletop_sim",
    "humanoid_bringup",
)
# humanoid_stack: the interfaces that CMake generates from msg/ and srv/.
FIRST_PARTY = frozenset({*PYTHON_PACKAGES, "humanoid_stack"})
ROBOT_REQUIREMENTS = REPO / "requirements" / "robot.txt"

# Third-party import name → (rosdep key for package.xml, or None where no key exists; pip distribution
# for requirements/robot.txt). Either one declared covers the import.
DISTRIBUTIONS: dict[str, tuple[str | None, str]] = {
    "cv2": ("python3-opencv", "opencv-python"),
    "numpy": ("python3-numpy", "numpy"),
    "yaml": ("python3-yaml", "PyYAML"),
    "PIL": ("python3-pil", "pillow"),
    "cryptography": ("python3-cryptography", "cryptography"),
    "tqdm": ("python3-tqdm", "tqdm"),
    "onnxruntime": ("python3-onnxruntime-pip", "onnxruntime"),
    "rosbags": ("python3-rosbags-pip", "rosbags"),
    "transformers": ("python3-transformers-pip", "transformers"),
    "ultralytics": ("python3-ultralytics-pip", "ultralytics"),
    "torch": ("python3-torch", "torch"),
    "hnswlib": (None, "hnswlib"),
    "safetensors": (None, "safetensors"),
    "confusables": (None, "confusables"),
    "lap": (None, "lap"),
    "torchvision": ("python3-torchvision", "torchvision"),
    "onnx": (None, "onnx"),
    "onnx2torch": (None, "onnx2torch"),
    "llama_cpp": (None, "llama-cpp-python"),
    "experimental": (None, "tensorrt-edgellm"),  # TensorRT Edge-LLM's Python API (`experimental.server`)
}
# Imported only inside a virtual environment of its own, installed from this requirements file.
OWN_ENVIRONMENT = {"lerobot": REPO / "requirements" / "venv-lerobot.txt"}
# Installed by the user from the vendor's own index where the platform has it (the PyPI name is a
# placeholder); the backend that imports it says so and exits 78 where it is missing.
VENDOR_INSTALLED = {"tensorrt_llm": "docs/planner.md"}
# ROS packages whose Python modules do not follow the *_msgs / *_srvs / *_interfaces / rosidl_* names.
ROS_PYTHON_PACKAGES = frozenset({"rclpy", "launch", "launch_ros", "ament_index_python"})


@dataclass(frozen=True)
class Import:
    """One import of a module: a statement, or an importlib call with a literal name."""

    path: Path
    line: int
    name: str  # the top-level package

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line} imports {self.name}"


def installed_sources() -> list[Path]:
    """The Python files the package installs: its Python packages, launch files and installed tools."""
    files = [path for package in PYTHON_PACKAGES for path in sorted((REPO / package).rglob("*.py"))]
    files += sorted((REPO / "launch").glob("*.py"))
    cmake = (REPO / "CMakeLists.txt").read_text()
    for block in re.findall(r"install\(\s*PROGRAMS(.*?)DESTINATION", cmake, re.DOTALL):
        files += [REPO / name for name in block.split() if name.endswith(".py")]
    return files


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "text" assignments, for importlib calls that name a constant."""
    constants = {}
    for node in tree.body:
        value = getattr(node, "value", None)
        if isinstance(node, ast.Assign) and isinstance(value, ast.Constant) and isinstance(value.value, str):
            constants.update(
                {target.id: value.value for target in node.targets if isinstance(target, ast.Name)}
            )
    return constants


def imports(path: Path) -> Iterator[Import]:
    """Absolute imports at any depth, and importlib.import_module / find_spec / __import__ of a
    literal or a module-level string constant."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    constants = _string_constants(tree)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            function = (
                node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            )
            argument = node.args[0]
            if function in ("import_module", "find_spec", "__import__"):
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    names = [argument.value]
                elif isinstance(argument, ast.Name) and argument.id in constants:
                    names = [constants[argument.id]]
        for name in names:
            yield Import(path, node.lineno, name.split(".")[0])


def is_ros_package(name: str) -> bool:
    return (
        name in ROS_PYTHON_PACKAGES
        or name.startswith("rosidl_")
        or name.endswith(("_msgs", "_srvs", "_interfaces"))
    )


def run_dependencies(package_xml: Path = REPO / "package.xml") -> set[str]:
    """Names in <depend> and <exec_depend> of package.xml."""
    root = ET.parse(package_xml).getroot()
    return {element.text.strip() for tag in ("depend", "exec_depend") for element in root.iter(tag)}


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def requirements(path: Path) -> dict[str, str]:
    """Normalised distribution name → its requirement line, comments and options left out."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    found = {}
    for line in lines:
        if line and not line.startswith("-"):
            found[_normalise(re.match(r"[A-Za-z0-9._-]+", line).group())] = line
    return found


def missing_declaration(found: Import, depends: set[str], robot: dict[str, str]) -> str | None:
    """Why `found` is not covered, naming what to declare; None when it is covered or not third-party."""
    name = found.name
    if name in sys.stdlib_module_names or name in FIRST_PARTY:
        return None
    if is_ros_package(name):
        return None if name in depends else f"{found}: add <exec_depend>{name}</exec_depend> to package.xml"
    if name in OWN_ENVIRONMENT:
        listing = OWN_ENVIRONMENT[name]
        if _normalise(name) in requirements(listing):
            return None
        return f"{found}: add {name} to {listing.relative_to(REPO)}"
    if name in VENDOR_INSTALLED:
        guide = REPO / VENDOR_INSTALLED[name]
        return None if guide.is_file() and name in guide.read_text() else f"{found}: document it in {guide}"
    if name not in DISTRIBUTIONS:
        return (
            f"{found}: a third-party package this test does not know; add it to DISTRIBUTIONS in "
            f"{Path(__file__).relative_to(REPO)} and declare it"
        )
    key, distribution = DISTRIBUTIONS[name]
    if (key and key in depends) or _normalise(distribution) in robot:
        return None
    if key is None:
        return f"{found}: add {distribution} to requirements/robot.txt (no rosdep key)"
    return (
        f"{found}: add <exec_depend>{key}</exec_depend> to package.xml "
        f"(or {distribution} to requirements/robot.txt)"
    )


def test_every_import_is_declared():
    depends, robot = run_dependencies(), requirements(ROBOT_REQUIREMENTS)
    sources = installed_sources()
    assert len(sources) > 50
    assert all(path.is_file() for path in sources)
    problems = [
        problem
        for path in sources
        for found in imports(path)
        if (problem := missing_declaration(found, depends, robot)) is not None
    ]
    assert not problems, "\n".join(problems)


def test_robot_pins_match_the_constraints():
    constraints = requirements(REPO / "requirements" / "constraints.txt")
    for name, line in requirements(ROBOT_REQUIREMENTS).items():
        if "==" in line and name in constraints:
            # pip freeze spells some names with '_', the requirement files with '-': compare the versions.
            assert line.split("==")[1] == constraints[name].split("==")[1], (
                f"requirements/robot.txt pins {line}, constraints.txt {constraints[name]}"
            )


def test_imports_are_found_in_every_form(tmp_path):
    module = tmp_path / "example.py"
    module.write_text(
        "import importlib\nimport a.b\nfrom c.d import e\nfrom . import f\nNAME = 'g'\n"
        "def later():\n    import h\n    importlib.import_module('i.j')\n    importlib.util.find_spec(NAME)\n"
    )
    found = sorted((each.line, each.name) for each in imports(module))
    assert found == [(1, "importlib"), (2, "a"), (3, "c"), (7, "h"), (8, "i"), (9, "g")]


def test_a_missing_declaration_is_named():
    def problem(name: str) -> str | None:
        return missing_declaration(Import(REPO / "memory_node" / "faces.py", 26, name), {"rclpy"}, {})

    assert problem("onnxruntime") == (
        "memory_node/faces.py:26 imports onnxruntime: add <exec_depend>python3-onnxruntime-pip</exec_depend> "
        "to package.xml (or onnxruntime to requirements/robot.txt)"
    )
    assert (
        problem("hnswlib")
        == "memory_node/faces.py:26 imports hnswlib: add hnswlib to requirements/robot.txt (no rosdep key)"
    )
    assert problem("geometry_msgs") == (
        "memory_node/faces.py:26 imports geometry_msgs: "
        "add <exec_depend>geometry_msgs</exec_depend> to package.xml"
    )
    assert "does not know" in problem("pandas")
    assert problem("rclpy") is problem("json") is problem("memory_node") is None
