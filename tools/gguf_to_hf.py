#!/usr/bin/env python3
"""gguf_to_hf: turn a GGUF model into the Hugging Face checkpoint folder that TensorRT Edge-LLM and
TensorRT-LLM build their engines from (planner_node's edge_llm and tensorrt_llm backends).

The weights are dequantised by transformers (which reads GGUF through the `gguf` package) and saved as
safetensors in fp16 or bf16 with the model's config, generation config and tokenizer (chat template
included). A Q4 GGUF gives an fp16 checkpoint about four times its size; quantise it again with the
TensorRT builder if needed. Architectures: those transformers reads from GGUF (llama, qwen2, ...).

    python tools/gguf_to_hf.py .cache/assets/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf /tmp/qwen-1.5b
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

GGUF_HINT = "install it with `pip install gguf==0.19.0` (requirements/planner.txt)"


def convert(gguf_file: Path, folder: Path, dtype: str) -> None:
    """Load `gguf_file` with transformers and save it, with its tokenizer, into `folder`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    kwargs = {"gguf_file": gguf_file.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent,
        dtype=getattr(torch, dtype),
        quantization_config=GgufConfig(dequantize=True),  # dense weights: what the TensorRT builders read
        **kwargs,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gguf_to_hf", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("gguf", type=Path, help="the GGUF model file")
    parser.add_argument(
        "folder", type=Path, help="the checkpoint folder to write (must not exist, or be empty)"
    )
    parser.add_argument(
        "--dtype", choices=("float16", "bfloat16"), default="float16", help="(default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        with args.gguf.open("rb") as f:
            if f.read(4) != b"GGUF":
                parser.error(f"{args.gguf} is not a GGUF file")
    except OSError as error:
        parser.error(f"cannot read {args.gguf}: {error.strerror}")
    if args.folder.exists() and any(args.folder.iterdir()):
        parser.error(f"{args.folder} exists and is not empty")
    try:
        import gguf  # noqa: F401 (transformers needs it to read GGUF; checked here for a clear message)
        import transformers  # noqa: F401
    except ImportError as error:
        name = "gguf" if error.name == "gguf" else "transformers and torch (requirements/ml.txt)"
        parser.error(
            f"{name} is not installed; " + (GGUF_HINT if error.name == "gguf" else "run `make setup`")
        )
    try:
        convert(args.gguf.resolve(), args.folder, args.dtype)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"gguf_to_hf: error: cannot convert {args.gguf}: {error}", file=sys.stderr)
        return 1
    print(f"gguf_to_hf: {args.folder} written ({args.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
