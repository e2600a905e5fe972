"""Strangers in front of the real face memory, with the shipped thresholds, on faces calibration never saw.

The held-out split of the ORL faces (memory_node.face_sets: 10 people, even folders s22..s40) under every
camera condition, through each backend's face pipeline once per test session, then the open-set
simulation (memory_node.open_set) through FaceMemory with a real store and learning on: every identity
in turn the stranger, the others enrolled with 1, 2 and 3 clean photos (2 choices of which), galleries
of 1, 5 and all the others, tracks of 5 distinct photos at 5 Hz (1 s).

Done when (issue): no stranger ever KNOWN; strangers asked "are you X?" on ≤ 5 % of their tracks;
enrolled people KNOWN within 1 s on ≥ 95 % of their tracks. The last is asserted per condition on the
tracks where at least 3 of the 5 frames had a face that passed the quality gates (the memory cannot
know a face it is not given; the gates drop up to a third of the blurred and dimmed ORL frames), and
over all tracks of the conditions where the gates drop few frames (clean, small, jpeg); the printed
table shows every rate.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import cv2
import pytest
import yaml

from humanoid_common.config import config_dir
from memory_node.config import Thresholds, load_thresholds
from memory_node.face_sets import CONDITIONS, orl_faces
from memory_node.faces import BACKENDS, create_pipeline
from memory_node.open_set import Plan, embed_photos, format_report, shortfalls, simulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import evaluate_faces

pytestmark = pytest.mark.slow

SHIPPED = config_dir() / "face_thresholds.yaml"


@pytest.fixture(scope="session")
def held_out() -> dict[str, tuple[list, int, str]]:
    """backend → (embeddings of every held-out photo under every condition, dim, model name)."""
    photos, _ = orl_faces("held_out")
    out = {}
    for backend in BACKENDS:
        started = time.monotonic()
        pipeline = create_pipeline(backend)
        out[backend] = (
            embed_photos(pipeline, photos, CONDITIONS, progress=False),
            pipeline.dim,
            pipeline.model_name,
        )
        seconds = time.monotonic() - started
        print(f"{backend}: {len(photos)} photos x {len(CONDITIONS)} conditions in {seconds:.0f} s")
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_stranger_is_known_with_the_shipped_thresholds(held_out, backend):
    samples, dim, model = held_out[backend]
    thresholds = load_thresholds(SHIPPED, model)
    report = simulate(samples, thresholds, dim, list(CONDITIONS), Plan())
    print("\n" + format_report(report, f"{backend} ({model}), held-out split, {thresholds}"))
    assert shortfalls(report) == []
    for condition in CONDITIONS:
        assert report.total(condition=condition).stranger_tracks >= 200, condition


def test_the_simulation_catches_thresholds_that_greet_strangers(held_out):
    """SFace's pair-calibrated thresholds from before the gallery calibration (known 0.452) asked the
    held-out strangers "are you X?" on 8 % of their tracks here (and named a stranger "Bob" on the
    issue's photos); a lower `known` names them. The simulation must see both."""
    samples, dim, _ = held_out["opencv"]
    plan = dataclasses.replace(Plan(), choices=1, small_galleries=())
    old = Thresholds(known=0.4518, tentative=0.3182, margin=0.1336)
    report = simulate(samples, old, dim, ["clean", "small"], plan)
    print("\n" + format_report(report, f"opencv (sface), held-out split, old {old}"))
    assert any("strangers asked on" in problem for problem in shortfalls(report))
    lower = Thresholds(known=0.25, tentative=0.2, margin=0.0)
    report = simulate(samples, lower, dim, ["clean"], plan)
    print("\n" + format_report(report, f"opencv (sface), held-out split, {lower}"))
    assert report.strangers_known, "no stranger KNOWN at known = 0.25"


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """Four held-out ORL people as a user's folder of photos (DIR/<person>/<image>)."""
    root = tmp_path_factory.mktemp("people")
    photos, _ = orl_faces("held_out")
    for photo in photos:
        if photo.identity in ("s22", "s24", "s26", "s28"):
            (root / photo.identity).mkdir(exist_ok=True)
            cv2.imwrite(str(root / photo.source.replace(".pgm", ".png")), photo.image)
    return root


def test_the_evaluation_tool_passes_the_shipped_thresholds_and_fails_loose_ones(
    labelled_folder, tmp_path, capsys
):
    assert evaluate_faces.main(["--folder", str(labelled_folder), "--backend", "opencv"]) == 0
    assert "opencv: passed" in capsys.readouterr().out
    loose = tmp_path / "loose.yaml"
    loose.write_text(yaml.safe_dump({"models": {"sface": {"known": 0.2, "tentative": 0.1, "margin": 0.0}}}))
    args = ["--folder", str(labelled_folder), "--backend", "opencv", "--thresholds", str(loose)]
    assert evaluate_faces.main(args) == 1
    out = capsys.readouterr().out
    assert "SHORT: stranger KNOWN" in out
    assert "opencv: FAILED" in out
