"""Anchored learning (issue 12): enrolled samples are anchors, learned samples never make a face KNOWN,
and the memory cannot drift onto a stranger however long it learns."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from memory_helpers import THRESHOLDS, identity, open_memory, sample, unit

from memory_node.bands import Band, classify_anchored
from memory_node.index import Candidate
from memory_node.memory import FaceObservation


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12)


def _track(memory, track, faces, start, dt=0.2):
    return [
        memory.refine([([FaceObservation(track, face)], start + i * dt)])[0][0]
        for i, face in enumerate(faces)
    ]


def _between(a: np.ndarray, b: np.ndarray, cosine_to_a: float) -> np.ndarray:
    """A unit vector in the plane of a and b with the given cosine to a (a and b nearly orthogonal)."""
    b_perp = unit(b - (b @ a) * a)
    return unit(cosine_to_a * a + np.sqrt(1 - cosine_to_a**2) * b_perp)


def test_only_anchors_make_known():
    anchors = [Candidate("alice", 0.50), Candidate("bob", 0.10)]
    learned = [Candidate("alice", 0.99)]
    assert classify_anchored(anchors, learned, THRESHOLDS)[3] == Band.TENTATIVE
    assert classify_anchored([], learned, THRESHOLDS)[:2] == ("alice", 0.99)
    assert classify_anchored([], learned, THRESHOLDS)[3] == Band.TENTATIVE
    person, similarity, _, band = classify_anchored([Candidate("alice", 0.7)], learned, THRESHOLDS)
    assert (person, similarity, band) == ("alice", 0.7, Band.KNOWN)
    # Two people close together: no KNOWN without the margin, whatever the learned samples say.
    close = [Candidate("alice", 0.70), Candidate("bob", 0.68)]
    assert classify_anchored(close, [Candidate("alice", 0.95)], THRESHOLDS)[3] == Band.TENTATIVE
    assert classify_anchored([Candidate("alice", 0.2)], [], THRESHOLDS)[::3] == ("", Band.UNKNOWN)


def test_learned_samples_of_a_stranger_never_name_him(tmp_path, rng):
    """Even learned samples that are the stranger's own face (an old store, a bug) give at most
    "are you Alice?", never "Alice"."""
    memory = open_memory(tmp_path)
    alice, stranger = identity(rng), identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(3)], now=0.0)
    person = memory.people[pid]
    person.learned = [(1.0, sample(stranger, rng)) for _ in range(5)]
    memory._index_person(person)
    matches = _track(memory, 4, [sample(stranger, rng) for _ in range(10)], start=5.0)
    assert all(m.band < Band.KNOWN for m in matches)
    assert memory.recent.get(4).identity.band == Band.TENTATIVE
    memory.close()


def test_learning_cannot_drift_from_alice_to_a_stranger(tmp_path, rng):
    """Encounter after encounter the face moves a little further from Alice towards a stranger, each
    step close to what was learned the time before: the memory learns near Alice and stops there."""
    memory = open_memory(tmp_path, events={"left_after_s": 1.0})
    alice, stranger = identity(rng), identity(rng)
    anchors = [sample(alice, rng, spread=0.3) for _ in range(3)]
    pid, _ = memory.enroll("Alice", True, anchors, now=0.0)
    now, known_cosines = 10.0, []
    for cosine in np.linspace(0.95, 0.0, 20):
        face = _between(alice, stranger, cosine)
        matches = _track(memory, int(now), [sample(face, rng, spread=0.15) for _ in range(6)], start=now)
        if memory.recent.get(int(now)).identity and memory.recent.get(int(now)).identity.band == Band.KNOWN:
            known_cosines.append(cosine)
        assert matches
        memory.tick(now + 5.0)
        now += 100.0
    person = memory.people[pid]
    assert len(person.samples) == 3  # the anchors are untouched
    assert person.learned  # it did learn, near Alice
    anchor_vectors = np.stack([person.centroid, *[e for _, e in person.samples]])
    assert all((anchor_vectors @ e).max() >= THRESHOLDS.known for _, e in person.learned)
    matches = _track(memory, 9999, [sample(stranger, rng, spread=0.15) for _ in range(10)], start=now)
    assert all(m.band < Band.KNOWN for m in matches)  # at most "are you Alice?", never "Alice"
    assert min(known_cosines) >= 0.5  # KNOWN only while the face was still close to Alice's
    memory.close()


def test_a_track_that_rested_on_one_frame_teaches_nothing(tmp_path, rng):
    memory = open_memory(tmp_path)
    alice, other = identity(rng), identity(rng)
    pid, _ = memory.enroll("Alice", True, [alice], now=0.0)
    lookalike = _between(alice, other, 0.5)  # TENTATIVE for Alice, never KNOWN
    faces = [sample(alice, rng, spread=0.2), *[sample(lookalike, rng, spread=0.2) for _ in range(4)]]
    _track(memory, 5, faces, start=1.0)
    assert memory.recent.get(5).identity.band == Band.TENTATIVE
    assert sum(s.known_for == pid for s in memory.recent.get(5).samples) == 1
    message = memory.confirm(5, pid, confirmed=True, now=3.0)  # "yes, I am Alice"
    assert "0 of its samples joined" in message
    assert not memory.people[pid].learned
    assert len(memory.people[pid].samples) == 1
    memory.close()


def test_anchors_and_learned_are_stored_apart_and_learned_can_be_dropped(tmp_path, rng):
    memory = open_memory(tmp_path, events={"left_after_s": 1.0})
    alice = identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(3)], now=0.0)
    _track(memory, 3, [sample(alice, rng) for _ in range(6)], start=1.0)
    memory.tick(now=10.0)
    learned = len(memory.people[pid].learned)
    assert learned >= 3
    memory.close()
    memory = open_memory(tmp_path)
    person = memory.people[pid]
    assert (len(person.samples), len(person.learned)) == (3, learned)
    assert len(memory.learned_index) == min(learned, memory.config.tiers.index_learned_per_person)
    assert memory.drop_learned(pid) == learned
    memory.close()
    memory = open_memory(tmp_path)
    assert (len(memory.people[pid].samples), len(memory.people[pid].learned)) == (3, 0)
    assert len(memory.learned_index) == 0
    memory.close()


def test_an_older_store_keeps_its_enrolment_as_anchors(tmp_path, rng):
    """Schema 2 had no anchor flag: samples taken by the first sighting become anchors, later ones learned."""
    memory = open_memory(tmp_path)
    alice = identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(3)], now=0.0)
    person = memory.people[pid]
    person.learned = [(50.0, sample(alice, rng)) for _ in range(2)]
    memory.store.put_person(person, replace_samples=True)
    path = memory.store.path
    memory.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE samples DROP COLUMN anchor")
    db.execute("UPDATE meta SET value=2 WHERE key='schema_version'")
    db.commit()
    db.close()
    memory = open_memory(tmp_path)
    person = memory.people[pid]
    assert (len(person.samples), len(person.learned)) == (3, 2)
    assert [t for t, _ in person.learned] == [50.0, 50.0]
    memory.close()
