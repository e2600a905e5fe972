#!/usr/bin/env python3
"""Calibrate the face similarity thresholds (KNOWN / TENTATIVE / margin) per embedding model.

    python tools/calibrate_faces.py --folder DIR            # DIR/<person>/<image>, one subfolder per person
    python tools/calibrate_faces.py --bundled               # the face images `make setup` installed
    options: --backend insightface opencv  --far-known 1e-4  --far-tentative 1e-2
             --out config/face_thresholds.yaml

Every image of a person folder contributes its largest face that passes the quality gates; images
without one are skipped and counted. With --bundled, the single portraits are one identity each
(three of Obama, one of Biden, one of Yao Ming) and every passing face in the group photos
(faces_gdp.jpg, faces_players.jpg) is taken as a different person, except Yao Ming's in
faces_players.jpg. See memory_node/calibration.py for
how the thresholds follow from the similarity distributions, and docs/memory_faces.md for the data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from humanoid_common.assets import asset_path
from humanoid_common.config import config_dir
from memory_node.calibration import (
    Calibration,
    CalibrationTargets,
    LabelledEmbedding,
    calibrate,
    write_thresholds,
)
from memory_node.faces import BACKENDS, Face, FacePipeline, create_pipeline

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
BUNDLED_PORTRAITS = {
    "face_obama.jpg": "obama",
    "face_obama2.jpg": "obama",
    "face_obama3.jpg": "obama",
    "face_biden.jpg": "biden",
    "faces_yaoming.jpg": "yaoming",
}
BUNDLED_GROUPS = ("faces_gdp.jpg", "faces_players.jpg")
# Faces in the group photos whose identity is known, by a pixel inside the face box: Yao Ming stands
# in the back row of faces_players.jpg (checked by eye; both models also score the pair far above
# every impostor pair). Every other group face is taken as a distinct, unnamed person.
BUNDLED_GROUP_IDENTITIES = {"faces_players.jpg": (((741, 167), "yaoming"),)}
BUNDLED_DESCRIPTION = (
    "bundled assets only: face_obama.jpg, face_obama2.jpg, face_obama3.jpg (one identity), face_biden.jpg, "
    "faces_yaoming.jpg, and every face passing the quality gates in faces_gdp.jpg and faces_players.jpg "
    "taken as distinct people except Yao Ming's in faces_players.jpg. Very little data: 4 independent "
    "genuine pairs (two people) and about 120-150 impostor pairs, so FAR below about 1/pairs is "
    "extrapolated by a normal fit of the impostor scores; recalibrate on faces from the robot's own "
    "camera before trusting these numbers."
)


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image


def folder_images(folder: Path) -> list[tuple[str, Path]]:
    """(person, image path) for DIR/<person>/<image>; errors that a person can act on."""
    if not folder.is_dir():
        raise SystemExit(f"error: {folder} is not a folder (expected one subfolder of images per person)")
    items = [
        (person.name, image)
        for person in sorted(p for p in folder.iterdir() if p.is_dir())
        for image in sorted(person.iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES
    ]
    if len({person for person, _ in items}) < 2:
        raise SystemExit(f"error: {folder} needs image subfolders for at least 2 people")
    return items


def largest_good_face(pipeline: FacePipeline, image: np.ndarray) -> Face | None:
    faces = [face for face in pipeline.process(image) if face.issue == ""]
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)


def folder_samples(
    pipeline: FacePipeline, items: list[tuple[str, Path]]
) -> tuple[list[LabelledEmbedding], list[str]]:
    samples, skipped = [], []
    for person, path in tqdm(items, desc=f"{pipeline.model_name}", unit="image", file=sys.stderr):
        face = largest_good_face(pipeline, read_image(path))
        if face is None:
            skipped.append(str(path))
            continue
        samples.append(LabelledEmbedding(person, str(path), face.embedding))
    return samples, skipped


def bundled_samples(pipeline: FacePipeline) -> tuple[list[LabelledEmbedding], list[str]]:
    samples, skipped = [], []
    names = [*BUNDLED_PORTRAITS, *BUNDLED_GROUPS]
    for name in tqdm(names, desc=f"{pipeline.model_name}", unit="image", file=sys.stderr):
        image = read_image(asset_path(name))
        if name in BUNDLED_PORTRAITS:
            face = largest_good_face(pipeline, image)
            if face is None:
                skipped.append(name)
            else:
                samples.append(LabelledEmbedding(BUNDLED_PORTRAITS[name], name, face.embedding))
            continue
        passed = [face for face in pipeline.process(image) if face.issue == ""]
        samples += [
            LabelledEmbedding(group_identity(name, i, face.box), name, face.embedding)
            for i, face in enumerate(passed)
        ]
    return samples, skipped


def group_identity(name: str, index: int, box: tuple[float, float, float, float]) -> str:
    for (x, y), identity in BUNDLED_GROUP_IDENTITIES.get(name, ()):
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            return identity
    return f"{name}#{index}"


def print_table(results: dict[str, tuple[str, Calibration]]) -> None:
    header = (
        "model",
        "known",
        "tentative",
        "margin",
        "genuine min",
        "impostor max",
        "pairs gen/imp",
        "FRR@known",
    )
    print("\n" + "  ".join(f"{h:>13}" for h in header))
    for model, (_, calibration) in results.items():
        t, e = calibration.thresholds, calibration.evidence
        frr = e["at_known"]["frr"]
        row = (
            model,
            f"{t.known:.3f}",
            f"{t.tentative:.3f}",
            f"{t.margin:.3f}",
            f"{e['genuine']['min']:.3f}" if e["genuine"]["pairs"] else "-",
            f"{e['impostor']['max']:.3f}",
            f"{e['genuine']['pairs']}/{e['impostor']['pairs']}",
            "-" if frr is None else f"{frr:.2f}",
        )
        print("  ".join(f"{c:>13}" for c in row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", type=Path, help="labelled faces: one subfolder of images per person")
    source.add_argument("--bundled", action="store_true", help="use the face images installed by make setup")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--far-known", type=float, default=CalibrationTargets.far_known)
    parser.add_argument("--far-tentative", type=float, default=CalibrationTargets.far_tentative)
    parser.add_argument("--out", type=Path, default=config_dir() / "face_thresholds.yaml")
    args = parser.parse_args(argv)
    try:
        targets = CalibrationTargets(args.far_known, args.far_tentative)
    except ValueError as error:
        parser.error(str(error))
    items = folder_images(args.folder) if args.folder else []
    description = BUNDLED_DESCRIPTION if args.bundled else f"labelled folder {args.folder.resolve()}"

    results = {}
    for backend in args.backend:
        pipeline = create_pipeline(backend)
        samples, skipped = bundled_samples(pipeline) if args.bundled else folder_samples(pipeline, items)
        if skipped:
            print(f"{backend}: no face passed the quality gates in {len(skipped)} image(s): {skipped}")
        try:
            calibration = calibrate(samples, targets)
        except ValueError as error:
            print(f"error: {backend}: {error}", file=sys.stderr)
            return 1
        calibration.evidence["images_without_a_good_face"] = len(skipped)
        results[pipeline.model_name] = (backend, calibration)

    print_table(results)
    write_thresholds(args.out, results, targets, description)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
