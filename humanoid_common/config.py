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


def apply_fastdds_profile() -> str:
    """Point Fast DDS at our profile (large shared-memory segment) unless the user chose one.

    Must run before rclpy.init(). Returns the profile file in effect.
    """
    if not os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(config_dir() / "fastdds.xml")
    return os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]
