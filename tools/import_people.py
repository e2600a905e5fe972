#!/usr/bin/env python3
"""Import a folder of people into the face memory: one subfolder per person, named after them.

    tools/import_people.py PEOPLE_DIR --consent [--data-dir DIR] [--backend insightface|opencv]

Every image of a subfolder is run through the face pipeline; the largest face that passes the quality
gates becomes a sample of that person. `--consent` is required: it records that every person in the
folder agreed to long-term storage of their name and face embeddings. Run it while memory_node is
stopped (a running node only sees the new people after a restart); to add people to a running node,
use the /memory/enroll service instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import cv2
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanoid_common.config import config_dir
from memory_node.config import MemoryConfigError, load_memory_config, load_thresholds
from memory_node.crypto import MemoryKeyError
from memory_node.faces import create_pipeline
from memory_node.memory import FaceMemory, MemoryRequestError
from memory_node.store import StoreError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="one subfolder per person, named after the person")
    parser.add_argument(
        "--consent", action="store_true", help="every person in the folder consented (required)"
    )
    parser.add_argument("--config", type=Path, default=config_dir() / "memory.yaml")
    parser.add_argument("--thresholds", type=Path, default=config_dir() / "face_thresholds.yaml")
    parser.add_argument("--data-dir", help="overrides memory.storage.data_dir")
    parser.add_argument("--backend", default="insightface", choices=("insightface", "opencv"))
    args = parser.parse_args(argv)
    if not args.consent:
        parser.error("--consent is required: import only people who agreed to be remembered")
    people = sorted(p for p in args.folder.iterdir() if p.is_dir()) if args.folder.is_dir() else []
    if not people:
        parser.error(f"{args.folder} has no subfolders (one per person expected)")
    try:
        config = load_memory_config(args.config)
        if args.data_dir:
            config = dataclasses.replace(
                config, storage=dataclasses.replace(config.storage, data_dir=args.data_dir)
            )
        pipeline = create_pipeline(args.backend)
        memory = FaceMemory.open(config, load_thresholds(args.thresholds, pipeline.model_name), pipeline.dim)
    except (MemoryConfigError, MemoryKeyError, StoreError, ValueError, OSError) as error:
        print(f"import_people: {error}", file=sys.stderr)
        return 2
    images = [
        (person, path)
        for person in people
        for path in sorted(person.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    embeddings: dict[str, list] = {}
    rejected = 0
    try:
        for person, path in tqdm(images, desc="faces", unit="image"):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            good = [f for f in pipeline.process(bgr) if not f.issue] if bgr is not None else []
            if not good:
                rejected += 1
                tqdm.write(f"no usable face in {path} (unreadable, none found, or failed the quality gates)")
                continue
            face = max(good, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            embeddings.setdefault(person.name, []).append(face.embedding)
        for person in people:
            try:
                pid, added = memory.enroll(person.name, True, embeddings.get(person.name, []), time.time())
                print(f"{person.name}: {added} samples (id {pid})")
            except MemoryRequestError as error:
                print(f"{person.name}: not imported: {error}", file=sys.stderr)
    finally:
        memory.close()
    print(f"imported {len(embeddings)} of {len(people)} people; {rejected} images without a usable face")
    return 0 if len(embeddings) == len(people) else 1


if __name__ == "__main__":
    sys.exit(main())
