"""Find the models and sample data installed by `fetch_assets` (humanoid_common/fetch_assets.py).

An asset folder holds an ``index.json`` mapping each asset name to its path (relative to the
folder), sha256, licence and source. The folder in effect is the first of these that has an index:

1. ``$HUMANOID_ASSETS``, when set (then only that folder: an explicit choice is never second-guessed);
2. ``.cache/assets`` of the checkout this code runs from (what `make setup` fills);
3. ``$XDG_DATA_HOME/humanoid_stack/assets`` (default ``~/.local/share/humanoid_stack/assets``), where
   `ros2 run humanoid_stack fetch_assets` installs on a robot;
4. ``<dir>/humanoid_stack/assets`` for each dir of ``$XDG_DATA_DIRS`` (default
   ``/usr/local/share:/usr/share``): a system-wide install.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV_VAR = "HUMANOID_ASSETS"
_CHECKOUT = Path(__file__).resolve().parents[1]
FETCH_HINT = (
    "install them with `ros2 run humanoid_stack fetch_assets` (on a robot) or `make setup` (in a "
    f"checkout), or set {ENV_VAR} to a folder that has them"
)


class AssetError(FileNotFoundError):
    """An asset (or the whole asset folder) is missing; the message says how to get it."""


def user_assets_dir() -> Path:
    """Where `fetch_assets` installs by default: the user's XDG data folder."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "humanoid_stack" / "assets"


def candidate_dirs() -> list[Path]:
    """The folders searched for an asset index, in order (see the module docstring)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return [Path(override).expanduser()]
    candidates = [_CHECKOUT / ".cache" / "assets"] if (_CHECKOUT / "package.xml").is_file() else []
    candidates.append(user_assets_dir())
    system = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    candidates += [Path(d) / "humanoid_stack" / "assets" for d in system.split(os.pathsep) if d]
    return candidates


def assets_dir() -> Path:
    """The asset folder in effect: the first candidate with an index.json."""
    candidates = candidate_dirs()
    for folder in candidates:
        if (folder / "index.json").is_file():
            return folder
    searched = ", ".join(str(folder / "index.json") for folder in candidates)
    raise AssetError(f"no asset index found (searched {searched}): {FETCH_HINT}")


def asset_index() -> dict[str, dict[str, str]]:
    """The index in effect (asset name → path, sha256, licence, source)."""
    return _read_index(assets_dir())


def _read_index(folder: Path) -> dict[str, dict[str, str]]:
    index = folder / "index.json"
    try:
        data = json.loads(index.read_text())
    except json.JSONDecodeError as error:
        raise AssetError(f"{index} is not valid JSON ({error}): fetch the assets again") from None
    if not isinstance(data, dict):
        raise AssetError(f"{index}: expected a mapping of asset names: fetch the assets again")
    return data


def asset_path(name: str) -> Path:
    """Absolute path of one asset by its index name, e.g. ``asset_path("vtest.avi")``."""
    folder = assets_dir()
    index = _read_index(folder)
    entry = index.get(name)
    if entry is None:
        known = ", ".join(sorted(index)) or "none"
        raise AssetError(f"asset {name!r} is not in {folder / 'index.json'} (known: {known}): {FETCH_HINT}")
    path = folder / entry["path"]
    if not path.exists():
        raise AssetError(f"asset {name!r} is indexed but {path} is missing: fetch the assets again")
    return path


def model_file(value: str, parameter: str) -> Path:
    """A model parameter's file: a path (it has a folder separator or starts with ~) that must
    exist, else the name of an asset. Every model parameter of the nodes reads through this."""
    if "/" in value or value.startswith("~"):
        path = Path(value).expanduser()
        if not path.exists():
            raise AssetError(f"parameter {parameter!r}: {path} does not exist")
        return path
    if not value:
        raise AssetError(f"parameter {parameter!r} is empty: give an asset name or a file path")
    return asset_path(value)
