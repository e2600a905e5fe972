"""The TensorRT-LLM backend: its LLM API on an NVIDIA GPU (a desktop or a Jetson AGX Orin; issue 14).

`tensorrt_llm.LLM` takes a Hugging Face checkpoint folder (convert a GGUF with tools/gguf_to_hf.py) or
a built engine, with KV-cache block reuse on, so a prompt prefix shared with the last request is not
evaluated again. Decoding is greedy (top_k 1) under the plan's JSON schema through xgrammar
(`GuidedDecodingParams(json=...)`). Answers stream (`generate_async(..., streaming=True)`, iterated
synchronously); `cancel` is looked at on every streamed step and aborts the request.
"""

from __future__ import annotations

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
    "TensorRT-LLM is not installed; it needs an NVIDIA GPU with CUDA and installs from NVIDIA's index "
    "(`pip install tensorrt_llm`, see its installation guide; on a Jetson, the JetPack build), or choose "
    "the llama_cpp backend"
)


class TensorRtLlmModel(PlanModel):
    """A TensorRT-LLM `LLM` serving one model."""

    def __init__(self, llm: Any, params: type, guide: type, folder: Path, config: ModelConfig) -> None:
        super().__init__(f"tensorrt_llm:{folder.name}", llm)
        self._sampling_params = params
        self._guided_decoding_params = guide
        self._config = config

    def _generate(self, request: Request) -> Generated:
        llm, schema = self._runtime, request.schema
        prompt = llm.tokenizer.apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True
        )
        params = self._sampling_params(
            max_tokens=self._config.max_tokens,
            temperature=0.0,
            top_k=1,
            seed=self._config.seed,
            guided_decoding=self._guided_decoding_params(json=dict(schema)) if schema else None,
        )
        result = llm.generate_async(prompt, params, streaming=True)
        first = None
        for step in result:
            if request.cancel.is_set():
                result.abort()
                raise GenerationCancelled(
                    f"{self.name}: cancelled after {len(step.outputs[0].token_ids)} tokens"
                )
            output = step.outputs[0]
            if output.token_ids and first is None:
                first = time.perf_counter()
            if output.text_diff:
                request.on_token(output.text_diff)
        output = result.outputs[0]
        return Generated(output.text, len(result.prompt_token_ids), len(output.token_ids), first)

    def _release(self, llm: Any) -> None:
        llm.shutdown()


def load(config: ModelConfig, model_path: str) -> TensorRtLlmModel:
    """Load the checkpoint folder or engine at `model_path`; BackendUnavailable without TensorRT-LLM
    or a GPU."""
    if not config.device.startswith("cuda"):
        raise BackendUnavailable(
            f"tensorrt_llm runs on an NVIDIA GPU only: set the planner device to cuda, not {config.device}"
        )
    try:
        from tensorrt_llm import LLM, SamplingParams
        from tensorrt_llm.llmapi import GuidedDecodingParams, KvCacheConfig
    except ImportError as error:
        raise BackendUnavailable(f"tensorrt_llm: {INSTALL_HINT} ({error})") from error
    folder = Path(model_path)
    try:
        llm = LLM(
            model=str(folder),
            guided_decoding_backend="xgrammar",
            kv_cache_config=KvCacheConfig(enable_block_reuse=True),
            max_seq_len=config.context_tokens,
        )
    except (OSError, RuntimeError, ValueError) as error:
        raise BackendUnavailable(f"tensorrt_llm: cannot load {folder}: {error}") from error
    return TensorRtLlmModel(llm, SamplingParams, GuidedDecodingParams, folder, config)
