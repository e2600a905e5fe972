"""Unit tests of the memory cores on synthetic unit vectors: bands, voting, tiers 0-2, tracks, workers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import yaml
from memory_helpers import DIM, THRESHOLDS, identity, sample, unit

from harness import REPO, wait_for
from memory_node.bands import Band, Match, Tier, classify
from memory_node.config import (
    MemoryConfig,
    MemoryConfigError,
    TierConfig,
    VotingConfig,
    load_memory_config,
    load_thresholds,
    parse_memory_config,
    parse_thresholds,
)
from memory_node.consolidation import (
    cap_samples,
    duplicate_pairs,
    mean_pairwise_similarity,
    weighted_centroid,
)
from memory_node.hot_cache import HotCache
from memory_node.index import VectorIndex
from memory_node.recent import RecentTracks
from memory_node.tracks import FACE_TRACK_BASE, FaceTracks, IouFaceTracker, PersonBox, associate_to_people
from memory_node.voting import TrackVote
from memory_node.worker import BackgroundWorker


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_shipped_config_loads():
    cfg = load_memory_config(REPO / "config" / "memory.yaml")
    assert cfg == MemoryConfig(storage=cfg.storage)  # the file restates the defaults
    assert cfg.consolidation.period_s == 1800
    assert cfg.consolidation.max_samples == 50


@pytest.mark.parametrize(
    ("memory", "message"),
    [
        ({"voting": {"window": 3, "known_votes": 5}}, "memory.voting.known_votes (5) must be between 1"),
        ({"events": {"left_after_s": "soon"}}, "memory.events.left_after_s: expected a number"),
        ({"tiers": {"hot_cache": 3}}, "memory.tiers.hot_cache: unknown key"),
        ({"storage": {"store_images": 1}}, "memory.storage.store_images: expected true or false"),
    ],
)
def test_config_errors_name_the_key(memory, message):
    with pytest.raises(MemoryConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_memory_config({"memory": memory})


def test_shipped_thresholds_load():
    assert 0 < load_thresholds(REPO / "config" / "face_thresholds.yaml", "w600k_mbf").known < 1


def test_thresholds_are_per_model_and_validated():
    data = yaml.safe_load("models: {w600k_mbf: {known: 0.45, tentative: 0.3, margin: 0.05, backend: x}}")
    assert parse_thresholds(data, "w600k_mbf").known == 0.45
    with pytest.raises(MemoryConfigError, match="no thresholds for embedding model 'sface'"):
        parse_thresholds(data, "sface")
    with pytest.raises(MemoryConfigError, match=r"known \(0.2\) must be above .*tentative \(0.3\)"):
        parse_thresholds({"models": {"m": {"known": 0.2, "tentative": 0.3, "margin": 0.0}}}, "m")
    assert parse_thresholds(data, "w600k_mbf").gallery_size == 0  # not recorded
    data["models"]["w600k_mbf"]["gallery_size"] = 100
    assert parse_thresholds(data, "w600k_mbf").gallery_size == 100
    data["models"]["w600k_mbf"]["gallery_size"] = 1.5
    with pytest.raises(MemoryConfigError, match="gallery_size: expected a whole number"):
        parse_thresholds(data, "w600k_mbf")


def test_bands_use_thresholds_and_margin():
    assert classify(0.7, 0.2, THRESHOLDS) == (Band.KNOWN, pytest.approx(0.5))
    assert classify(0.7, None, THRESHOLDS)[0] == Band.KNOWN
    assert classify(0.7, 0.68, THRESHOLDS)[0] == Band.TENTATIVE  # two people too close to tell apart
    assert classify(0.5, 0.1, THRESHOLDS)[0] == Band.TENTATIVE
    assert classify(0.3, 0.1, THRESHOLDS)[0] == Band.UNKNOWN


def _m(pid: str, band: Band, sim: float = 0.7) -> Match:
    return Match(pid, pid.upper(), sim, 0.3, band, Tier.INDEX)


def test_voting_needs_several_frames_and_does_not_flip_on_one_bad_frame():
    vote = TrackVote(VotingConfig(window=7, known_votes=3, min_votes=2))
    assert vote.add(_m("a", Band.KNOWN)) is None
    assert vote.add(_m("a", Band.KNOWN)) is None  # 2 KNOWN frames: not yet, and not "are you a?"
    assert vote.add(_m("a", Band.KNOWN)).band == Band.KNOWN
    assert vote.add(_m("b", Band.KNOWN)).person_id == "a"  # one bad frame
    assert vote.add(Match(tier=Tier.INDEX)).person_id == "a"  # one frame seeing nobody
    for _ in range(5):
        decision = vote.add(_m("b", Band.KNOWN))
    assert decision.person_id == "b"  # a real change wins once it holds the window


def test_voting_excluded_person_never_wins():
    vote = TrackVote(VotingConfig(window=5, known_votes=2, min_votes=1))
    vote.excluded.add("a")
    for _ in range(5):
        decision = vote.add(_m("a", Band.KNOWN))
    assert decision.band == Band.UNKNOWN
    assert not decision.person_id


def test_hot_cache_lru_ttl_and_match(rng):
    cache = HotCache(size=2, ttl_s=60)
    a, b, c = identity(rng), identity(rng), identity(rng)
    cache.put("a", "A", a, now=0)
    cache.put("b", "B", b, now=1)
    entry, top1, top2 = cache.search(sample(a, rng))
    assert entry.person_id == "a"
    assert top1 > 0.7
    assert top2 < 0.5
    cache.put("c", "C", c, now=2)  # evicts the least recently used
    assert "a" not in cache
    assert len(cache) == 2
    cache.expire(now=62)
    assert "b" not in cache
    assert "c" in cache


@pytest.mark.parametrize("exact_max", [10_000, 0])  # exact numpy search, and HNSW from the start
def test_index_best_two_distinct_people(rng, exact_max):
    index = VectorIndex(DIM, exact_max=exact_max, vectors_per_person=3)
    centers = {f"p{i}": identity(rng) for i in range(200)}
    for pid, center in centers.items():
        index.set_person(pid, np.stack([center, sample(center, rng), sample(center, rng)]))
    assert index.kind == ("exact" if exact_max else "hnsw")
    queries = np.stack([sample(centers["p5"], rng), sample(centers["p150"], rng)])
    first, second = index.search(queries)
    assert first[0].person_id == "p5"
    assert second[0].person_id == "p150"
    assert len(first) == 2
    assert first[1].person_id != "p5"
    assert first[0].similarity > first[1].similarity
    index.remove("p5")
    assert index.search(queries[:1])[0][0].person_id != "p5"
    index.set_person("p150", centers["p150"][None])  # replaced: one vector now
    assert len(index) == 199 * 3 - 2


@pytest.mark.parametrize("exact_max", [10_000, 0])
def test_index_set_people_at_once_is_the_same_as_one_by_one(rng, exact_max):
    centers = {f"p{i}": identity(rng) for i in range(50)}
    vectors = {pid: np.stack([c, sample(c, rng)]) for pid, c in centers.items()}
    one_by_one = VectorIndex(DIM, exact_max=exact_max, vectors_per_person=2)
    for pid, rows in vectors.items():
        one_by_one.set_person(pid, rows)
    at_once = VectorIndex(DIM, exact_max=exact_max, vectors_per_person=2)
    at_once.set_people(vectors)
    queries = np.stack([sample(c, rng) for c in centers.values()])
    assert at_once.search(queries) == one_by_one.search(queries)
    at_once.set_people({"p1": np.empty((0, DIM), np.float32), "p2": centers["p2"][None]})
    assert (len(at_once), at_once.people()) == (50 * 2 - 3, 49)
    assert all(c.person_id != "p1" for row in at_once.search(queries) for c in row)


def test_index_switches_to_hnsw_above_the_threshold(rng):
    index = VectorIndex(DIM, exact_max=50, vectors_per_person=1)
    centers = [identity(rng) for _ in range(80)]
    for i, center in enumerate(centers):
        index.set_person(str(i), center[None])
    assert index.kind == "hnsw"
    assert len(index) == 80
    assert index.search(sample(centers[3], rng))[0][0].person_id == "3"


def test_association_face_inside_person_box():
    people = [PersonBox(7, (100, 50, 300, 500)), PersonBox(8, (310, 40, 500, 480))]
    faces = [(160, 70, 230, 150), (360, 60, 440, 140), (600, 60, 650, 110)]
    assert associate_to_people(faces, people) == [7, 8, -1]


def test_iou_tracker_keeps_ids_and_expires():
    tracker = IouFaceTracker(min_iou=0.3, max_age_s=1.0)
    first = tracker.update([(0, 0, 50, 50), (200, 0, 250, 50)], now=0.0)
    assert first[0] >= FACE_TRACK_BASE
    assert first[0] != first[1]
    assert tracker.update([(205, 2, 255, 52), (3, 1, 53, 51)], now=0.1) == [first[1], first[0]]
    assert tracker.update([(3, 1, 53, 51)], now=2.0)[0] not in first  # expired after 1 s unseen


def test_face_keeps_its_person_track_between_fresh_detections():
    tracks = FaceTracks(IouFaceTracker(min_iou=0.3, max_age_s=5.0))
    person = [PersonBox(7, (100, 50, 300, 500))]
    face = (160, 70, 230, 150)
    assert tracks.assign([face], person, now=0.0) == [7]
    assert tracks.assign([(162, 72, 232, 152)], None, now=2.0) == [7]  # stale detections: still 7
    stranger = tracks.assign([(600, 60, 650, 110)], None, now=2.5)[0]
    assert stranger >= FACE_TRACK_BASE  # never inside a person box: its own face track
    assert tracks.assign([face], None, now=20.0)[0] not in (7, stranger)  # gone too long: a new track


def test_a_track_back_after_leaving_is_a_new_encounter():
    recent = RecentTracks(TierConfig(), VotingConfig(window=5, known_votes=2, min_votes=2))
    record = recent.touch(7, now=0.0)
    alice = Match("alice", "Alice", 0.7, 0.3, Band.KNOWN, Tier.INDEX)
    record.vote.add(alice)
    record.vote.add(alice)
    record.events_sent.add("known:alice")
    record.left = True
    back = recent.touch(7, now=30.0)  # the same id, maybe someone else standing there now
    assert back.events_sent == set()  # welcome back may be said again ...
    assert back.identity is None  # ... and the track votes afresh: no identity carried over
    assert recent.touch(7, now=31.0) is back


def test_consolidation_helpers(rng):
    old, new = identity(rng), identity(rng)
    centroid = weighted_centroid([(0.0, old), (100.0, new)], now=100.0, half_life_s=10.0)
    assert centroid @ new > 0.99  # the old sample weighs 2^-10
    jumped = weighted_centroid([(0.0, old), (100.0, new)], now=1.7e9, half_life_s=10.0)  # sim clock jump
    assert jumped @ new > 0.99  # the same centroid: weights count from the newest sample, no underflow
    assert [t for t, _ in cap_samples([(3, old), (1, old), (2, old)], 2)] == [2, 3]
    center = identity(rng)
    assert mean_pairwise_similarity(np.stack([sample(center, rng) for _ in range(5)])) > 0.5
    pairs = duplicate_pairs(["x", "y", "z"], np.stack([center, unit(center + 0.01), identity(rng)]), 0.9)
    assert pairs == [("x", "y")]


def test_worker_keeps_only_newest_and_survives_errors():
    seen, errors = [], []
    gate = threading.Event()

    def handle(batch):
        gate.wait(5)
        if batch == ["bad"]:
            raise ValueError("bad frame")
        seen.append(batch)

    worker = BackgroundWorker("t", handle, errors.append, max_pending=1)
    worker.submit("bad")
    wait_for(lambda: not worker.idle() and worker.pending == 0, 5, "the worker to take the first item")
    for item in ("1", "2", "3"):
        worker.submit(item)
    gate.set()
    wait_for(worker.idle, 5, "the worker to drain")
    worker.stop()
    assert seen == [["3"]]
    assert worker.dropped == 2
    assert str(errors[0]) == "bad frame"
