"""humanoid_common.assets: index lookup and the errors a user sees without `make setup`."""

from __future__ import annotations

import json

import pytest

from humanoid_common.assets import AssetError, asset_path, assets_dir


def test_indexed_asset_resolves_to_an_existing_file():
    path = asset_path("vtest.avi")
    assert path.is_file()
    assert path.is_absolute()
    assert path.parent == assets_dir()


def test_env_var_points_at_another_cache(tmp_path, monkeypatch):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.avi").write_bytes(b"x")
    (tmp_path / "index.json").write_text(json.dumps({"clip": {"path": "clips/a.avi"}}))
    monkeypatch.setenv("HUMANOID_ASSETS", str(tmp_path))
    assert asset_path("clip") == tmp_path / "clips" / "a.avi"


def test_missing_index_tells_the_user_to_run_make_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("HUMANOID_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match=r"make setup") as error:
        asset_path("vtest.avi")
    assert str(tmp_path / "index.json") in str(error.value)


def test_unknown_name_lists_the_known_assets(tmp_path, monkeypatch):
    (tmp_path / "index.json").write_text(json.dumps({"clip": {"path": "a.avi"}}))
    monkeypatch.setenv("HUMANOID_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match=r"'nope' is not in .*known: clip.*make setup"):
        asset_path("nope")


def test_indexed_but_deleted_file_is_reported(tmp_path, monkeypatch):
    (tmp_path / "index.json").write_text(json.dumps({"clip": {"path": "a.avi"}}))
    monkeypatch.setenv("HUMANOID_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match=r"indexed but .*a\.avi is missing"):
        asset_path("clip")


def test_asset_error_is_a_file_not_found_error():
    assert issubclass(AssetError, FileNotFoundError)
