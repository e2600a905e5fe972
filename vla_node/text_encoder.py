"""Instruction embeddings from all-MiniLM-L6-v2 (registry asset), loaded offline with transformers.

Sentence embedding as the model was trained for: token embeddings mean-pooled over the attention
mask, then L2-normalised (384 values). Embeddings are cached per instruction string, since a node
sees the same few instructions again and again. No rclpy import; shared by the reference (PyTorch)
and ONNX Runtime backends.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

ASSET_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


class TextEncoder:
    """MiniLM sentence embeddings on the CPU, cached per string (thread-safe)."""

    def __init__(self, model_dir: str | Path | None = None, max_cache: int = 1024) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        import torch
        from transformers import AutoModel, AutoTokenizer

        if model_dir is None:
            from humanoid_common.assets import asset_path

            model_dir = asset_path(ASSET_NAME)
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{self.model_dir} is not a transformers model folder (no config.json)")
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self._model = AutoModel.from_pretrained(self.model_dir, local_files_only=True).eval()
        self._cache: dict[str, np.ndarray] = {}
        self._max_cache = max_cache
        self._lock = threading.Lock()

    def encode(self, text: str) -> np.ndarray:
        """(384,) float32 unit vector for `text` (a cached copy on repeated calls)."""
        with self._lock:
            cached = self._cache.get(text)
        if cached is not None:
            return cached.copy()
        embedding = self.encode_batch([text])[0]
        with self._lock:
            if len(self._cache) >= self._max_cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[text] = embedding
        return embedding.copy()

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors, uncached."""
        torch = self._torch
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)


_shared: TextEncoder | None = None
_shared_lock = threading.Lock()


def load_text_encoder() -> Callable[[str], np.ndarray]:
    """The process-wide MiniLM encoder's `encode` (loaded on first use, then shared)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TextEncoder()
    return _shared.encode
