"""Policy backends behind one call: `load_policy("<backend>:<path>", device=...)` (no rclpy).

- ``reference:<dir>``  the project's reference policy in PyTorch (vla_node.reference_policy)
- ``onnx:<file|dir>``  an ONNX export run by ONNX Runtime; next to it a ``policy.json`` (see OnnxPolicy)
- ``lerobot:<dir>``    a LeRobot checkpoint, run by a worker process in .venv-lerobot (lerobot_worker.py)

``device``: "cpu", "cuda" / "cuda:N", or for ONNX also "tensorrt" / "tensorrt:N". A device whose
runtime is not installed is an error that says what is available; nothing falls back silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vla_node.framing import ProtocolError, read_frame, write_frame
from vla_node.policy import Observation, Policy, PolicyMetadata

REPO = Path(__file__).resolve().parents[1]
LEROBOT_VENV = REPO / ".venv-lerobot"
LEROBOT_SETUP = "tools/setup/lerobot_venv.sh"
BACKENDS = ("reference", "onnx", "lerobot")


class PolicyLoadError(RuntimeError):
    """A policy cannot be loaded; the message says what to do."""


def parse_spec(spec: str) -> tuple[str, Path]:
    backend, sep, path = spec.partition(":")
    if not sep or backend not in BACKENDS or not path:
        raise PolicyLoadError(
            f"policy {spec!r}: expected '<backend>:<path>' with backend one of {', '.join(BACKENDS)}"
        )
    return backend, resolve_policy_path(Path(path))


def resolve_policy_path(path: Path) -> Path:
    """A relative path is looked up in the working directory, then beside the installed vla_node
    package, so `vla_node/models/reference` names the bundled policy from anywhere (and on a robot,
    where colcon installed the package)."""
    if path.is_absolute() or path.exists():
        return path
    bundled = Path(__file__).resolve().parents[1] / path
    return bundled if bundled.exists() else path


def load_policy(spec: str, device: str = "cpu", **options: Any) -> Policy:
    """Load a policy; `options` go to the backend (e.g. lerobot's joint_names, control_period_s;
    `threads` for the CPU thread count of ONNX Runtime or torch)."""
    backend, path = parse_spec(spec)
    if not path.exists():
        raise PolicyLoadError(f"policy {spec!r}: {path} does not exist")
    if backend == "onnx":
        return OnnxPolicy(path, device=device, **options)
    if backend == "lerobot":
        return LeRobotPolicy(path, device=device, **options)
    threads = options.pop("threads", 0)
    if threads:  # torch's intra-op pool; on a busy small CPU, 1 thread is often fastest
        import torch

        torch.set_num_threads(threads)
    try:
        from vla_node import reference_policy
    except ImportError as error:
        raise PolicyLoadError(
            f"policy {spec!r}: the reference policy module is not importable: {error}"
        ) from error
    return reference_policy.load_reference_policy(path, device=device, **options)


def image_to_chw(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (3, h, w) float32 in [0, 1], resized to `size` = (h, w)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    height, width = size
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0


def check_chunk(chunk: np.ndarray, metadata: PolicyMetadata) -> np.ndarray:
    chunk = np.asarray(chunk, dtype=np.float32).reshape(-1, metadata.action_dim)
    if chunk.shape[0] < 1:
        raise ValueError(f"policy {metadata.name} returned an empty chunk")
    return chunk


def ort_providers(device: str) -> list[Any]:
    """ONNX Runtime execution providers for a device name; an unavailable one is an error."""
    import onnxruntime as ort

    kind, _, index = device.partition(":")
    wanted = {
        "cpu": "CPUExecutionProvider",
        "cuda": "CUDAExecutionProvider",
        "tensorrt": "TensorrtExecutionProvider",
    }.get(kind)
    if wanted is None:
        raise PolicyLoadError(f"device {device!r}: expected cpu, cuda[:N] or tensorrt[:N]")
    available = ort.get_available_providers()
    if wanted not in available:
        raise PolicyLoadError(
            f"device {device!r} needs ONNX Runtime's {wanted}, which this installation lacks "
            f"(available: {', '.join(available)}); install onnxruntime-gpu (CUDA) or a TensorRT build"
        )
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    options = {"device_id": int(index or 0)}
    chain: list[Any] = [(wanted, options)]
    if kind == "tensorrt" and "CUDAExecutionProvider" in available:
        chain.append(("CUDAExecutionProvider", options))
    return [*chain, "CPUExecutionProvider"]


class OnnxPolicy:
    """An ONNX policy. `policy.json` beside the model gives the metadata and the input names::

        {"metadata": {PolicyMetadata fields},
         "inputs": {"images": {"camera": "image"}, "state": "state", "instruction": "instruction_embedding"},
         "output": "chunk",
         "text_encoder": "minilm"}

    Images go in as (1, 3, h, w) float32 in [0, 1], the state as (1, state_dim), the instruction as a
    (1, d) embedding (computed once per distinct instruction); the output is (1, horizon, action_dim).
    "instruction" and "text_encoder" are optional (a policy without language input).
    """

    def __init__(
        self,
        path: Path,
        device: str = "cpu",
        *,
        instruction_encoder: Callable[[str], np.ndarray] | None = None,
        threads: int = 0,
    ) -> None:
        import onnxruntime as ort

        model = path / "policy.onnx" if path.is_dir() else path
        described = model.with_name("policy.json")
        try:
            spec = json.loads(described.read_text())
            meta = spec["metadata"]
            self.metadata = PolicyMetadata(
                **{
                    **meta,
                    "name": meta.get("name") or f"onnx:{model}",
                    "image_keys": tuple(meta["image_keys"]),
                    "image_size": {k: tuple(v) for k, v in meta["image_size"].items()},
                    "joint_names": tuple(meta["joint_names"]),
                }
            )
            self._inputs = spec["inputs"]
            self._output = spec["output"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise PolicyLoadError(
                f"{described}: cannot read the ONNX policy description: {error!r}"
            ) from error
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the CPU is shared
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=ort_providers(device))
        names = {i.name for i in self.session.get_inputs()}
        expected = {*self._inputs.get("images", {}).values(), self._inputs["state"]}
        if self._inputs.get("instruction"):
            expected.add(self._inputs["instruction"])
        if names != expected:
            raise PolicyLoadError(
                f"{model}: model inputs {sorted(names)} differ from policy.json's {sorted(expected)}"
            )
        self._encoder = instruction_encoder
        if self._inputs.get("instruction") and self._encoder is None:
            self._encoder = _text_encoder(spec.get("text_encoder", ""), described)
        self._embeddings: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        """Stateless between calls; the instruction embedding cache stays valid."""

    def _embedding(self, text: str) -> np.ndarray:
        if text not in self._embeddings:
            self._embeddings[text] = np.asarray(self._encoder(text), dtype=np.float32).reshape(1, -1)
        return self._embeddings[text]

    def predict_chunk(self, observation: Observation) -> np.ndarray:
        meta = self.metadata
        feeds = {
            name: image_to_chw(observation.images[key], meta.image_size[key])[None]
            for key, name in self._inputs.get("images", {}).items()
        }
        feeds[self._inputs["state"]] = np.asarray(observation.state, dtype=np.float32).reshape(
            1, meta.state_dim
        )
        if self._inputs.get("instruction"):
            feeds[self._inputs["instruction"]] = self._embedding(observation.instruction)
        (chunk,) = self.session.run([self._output], feeds)
        return check_chunk(chunk, meta)


def _text_encoder(name: str, where: Path) -> Callable[[str], np.ndarray]:
    if name != "minilm":
        raise PolicyLoadError(f"{where}: text_encoder {name!r} is unknown (supported: minilm)")
    from vla_node.text_encoder import load_text_encoder

    return load_text_encoder()


class LeRobotPolicy:
    """A LeRobot checkpoint served by `vla_node/lerobot_worker.py` inside .venv-lerobot.

    The worker speaks the framed protocol of vla_node/framing.py over its stdin/stdout. LeRobot
    checkpoints do not record joint names or the control period: pass them (config/vla.yaml).
    `image_keys` maps the policy's image names to LeRobot feature keys (default:
    "observation.images.<name>" for every VISUAL input of the checkpoint).
    """

    def __init__(
        self,
        path: Path,
        device: str = "cpu",
        *,
        joint_names: tuple[str, ...] | list[str] = (),
        control_period_s: float = 1 / 24,
        python: str | Path | None = None,
    ) -> None:
        python = Path(python) if python else LEROBOT_VENV / "bin" / "python"
        if not python.exists():
            raise PolicyLoadError(
                f"the LeRobot backend needs its own virtual environment ({python} is missing): "
                f"create it with {LEROBOT_SETUP}"
            )
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH")
        }
        env |= {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [str(python), "-m", "vla_node.lerobot_worker"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the worker's log goes to ours
        )
        try:
            reply, _ = self._call({"op": "load", "path": str(path.resolve()), "device": device})
        except Exception:
            self.close()
            raise
        self._feature_keys = dict(reply["image_features"])  # policy image name → LeRobot key
        action_dim = int(reply["action_dim"])
        names = tuple(joint_names) or tuple(f"joint_{i}" for i in range(action_dim))
        self.metadata = PolicyMetadata(
            name=f"lerobot:{path} ({reply['policy_type']})",
            image_keys=tuple(self._feature_keys),
            image_size={k: tuple(v) for k, v in reply["image_size"].items()},
            state_dim=int(reply["state_dim"]),
            action_dim=action_dim,
            joint_names=names,
            chunk_length=int(reply["chunk_length"]),
            control_period_s=control_period_s,
        )

    def _call(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None):
        with self._lock:
            if self._process.poll() is not None:
                raise PolicyLoadError(f"the LeRobot worker exited with code {self._process.returncode}")
            try:
                write_frame(self._process.stdin, header, arrays)
                reply, out = read_frame(self._process.stdout)
            except (BrokenPipeError, ProtocolError) as error:
                raise PolicyLoadError(f"the LeRobot worker failed ({error}); see its log above") from error
        if reply.get("op") == "error":
            raise PolicyLoadError(f"LeRobot worker: {reply.get('message')}")
        return reply, out

    def reset(self) -> None:
        self._call({"op": "reset"})

    def predict_chunk(self, observation: Observation) -> np.ndarray:
        meta = self.metadata
        arrays = {key: image_to_chw(observation.images[key], meta.image_size[key]) for key in meta.image_keys}
        arrays["state"] = np.asarray(observation.state, dtype=np.float32).reshape(meta.state_dim)
        _, out = self._call({"op": "predict", "instruction": observation.instruction}, arrays)
        return check_chunk(out["chunk"], meta)

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not."""
        if self._process.poll() is None:
            try:
                with self._lock:
                    write_frame(self._process.stdin, {"op": "close"})
            except (BrokenPipeError, OSError):
                pass
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        for stream in (self._process.stdin, self._process.stdout):
            if stream:
                stream.close()
