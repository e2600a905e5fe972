"""Demonstration recording (tools/vla/make_dataset.py), a tiny run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tabletop_sim.render import Camera

TOOL = Path(__file__).resolve().parents[1] / "tools" / "vla" / "make_dataset.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("make_dataset", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_dataset_has_consistent_arrays_and_is_reproducible(tmp_path):
    tool = load_tool()
    data = tool.make_dataset(6, 3, 0.5, 0.5, Camera(), (48, 64))
    n = len(data["states"])
    assert n > 20
    assert data["images"].shape == (n, 48, 64, 3)
    assert data["images"].dtype == np.uint8
    assert data["chunks"].shape == (n, tool.HORIZON, 2)
    assert data["chunks"].dtype == np.float32
    assert data["instruction_ids"].max() < len(data["instructions"])
    assert set(np.unique(data["episode_ids"])) <= set(range(6))
    again = tool.make_dataset(6, 3, 0.5, 0.5, Camera(), (48, 64))
    np.testing.assert_array_equal(again["chunks"], data["chunks"])

    out = tmp_path / "d.npz"
    assert tool.main(["--episodes", "2", "--seed", "1", "--out", str(out)]) == 0
    with np.load(out) as saved:
        assert int(saved["episodes"]) == 2
        assert saved["images"].shape[1:] == (48, 64, 3)
