"""Threshold calibration (memory_node.calibration, tools/calibrate_faces.py) and the shipped thresholds."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from humanoid_common.assets import asset_path
from humanoid_common.config import config_dir
from memory_node.calibration import (
    CalibrationTargets,
    LabelledEmbedding,
    calibrate,
    pair_scores,
    write_thresholds,
)
from memory_node.config import MemoryConfigError, load_thresholds
from memory_node.faces import BACKENDS, create_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import calibrate_faces

SHIPPED = config_dir() / "face_thresholds.yaml"


def synthetic_samples(
    people: int = 40, per_person: int = 4, dim: int = 64, spread: float = 0.6, seed: int = 0
):
    """Clusters of unit vectors: each person a random centre plus noise, one source image per sample."""
    rng = np.random.default_rng(seed)
    samples = []
    for person in range(people):
        centre = rng.normal(size=dim)
        centre /= np.linalg.norm(centre)
        for shot in range(per_person):
            vector = centre + spread * rng.normal(size=dim) / np.sqrt(dim)
            samples.append(
                LabelledEmbedding(f"p{person}", f"p{person}/{shot}.jpg", vector / np.linalg.norm(vector))
            )
    return samples


def test_thresholds_in_the_right_order_on_synthetic_clusters():
    calibration = calibrate(synthetic_samples())
    t = calibration.thresholds
    evidence = calibration.evidence
    assert evidence["impostor"]["max"] < t.known
    assert t.tentative < t.known
    assert t.margin == pytest.approx(max(0.05, t.known - t.tentative), abs=1e-3)
    assert evidence["impostor"]["mean"] < t.tentative < evidence["genuine"]["mean"]
    assert evidence["at_known"]["far_empirical"] <= 1e-4
    assert evidence["at_tentative"]["far_empirical"] <= 1e-2
    assert evidence["at_known"]["frr"] < 0.05  # well-separated clusters


def test_stricter_far_gives_higher_known_threshold():
    samples = synthetic_samples()
    loose = calibrate(samples, CalibrationTargets(far_known=1e-2, far_tentative=1e-1)).thresholds
    strict = calibrate(samples, CalibrationTargets(far_known=1e-5, far_tentative=1e-1)).thresholds
    assert strict.known > loose.known
    assert strict.tentative == pytest.approx(loose.tentative)


def test_same_source_pairs_are_kept_apart():
    a = np.array([1.0, 0.0])
    b = np.array([0.0, 1.0])
    samples = [
        LabelledEmbedding("alice", "a.jpg", a),
        LabelledEmbedding("alice", "a.jpg", a),  # e.g. a flipped copy of the same photo
        LabelledEmbedding("alice", "a2.jpg", a),
        LabelledEmbedding("bob", "b.jpg", b),
    ]
    scores = pair_scores(samples)
    assert scores.same_source.size == 1
    assert scores.genuine.size == 2
    assert scores.impostor.size == 3


def test_calibration_refuses_unusable_data():
    one_person = [LabelledEmbedding("alice", f"{i}.jpg", np.array([1.0, 0.0])) for i in range(3)]
    with pytest.raises(ValueError, match="at least 2 people"):
        calibrate(one_person)
    same_vectors = [LabelledEmbedding(f"p{i}", f"{i}.jpg", np.array([1.0, 0.0])) for i in range(4)]
    with pytest.raises(ValueError, match="check the labels"):
        calibrate(same_vectors)
    with pytest.raises(ValueError, match="KNOWN must be the stricter"):
        CalibrationTargets(far_known=0.1, far_tentative=0.01)
    # One look-alike pair far above all other impostor pairs, and too few pairs to resolve either FAR:
    # both thresholds land just above that pair, leaving no TENTATIVE band.
    strangers = synthetic_samples(people=30, per_person=1, dim=100)
    nudged = strangers[0].embedding + 0.07 * np.random.default_rng(1).normal(size=100)
    look_alike = LabelledEmbedding("twin", "twin.jpg", nudged / np.linalg.norm(nudged))
    with pytest.raises(ValueError, match="too few"):
        calibrate([*strangers, look_alike], CalibrationTargets(far_known=1e-3, far_tentative=2e-3))


def test_written_file_is_read_by_the_memory_config(tmp_path):
    calibration = calibrate(synthetic_samples(people=10))
    path = tmp_path / "sub" / "thresholds.yaml"
    write_thresholds(path, {"toy": ("insightface", calibration)}, CalibrationTargets(), "synthetic clusters")
    loaded = load_thresholds(path, "toy")
    assert (loaded.known, loaded.tentative, loaded.margin) == (
        calibration.thresholds.known,
        calibration.thresholds.tentative,
        calibration.thresholds.margin,
    )
    assert [p.name for p in path.parent.iterdir()] == ["thresholds.yaml"]  # no temp file left behind
    with pytest.raises(MemoryConfigError, match="sface"):
        load_thresholds(path, "sface")


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory) -> Path:
    """A labelled folder built from the bundled images: portraits per person, group faces cropped out."""
    root = tmp_path_factory.mktemp("faces")
    for person, names in {
        "obama": ("face_obama.jpg", "face_obama2.jpg", "face_obama3.jpg"),
        "biden": ("face_biden.jpg",),
        "yaoming": ("faces_yaoming.jpg",),
    }.items():
        (root / person).mkdir()
        for name in names:
            (root / person / name).write_bytes(asset_path(name).read_bytes())
    group = cv2.imread(str(asset_path("faces_gdp.jpg")))
    faces = [f for f in create_pipeline("opencv").detect(group) if f.issue == ""]
    for index, face in enumerate(faces):
        x1, y1, x2, y2 = (int(v) for v in face.box)
        pad = (x2 - x1) // 2
        crop = group[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
        (root / f"gdp{index}").mkdir()
        cv2.imwrite(str(root / f"gdp{index}" / "face.png"), cv2.resize(crop, None, fx=2, fy=2))
    return root


def test_tool_calibrates_a_labelled_folder(labelled_folder, tmp_path, capsys):
    out = tmp_path / "thresholds.yaml"
    assert calibrate_faces.main(["--folder", str(labelled_folder), "--out", str(out)]) == 0
    document = yaml.safe_load(out.read_text())
    assert set(document["models"]) == {"w600k_mbf", "sface"}
    for model, entry in document["models"].items():
        thresholds = load_thresholds(out, model)
        assert thresholds.tentative < thresholds.known
        assert entry["evidence"]["genuine"]["pairs"] == 3  # obama x3
        assert entry["evidence"]["genuine"]["min"] > thresholds.known
        assert entry["evidence"]["impostor"]["max"] < thresholds.known
    assert "w600k_mbf" in capsys.readouterr().out


def test_tool_rejects_a_folder_with_one_person(tmp_path):
    (tmp_path / "alice").mkdir()
    with pytest.raises(SystemExit, match="at least 2 people"):
        calibrate_faces.main(["--folder", str(tmp_path), "--out", str(tmp_path / "t.yaml")])


@pytest.mark.parametrize("backend", BACKENDS)
def test_shipped_thresholds_separate_the_bundled_faces(backend):
    pipeline = create_pipeline(backend)
    thresholds = load_thresholds(SHIPPED, pipeline.model_name)
    embeddings = {}
    for name in ("face_obama.jpg", "face_obama2.jpg", "face_obama3.jpg", "face_biden.jpg", "faces_gdp.jpg"):
        embeddings[name] = [
            f.embedding for f in pipeline.process(cv2.imread(str(asset_path(name)))) if f.issue == ""
        ]
    obama = [embeddings[name][0] for name in ("face_obama.jpg", "face_obama2.jpg", "face_obama3.jpg")]
    others = embeddings["face_biden.jpg"] + embeddings["faces_gdp.jpg"]
    genuine = [float(a @ b) for a, b in itertools.combinations(obama, 2)]
    impostor = [float(a @ b) for a in obama for b in others]
    assert min(genuine) >= thresholds.known
    assert max(impostor) < thresholds.tentative
