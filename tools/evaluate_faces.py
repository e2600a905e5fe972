#!/usr/bin/env python3
"""Check face thresholds on labelled photos nobody calibrated on, the way the robot meets people.

    python tools/evaluate_faces.py --folder DIR      # DIR/<person>/<image>, one subfolder per person
    options: --backend insightface opencv  --thresholds config/face_thresholds.yaml
             --conditions clean small blur jpeg dim  (default: clean)

Every person in turn is the stranger while the others are enrolled with 1, 2 and 3 of their photos,
then everybody walks past the camera (tracks of 5 distinct photos at 5 Hz) through the real memory
core with learning on (memory_node/open_set.py). Exit status 1 when anything falls short of: no
stranger KNOWN; strangers asked "are you X?" on at most 5 % of their tracks; enrolled people KNOWN
within 1 s on at least 95 % of their tracks (for blur and dim: of the tracks with enough faces past
the quality gates). The table and every shortfall are printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calibrate_faces import folder_images, read_image

from humanoid_common.config import config_dir
from memory_node.config import MemoryConfigError, load_thresholds
from memory_node.face_sets import CONDITIONS, LabelledImage
from memory_node.faces import BACKENDS, create_pipeline
from memory_node.open_set import Plan, embed_photos, format_report, shortfalls, simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="one subfolder of photos per person")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--thresholds", type=Path, default=config_dir() / "face_thresholds.yaml")
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=["clean"])
    args = parser.parse_args(argv)
    items = folder_images(args.folder)
    if len({person for person, _ in items}) < 3:
        parser.error(f"{args.folder} needs photos of at least 3 people (one stranger, two enrolled)")
    photos = [LabelledImage(person, str(path), read_image(path)) for person, path in items]
    failed = False
    for backend in args.backend:
        pipeline = create_pipeline(backend)
        try:
            thresholds = load_thresholds(args.thresholds, pipeline.model_name)
        except MemoryConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        samples = embed_photos(pipeline, photos, args.conditions)
        missing = sum(s.embedding is None for s in samples)
        report = simulate(samples, thresholds, pipeline.dim, args.conditions, Plan(), progress=True)
        title = f"\n{backend} ({pipeline.model_name}), {thresholds}; {missing} photo(s) without a good face"
        print(format_report(report, title))
        problems = shortfalls(report)
        for problem in problems:
            print(f"  SHORT: {problem}")
        print(f"{backend}: {'FAILED' if problems else 'passed'}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
