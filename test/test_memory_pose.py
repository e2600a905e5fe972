"""Landmark pose proxy (memory_node.quality): synthetic geometry, and agreement of the two face backends.

The real-photo checks use the ORL held-out split (memory_node.face_sets), never used for the
per-detector constants (those come from the calibration split, tools/calibrate_pose.py). Only
`detect` runs (no embeddings), so the module takes a few seconds.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from humanoid_common.assets import asset_path
from memory_node.align import TEMPLATE_112
from memory_node.face_sets import framed, orl_faces
from memory_node.faces import BACKENDS, QualityGates, create_pipeline
from memory_node.quality import POSE_REFERENCES, PoseReference, face_geometry, head_pose, pose_angles

# A generic 3D five-point face (the one MTCNN pose code hands to solvePnP), person's-viewpoint order,
# x towards the person's left, y up, z towards the camera; units about 0.2 mm (eyes 66 mm apart).
FACE_3D = np.array(
    [[165, 170, -115], [-165, 170, -115], [0, 0, 0], [150, -150, -125], [-150, -150, -125]], dtype=np.float64
)
FRONTAL_PORTRAITS = (
    "face_obama.jpg",
    "face_obama2.jpg",
    "face_obama3.jpg",
    "face_biden.jpg",
    "faces_yaoming.jpg",
)


def project(yaw: float, pitch: float, distance: float = 5000.0, focal: float = 1000.0) -> np.ndarray:
    """Image points of FACE_3D turned by `yaw` (towards the person's left) about its own vertical
    axis and tilted up by `pitch`, seen by a pinhole camera `distance` away (5000: about 1 m)."""
    a, b = np.radians(yaw), np.radians(pitch)
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(b), np.sin(b)], [0, -np.sin(b), np.cos(b)]])
    points = FACE_3D @ (turn @ tilt).T
    depth = distance - points[:, 2]
    image = np.stack([focal * points[:, 0] / depth, -focal * points[:, 1] / depth], axis=1)
    return image + np.array([320.0, 240.0])


# The synthetic "detector" puts its landmarks exactly on the 3D points: its frontal reference is the
# frontal projection, with no gain (its nose moves as the geometry says).
SYNTHETIC = PoseReference(*face_geometry(project(0.0, 0.0)))


# -- (a) synthetic geometry ------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [-40, -30, -20, -10, -5, 0, 5, 10, 20, 30, 40])
def test_synthetic_single_axis_is_recovered(angle):
    # Within 3°: the proxy ignores perspective (2.2° at 40° from 1 m, 0.1° from far away) and takes the
    # mouth corners in the eyes' plane (1.8° of pitch at 40°, the 3D face has them 10 units deeper).
    yaw, pitch = head_pose(project(angle, 0.0), SYNTHETIC)
    assert yaw == pytest.approx(angle, abs=3.0)
    assert abs(pitch) < 1.5
    yaw, pitch = head_pose(project(0.0, angle), SYNTHETIC)
    assert pitch == pytest.approx(angle, abs=3.0)
    assert abs(yaw) < 0.5


def test_synthetic_combined_pose_is_recovered_and_errs_towards_rejecting():
    for yaw in range(-40, 41, 10):
        for pitch in range(-40, 41, 10):
            estimate = np.array(head_pose(project(yaw, pitch), SYNTHETIC))
            error = np.abs(estimate - (yaw, pitch))
            if max(abs(yaw), abs(pitch)) <= 20:
                assert error.max() < 4.0, (yaw, pitch, estimate)  # measured at most 2.6
            else:
                # Turned and tilted together, the yaw is overestimated by up to 9° (measured 8.9):
                # never an underestimate that lets a bad view through the gate.
                assert error.max() < 10.0, (yaw, pitch, estimate)
                assert np.all(np.abs(estimate) > np.abs((yaw, pitch)) - 2.5), (yaw, pitch, estimate)


def test_synthetic_angles_are_ordered_and_signed():
    yaws = [head_pose(project(angle, 10.0), SYNTHETIC)[0] for angle in range(-40, 41, 5)]
    pitches = [head_pose(project(10.0, angle), SYNTHETIC)[1] for angle in range(-40, 41, 5)]
    assert np.all(np.diff(yaws) > 0)
    assert np.all(np.diff(pitches) > 0)
    assert pose_angles(project(-25.0, -15.0), SYNTHETIC) == pytest.approx(
        pose_angles(project(25.0, -15.0), SYNTHETIC), abs=1e-6
    )


def test_roll_and_scale_do_not_change_the_estimate():
    points = project(15.0, -10.0)
    angle = np.radians(25.0)
    rotation = 0.4 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(
        head_pose(points @ rotation.T + 50.0, SYNTHETIC), head_pose(points, SYNTHETIC), atol=1e-6
    )


def test_squeezed_face_reads_as_turned():
    # A frontal face squeezed sideways with the nose kept off-centre: what a turned face looks like.
    frontal = project(0.0, 0.0)
    squeezed = frontal.copy()
    squeezed[:, 0] = 320.0 + (frontal[:, 0] - 320.0) * 0.6
    squeezed[2, 0] += 0.35 * np.linalg.norm(frontal[0] - frontal[1]) / 2
    yaw, pitch = head_pose(squeezed, SYNTHETIC)
    assert yaw > 30.0
    assert abs(pitch) < 5.0


def test_degenerate_landmarks_read_as_unusable():
    assert pose_angles(np.zeros((5, 2))) == (90.0, 90.0)
    upside_down = TEMPLATE_112.copy()
    upside_down[3:, 1] = 20.0  # mouth above the eyes
    assert pose_angles(upside_down) == (90.0, 90.0)


# -- (b)-(d) real photos, both backends ------------------------------------------------------------


@pytest.fixture(scope="module")
def pipelines():
    return {backend: create_pipeline(backend) for backend in BACKENDS}


@pytest.fixture(scope="module")
def held_out(pipelines):
    """{source: {backend: (issue, signed yaw, signed pitch)}} for every held-out photo both find."""
    photos, _ = orl_faces("held_out")
    found = {}
    for photo in photos:
        faces = {backend: pipeline.detect(framed(photo.image)) for backend, pipeline in pipelines.items()}
        if all(faces.values()):
            found[photo.source] = {
                backend: (
                    faces[backend][0].issue,
                    *head_pose(faces[backend][0].landmarks, pipelines[backend].pose_reference),
                )
                for backend in BACKENDS
            }
    return len(photos), found


def test_pipelines_use_their_detectors_reference(pipelines):
    assert pipelines["insightface"].pose_reference == POSE_REFERENCES["scrfd"]
    assert pipelines["opencv"].pose_reference == POSE_REFERENCES["yunet"]


def test_both_detectors_find_the_held_out_faces(held_out):
    total, found = held_out
    assert len(found) >= total - 2, f"both backends found {len(found)} of {total} framed ORL faces"


def test_backends_agree_on_held_out_faces(held_out):
    _, found = held_out
    difference = np.abs(
        np.array([np.subtract(f["insightface"][1:], f["opencv"][1:]) for f in found.values()])
    )
    median, p95 = np.median(difference, axis=0), np.percentile(difference, 95, axis=0)
    print(
        f"\nheld-out |insightface - opencv| over {len(found)} faces: "
        f"yaw median {median[0]:.1f} p95 {p95[0]:.1f}, pitch median {median[1]:.1f} p95 {p95[1]:.1f} degrees"
    )
    # Measured 3.1 / 9.1 (yaw) and 4.7 / 15.8 (pitch); with the template reference pitch was 10.8 / 37.1.
    assert median[0] < 5.0
    assert p95[0] < 13.0
    assert median[1] < 7.0
    assert p95[1] < 20.0


def test_no_face_frontal_by_one_backend_is_rejected_by_the_other(held_out):
    _, found = held_out
    wrong = []
    for source, estimates in found.items():
        for backend, other in (BACKENDS, BACKENDS[::-1]):
            _, yaw, pitch = estimates[backend]
            if abs(yaw) <= 20.0 and abs(pitch) <= 20.0 and estimates[other][0] == "pose":
                wrong.append((source, estimates))
    assert not wrong


def test_few_held_out_faces_are_rejected_for_pose(held_out):
    # ORL faces turn by up to about 40°: SCRFD puts two of s26's turned photos (5 and 10) just past
    # the 40° yaw gate (42-43°; YuNet 33°), YuNet none. The old estimate rejected 10 with SCRFD.
    _, found = held_out
    for backend in BACKENDS:
        rejected = [source for source, estimates in found.items() if estimates[backend][0] == "pose"]
        assert len(rejected) <= 4, (backend, rejected)


@pytest.mark.parametrize("name", FRONTAL_PORTRAITS)
def test_frontal_portraits_pass_the_pose_gate(pipelines, name):
    image = cv2.imread(str(asset_path(name)))
    gates = QualityGates()
    for backend, pipeline in pipelines.items():
        face = pipeline.detect(image)[0]
        yaw, pitch = pose_angles(face.landmarks, pipeline.pose_reference)
        assert face.issue != "pose", (backend, yaw, pitch)
        assert yaw < gates.max_yaw_deg - 5.0, (backend, yaw, pitch)
        assert pitch < gates.max_pitch_deg - 5.0, (backend, yaw, pitch)


def test_turned_faces_read_as_turned_on_both_backends(held_out, pipelines):
    _, found = held_out
    # s26/10.pgm: the man looks far to his left (the image's right), checked by eye.
    for backend in BACKENDS:
        _, yaw, _ = found["s26/10.pgm"][backend]
        assert yaw > 25.0, (backend, yaw)
    # face_obama2.jpg: turned about 30° to his right; both say so, and both still pass it (< 40°).
    image = cv2.imread(str(asset_path("face_obama2.jpg")))
    for backend, pipeline in pipelines.items():
        yaw, _ = head_pose(pipeline.detect(image)[0].landmarks, pipeline.pose_reference)
        assert -38.0 < yaw < -20.0, (backend, yaw)
