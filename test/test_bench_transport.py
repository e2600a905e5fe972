"""Smoke run of bench/transport.py: every scenario runs and delivers frames. No speed assertions."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AXES = (("processes", "in-process"), ("default", "profile", "profile+heap"), ("reliable", "best_effort"))
SCENARIOS = {"/".join(combo) for combo in itertools.product(*AXES)}


@pytest.mark.integration
@pytest.mark.slow
def test_transport_bench_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "transport.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "transport.py"), "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}"
    report = json.loads(out.read_text())
    assert report["config"]["width"] * report["config"]["height"] * 3 == report["config"]["bytes_per_frame"]
    rows = {row["scenario"]: row for row in report["scenarios"]}
    assert set(rows) == SCENARIOS
    for name, row in rows.items():
        assert "error" not in row, name
        assert 0 < row["received"] <= row["sent"], name
        assert row["bad_size"] == 0, name
        lat = row["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 60_000, name
        # The profile scenarios must really run on the profile's 16 MB shared-memory segment.
        segments = row["shm_segments"]
        sizes = [*segments["pub"], *segments["sub"]] if isinstance(segments, dict) else segments
        if row["fastdds"] != "default" and sizes:
            assert max(sizes) >= 16 * 2**20, f"{name}: profile not in effect, SHM segments {sizes}"
        assert row["heap_buffers"] == (row["fastdds"] == "profile+heap"), name
