"""The language-model backends behind one interface (no rclpy; issue 14).

A backend turns chat messages and the plan's JSON schema into the model's answer, decoding under the
schema's grammar where the runtime can. Each backend module is imported only when chosen, so a robot
without llama.cpp or TensorRT never imports them. Where a backend's runtime is missing or cannot load
the model, `load_model` raises `BackendUnavailable` saying exactly what is absent; the node turns
that into exit status 78 (cannot start with this configuration).
"""

from __future__ import annotations

import importlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: backend name → module that defines `load(config) -> PlanModel`.
BACKENDS: dict[str, str] = {
    "llama_cpp": "planner_node.llama_cpp_backend",
    "edge_llm": "planner_node.edge_llm_backend",
    "tensorrt_llm": "planner_node.tensorrt_llm_backend",
}


class BackendUnavailable(RuntimeError):  # noqa: N818 (reads as what it says)
    """The chosen backend cannot run here; the message names what is missing and what to do."""


class GenerationCancelled(RuntimeError):  # noqa: N818
    """`complete` stopped early because its `cancel` event was set."""


@dataclass(frozen=True)
class ModelConfig:
    """How to load a model. `model` is an asset name or a path (a GGUF file for llama_cpp, a Hugging
    Face checkpoint folder or a built engine for the TensorRT backends)."""

    backend: str = "llama_cpp"
    model: str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    device: str = "cpu"  # cpu | cuda | cuda:N
    threads: int = 0  # CPU threads for generation; 0: the machine's cores
    context_tokens: int = 4096
    max_tokens: int = 256  # of one answer
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"planner backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.threads < 0 or self.context_tokens < 256 or self.max_tokens < 16:
            raise ValueError(
                "planner model: threads must be >= 0, context_tokens >= 256 and max_tokens >= 16 "
                f"(got {self.threads}, {self.context_tokens}, {self.max_tokens})"
            )
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"planner device must be cpu, cuda or cuda:N, got {self.device!r}")


@dataclass(frozen=True)
class Completion:
    """One answer and how long it took."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    first_token_s: float  # from the call to the first generated token
    total_s: float

    @property
    def tokens_per_s(self) -> float:
        """Generation speed after the first token."""
        decode_s = self.total_s - self.first_token_s
        return (self.completion_tokens - 1) / decode_s if self.completion_tokens > 1 and decode_s > 0 else 0.0


@dataclass(frozen=True)
class Request:
    """One call of `complete`, as a backend's `_generate` gets it (defaults filled in)."""

    messages: list[dict[str, str]]
    schema: Mapping[str, Any] | None
    cancel: threading.Event
    on_token: Callable[[str], None]


@dataclass(frozen=True)
class Generated:
    """What a backend's `_generate` returns; `first_token_at` is a `time.perf_counter()` reading."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    first_token_at: float | None


class PlanModel(ABC):
    """A loaded model. `complete` blocks (call it off the ROS executor thread) and is not re-entrant:
    one request at a time per model. A backend subclasses this and writes `_generate` and `_release`;
    the closed check, the timing and the idempotent close are here."""

    def __init__(self, name: str, runtime: Any) -> None:
        self.name = name
        self._runtime = runtime

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        schema: Mapping[str, Any] | None,
        *,
        cancel: threading.Event | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Completion:
        """The answer to `messages`, decoded under `schema`'s grammar when one is given. Raises
        GenerationCancelled soon after `cancel` is set; `on_token` sees each piece of text as it comes."""
        if self._runtime is None:
            raise RuntimeError(f"{self.name} is closed")
        start = time.perf_counter()
        out = self._generate(
            Request([dict(m) for m in messages], schema, cancel or threading.Event(), on_token or _ignore)
        )
        end = time.perf_counter()
        return Completion(
            text=out.text,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            first_token_s=(out.first_token_at or end) - start,
            total_s=end - start,
        )

    def close(self) -> None:
        """Free the model's memory (idempotent)."""
        if self._runtime is not None:
            runtime, self._runtime = self._runtime, None
            self._release(runtime)

    @abstractmethod
    def _generate(self, request: Request) -> Generated:
        """The backend's answer to `request`, with the runtime in `self._runtime`."""

    @abstractmethod
    def _release(self, runtime: Any) -> None:
        """Free `runtime` (called once, by close)."""


def _ignore(_piece: str) -> None:
    """The default `on_token`."""


def load_model(config: ModelConfig, model_path: str) -> PlanModel:
    """Load `model_path` (already resolved from the asset name) with `config.backend`."""
    module = importlib.import_module(BACKENDS[config.backend])
    return module.load(config, model_path)
