#!/usr/bin/env python3
"""Measure each face detector's frontal landmark geometry for the pose proxy (memory_node.quality).

    python tools/calibrate_pose.py                      # ORL calibration split: constants + report
    python tools/calibrate_pose.py --split held_out     # check only: never take constants from it

Per backend, on the ORL photos (memory_node.face_sets; each padded by half its width on every side,
as SCRFD misses faces that fill the whole 92×112 photo) and the bundled portraits, it prints the
landmark geometry (nose sideways offset, nose between eye and mouth line, mouth distance), the
yaw/pitch estimates and pose-gate rejections with the ArcFace template's frontal reference (the old
estimate) and with the detector's own (memory_node.quality.POSE_REFERENCES), the agreement between the
backends, and the PoseReference constants this split suggests: medians, and a pitch gain that scales
each detector's nose-ratio spread (median absolute deviation) to the geometric mean of both.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from humanoid_common.assets import asset_path
from memory_node.face_sets import SPLITS, framed, orl_faces
from memory_node.faces import BACKENDS, QualityGates, create_pipeline
from memory_node.quality import TEMPLATE_REFERENCE, PoseReference, face_geometry, head_pose

PORTRAITS = ("face_obama.jpg", "face_obama2.jpg", "face_obama3.jpg", "face_biden.jpg", "faces_yaoming.jpg")


def mad(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values))))


def summary(angles: np.ndarray) -> str:
    yaw, pitch = np.abs(angles[:, 0]), np.abs(angles[:, 1])
    return (
        f"|yaw| median {np.median(yaw):5.1f} p95 {np.percentile(yaw, 95):5.1f}, "
        f"|pitch| median {np.median(pitch):5.1f} p95 {np.percentile(pitch, 95):5.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=SPLITS, default="calibration")
    args = parser.parse_args()
    photos, unreadable = orl_faces(args.split)
    print(f"ORL {args.split}: {len(photos)} photos ({len(unreadable)} unreadable: {', '.join(unreadable)})")
    gates = QualityGates()
    landmarks: dict[str, list[np.ndarray | None]] = {}
    spreads: dict[str, float] = {}
    geometries: dict[str, np.ndarray] = {}
    for backend in BACKENDS:
        pipeline = create_pipeline(backend)
        print(f"\n{backend} ({type(pipeline).__name__}), reference now {pipeline.pose_reference}")
        faces = [pipeline.detect(framed(photo.image)) for photo in photos]
        landmarks[backend] = [found[0].landmarks if found else None for found in faces]
        found = [points for points in landmarks[backend] if points is not None]
        print(f"  faces found: {len(found)} of {len(photos)}")
        geometry = np.array([g for g in map(face_geometry, found) if g is not None])
        spreads[backend] = mad(geometry[:, 1])
        for column, name in enumerate(("nose_x", "nose_ratio", "mouth_over_half_eyes")):
            values = geometry[:, column]
            print(
                f"  {name:21s} median {np.median(values):6.3f}  MAD {mad(values):.3f}  "
                f"p5 {np.percentile(values, 5):6.3f}  p95 {np.percentile(values, 95):6.3f}"
            )
        for label, reference in (
            ("template reference", TEMPLATE_REFERENCE),
            ("own reference", pipeline.pose_reference),
        ):
            angles = np.array([head_pose(points, reference) for points in found])
            rejected = int(
                np.sum(
                    (np.abs(angles[:, 0]) > gates.max_yaw_deg) | (np.abs(angles[:, 1]) > gates.max_pitch_deg)
                )
            )
            print(f"  {label:18s}: {summary(angles)}; pose gate rejects {rejected}")
        for name in PORTRAITS:
            face = pipeline.detect(cv2.imread(str(asset_path(name))))[0]
            old = head_pose(face.landmarks, TEMPLATE_REFERENCE)
            new = head_pose(face.landmarks, pipeline.pose_reference)
            print(
                f"  {name:18s} yaw/pitch template {old[0]:6.1f} {old[1]:6.1f}   "
                f"own {new[0]:6.1f} {new[1]:6.1f}   issue {face.issue or 'none'}"
            )
        geometries[backend] = geometry
    common = float(np.sqrt(np.prod(list(spreads.values()))))
    print(f"\nsuggested constants from this split (common nose_ratio spread {common:.3f}):")
    for backend in BACKENDS:
        geometry = geometries[backend]
        suggested = PoseReference(
            *(round(float(v), 3) for v in np.median(geometry, axis=0)), round(common / spreads[backend], 2)
        )
        print(f"  {backend}: {suggested}")
    pipelines = {backend: create_pipeline(backend) for backend in BACKENDS}
    both = [
        (a, b)
        for a, b in zip(landmarks[BACKENDS[0]], landmarks[BACKENDS[1]], strict=True)
        if a is not None and b is not None
    ]
    for label, references in (
        ("template reference", (TEMPLATE_REFERENCE, TEMPLATE_REFERENCE)),
        ("own references", tuple(pipelines[b].pose_reference for b in BACKENDS)),
    ):
        difference = np.abs(
            np.array([np.subtract(head_pose(a, references[0]), head_pose(b, references[1])) for a, b in both])
        )
        print(
            f"backends disagree ({label}, {len(both)} photos): yaw median {np.median(difference[:, 0]):.1f} "
            f"p95 {np.percentile(difference[:, 0], 95):.1f}, pitch median {np.median(difference[:, 1]):.1f} "
            f"p95 {np.percentile(difference[:, 1], 95):.1f} degrees"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
