"""The versioned reference policy: checkpoint, offline closed-loop success, ONNX export, MiniLM."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from tabletop_sim.episode import LoopSpec, run_episodes
from tabletop_sim.instructions import random_instruction
from tabletop_sim.render import Camera, render
from tabletop_sim.world import JOINT_NAMES, World
from vla_node.backends import OnnxPolicy, load_policy
from vla_node.policy import Observation, Policy
from vla_node.reference_policy import IMAGE_KEY, ReferencePolicy
from vla_node.text_encoder import EMBEDDING_DIM, load_text_encoder

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "vla_node" / "models" / "reference"


@pytest.fixture(scope="module")
def encode():
    return load_text_encoder()


@pytest.fixture(scope="module")
def policy(encode):
    return ReferencePolicy(CHECKPOINT, instruction_encoder=encode)


def observations(count: int, seed: int):
    rng = np.random.default_rng(seed)
    world = World(seed=seed)
    for _ in range(count):
        world.reset(np.array([rng.uniform(-0.6, 2.9), rng.uniform(-1.5, 2.5)]))
        yield Observation(
            {IMAGE_KEY: render(world, Camera())}, world.q.astype(np.float32), random_instruction(rng)[0]
        )


def test_text_encoder_gives_cached_unit_vectors_that_separate_objects(encode):
    a = encode("touch the red cup")
    assert a.shape == (EMBEDDING_DIM,)
    assert a.dtype == np.float32
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(encode("touch the red cup"), a)
    assert a @ encode("move to the red cup") > a @ encode("touch the blue block")


def test_checkpoint_is_small_and_described():
    files = {p.name: p.stat().st_size for p in CHECKPOINT.iterdir()}
    assert {"model.safetensors", "metadata.yaml", "policy.onnx", "policy.json"} <= set(files)
    assert sum(files.values()) < 5_000_000
    meta = yaml.safe_load((CHECKPOINT / "metadata.yaml").read_text())
    assert tuple(meta["joint_names"]) == JOINT_NAMES
    assert meta["training_command"].startswith("python tools/vla/train_reference_policy.py")
    assert meta["metrics"]["offline_eval"]["success_rate"] >= 0.9
    assert {"seed", "episodes"} <= set(meta["dataset"])


def test_loads_through_the_backend_and_predicts_absolute_targets(encode):
    policy = load_policy(f"reference:{CHECKPOINT}", instruction_encoder=encode)
    assert isinstance(policy, Policy)
    meta = policy.metadata
    assert meta.joint_names == JOINT_NAMES
    assert meta.image_keys == (IMAGE_KEY,)
    assert meta.control_period_s == pytest.approx(1 / 24)
    for observation in observations(3, 5):
        chunk = policy.predict_chunk(observation)
        assert chunk.shape == (meta.chunk_length, 2)
        assert chunk.dtype == np.float32
        assert np.all(np.isfinite(chunk))
        assert np.abs(chunk[0] - observation.state).max() < 0.5  # starts near the current pose


def test_reaches_90_percent_offline_on_fixed_seeds(policy):
    def controller_for():
        policy.reset()
        return lambda image, q, text: policy.predict_chunk(Observation({IMAGE_KEY: image}, q, text))

    results = run_episodes(controller_for, 30, 4242, Camera(), LoopSpec())
    successes = sum(r.success for r in results)
    assert successes >= 27, [(r.instruction, r.final_distance_m) for r in results if not r.success]


def test_onnx_export_matches_pytorch(policy, encode):
    onnx = OnnxPolicy(CHECKPOINT, instruction_encoder=encode)
    assert onnx.metadata.chunk_length == policy.metadata.chunk_length
    for observation in observations(5, 9):
        np.testing.assert_allclose(
            onnx.predict_chunk(observation), policy.predict_chunk(observation), atol=1e-4
        )


@pytest.mark.slow
def test_training_script_writes_a_loadable_checkpoint(tmp_path, encode):
    def tool(name):
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / "vla" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    dataset = tmp_path / "d.npz"
    assert tool("make_dataset").main(["--episodes", "3", "--out", str(dataset)]) == 0
    out = tmp_path / "ckpt"
    args = [
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--steps",
        "3",
        "--batch",
        "8",
        "--eval-episodes",
        "1",
    ]
    assert tool("train_reference_policy").main(args) == 0
    meta = yaml.safe_load((out / "metadata.yaml").read_text())
    assert meta["metrics"]["train_steps"] == 3
    assert meta["dataset"]["episodes"] == 3
    assert ReferencePolicy(out, instruction_encoder=encode).metadata.chunk_length == 16
