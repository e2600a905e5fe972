"""memory_node benchmark sections of the memory tiers, registered into bench/memory.py's runner.

- ``match``: Tier 2 search latency vs gallery size (1k, 10k, 100k, 1M synthetic 512-d unit vectors;
  --quick: 1k, 10k) for exact numpy search and the HNSW index (hnswlib), with the index's recall@1
  against exact search and its build time. HNSW is built up to ``args.hnsw_max`` vectors (default
  100k: a 1M build takes tens of minutes on 2 cores).
- ``lookup``: `FaceMemory.refine` alone (Tier 2 search and voting) for 5 faces against 100 to 10k
  people, without and with learned samples (the second index of issue 12).
- ``tiers``: Tier 0 hot-cache hit latency; store bytes per person (0 and 50 samples); end to end per
  frame (detect + embed + Tier 0/1 + batched Tier 2 with a 1000-person gallery) with 1 and 5 faces.

bench/memory.py registers them with ``SECTIONS.update(memory_tiers.sections(Row, time_ms, head_crops,
composite_frame))`` so rows share its table and JSON. Only numpy (+ hnswlib, cryptography, onnxruntime)
are imported, no ROS.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIM = 512
HNSW_MAX = 100_000

Progress = Callable[[str], None]


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def near(rng: np.random.Generator, rows: np.ndarray, spread: float = 0.6) -> np.ndarray:
    """Queries near gallery rows (cosine ≈ 0.86), as a returning person's face is near their centroid."""
    out = rows + spread * rng.standard_normal(rows.shape, dtype=np.float32) / np.sqrt(rows.shape[1])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def sections(
    row: Any, time_ms: Callable, head_crops: Callable, composite_frame: Callable
) -> dict[str, Callable]:
    """The section functions, built on the runner's Row type and timing/frame helpers."""

    def match_section(args: argparse.Namespace, progress: Progress) -> list[Any]:
        from memory_node.index import ExactSearch, HnswSearch

        rng = np.random.default_rng(0)
        sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000, 1_000_000)
        hnsw_max = getattr(args, "hnsw_max", HNSW_MAX)
        rows = []
        for n in sizes:
            # an exact search over 1M vectors reads 2 GB: fewer repetitions for the large galleries
            timing = (20, 2) if args.quick or n >= 100_000 else (200, 10)
            progress(f"match: {n} synthetic unit vectors")
            gallery = unit_rows(rng, n)
            queries = near(rng, gallery[rng.integers(0, n, 100)])
            exact = ExactSearch(DIM)
            exact.add(np.arange(n), gallery)
            base = {"gallery": n, "dim": DIM}
            for batch in (1, 5):
                stats = time_ms(partial(exact.search, queries[:batch], 12), *timing)
                rows.append(row("match", "exact search", {**base, "queries": batch}, stats))
            if n > hnsw_max:
                rows.append(
                    row("match", "hnsw search", base, note=f"not run: gallery above hnsw_max {hnsw_max}")
                )
                continue
            try:
                start = time.perf_counter()
                hnsw = HnswSearch(DIM, capacity=n)
                hnsw.add(np.arange(n), gallery)
                build_s = time.perf_counter() - start
            except ImportError as error:
                rows.append(row("match", "hnsw search", base, note=f"unavailable: {error}"))
                continue
            recall = float(np.mean(hnsw.search(queries, 1)[0][:, 0] == exact.search(queries, 1)[0][:, 0]))
            for batch in (1, 5):
                stats = time_ms(partial(hnsw.search, queries[:batch], 12), *timing)
                stats.update(recall_at_1=recall, build_s=build_s)
                rows.append(row("match", "hnsw search", {**base, "queries": batch, "M": 16, "ef": 64}, stats))
        return rows

    def tiers_section(args: argparse.Namespace, progress: Progress) -> list[Any]:
        from memory_node.config import MemoryConfig, StorageConfig, load_thresholds
        from memory_node.crypto import Cipher
        from memory_node.faces import create_pipeline
        from memory_node.hot_cache import HotCache
        from memory_node.memory import FaceMemory, FaceObservation
        from memory_node.store import PersonRecord, PersonStore

        rng = np.random.default_rng(1)
        rows = []
        progress("tiers: Tier 0 hot-cache hit")
        cache = HotCache(64, 60.0)
        people = unit_rows(rng, 64)
        for i, vector in enumerate(people):
            cache.put(str(i), "", vector, 0.0)
        stats = time_ms(
            partial(cache.search, near(rng, people[:1])[0]), *((50, 5) if args.quick else (2000, 50))
        )
        rows.append(row("tiers", "tier0 hit", {"cached_people": 64, "dim": DIM}, stats))

        with tempfile.TemporaryDirectory() as folder:
            progress("tiers: store footprint per person")
            count = 50 if args.quick else 500
            for samples in (0, 50):
                path = Path(folder) / f"footprint_{samples}.sqlite"
                store = PersonStore(path, Cipher(os.urandom(32)))
                empty = path.stat().st_size
                for _ in range(count):
                    vectors = unit_rows(rng, samples + 1)
                    person = PersonRecord(os.urandom(16).hex(), "Some Name", True, centroid=vectors[0])
                    person.samples = [(0.0, v) for v in vectors[1:]]
                    store.put_person(person, replace_samples=True)
                store.close()
                kib = (path.stat().st_size - empty) / count / 1024
                params = {"samples": samples, "dim": DIM, "people": count, "kib_per_person": round(kib, 3)}
                rows.append(
                    row(
                        "tiers", "store per person", params, note=f"{kib:.2f} KiB per person (size, not time)"
                    )
                )

            progress("tiers: end to end per frame")
            pipeline = create_pipeline("insightface")
            config = MemoryConfig(storage=StorageConfig(data_dir=str(Path(folder) / "e2e")))
            thresholds = load_thresholds(REPO / "config" / "face_thresholds.yaml", pipeline.model_name)
            memory = FaceMemory.open(config, thresholds, pipeline.dim)
            for i, vector in enumerate(unit_rows(rng, 1000, pipeline.dim)):
                memory.people[str(i)] = PersonRecord(str(i), centroid=vector)
                memory.index.set_person(str(i), vector[None])
            crops = head_crops()
            for faces in (1, 5):
                frame = composite_frame(crops, faces)

                def step(frame: np.ndarray = frame) -> None:
                    found = pipeline.process(frame)
                    observations = [FaceObservation(i, f.embedding) for i, f in enumerate(found)]
                    memory.provisional(observations)
                    memory.refine([(observations, time.time())])

                params = {"faces_in_frame": faces, "gallery": 1000, "backend": "insightface", "device": "cpu"}
                rows.append(
                    row(
                        "tiers",
                        "end to end per frame",
                        params,
                        time_ms(step, *((3, 1) if args.quick else (30, 3))),
                    )
                )
            memory.close()
        return rows

    def lookup_section(args: argparse.Namespace, progress: Progress) -> list[Any]:
        """Tier 2 lookup alone: `FaceMemory.refine` for a frame of 5 faces (index search and voting)
        against people with 5 enrolled samples each, without and with 5 learned samples each, for
        faces of people in memory and of strangers. The config's defaults decide how many of them are
        indexed. The same code runs on a tree from before issue 12 (one index, no `learned`): compare
        the two side by side on one machine."""
        from memory_node.config import MemoryConfig, StorageConfig, Thresholds
        from memory_node.memory import FaceMemory, FaceObservation
        from memory_node.store import PersonRecord

        rng = np.random.default_rng(2)
        thresholds = Thresholds(known=0.45, tentative=0.3, margin=0.1)
        rows = []
        with tempfile.TemporaryDirectory() as folder:
            for people in (100, 1_000) if args.quick else (100, 1_000, 10_000):
                for learned in (0, 5):
                    progress(f"lookup: {people} people, {learned} learned samples each")
                    config = MemoryConfig(storage=StorageConfig(data_dir=f"{folder}/{people}_{learned}"))
                    memory = FaceMemory.open(config, thresholds, DIM)
                    centres = unit_rows(rng, people)
                    for i, centre in enumerate(centres):
                        person = PersonRecord(str(i), centroid=centre)
                        person.samples = [(0.0, v) for v in near(rng, np.tile(centre, (5, 1)))]
                        person.learned = [(1.0, v) for v in near(rng, np.tile(centre, (learned, 1)))]
                        memory.people[person.person_id] = person
                    memory._index_people(list(memory.people.values()))
                    probes = {"known": near(rng, centres[:5]), "strangers": unit_rows(rng, 5)}
                    for kind, vectors in probes.items():
                        faces = [FaceObservation(t, v) for t, v in enumerate(vectors, start=len(rows) * 5)]
                        clock = iter(range(10**9))
                        stats = time_ms(
                            lambda faces=faces, clock=clock, memory=memory: memory.refine(
                                [(faces, next(clock))]
                            ),
                            *((50, 5) if args.quick else (500, 20)),
                        )
                        params = {"people": people, "learned": learned, "faces": f"5 {kind}", "dim": DIM}
                        rows.append(row("lookup", "refine, 5 faces", params, stats))
                    memory.close()
        return rows

    return {"match": match_section, "tiers": tiers_section, "lookup": lookup_section}
