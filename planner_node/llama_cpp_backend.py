"""The llama.cpp backend: a GGUF model through llama-cpp-python, on the CPU or CUDA (issue 14).

Greedy decoding (temperature 0) under the GBNF grammar llama.cpp builds from the plan's JSON schema, so
the answer can only be JSON of that schema. The prompt is rendered with the GGUF's own chat template
and kept in the KV cache: the next request evaluates only what follows the longest common token prefix
(the system prompt and the examples, which depend on the limits alone). The prompt is evaluated in
chunks and each token is checked against `cancel`, so a cancel takes effect within one chunk or one
token. `completion_tokens` counts the tokens sampled, the end-of-answer token included.
"""

from __future__ import annotations

import json
import os
import threading
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

#: Prompt tokens evaluated between two looks at `cancel`.
PREFILL_CHUNK = 128
INSTALL_HINT = "install it with `pip install llama-cpp-python==0.3.36` (requirements/planner.txt)"
CUDA_HINT = (
    'rebuild it with CUDA: CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python==0.3.36, or set the planner device to cpu"
)


class LlamaCppModel(PlanModel):
    """One GGUF model loaded once; `complete` serves one request at a time."""

    def __init__(self, llama: Any, formatter: Any, path: Path, max_tokens: int) -> None:
        super().__init__(f"llama_cpp:{path.name}", llama)
        self._formatter = formatter
        self._max_tokens = max_tokens

    def _generate(self, request: Request) -> Generated:
        from llama_cpp import LlamaGrammar, StoppingCriteriaList

        llama = self._runtime
        prompt = self._formatter(messages=request.messages)
        tokens = llama.tokenize(prompt.prompt.encode(), add_bos=not prompt.added_special, special=True)
        if len(tokens) >= llama.n_ctx():
            raise ValueError(f"{self.name}: a prompt of {len(tokens)} tokens does not fit context_tokens")
        self._prefill(tokens[:-1], request.cancel)  # generate() evaluates the last token and samples
        schema = request.schema
        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False) if schema else None
        sampled: list[float] = []

        def stop_or_count(_ids: Any, _logits: Any) -> bool:
            sampled.append(time.perf_counter())
            return request.cancel.is_set()

        stream = llama.create_completion(
            tokens,
            max_tokens=self._max_tokens,
            temperature=0.0,
            stop=prompt.stop,
            grammar=grammar,
            stopping_criteria=StoppingCriteriaList([stop_or_count]),
            stream=True,
        )
        pieces = []
        for chunk in stream:
            piece = chunk["choices"][0]["text"]
            pieces.append(piece)
            if piece:
                request.on_token(piece)
        if request.cancel.is_set():
            raise GenerationCancelled(f"{self.name}: cancelled after {len(sampled)} tokens")
        return Generated("".join(pieces), len(tokens), len(sampled), sampled[0] if sampled else None)

    def _prefill(self, tokens: list[int], cancel: threading.Event) -> None:
        """Evaluate `tokens` after the longest prefix already in the KV cache, a chunk at a time."""
        llama = self._runtime
        cached = llama.longest_token_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        llama.n_tokens = cached  # eval() drops the cache beyond this point
        for begin in range(cached, len(tokens), PREFILL_CHUNK):
            if cancel.is_set():
                raise GenerationCancelled(f"{self.name}: cancelled while reading the prompt")
            llama.eval(tokens[begin : begin + PREFILL_CHUNK])

    def _release(self, llama: Any) -> None:
        llama.close()


def load(config: ModelConfig, model_path: str) -> LlamaCppModel:
    """Load the GGUF at `model_path`; BackendUnavailable when llama-cpp-python, CUDA or the file is not
    there."""
    path = Path(model_path)
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as error:
        raise BackendUnavailable(f"llama_cpp: cannot read the GGUF model {path}: {error.strerror}") from error
    if magic != b"GGUF":
        raise BackendUnavailable(f"llama_cpp: {path} is not a GGUF file (it starts with {magic!r})")
    try:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except ImportError as error:
        raise BackendUnavailable(
            f"llama_cpp backend: llama-cpp-python is not installed; {INSTALL_HINT}"
        ) from error
    on_gpu = config.device.startswith("cuda")
    if on_gpu and not llama_cpp.llama_supports_gpu_offload():
        raise BackendUnavailable(
            f"llama_cpp: device {config.device} asked for, but llama-cpp-python was built without "
            f"CUDA (no GPU offload); {CUDA_HINT}"
        )
    try:
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=config.context_tokens,
            n_threads=config.threads or os.cpu_count(),
            n_gpu_layers=-1 if on_gpu else 0,
            main_gpu=int(config.device.partition(":")[2] or 0),
            seed=config.seed,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as error:
        raise BackendUnavailable(f"llama_cpp: cannot load the GGUF model {path}: {error}") from error
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        llama.close()
        raise BackendUnavailable(f"llama_cpp: {path} has no chat template (tokenizer.chat_template)")
    eos, bos = llama.token_eos(), llama.token_bos()

    def text(token: int) -> str:
        return llama.detokenize([token], special=True).decode() if token != -1 else ""

    formatter = Jinja2ChatFormatter(
        template=template, eos_token=text(eos), bos_token=text(bos), stop_token_ids=[eos]
    )
    return LlamaCppModel(llama, formatter, path, config.max_tokens)
