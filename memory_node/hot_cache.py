"""Tier 0: the people seen in the last minute, a bounded LRU checked on the callback thread."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


@dataclass
class HotEntry:
    person_id: str
    name: str
    centroid: np.ndarray  # L2-normalised float32
    last_seen: float


class HotCache:
    """LRU of at most `size` people, entries older than `ttl_s` dropped; search is one small matmul.

    The stacked centroid matrix is rebuilt lazily after a change, so a hit costs one (n, d) @ (d,)
    product with n ≤ size (microseconds). Thread-safe: the worker writes, the callback thread reads.
    """

    def __init__(self, size: int, ttl_s: float) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, HotEntry] = OrderedDict()
        self._matrix: np.ndarray | None = None
        self._ids: list[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, person_id: str) -> bool:
        return person_id in self._entries

    def put(self, person_id: str, name: str, centroid: np.ndarray, now: float) -> None:
        with self._lock:
            self._entries.pop(person_id, None)
            self._entries[person_id] = HotEntry(person_id, name, np.asarray(centroid, np.float32), now)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            self._matrix = None

    def remove(self, person_id: str) -> None:
        with self._lock:
            if self._entries.pop(person_id, None) is not None:
                self._matrix = None

    def expire(self, now: float) -> None:
        with self._lock:
            stale = [pid for pid, e in self._entries.items() if now - e.last_seen > self.ttl_s]
            for pid in stale:
                del self._entries[pid]
            if stale:
                self._matrix = None

    def search(self, embedding: np.ndarray) -> tuple[HotEntry | None, float, float | None]:
        """Best entry, its similarity and the second-best similarity (None when fewer than two)."""
        with self._lock:
            if not self._entries:
                return None, -1.0, None
            if self._matrix is None:
                self._ids = list(self._entries)
                self._matrix = np.stack([self._entries[i].centroid for i in self._ids])
            scores = self._matrix @ embedding
            best = int(np.argmax(scores))
            second = float(np.partition(scores, -2)[-2]) if len(scores) > 1 else None
            return self._entries[self._ids[best]], float(scores[best]), second
