"""Backends: ONNX Runtime against the same torch model, device/provider errors, policy specs,
the LeRobot worker's framing and its missing-venv error."""

import io
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from vla_node.backends import LeRobotPolicy, PolicyLoadError, image_to_chw, load_policy, ort_providers
from vla_node.framing import ProtocolError, read_frame, write_frame
from vla_node.policy import Observation

JOINTS, HORIZON, EMBED = 3, 8, 16


class TinyPolicyNet(nn.Module):
    """Image + state + instruction embedding → (horizon, joints) chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 5, stride=4)
        self.head = nn.Linear(4 + JOINTS + EMBED, HORIZON * JOINTS)

    def forward(self, image, state, instruction):
        features = torch.relu(self.conv(image)).mean(dim=(2, 3))
        out = self.head(torch.cat([features, state, instruction], dim=1))
        return state[:, None, :] + out.reshape(-1, HORIZON, JOINTS)


def encode(text: str) -> np.ndarray:
    """A deterministic instruction embedding (stands in for MiniLM in this test)."""
    return np.random.default_rng(sum(text.encode())).standard_normal(EMBED).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = TinyPolicyNet().eval()
    folder = tmp_path_factory.mktemp("onnx_policy")
    example = (torch.zeros(1, 3, 48, 64), torch.zeros(1, JOINTS), torch.zeros(1, EMBED))
    with warnings.catch_warnings():  # the legacy exporter needs no onnxscript; it warns about itself
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            example,
            str(folder / "policy.onnx"),
            input_names=["image", "state", "instruction_embedding"],
            output_names=["chunk"],
            dynamo=False,
        )
    description = {
        "metadata": {
            "name": "tiny",
            "image_keys": ["camera"],
            "image_size": {"camera": [48, 64]},
            "state_dim": JOINTS,
            "action_dim": JOINTS,
            "joint_names": ["a", "b", "c"],
            "chunk_length": HORIZON,
            "control_period_s": 0.04,
        },
        "inputs": {"images": {"camera": "image"}, "state": "state", "instruction": "instruction_embedding"},
        "output": "chunk",
    }
    (folder / "policy.json").write_text(json.dumps(description))
    return net, folder


def observation(seed: int = 1) -> Observation:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    return Observation({"camera": image}, rng.standard_normal(JOINTS).astype(np.float32), "touch the red cup")


def test_onnx_matches_the_torch_model(exported):
    net, folder = exported
    policy = load_policy(f"onnx:{folder}", instruction_encoder=encode)
    assert policy.metadata.joint_names == ("a", "b", "c")
    assert policy.metadata.chunk_length == HORIZON
    obs = observation()
    chunk = policy.predict_chunk(obs)
    with torch.inference_mode():
        expected = net(
            torch.from_numpy(image_to_chw(obs.images["camera"], (48, 64))[None]),
            torch.from_numpy(obs.state[None]),
            torch.from_numpy(encode(obs.instruction)[None]),
        )[0].numpy()
    assert chunk.shape == (HORIZON, JOINTS)
    assert chunk.dtype == np.float32
    np.testing.assert_allclose(chunk, expected, rtol=1e-4, atol=1e-5)
    other = policy.predict_chunk(Observation(obs.images, obs.state, "touch the blue ball"))
    assert not np.allclose(other, chunk)  # the instruction matters


def test_onnx_model_file_path_works_too(exported):
    _, folder = exported
    policy = load_policy(f"onnx:{folder / 'policy.onnx'}", instruction_encoder=encode)
    assert policy.predict_chunk(observation()).shape == (HORIZON, JOINTS)


def test_unavailable_provider_is_a_clear_error():
    with pytest.raises(PolicyLoadError, match=r"TensorrtExecutionProvider.*available: .*CPU"):
        ort_providers("tensorrt:0")
    with pytest.raises(PolicyLoadError, match="expected cpu"):
        ort_providers("tpu")
    assert ort_providers("cpu") == ["CPUExecutionProvider"]


def test_policy_json_must_match_the_model(exported, tmp_path):
    _, folder = exported
    (tmp_path / "policy.onnx").write_bytes((folder / "policy.onnx").read_bytes())
    description = json.loads((folder / "policy.json").read_text())
    description["inputs"]["state"] = "joint_state"
    (tmp_path / "policy.json").write_text(json.dumps(description))
    with pytest.raises(PolicyLoadError, match=r"differ from policy\.json"):
        load_policy(f"onnx:{tmp_path}", instruction_encoder=encode)
    (tmp_path / "policy.json").unlink()
    with pytest.raises(PolicyLoadError, match="policy description"):
        load_policy(f"onnx:{tmp_path}")


@pytest.mark.parametrize("spec", ["onnx", "tflite:/x", "onnx:", "lerobot:/does/not/exist"])
def test_bad_specs(spec):
    with pytest.raises(PolicyLoadError):
        load_policy(spec)


def test_lerobot_without_its_venv_names_the_setup_script(tmp_path):
    with pytest.raises(PolicyLoadError, match=r"tools/setup/lerobot_venv\.sh"):
        LeRobotPolicy(tmp_path, python=tmp_path / "missing" / "python")


def test_frames_round_trip_arrays_without_pickle():
    stream = io.BytesIO()
    arrays = {"image": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "state": np.array([1, 2], np.int64)}
    write_frame(stream, {"op": "predict", "instruction": "go"}, arrays)
    stream.seek(0)
    header, out = read_frame(stream)
    assert header == {"op": "predict", "instruction": "go"}
    for name, a in arrays.items():
        np.testing.assert_array_equal(out[name], a)
        assert out[name].dtype == a.dtype


def test_frames_reject_objects_truncation_and_garbage():
    with pytest.raises(ProtocolError, match="not sendable"):
        write_frame(io.BytesIO(), {"op": "x"}, {"bad": np.array([object()])})
    stream = io.BytesIO()
    write_frame(stream, {"op": "x"}, {"a": np.zeros(10)})
    with pytest.raises(ProtocolError, match="closed"):
        read_frame(io.BytesIO(stream.getvalue()[:-8]))
    with pytest.raises(ProtocolError, match="not JSON"):
        read_frame(io.BytesIO(b"\x00\x00\x00\x03abc"))
    bad = json.dumps({"op": "x", "arrays": [{"name": "a", "dtype": "object", "shape": [1]}]}).encode()
    with pytest.raises(ProtocolError, match="unsupported dtype"):
        read_frame(io.BytesIO(len(bad).to_bytes(4, "big") + bad))
