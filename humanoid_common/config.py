"""Where the suite's config/ lives, and the process environment every entry point applies."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "humanoid_stack"
_SOURCE_CONFIG = Path(__file__).resolve().parents[1] / "config"


def config_dir() -> Path:
    """config/ of a source checkout (editable install) or, on a ROS install, the package share."""
    if (_SOURCE_CONFIG / "qos.yaml").is_file():
        return _SOURCE_CONFIG
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / "config"


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
