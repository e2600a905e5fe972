"""Face pipeline (memory_node.faces) on the bundled face images, both backends."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from humanoid_common.assets import asset_path
from memory_node.align import CROP_SIZE, TEMPLATE_112, align_face, similarity_transform
from memory_node.faces import BACKENDS, ProviderError, QualityGates, create_pipeline
from memory_node.quality import pose_angles

OBAMA = ("face_obama.jpg", "face_obama2.jpg", "face_obama3.jpg")
OTHERS = ("face_biden.jpg", "faces_gdp.jpg", "faces_yaoming.jpg")


def load(name: str) -> np.ndarray:
    image = cv2.imread(str(asset_path(name)))
    assert image is not None, name
    return image


@pytest.fixture(scope="module", params=BACKENDS)
def pipeline(request):
    return create_pipeline(request.param)


@pytest.fixture(scope="module")
def processed(pipeline):
    return {name: pipeline.process(load(name)) for name in OBAMA + OTHERS}


def good(faces):
    return [face for face in faces if face.issue == ""]


def test_single_portraits_give_one_good_face(processed, pipeline):
    for name in (*OBAMA, "face_biden.jpg", "faces_yaoming.jpg"):
        passed = good(processed[name])
        assert len(passed) == 1, (name, [(f.box, f.score, f.issue) for f in processed[name]])
        face = passed[0]
        assert face.embedding is not None
        assert face.embedding.shape == (pipeline.dim,)
        assert face.embedding.dtype == np.float32
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-4)
        assert 0.0 < face.quality <= 1.0
        assert 0.0 <= face.score <= 1.0


def test_group_photo_finds_several_faces(processed):
    assert len(good(processed["faces_gdp.jpg"])) >= 2
    assert len(processed["faces_gdp.jpg"]) >= 4


def test_landmarks_plausible(processed):
    for name in (*OBAMA, "face_biden.jpg"):
        face = good(processed[name])[0]
        x1, y1, x2, y2 = face.box
        points = face.landmarks
        assert points.shape == (5, 2)
        assert points.dtype == np.float32
        assert np.all((points[:, 0] > x1) & (points[:, 0] < x2) & (points[:, 1] > y1) & (points[:, 1] < y2))
        left_eye, right_eye, nose, left_mouth, right_mouth = points
        # Person's viewpoint: their left eye and mouth corner appear on the image's right.
        assert left_eye[0] > right_eye[0]
        assert left_mouth[0] > right_mouth[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


def test_only_faces_that_passed_are_embedded(processed):
    for faces in processed.values():
        for face in faces:
            assert (face.embedding is not None) == (face.issue == "")


def test_same_person_more_similar_than_different_people(processed):
    obama = [good(processed[name])[0].embedding for name in OBAMA]
    others = [face.embedding for name in OTHERS for face in good(processed[name])]
    genuine = [float(a @ b) for a, b in itertools.combinations(obama, 2)]
    impostor = [float(a @ b) for a in obama for b in others]
    assert len(others) >= 4
    assert min(genuine) > max(impostor) + 0.2, (genuine, impostor)


def test_embed_aligned_batch_matches_single(pipeline):
    image = load("faces_gdp.jpg")
    faces = good(pipeline.detect(image))
    crops = [align_face(image, face.landmarks) for face in faces]
    batch = pipeline.embed_aligned(crops)
    singles = np.vstack([pipeline.embed_aligned([crop]) for crop in crops])
    assert batch.shape == (len(crops), pipeline.dim)
    np.testing.assert_allclose(batch, singles, atol=1e-4)
    assert pipeline.embed_aligned([]).shape == (0, pipeline.dim)
    with pytest.raises(ValueError, match="112"):
        pipeline.embed_aligned([np.zeros((100, 100, 3), np.uint8)])


def face_size(face) -> float:
    return min(face.box[2] - face.box[0], face.box[3] - face.box[1])


def test_tiny_face_is_rejected_as_too_small(pipeline):
    image = load("face_obama.jpg")
    face = good(pipeline.detect(image))[0]
    scale = 30.0 / face_size(face)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small[:480, :640]
    faces = pipeline.process(canvas)
    assert faces, "the downscaled face was not detected at all"
    assert faces[0].issue == "too_small"
    assert faces[0].embedding is None


def test_blurred_face_is_rejected_as_blurry(pipeline):
    image = load("face_obama.jpg")
    face = good(pipeline.detect(image))[0]
    sigma = 4.0 * face_size(face) / CROP_SIZE  # about 4 px of blur at the aligned crop's scale
    faces = pipeline.process(cv2.GaussianBlur(image, (0, 0), sigma))
    assert faces
    assert faces[0].issue == "blurry"
    assert faces[0].embedding is None


def test_turned_face_is_rejected_for_pose(processed):
    issues = [face.issue for face in processed["faces_gdp.jpg"]]
    assert "pose" in issues  # the man in the middle of the photo looks to the side


def test_score_gate_reports_low_score():
    pipeline = create_pipeline("opencv", gates=QualityGates(min_score=0.999))
    faces = pipeline.detect(load("face_biden.jpg"))
    assert faces
    assert faces[0].issue == "low_score"


def test_pose_proxy_on_template():
    yaw, pitch = pose_angles(TEMPLATE_112)
    assert yaw < 1.0
    assert pitch < 1.0
    turned = TEMPLATE_112.copy()
    turned[2, 0] += 15.0  # nose moved sideways by most of half the eye distance
    assert pose_angles(turned)[0] > 40.0
    nodding = TEMPLATE_112.copy()
    nodding[2, 1] += 12.0  # nose tip down towards the mouth
    assert pose_angles(nodding)[1] > 30.0


def test_similarity_transform_recovers_rotation_scale_shift():
    angle = np.deg2rad(20.0)
    rotation = 1.7 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = TEMPLATE_112 @ rotation.T + np.array([200.0, 90.0])
    matrix = similarity_transform(moved, TEMPLATE_112)
    back = moved @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(back, TEMPLATE_112, atol=1e-3)


def test_alignment_output_shape():
    crop = align_face(load("face_biden.jpg"), TEMPLATE_112 * 3 + 100)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)
    assert crop.dtype == np.uint8


def test_bad_input_gets_a_clear_error(pipeline):
    with pytest.raises(ValueError, match="uint8 BGR"):
        pipeline.detect(np.zeros((100, 100), np.uint8))
    with pytest.raises(ValueError, match="uint8 BGR"):
        pipeline.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        pipeline.detect(np.zeros((0, 100, 3), np.uint8))


def test_unavailable_provider_is_refused():
    missing = next(
        name
        for name in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "NoSuchExecutionProvider")
        if name not in ort.get_available_providers()
    )
    with pytest.raises(ProviderError, match=missing):
        create_pipeline("insightface", providers=(missing,))
    with pytest.raises(ProviderError, match="no onnxruntime execution provider"):
        create_pipeline("insightface", providers=())
    with pytest.raises(ProviderError, match="opencv backend"):
        create_pipeline("opencv", providers=("CUDAExecutionProvider",))


def test_unknown_backend_and_bad_gates():
    with pytest.raises(ValueError, match="unknown face backend"):
        create_pipeline("dlib")
    with pytest.raises(ValueError, match="min_score"):
        QualityGates(min_score=1.5)
    with pytest.raises(ValueError, match="max_yaw_deg"):
        QualityGates(max_yaw_deg=0.0)


REPO = Path(__file__).resolve().parents[1]


def run_python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.slow
def test_bench_faces_quick_runs_on_exported_assets_without_ros(tmp_path):
    assets = tmp_path / "assets"
    exported = run_python("bench/memory.py", "--export-assets", str(assets))
    assert exported.returncode == 0, exported.stderr
    env = {**os.environ, "HUMANOID_ASSETS": str(assets)}
    out = tmp_path / "memory.json"
    result = run_python("bench/memory.py", "--quick", "--section", "faces", "--json", str(out), env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    for backend in BACKENDS:
        measured = [row for row in rows if row["params"]["backend"] == backend]
        assert {row["name"] for row in measured} == {
            "detect per frame",
            "detect+embed per frame",
            "embed aligned crops",
        }
        assert all(row["stats"]["n"] == 5 for row in measured)
        assert all(
            row["params"]["good_faces"] == row["params"]["faces_in_frame"]
            for row in measured
            if "good_faces" in row["params"]
        )
    imports = run_python(
        "-c", "import sys; sys.path.insert(0, 'bench'); import memory; print('rclpy' in sys.modules)", env=env
    )
    assert imports.stdout.strip() == "False", imports.stderr
