"""Shared pieces of the memory tests: synthetic identities and a memory opened in a temp dir."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from memory_node.config import MemoryConfig, Thresholds
from memory_node.memory import FaceMemory

DIM = 64
THRESHOLDS = Thresholds(known=0.6, tentative=0.4, margin=0.05)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def identity(rng: np.random.Generator) -> np.ndarray:
    return unit(rng.standard_normal(DIM))


def sample(center: np.ndarray, rng: np.random.Generator, spread: float = 0.6) -> np.ndarray:
    """A face of the person at `center`: cosine to it ≈ 1 / sqrt(1 + spread²) (≈ 0.86 at 0.6)."""
    return unit(center + spread * rng.standard_normal(DIM) / np.sqrt(DIM))


def make_config(data_dir: Path, **sections: dict) -> MemoryConfig:
    cfg = MemoryConfig()
    changes = {"storage": dataclasses.replace(cfg.storage, data_dir=str(data_dir))}
    for name, values in sections.items():
        changes[name] = dataclasses.replace(getattr(cfg, name), **values)
    return dataclasses.replace(cfg, **changes)


def open_memory(data_dir: Path, **sections: dict) -> FaceMemory:
    return FaceMemory.open(make_config(data_dir, **sections), THRESHOLDS, DIM)
