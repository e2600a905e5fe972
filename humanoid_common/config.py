"""Where the suite's config/ lives, and the process environment every entry point applies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PACKAGE = "humanoid_stack"
_SOURCE_CONFIG = Path(__file__).resolve().parents[1] / "config"


def config_dir() -> Path:
    """config/ of a source checkout (editable install) or, on a ROS install, the package share."""
    if (_SOURCE_CONFIG / "qos.yaml").is_file():
        return _SOURCE_CONFIG
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / "config"


#: Exit status of a node whose configure/activate failed (sysexits' EX_CONFIG): restarting it with the
#: same parameters cannot help. Any other non-zero status (a crash, a signal) may be worth a respawn.
EXIT_CANNOT_START = 78

# Fast DDS 2.x (Humble, Jazzy) reads the FASTRTPS_ name only; 3.x (Kilted on) the FASTDDS_ one.
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def apply_fastdds_profile() -> str:
    """Point Fast DDS at our profile (large shared-memory segment) unless the user chose one.

    A profile the user set under either variable name is kept and given to both. Must run before
    rclpy.init(). Returns the profile file in effect.
    """
    chosen = next((os.environ[v] for v in PROFILE_VARIABLES if os.environ.get(v)), None)
    profile = chosen or str(config_dir() / "fastdds.xml")
    for variable in PROFILE_VARIABLES:
        os.environ[variable] = profile
    return profile


def read_yaml(path: str | Path, what: str, error: type[Exception] = ValueError) -> Any:
    """The parsed YAML of a configuration file; `error` (naming `what` and the file) when it cannot be
    read or parsed, so every loader reports the same way."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({what}): {exc}") from exc
