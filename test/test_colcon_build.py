"""The checkout builds with `colcon build` as on a robot, and its install space works on its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


@pytest.mark.slow
def test_colcon_build_and_install_space(tmp_path):
    copy_sources(tmp_path / "src" / "humanoid_stack")
    underlay = sys.prefix  # the ROS 2 Jazzy wheels, standing in for /opt/ros/<distro>
    env = {**os.environ, "AMENT_PREFIX_PATH": underlay, "CMAKE_PREFIX_PATH": underlay}
    colcon = [Path(sys.prefix, "bin", "colcon"), "build", "--base-paths", "src"]
    cmake_args = ["--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"]
    build = subprocess.run(
        colcon + cmake_args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    prefix = tmp_path / "install" / "humanoid_stack"
    executables = prefix / "lib" / "humanoid_stack"  # where `ros2 run humanoid_stack ...` looks
    for tool in ("bag_record.py", "bag_replay.py", "video_to_bag.py", "topic.py"):
        assert os.access(executables / tool, os.X_OK), tool
    share = prefix / "share" / "humanoid_stack"
    assert (share / "config" / "qos.yaml").is_file()
    assert (share / "config" / "fastdds.xml").is_file()
    assert (share / "msg" / "DetectionArray.msg").is_file()

    # The install space alone (not this checkout) provides interfaces, helpers and config.
    site = prefix / Path(sysconfig.get_paths()["purelib"]).relative_to(sys.prefix)
    check = (
        "import humanoid_common, humanoid_stack.msg, humanoid_stack.srv\n"
        "from humanoid_common.config import config_dir\n"
        "from humanoid_common.qos import load_qos_config\n"
        "print(humanoid_common.__file__, config_dir(), len(load_qos_config().topics))\n"
    )
    run_env = {**env, "AMENT_PREFIX_PATH": f"{prefix}{os.pathsep}{underlay}", "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    module, config, topics = result.stdout.split()
    assert module.startswith(str(prefix))
    assert config == str(share / "config")
    assert int(topics) > 5
