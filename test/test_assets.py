"""humanoid_common.assets: where assets are found, and the errors a user sees without them."""

from __future__ import annotations

import json

import pytest

from humanoid_common import assets
from humanoid_common.assets import AssetError, asset_path, assets_dir, model_file


def _asset_folder(folder, name="clip", path="a.avi"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / path).write_bytes(b"x")
    (folder / "index.json").write_text(json.dumps({name: {"path": path}}))
    return folder


@pytest.fixture
def no_checkout(tmp_path, monkeypatch):
    """As on a robot: no checkout, no variable; XDG folders under tmp_path."""
    monkeypatch.delenv("HUMANOID_ASSETS", raising=False)
    monkeypatch.setattr(assets, "_CHECKOUT", tmp_path / "site-packages")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_DIRS", f"{tmp_path / 'local'}:{tmp_path / 'usr'}")
    return tmp_path


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


def test_missing_index_tells_the_user_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HUMANOID_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match=r"ros2 run humanoid_stack fetch_assets.*make setup") as error:
        asset_path("vtest.avi")
    assert str(tmp_path / "index.json") in str(error.value)


def test_without_a_checkout_the_user_folder_comes_before_the_system_ones(no_checkout):
    _asset_folder(no_checkout / "usr" / "humanoid_stack" / "assets")
    assert asset_path("clip") == no_checkout / "usr" / "humanoid_stack" / "assets" / "a.avi"
    _asset_folder(no_checkout / "local" / "humanoid_stack" / "assets")
    assert assets_dir() == no_checkout / "local" / "humanoid_stack" / "assets"
    _asset_folder(no_checkout / "home" / "humanoid_stack" / "assets")
    assert assets_dir() == no_checkout / "home" / "humanoid_stack" / "assets"


def test_nothing_installed_lists_every_place_searched(no_checkout):
    with pytest.raises(AssetError, match="fetch_assets") as error:
        assets_dir()
    for folder in ("home", "local", "usr"):
        assert str(no_checkout / folder / "humanoid_stack" / "assets" / "index.json") in str(error.value)
    assert "site-packages" not in str(error.value)  # an install space is not a checkout


def test_the_variable_is_the_only_place_when_set(no_checkout, monkeypatch):
    _asset_folder(no_checkout / "home" / "humanoid_stack" / "assets")
    monkeypatch.setenv("HUMANOID_ASSETS", str(no_checkout / "elsewhere"))
    with pytest.raises(AssetError, match="elsewhere"):
        asset_path("clip")


def test_a_model_parameter_is_an_asset_name_or_an_existing_path(tmp_path, monkeypatch):
    _asset_folder(tmp_path / "cache")
    monkeypatch.setenv("HUMANOID_ASSETS", str(tmp_path / "cache"))
    assert model_file("clip", "model") == tmp_path / "cache" / "a.avi"
    engine = tmp_path / "yolo.engine"
    engine.write_bytes(b"x")
    assert model_file(str(engine), "model") == engine
    with pytest.raises(AssetError, match=r"parameter 'model': .*missing\.engine does not exist"):
        model_file(str(tmp_path / "missing.engine"), "model")
    with pytest.raises(AssetError, match=r"'yolo11x\.pt' is not in"):
        model_file("yolo11x.pt", "model")  # a bare name never goes to a model hub
    with pytest.raises(AssetError, match="parameter 'model' is empty"):
        model_file("", "model")


def test_unknown_name_lists_the_known_assets(tmp_path, monkeypatch):
    (tmp_path / "index.json").write_text(json.dumps({"clip": {"path": "a.avi"}}))
    monkeypatch.setenv("HUMANOID_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match=r"'nope' is not in .*known: clip.*fetch_assets"):
        asset_path("nope")


def test_indexed_but_deleted_file_is_reported(tmp_path, monkeypatch):
    (tmp_path / "index.json").write_text(json.dumps({"clip": {"path": "a.avi"}}))
    monkeypatch.setenv("HUMANOID_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match=r"indexed but .*a\.avi is missing"):
        asset_path("clip")


def test_asset_error_is_a_file_not_found_error():
    assert issubclass(AssetError, FileNotFoundError)
