"""Threshold calibration (memory_node.calibration, tools/calibrate_faces.py) and the shipped thresholds."""

from __future__ import annotations

import itertools
import math
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
    build_galleries,
    calibrate,
    clopper_pearson,
    score_galleries,
    tail_threshold,
    write_thresholds,
)
from memory_node.config import MemoryConfigError, load_thresholds
from memory_node.faces import BACKENDS, create_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import calibrate_faces

SHIPPED = config_dir() / "face_thresholds.yaml"
TARGETS = CalibrationTargets(report_sizes=(10, 100, 1000), choices=2)


def synthetic_samples(
    people: int = 40,
    per_person: int = 5,
    dim: int = 64,
    spread: float = 0.6,
    seed: int = 0,
    conditions: tuple[str, ...] = ("clean", "blur"),
):
    """Clusters of unit vectors: each person a random centre, each photo the centre plus noise, and each
    condition the photo plus a little more noise (one source per photo, shared by its conditions)."""
    rng = np.random.default_rng(seed)
    samples = []
    for person in range(people):
        centre = rng.normal(size=dim)
        centre /= np.linalg.norm(centre)
        for shot in range(per_person):
            photo = centre + spread * rng.normal(size=dim) / np.sqrt(dim)
            for condition in conditions:
                noise = 0.0 if condition == "clean" else 0.3 * rng.normal(size=dim) / np.sqrt(dim)
                vector = photo + noise
                samples.append(
                    LabelledEmbedding(
                        f"p{person}", f"p{person}/{shot}.jpg", vector / np.linalg.norm(vector), condition
                    )
                )
    return samples


@pytest.fixture(scope="module")
def synthetic():
    return calibrate(synthetic_samples(), TARGETS)


def test_bands_are_ordered_and_grow_with_the_gallery(synthetic):
    bands = synthetic.bands
    assert sorted(bands) == [10, 100, 1000]
    assert synthetic.thresholds == bands[100]  # the shipped gallery size
    for band in bands.values():
        assert band.tentative < band.known
        assert band.margin == pytest.approx(max(0.05, band.known - band.tentative), abs=1e-3)
    assert bands[10].known < bands[100].known < bands[1000].known  # more people, more chances to match
    assert bands[10].tentative < bands[100].tentative < bands[1000].tentative


def test_evidence_carries_counts_and_intervals_per_condition(synthetic):
    evidence = synthetic.evidence
    assert evidence["data"]["identities"] == 40
    assert evidence["galleries"]["enrolled_photos"] == [1, 2, 3]
    assert evidence["galleries"]["impostor_photo_person_pairs"] == 40 * 5 * 39
    for size, band in evidence["bands"].items():
        assert set(band["rates"]) == {"clean", "blur"}
        for rates in band["rates"].values():
            far = rates["far_known_per_person"]
            _, trials = map(int, far["count"].split("/"))
            assert trials > 10_000
            assert far["ci95"][0] <= far["rate"] <= far["ci95"][1]
            assert rates["far_known_per_probe"]["ci95"][1] >= far["ci95"][1]  # grows with N
            if size == 10:
                assert rates["tar"]["rate"] > 0.85  # well-separated clusters
        assert band["known_from"]["fit_used"] in {"normal", "exponential_tail"}
    measured = evidence["open_set_measured"]
    assert measured["clean"]["stranger_known"]["rate"] == 0.0
    assert measured["clean"]["genuine_known_with_a_face"]["rate"] > 0.85


def test_stricter_far_gives_higher_known_threshold():
    samples = synthetic_samples(people=20, conditions=("clean",))
    loose = calibrate(samples, CalibrationTargets(far_known=1e-2, far_tentative=1e-1, choices=1)).thresholds
    strict = calibrate(samples, CalibrationTargets(far_known=1e-3, far_tentative=1e-1, choices=1)).thresholds
    assert strict.known > loose.known


def test_per_person_rate_compounds_to_the_per_probe_target():
    targets = CalibrationTargets()
    for far, size in ((1e-3, 100), (2e-2, 1000), (0.5, 1)):
        p = targets.per_person(far, size)
        assert 1.0 - (1.0 - p) ** size == pytest.approx(far, rel=1e-9)


def test_clopper_pearson_matches_the_exact_binomial_bounds():
    low, high = clopper_pearson(0, 10)
    assert low == 0.0
    assert high == pytest.approx(1.0 - 0.025 ** (1 / 10), rel=1e-6)  # (1 - high)^10 = 0.025
    low, high = clopper_pearson(5, 10)
    assert (low, high) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    assert clopper_pearson(3, 3)[1] == 1.0
    for n in (1, 88_031):  # n of n: the lower bound is 0.025^(1/n); large counts stay exact
        assert clopper_pearson(n, n) == pytest.approx((0.025 ** (1 / n), 1.0), rel=1e-9)
        assert clopper_pearson(0, n)[1] == pytest.approx(1.0 - 0.025 ** (1 / n), rel=1e-9)


def test_tail_threshold_does_not_trust_an_optimistic_normal_fit():
    rng = np.random.default_rng(3)
    # Mostly normal scores with a heavier upper tail (look-alikes): a normal fit puts the 1e-3
    # quantile too low; the exponential tail fit does not.
    scores = np.concatenate([rng.normal(0.1, 0.08, 20_000), 0.25 + rng.exponential(0.06, 1_000)])
    threshold, parts = tail_threshold(scores, 1e-5)
    assert parts["optimistic_at"].get("normal")
    assert parts["fit_used"] == "exponential_tail"
    assert parts["extrapolated"]
    assert threshold >= parts["empirical"]
    assert threshold >= parts["normal"]
    well_inside, inside = tail_threshold(scores, 1e-2)  # 210 scores above it: the data shows it
    assert not inside["extrapolated"]
    assert np.mean(scores >= well_inside) <= 1e-2 + 1e-9


def test_galleries_are_anchors_plus_centroid_and_enrolled_photos_are_not_probes():
    samples = synthetic_samples(people=3, per_person=4, conditions=("clean",))
    targets = CalibrationTargets(choices=2)
    galleries = build_galleries(samples, targets)
    assert {(g.k, g.choice) for g in galleries} == {(k, c) for k in (1, 2, 3) for c in (0, 1)}
    for gallery in galleries:
        assert gallery.anchors.shape == (gallery.k + 1, 64)
        assert np.linalg.norm(gallery.anchors[0]) == pytest.approx(1.0)
    scores = score_galleries(samples, galleries)
    for g, gallery in enumerate(galleries):
        genuine = [p.source for p, ok in zip(scores.probes, scores.genuine[:, g], strict=True) if ok]
        assert len(genuine) == 4 - gallery.k
        assert not set(genuine) & set(gallery.enrolled)
        assert scores.impostor[:, g].sum() == 8  # the other two people's photos


def test_learned_samples_only_raise_the_tentative_scores():
    samples = synthetic_samples(people=10, conditions=("clean",))
    scores = score_galleries(samples, build_galleries(samples, TARGETS))
    learned = scores.learned_scores(known=0.5, per_person=5)
    assert np.all(learned >= scores.anchor - 1e-12)
    assert np.any(learned[scores.impostor] > scores.anchor[scores.impostor])


def test_calibration_refuses_unusable_data():
    one_person = [LabelledEmbedding("alice", f"{i}.jpg", np.array([1.0, 0.0])) for i in range(3)]
    with pytest.raises(ValueError, match="at least 2 people"):
        calibrate(one_person)
    same_vectors = [
        LabelledEmbedding(f"p{i}", f"{i}/{j}.jpg", np.array([1.0, 0.0])) for i in range(12) for j in range(2)
    ]
    with pytest.raises(ValueError, match="check the labels"):
        calibrate(same_vectors)
    with pytest.raises(ValueError, match="KNOWN must be the stricter"):
        CalibrationTargets(far_known=0.1, far_tentative=0.01)
    with pytest.raises(ValueError, match="gallery sizes"):
        CalibrationTargets(gallery_size=0)
    with pytest.raises(ValueError, match="too few"):
        tail_threshold(np.zeros(5), 1e-3)


def test_written_file_is_read_by_the_memory_config(tmp_path, synthetic):
    path = tmp_path / "sub" / "thresholds.yaml"
    write_thresholds(path, {"toy": ("insightface", synthetic)}, TARGETS, "synthetic clusters")
    loaded = load_thresholds(path, "toy")
    assert loaded == synthetic.thresholds
    document = yaml.safe_load(path.read_text())
    entry = document["models"]["toy"]
    assert entry["gallery_size"] == 100
    assert set(entry["bands"]) == {10, 100, 1000}
    assert set(entry["evidence"]["bands"][100]["rates"]["clean"]) >= {"tar", "far_known_per_probe"}
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
    for name in ("faces_gdp.jpg", "faces_players.jpg"):
        group = cv2.imread(str(asset_path(name)))
        faces = [f for f in create_pipeline("opencv").detect(group) if f.issue == ""]
        for index, face in enumerate(faces):
            x1, y1, x2, y2 = (int(v) for v in face.box)
            if name == "faces_players.jpg" and x1 <= 741 <= x2 and y1 <= 167 <= y2:
                continue  # Yao Ming (tools/calibrate_faces.py BUNDLED_GROUP_IDENTITIES)
            pad = (x2 - x1) // 2
            crop = group[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
            folder = root / f"{name[6:-4]}{index}"
            folder.mkdir()
            cv2.imwrite(str(folder / "face.png"), cv2.resize(crop, None, fx=2, fy=2))
    return root


def test_tool_calibrates_a_labelled_folder(labelled_folder, tmp_path, capsys):
    out = tmp_path / "thresholds.yaml"
    # a handful of people: only loose targets at a gallery of one can be told apart from this data
    loose = ["--gallery-size", "1", "--far-known", "0.01", "--far-tentative", "0.2"]
    assert calibrate_faces.main(["--folder", str(labelled_folder), *loose, "--out", str(out)]) == 0
    document = yaml.safe_load(out.read_text())
    assert set(document["models"]) == {"w600k_mbf", "sface"}
    for model, entry in document["models"].items():
        thresholds = load_thresholds(out, model)
        assert thresholds.tentative < thresholds.known
        assert entry["gallery_size"] == 1
        galleries = entry["evidence"]["galleries"]
        assert galleries["genuine_scores"] > 0  # obama x3
        assert entry["evidence"]["data"]["identities"] >= 6
    assert "w600k_mbf" in capsys.readouterr().out


def test_tool_rejects_a_folder_with_one_person(tmp_path):
    (tmp_path / "alice").mkdir()
    with pytest.raises(SystemExit, match="at least 2 people"):
        calibrate_faces.main(["--folder", str(tmp_path), "--out", str(tmp_path / "t.yaml")])


def test_shipped_file_has_the_gallery_bands_and_their_evidence():
    document = yaml.safe_load(SHIPPED.read_text())
    assert "ORL" in document["data"]
    assert "AT&T Laboratories Cambridge" in document["data"]
    for model, entry in document["models"].items():
        size = entry["gallery_size"]
        bands = entry["bands"]
        assert {10, 100, 1000} <= set(bands)
        assert bands[size] == {k: entry[k] for k in ("known", "tentative", "margin")}
        assert load_thresholds(SHIPPED, model).gallery_size == size
        assert bands[10]["known"] <= bands[100]["known"] <= bands[1000]["known"]
        evidence = entry["evidence"]
        assert evidence["data"]["identities_with_3_or_more_photos"] >= 30  # the issue's calibration set
        held_out = evidence["held_out"]
        assert held_out["data"]["identities"] == 10
        for condition in ("clean", "small", "blur", "jpeg", "dim"):
            rates = held_out["rates"][size][condition]
            assert rates["far_known_per_person"]["rate"] <= 1e-4  # held-out impostors stay below known
            assert len(rates["tar"]["ci95"]) == 2


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
    assert not math.isnan(thresholds.margin)
