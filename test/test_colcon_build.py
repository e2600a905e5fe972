"""The checkout builds with `colcon build` as on a robot, and its install space works on its own:
assets fetched the robot way, every node executable started from install/lib/humanoid_stack."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray

from harness import wait_active, wait_for
from humanoid_common.config import EXIT_CANNOT_START
from humanoid_stack.msg import DetectionArray, PersonArray

REPO = Path(__file__).resolve().parents[1]
NODE_EXECUTABLES = ("perception_node", "memory_node", "vla_node", "tabletop_sim", "people_scene", "governor")


def copy_sources(dest: Path) -> None:
    """Copy the checkout as a clone would have it: tracked and untracked files git does not ignore.

    Never the virtual environments, caches or build trees beside it (several GB).
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the work tree is listed too
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@dataclass(frozen=True)
class InstallSpace:
    prefix: Path  # install/humanoid_stack
    env: dict[str, str]  # as after sourcing install/setup.bash; no checkout, no HUMANOID_ASSETS

    @property
    def executables(self) -> Path:
        return self.prefix / "lib" / "humanoid_stack"  # where `ros2 run humanoid_stack ...` looks

    @property
    def share(self) -> Path:
        return self.prefix / "share" / "humanoid_stack"

    def robot_env(self, home: Path) -> dict[str, str]:
        """A robot user's environment: their own home, nothing of this checkout."""
        return {**self.env, "HOME": str(home)}


@pytest.fixture(scope="module")
def install_space(tmp_path_factory) -> InstallSpace:
    workspace = tmp_path_factory.mktemp("ws")
    copy_sources(workspace / "src" / "humanoid_stack")
    underlay = sys.prefix  # the ROS 2 Jazzy wheels, standing in for /opt/ros/<distro>
    env = {**os.environ, "AMENT_PREFIX_PATH": underlay, "CMAKE_PREFIX_PATH": underlay}
    colcon = [Path(sys.prefix, "bin", "colcon"), "build", "--base-paths", "src"]
    cmake_args = ["--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"]
    build = subprocess.run(
        colcon + cmake_args, cwd=workspace, env=env, capture_output=True, text=True, timeout=600
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = workspace / "install" / "humanoid_stack"
    site = prefix / Path(sysconfig.get_paths()["purelib"]).relative_to(sys.prefix)
    env.pop("HUMANOID_ASSETS", None)
    env.pop("XDG_DATA_HOME", None)
    env.update(
        AMENT_PREFIX_PATH=f"{prefix}{os.pathsep}{underlay}", PYTHONPATH=str(site), PYTHONUNBUFFERED="1"
    )
    return InstallSpace(prefix, env)


@pytest.mark.slow
def test_colcon_build_and_install_space(install_space, tmp_path):
    for tool in (
        "bag_record.py",
        "bag_replay.py",
        "video_to_bag.py",
        "topic.py",
        "fetch_assets",
        *NODE_EXECUTABLES,
    ):
        assert os.access(install_space.executables / tool, os.X_OK), tool
    share = install_space.share
    for config in ("qos.yaml", "fastdds.xml", "assets.yaml", "profiles/orin_nano.yaml"):
        assert (share / "config" / config).is_file(), config
    assert (share / "msg" / "DetectionArray.msg").is_file()

    # The install space alone (not this checkout) provides interfaces, helpers and config.
    check = (
        "import humanoid_common, humanoid_stack.msg, humanoid_stack.srv\n"
        "from humanoid_common.config import config_dir\n"
        "from humanoid_common.qos import load_qos_config\n"
        "print(humanoid_common.__file__, config_dir(), len(load_qos_config().topics))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        env=install_space.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    module, config, topics = result.stdout.split()
    assert module.startswith(str(install_space.prefix))
    assert config == str(share / "config")
    assert int(topics) > 5


def node_arguments(install_space: InstallSpace, name: str) -> list[str]:
    """The desktop_cpu profile where it has the node, then low rates to spare the 2-core CI machine."""
    profile = ["--params-file", str(install_space.share / "config" / "profiles" / "desktop_cpu.yaml")]
    quiet = {
        "perception_node": ["max_rate_hz:=1.0", "warmup_frames:=1"],
        "memory_node": ["max_rate_hz:=1.0"],
        "vla_node": ["inference_threads:=1"],
        "tabletop_sim": ["camera_rate_hz:=2.0", "joint_state_rate_hz:=10.0", "physics_rate_hz:=20.0"],
        "people_scene": ["rate_hz:=2.0"],
        "governor": [],
    }[name]
    uses_profile = name not in ("tabletop_sim", "people_scene")
    remap = [
        "-r",
        "/camera/image_raw:=/tabletop/image_raw",
        "-r",
        "/camera/camera_info:=/tabletop/camera_info",
    ]
    return [
        "--ros-args",
        *(profile if uses_profile else []),
        *(remap if name == "tabletop_sim" else []),  # one head camera: people_scene's
        *(arg for value in quiet for arg in ("-p", value)),
    ]


@pytest.mark.slow
@pytest.mark.integration
def test_every_node_runs_from_the_install_space_with_assets_fetched_the_robot_way(
    install_space, ros, processes, tmp_path
):
    home = tmp_path / "home"
    env = install_space.robot_env(home)
    fetch = subprocess.run(
        [install_space.executables / "fetch_assets"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fetch.returncode == 0, fetch.stdout[-2000:] + fetch.stderr[-2000:]
    index = home / ".local" / "share" / "humanoid_stack" / "assets" / "index.json"
    assert f"indexed in {index}" in fetch.stdout

    diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 50)
    detections = ros.collect(DetectionArray, "/perception/detections")
    people = ros.collect(PersonArray, "/memory/people")
    procs = {
        name: processes.start(
            [str(install_space.executables / name), *node_arguments(install_space, name)], name, env=env
        )
        for name in NODE_EXECUTABLES
    }
    wait_active(ros, processes, procs)

    def reporting() -> set[str]:
        return {status.name.split(":")[0] for array in list(diagnostics) for status in array.status}

    wait_for(lambda: set(NODE_EXECUTABLES) <= reporting(), 60, "/diagnostics from every node")
    wait_for(lambda: detections and people, 120, "detections and people from the models")
    for name, proc in procs.items():
        assert proc.poll() is None, f"{name} exited:\n{processes.log(proc)[-3000:]}"
    for name, proc in procs.items():
        assert processes.stop(proc) == 0, f"{name} did not stop cleanly:\n{processes.log(proc)[-3000:]}"


@pytest.mark.slow
@pytest.mark.integration
def test_a_node_without_assets_on_the_robot_says_why_and_exits_78(install_space, processes, tmp_path):
    env = install_space.robot_env(tmp_path / "empty_home")
    proc = processes.start([str(install_space.executables / "memory_node")], "memory_node", env=env)
    assert proc.wait(timeout=120) == EXIT_CANNOT_START, processes.log(proc)
    log = processes.log(proc)
    assert f"no asset index found (searched {tmp_path / 'empty_home' / '.local' / 'share'}" in log
    assert "ros2 run humanoid_stack fetch_assets" in log
    assert "Traceback" not in log
