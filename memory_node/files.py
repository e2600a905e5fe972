"""Files that appear complete or not at all: built under a temporary name, then renamed into place.

A process killed at any moment (SIGKILL, a power cut) leaves either no file or the finished one under
the real name, never a half-written one; what is left under the temporary name is only ever a
half-built new file, which the next attempt deletes and builds again.
"""

from __future__ import annotations

import os
from pathlib import Path

TEMP_SUFFIX = ".new"


def temporary(final: Path) -> Path:
    """The name `final` is built under."""
    return final.with_name(final.name + TEMP_SUFFIX)


def fsync_path(path: Path, *, directory: bool = False) -> None:
    """Flush a file's bytes (or a folder's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(built: Path, final: Path) -> None:
    """Make the finished file `built` appear as `final` in one step: its bytes reach the disk first,
    then the rename, then the folder entry (so that the rename itself survives a power cut)."""
    fsync_path(built)
    os.replace(built, final)
    fsync_path(final.parent, directory=True)


def remove(*paths: Path) -> None:
    """Delete what exists of `paths` (leftovers of an interrupted build)."""
    for path in paths:
        path.unlink(missing_ok=True)
