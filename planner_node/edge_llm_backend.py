"""The TensorRT Edge-LLM backend: a Hugging Face checkpoint on an NVIDIA GPU (Jetson Thor; issue 14).

`experimental.server.LLM` (tensorrt-edgellm 0.11.0) builds a TensorRT engine from the checkpoint folder
on first use and caches it (~/.cache/tensorrt-edgellm, minutes on a Jetson), then serves requests from
it with its context cache on (`reuse_context`: a shared prompt prefix is not evaluated again). Decoding
is greedy (top_k 1) under the plan's JSON schema (`guided_decoding` json_schema). Answers are streamed:
`cancel` is looked at on every delta and closes the stream, which cancels the request in the runtime.
The model is a checkpoint folder, not a GGUF: convert one with tools/gguf_to_hf.py. Edge-LLM takes no
device index; it runs on the process's current CUDA device.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from planner_node.llm import (
    BackendUnavailable,
    Generated,
    GenerationCancelled,
    ModelConfig,
    PlanModel,
    Request,
)

INSTALL_HINT = (
    "install it with `pip install --no-deps tensorrt-edgellm==0.11.0` (requirements/no-deps.txt) on a "
    "machine with its native runtime"
)
RUNTIME_HINT = (
    "it needs TensorRT Edge-LLM's native runtime: a Jetson Thor with JetPack 7 (CUDA 13, TensorRT 10.16 "
    "or 11 and the wheel's matching native payload), or an x86 NVIDIA GPU with the tensorrt package its "
    "Installation Guide names"
)


class EdgeLlmModel(PlanModel):
    """An Edge-LLM engine built (or found in its cache) for one checkpoint."""

    def __init__(self, llm: Any, sampling_params: type, folder: Path, config: ModelConfig) -> None:
        super().__init__(f"edge_llm:{folder.name}", llm)
        self._sampling_params = sampling_params
        self._config = config

    def _generate(self, request: Request) -> Generated:
        schema = request.schema
        params = self._sampling_params(
            temperature=0.0,
            top_k=1,
            top_p=1.0,
            seed=self._config.seed,
            max_tokens=self._config.max_tokens,
            guided_decoding=("json_schema", json.dumps(schema, sort_keys=True)) if schema else None,
        )
        first = None
        pieces: list[str] = []
        prompt_tokens = completion_tokens = 0
        stream = self._runtime.generate_stream(request.messages, params)
        try:
            for delta in stream:
                if request.cancel.is_set():
                    raise GenerationCancelled(f"{self.name}: cancelled after {completion_tokens} tokens")
                if delta.token_ids and first is None:
                    first = time.perf_counter()
                completion_tokens += len(delta.token_ids)
                prompt_tokens = delta.prompt_tokens or prompt_tokens
                pieces.append(delta.text)
                if delta.text:
                    request.on_token(delta.text)
        finally:
            stream.close()  # cancels the request in the runtime unless it finished
        return Generated("".join(pieces), prompt_tokens, completion_tokens, first)

    def _release(self, llm: Any) -> None:
        llm.close()


def load(config: ModelConfig, model_path: str) -> EdgeLlmModel:
    """Build or load the engine of the checkpoint folder `model_path`; BackendUnavailable when the
    package, its native runtime or a GPU is missing."""
    folder = Path(model_path)
    if not (folder / "config.json").is_file():
        raise BackendUnavailable(
            f"edge_llm: {folder} is not a Hugging Face checkpoint folder (no config.json); Edge-LLM builds "
            "its engine from one: convert a GGUF with `python tools/gguf_to_hf.py MODEL.gguf FOLDER`"
        )
    if not config.device.startswith("cuda"):
        raise BackendUnavailable(
            f"edge_llm runs on an NVIDIA GPU only: set the planner device to cuda, not {config.device}"
        )
    try:
        from experimental.server import LLM, SamplingParams
    except ImportError as error:
        raise BackendUnavailable(
            f"edge_llm: TensorRT Edge-LLM (tensorrt-edgellm) is not installed; {INSTALL_HINT}"
        ) from error
    try:
        llm = LLM(
            model=str(folder),
            max_input_len=config.context_tokens - config.max_tokens,
            max_kv_cache_capacity=config.context_tokens,
        )
    except (ImportError, OSError, RuntimeError, ValueError) as error:
        raise BackendUnavailable(
            f"edge_llm: cannot build or load the engine of {folder}; {RUNTIME_HINT} ({error})"
        ) from error
    return EdgeLlmModel(llm, SamplingParams, folder, config)
