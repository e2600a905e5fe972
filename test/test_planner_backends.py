"""planner_node model backends (issue 14): llama.cpp with real GGUF models, grammar, cancel and the
errors a user sees; the TensorRT backends up to where this machine's missing runtime stops them."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from humanoid_common.assets import asset_path
from planner_node.checker import check_plan
from planner_node.context import Context, Person
from planner_node.llm import BackendUnavailable, GenerationCancelled, ModelConfig, load_model
from planner_node.plan_schema import Plan, plan_schema, prompt_messages

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import gguf_to_hf  # tools/ is a folder of scripts, not a package

TINY = "SmolLM2-135M-Instruct.Q4_1.gguf"  # 98 MB: fast, its plans need not make sense
SMALL = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
#: Checker refusals a schema cannot prevent: a vla instruction about the wrong object, greeting a
#: known person who is not in view (without waiting for them first).
MEANING = r"instruction does not name|as well as the|is not in view"
SCENE = Context((Person("Alice", True, True), Person("Bob", True, False)), ("red cup", "banana"))


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """Whether `value` matches `schema`, in the JSON schema subset plan_schema uses."""
    if "anyOf" in schema:
        return any(conforms(value, option) for option in schema["anyOf"])
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return (
            isinstance(value, dict)
            and set(schema.get("required", ())) <= set(value)
            and (schema.get("additionalProperties", True) or set(value) <= set(properties))
            and all(conforms(item, properties[key]) for key, item in value.items() if key in properties)
        )
    if kind == "array":
        return (
            isinstance(value, list)
            and schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value))
            and all(conforms(item, schema["items"]) for item in value)
        )
    if kind == "string":
        return isinstance(value, str) and schema.get("minLength", 0) <= len(value) <= schema.get(
            "maxLength", 10**9
        )
    if kind == "integer":
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and schema.get("minimum", value) <= value <= schema.get("maximum", value)
        )
    return kind is None


def load_llama(name: str = TINY, **config: Any):
    return load_model(ModelConfig(model=name, **config), str(asset_path(name)))


@pytest.fixture(scope="module")
def tiny():
    model = load_llama()
    yield model
    model.close()


def test_the_grammar_keeps_the_answer_to_the_schema_of_the_context(tiny):
    schema = plan_schema(SCENE)
    pieces: list[str] = []
    for request in ("give the red cup to Alice", "say hello to Zoe", "pick up the piano"):
        answer = tiny.complete(prompt_messages(SCENE, request), schema, on_token=pieces.append)
        assert conforms(json.loads(answer.text), schema), answer.text
        verdict = check_plan(answer.text, SCENE)
        # The grammar guarantees the structure and the names; what the words mean is the checker's alone.
        assert isinstance(verdict, Plan) or re.search(MEANING, verdict.reason), (answer.text, verdict)
        assert "".join(pieces) == answer.text
        pieces.clear()


@pytest.mark.slow
def test_timings_are_consistent_and_the_prompt_prefix_is_reused():
    model = load_llama()
    try:
        first = model.complete(prompt_messages(SCENE, "say hi"), plan_schema(SCENE))
        again = model.complete(prompt_messages(SCENE, "wave at Alice"), plan_schema(SCENE))
    finally:
        model.close()
        model.close()  # idempotent
    for answer in (first, again):
        assert answer.prompt_tokens > 500  # system prompt, examples, context
        assert answer.completion_tokens >= 5  # at least {"steps": ...}
        assert 0 < answer.first_token_s <= answer.total_s
        assert answer.tokens_per_s > 0
    # Only the last message is new: reading it is a fraction of reading the whole prompt.
    assert again.first_token_s < first.first_token_s / 2


def test_without_a_schema_decoding_is_plain_text(tiny):
    answer = tiny.complete([{"role": "user", "content": "Name a colour."}], None)
    assert answer.text.strip()
    assert answer.completion_tokens >= 1


def test_cancel_from_another_thread_stops_generation_promptly(tiny):
    cancel = threading.Event()
    tokens: list[str] = []
    cancelled_at: list[float] = []

    def cancel_now() -> None:
        cancelled_at.append(time.monotonic())
        cancel.set()

    def on_token(piece: str) -> None:
        if not tokens:  # generating: cancel from another thread a moment later
            threading.Timer(0.2, cancel_now).start()
        tokens.append(piece)

    messages = [{"role": "user", "content": "Write a very long story about a robot, at least 2000 words."}]
    with pytest.raises(GenerationCancelled, match="cancelled after"):
        tiny.complete(messages, None, cancel=cancel, on_token=on_token)
    assert time.monotonic() - cancelled_at[0] < 0.5
    assert tiny.complete([{"role": "user", "content": "Name a colour."}], None).text.strip()  # still usable


def test_a_cancel_before_the_prompt_is_read_stops_before_any_token(tiny):
    cancel = threading.Event()
    cancel.set()
    tokens: list[str] = []
    with pytest.raises(GenerationCancelled):
        tiny.complete(
            prompt_messages(SCENE, "a new request"), plan_schema(SCENE), cancel=cancel, on_token=tokens.append
        )
    assert tokens == []


def test_a_prompt_longer_than_the_context_is_refused():
    model = load_llama(context_tokens=256)
    try:
        with pytest.raises(ValueError, match=r"a prompt of \d+ tokens does not fit context_tokens"):
            model.complete(prompt_messages(SCENE, "say hi"), plan_schema(SCENE))
    finally:
        model.close()


def test_missing_or_invalid_model_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(BackendUnavailable, match=rf"cannot read the GGUF model {missing}"):
        load_model(ModelConfig(), str(missing))
    text = tmp_path / "model.gguf"
    text.write_text("not a model")
    with pytest.raises(BackendUnavailable, match=rf"{text} is not a GGUF file"):
        load_model(ModelConfig(), str(text))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(asset_path(TINY).read_bytes()[:100_000])
    with pytest.raises(BackendUnavailable, match=rf"cannot load the GGUF model {truncated}"):
        load_model(ModelConfig(), str(truncated))


def test_cuda_on_a_cpu_build_says_how_to_rebuild():
    """A CPU-only build refuses device cuda with the rebuild command; a CUDA build (the H200) loads."""
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        load_llama(device="cuda").close()
        return
    with pytest.raises(
        BackendUnavailable, match=r"built without CUDA.*GGML_CUDA=on.*or set the planner device to cpu"
    ):
        load_llama(device="cuda")


def test_llama_cpp_missing_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as on a machine without it
    with pytest.raises(
        BackendUnavailable, match=r"llama-cpp-python is not installed.*pip install llama-cpp-python"
    ):
        load_llama()


@pytest.mark.slow
def test_the_half_billion_model_answers_a_grounded_request():
    model = load_llama(SMALL)
    try:
        answer = model.complete(prompt_messages(SCENE, "please say hello to Alice"), plan_schema(SCENE))
    finally:
        model.close()
    plan = check_plan(answer.text, SCENE)
    assert isinstance(plan, Plan), answer.text
    assert any(
        (step.tool == "greet" and step.args["person"] == "Alice")
        or (step.tool == "say" and "alice" in step.args["text"].lower())
        for step in plan.steps
    ), answer.text


@pytest.fixture
def checkpoint(tmp_path):
    """The smallest folder Edge-LLM takes for a checkpoint."""
    folder = tmp_path / "qwen2"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]})
    )
    return folder


needs_edge_llm = pytest.mark.skipif(
    sys.version_info >= (3, 13), reason="tensorrt-edgellm 0.11.0 has wheels for Python 3.10 to 3.12 only"
)


@needs_edge_llm
def test_edge_llm_gets_to_the_native_runtime_and_names_it(checkpoint, tmp_path, monkeypatch):
    from experimental.server.runtime import engine_build

    monkeypatch.setattr(engine_build, "_DEFAULT_CACHE_DIR", tmp_path / "engines")  # not the user's cache
    with pytest.raises(
        BackendUnavailable, match=r"edge_llm: .*native runtime.*Jetson Thor with JetPack 7"
    ) as error:
        load_model(ModelConfig(backend="edge_llm", device="cuda"), str(checkpoint))
    assert "TensorRT Python bindings are required" in str(error.value)  # the runtime's own reason


def test_edge_llm_refuses_what_it_cannot_run(checkpoint, monkeypatch):
    with pytest.raises(BackendUnavailable, match=r"NVIDIA GPU only.*cuda, not cpu"):
        load_model(ModelConfig(backend="edge_llm", device="cpu"), str(checkpoint))
    with pytest.raises(
        BackendUnavailable, match=r"not a Hugging Face checkpoint folder.*tools/gguf_to_hf\.py"
    ):
        load_model(ModelConfig(backend="edge_llm", device="cuda"), str(asset_path(TINY)))
    monkeypatch.setitem(sys.modules, "experimental.server", None)
    with pytest.raises(
        BackendUnavailable, match=r"tensorrt-edgellm\) is not installed.*--no-deps tensorrt-edgellm"
    ):
        load_model(ModelConfig(backend="edge_llm", device="cuda"), str(checkpoint))


def test_tensorrt_llm_is_not_installed_here(checkpoint):
    with pytest.raises(BackendUnavailable, match=r"TensorRT-LLM is not installed.*llama_cpp backend"):
        load_model(ModelConfig(backend="tensorrt_llm", device="cuda"), str(checkpoint))
    with pytest.raises(BackendUnavailable, match=r"NVIDIA GPU only"):
        load_model(ModelConfig(backend="tensorrt_llm"), str(checkpoint))


@pytest.mark.slow
def test_gguf_to_hf_writes_a_checkpoint_transformers_loads(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "smollm2"
    assert gguf_to_hf.main([str(asset_path(TINY)), str(folder)]) == 0
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "llama"
    assert model.dtype == torch.float16
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())  # dense weights
    chat = [{"role": "user", "content": "hi"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True).endswith(
        "<|im_start|>assistant\n"
    )  # the chat template came along
    with torch.no_grad():
        logits = model(**tokenizer("The robot", return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size
    assert torch.isfinite(logits).all()


def test_gguf_to_hf_says_what_is_wrong(tmp_path, capsys):
    text = tmp_path / "model.gguf"
    text.write_text("not a model")
    for argv, message in (
        ([str(tmp_path / "missing.gguf"), str(tmp_path / "out")], "cannot read"),
        ([str(text), str(tmp_path / "out")], "is not a GGUF file"),
        ([str(asset_path(TINY)), str(tmp_path)], "exists and is not empty"),
    ):
        with pytest.raises(SystemExit) as exit_status:
            gguf_to_hf.main(argv)
        assert exit_status.value.code == 2
        assert message in capsys.readouterr().err
