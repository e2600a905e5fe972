"""Consolidation maths: capped sample sets, recency-weighted centroids, duplicate identities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Sample = tuple[float, np.ndarray]  # (time taken, L2-normalised embedding)


def cap_samples(samples: Sequence[Sample], cap: int) -> list[Sample]:
    """The newest `cap` samples, oldest first (none for a cap of 0)."""
    return sorted(samples, key=lambda s: s[0])[-cap:] if cap > 0 else []


def weighted_centroid(samples: Sequence[Sample], now: float, half_life_s: float) -> np.ndarray:
    """L2-normalised mean of the samples, each weighted 0.5 ** (age / half_life).

    Ages count from the newest sample (the same direction, as the centroid is normalised), so a
    long gap to `now` (a clock that jumped, weeks without a visit) cannot underflow every weight.
    """
    if not samples:
        raise ValueError("a centroid needs at least one sample")
    times = np.array([t for t, _ in samples], np.float64)
    vectors = np.stack([e for _, e in samples]).astype(np.float32)
    newest = min(float(times.max()), now)
    weights = 0.5 ** (np.clip(newest - times, 0.0, None) / half_life_s)
    mean = (weights[:, None] * vectors).sum(axis=0)
    norm = np.linalg.norm(mean)
    if norm == 0:
        raise ValueError("samples cancel out: cannot form a centroid")
    return (mean / norm).astype(np.float32)


def mean_pairwise_similarity(vectors: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs of L2-normalised rows (1.0 for a single row)."""
    n = len(vectors)
    if n < 2:
        return 1.0
    gram = vectors @ vectors.T
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))


def duplicate_pairs(
    ids: Sequence[str], centroids: np.ndarray, min_similarity: float
) -> list[tuple[str, str]]:
    """Pairs (keep, merge) whose centroids are at least `min_similarity` apart; each id merged once.

    `ids` are in order of age (oldest first), so the older identity is kept.
    """
    if len(ids) < 2:
        return []
    sims = centroids @ centroids.T
    merged: set[str] = set()
    pairs = []
    for i in range(len(ids)):
        if ids[i] in merged:
            continue
        for j in range(i + 1, len(ids)):
            if ids[j] not in merged and sims[i, j] >= min_similarity:
                pairs.append((ids[i], ids[j]))
                merged.add(ids[j])
    return pairs
