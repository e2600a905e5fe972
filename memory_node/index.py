"""Tier 2: vector index over all people (centroids + a few recent samples each).

Exact numpy search (one matmul) for small galleries; above `exact_max` vectors an HNSW graph
(hnswlib, inner-product space). hnswlib was chosen over faiss because Forget needs deletion: hnswlib
marks a vector deleted and overwrites its slot on the next insertion, faiss' HNSW cannot remove.
The switch size comes from bench/memory.py (see docs/memory.md).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


class ExactSearch:
    """Brute-force inner product over a growable float32 matrix."""

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._vectors = np.empty((0, dim), np.float32)
        self._labels = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self._labels)

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, vectors.astype(np.float32, copy=False)])
        self._labels = np.concatenate([self._labels, labels.astype(np.int64)])

    def remove(self, labels: np.ndarray) -> None:
        keep = ~np.isin(self._labels, labels)
        self._vectors = np.ascontiguousarray(self._vectors[keep])
        self._labels = self._labels[keep]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        return self._labels, self._vectors

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels, similarities), each (q, k'), best first, k' = min(k, len)."""
        k = min(k, len(self))
        if k == 0:
            return np.empty((len(queries), 0), np.int64), np.empty((len(queries), 0), np.float32)
        # float32 queries: float64 ones would promote (copy) the whole gallery on every search
        scores = queries.astype(np.float32, copy=False) @ self._vectors.T
        top = (
            np.argpartition(-scores, k - 1, axis=1)[:, :k]
            if k < scores.shape[1]
            else np.tile(np.arange(scores.shape[1]), (len(queries), 1))
        )
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        return self._labels[np.take_along_axis(top, order, axis=1)], np.take_along_axis(
            top_scores, order, axis=1
        )


class HnswSearch:
    """hnswlib HNSW graph over inner product; deleted slots are reused (overwritten) by later adds."""

    kind = "hnsw"

    def __init__(self, dim: int, capacity: int = 1024, m: int = 16, ef_construction: int = 200, ef: int = 64):
        import hnswlib

        self.dim = dim
        self._ef = ef
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(
            max_elements=capacity, ef_construction=ef_construction, M=m, allow_replace_deleted=True
        )
        self._index.set_ef(ef)
        self._live: set[int] = set()

    def __len__(self) -> int:
        return len(self._live)

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        needed = self._index.element_count + len(labels)
        if needed > self._index.get_max_elements():
            self._index.resize_index(max(needed, 2 * self._index.get_max_elements()))
        self._index.add_items(vectors.astype(np.float32, copy=False), labels, replace_deleted=True)
        self._live.update(int(x) for x in labels)

    def remove(self, labels: np.ndarray) -> None:
        for label in labels:
            if int(label) in self._live:
                self._index.mark_deleted(int(label))
                self._live.discard(int(label))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        if k == 0:
            return np.empty((len(queries), 0), np.int64), np.empty((len(queries), 0), np.float32)
        self._index.set_ef(max(self._ef, k))
        labels, distances = self._index.knn_query(queries.astype(np.float32, copy=False), k=k)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)  # ip space: distance = 1 - ip


@dataclass(frozen=True)
class Candidate:
    person_id: str
    similarity: float


class VectorIndex:
    """Person-labelled vectors; search returns the best similarity per distinct person, best first."""

    def __init__(self, dim: int, exact_max: int, vectors_per_person: int) -> None:
        self.dim = dim
        self.exact_max = exact_max
        self._k = 2 * vectors_per_person + 2  # enough neighbours to see two distinct people
        self._backend: ExactSearch | HnswSearch = ExactSearch(dim)
        self._next_label = 0
        self._person_of: dict[int, str] = {}
        self._labels_of: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return self._backend.kind

    def __len__(self) -> int:
        return len(self._backend)

    def people(self) -> int:
        return len(self._labels_of)

    def set_person(self, person_id: str, vectors: np.ndarray) -> None:
        """Replace `person_id`'s vectors (centroid and samples) with `vectors` (n, dim), L2-normalised."""
        self.set_people({person_id: vectors})

    def set_people(self, vectors_of: Mapping[str, np.ndarray]) -> None:
        """Replace each person's vectors in one insertion (a memory's start indexes everybody at once:
        one insertion per person would copy the growing exact matrix once per person). A person given
        no vectors is removed."""
        items = {pid: np.asarray(v, np.float32).reshape(-1, self.dim) for pid, v in vectors_of.items()}
        with self._lock:
            for person_id in items:
                self._remove_locked(person_id)
            items = {pid: v for pid, v in items.items() if len(v)}
            if not items:
                return
            vectors = np.concatenate(list(items.values()))
            labels = np.arange(self._next_label, self._next_label + len(vectors), dtype=np.int64)
            self._next_label += len(vectors)
            self._maybe_upgrade(len(vectors))
            self._backend.add(labels, vectors)
            start = 0
            for person_id, rows in items.items():
                mine = labels[start : start + len(rows)].tolist()
                start += len(rows)
                self._labels_of[person_id] = mine
                self._person_of.update((label, person_id) for label in mine)

    def remove(self, person_id: str) -> None:
        with self._lock:
            self._remove_locked(person_id)

    def _remove_locked(self, person_id: str) -> None:
        labels = self._labels_of.pop(person_id, None)
        if labels:
            self._backend.remove(np.asarray(labels, np.int64))
            for label in labels:
                del self._person_of[label]

    def _maybe_upgrade(self, adding: int) -> None:
        if isinstance(self._backend, ExactSearch) and len(self._backend) + adding > self.exact_max:
            labels, vectors = self._backend.items()
            hnsw = HnswSearch(self.dim, capacity=max(1024, 2 * (len(labels) + adding)))
            if len(labels):
                hnsw.add(labels, vectors)
            self._backend = hnsw

    def search(self, queries: np.ndarray, people: int = 2) -> list[list[Candidate]]:
        """For each query (q, dim): up to `people` candidates of distinct people, best first."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        with self._lock:
            labels, sims = self._backend.search(queries, self._k)
            results = []
            for row_labels, row_sims in zip(labels, sims, strict=True):
                seen: dict[str, float] = {}
                for label, sim in zip(row_labels, row_sims, strict=True):
                    pid = self._person_of.get(int(label))
                    if pid is not None and pid not in seen:
                        seen[pid] = float(sim)
                        if len(seen) == people:
                            break
                results.append([Candidate(p, s) for p, s in seen.items()])
            return results
