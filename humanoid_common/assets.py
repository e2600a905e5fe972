"""Find models and sample data installed by `make setup` (tools/setup/fetch_assets.py).

The cache holds an ``index.json`` mapping each asset name to its path (relative to the cache), sha256,
licence and source. The cache is ``.cache/assets`` of the checkout unless ``HUMANOID_ASSETS`` names
another folder (for example on a robot, where the assets were copied elsewhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV_VAR = "HUMANOID_ASSETS"
_CHECKOUT_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "assets"


class AssetError(FileNotFoundError):
    """An asset (or the whole cache) is missing; the message says how to get it."""


def assets_dir() -> Path:
    """The asset cache in effect: $HUMANOID_ASSETS, else .cache/assets of this checkout."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else _CHECKOUT_CACHE


def asset_index() -> dict[str, dict[str, str]]:
    """The cache's index (asset name → path, sha256, licence, source)."""
    cache = assets_dir()
    index = cache / "index.json"
    try:
        data = json.loads(index.read_text())
    except FileNotFoundError:
        raise AssetError(
            f"no asset index at {index}: run `make setup` in the humanoid_stack checkout to fetch "
            f"the models and sample data (or set {ENV_VAR} to a folder that has them)"
        ) from None
    except json.JSONDecodeError as error:
        raise AssetError(f"{index} is not valid JSON ({error}): re-run `make setup`") from None
    if not isinstance(data, dict):
        raise AssetError(f"{index}: expected a mapping of asset names, re-run `make setup`")
    return data


def asset_path(name: str) -> Path:
    """Absolute path of one asset by its index name, e.g. ``asset_path("vtest.avi")``."""
    index = asset_index()
    cache = assets_dir()
    entry = index.get(name)
    if entry is None:
        known = ", ".join(sorted(index)) or "none"
        raise AssetError(
            f"asset {name!r} is not in {cache / 'index.json'} (known: {known}); "
            "run `make setup` to fetch the assets listed in tools/setup/assets.yaml"
        )
    path = cache / entry["path"]
    if not path.exists():
        raise AssetError(f"asset {name!r} is indexed but {path} is missing: run `make setup` again")
    return path
