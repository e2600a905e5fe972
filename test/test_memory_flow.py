"""The memory orchestrator on synthetic faces: events, strangers, consent, confirmation, consolidation."""

from __future__ import annotations

import numpy as np
import pytest
from memory_helpers import identity, open_memory, sample

from memory_node.bands import Band, Tier
from memory_node.memory import EventKind, FaceObservation, MemoryRequestError


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def _see(memory, track, center, rng, start, frames, dt=0.5):
    matches = []
    for i in range(frames):
        emb = sample(center, rng) if center is not None else None
        matches.append(memory.refine([([FaceObservation(track, emb)], start + i * dt)])[0][0])
    return matches


def _kinds(memory):
    return [(e.kind, e.person_id, e.name) for e in memory.pop_events()]


def test_welcome_back_left_and_provisional_answers(tmp_path, rng):
    memory = open_memory(tmp_path, events={"welcome_back_after_s": 60.0, "left_after_s": 5.0})
    alice = identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(5)], now=0.0)
    matches = _see(memory, 1, alice, rng, start=10.0, frames=4)
    assert [m.band for m in matches[-2:]] == [Band.KNOWN, Band.KNOWN]
    assert matches[-1].tier == Tier.INDEX
    assert _kinds(memory) == [(EventKind.WELCOME_BACK, pid, "Alice")]  # first sight since enrolment
    fast = memory.provisional(
        [FaceObservation(1, sample(alice, rng)), FaceObservation(2, sample(alice, rng))]
    )
    assert (fast[0].tier, fast[0].person_id) == (Tier.RECENT, pid)  # the track keeps its identity
    assert (fast[1].tier, fast[1].person_id, fast[1].band) == (Tier.HOT, pid, Band.KNOWN)  # hot cache
    memory.tick(now=20.0)
    assert _kinds(memory) == [(EventKind.LEFT, pid, "Alice")]
    assert len(memory.people[pid].samples) == 5  # her enrolled anchors stay as they were
    assert len(memory.people[pid].learned) >= 3  # the encounter's KNOWN frames were learned
    _see(memory, 3, alice, rng, start=40.0, frames=4)
    assert _kinds(memory) == []  # back after 20 s: not "welcome back" yet
    memory.tick(now=60.0)
    memory.pop_events()
    _see(memory, 4, alice, rng, start=200.0, frames=4)
    events = memory.pop_events()
    assert [e.kind for e in events] == [EventKind.WELCOME_BACK]
    assert events[0].absent_s > 60
    memory.close()


def test_no_left_while_the_person_is_in_view_on_another_track(tmp_path, rng):
    memory = open_memory(tmp_path, events={"welcome_back_after_s": 60.0, "left_after_s": 5.0})
    alice = identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(5)], now=0.0)
    _see(memory, 1, alice, rng, start=10.0, frames=4)  # track 1 until 11.5 s
    _see(memory, 2, alice, rng, start=12.0, frames=10)  # a tracker's new id for her: 12 to 16.5 s
    memory.tick(now=17.0)  # track 1 unseen for 5.5 s, but Alice is on track 2
    assert _kinds(memory) == [(EventKind.WELCOME_BACK, pid, "Alice")]
    memory.tick(now=22.0)  # now she is gone
    assert _kinds(memory) == [(EventKind.LEFT, pid, "Alice")]
    memory.close()


def test_stranger_becomes_provisional_and_consents_later(tmp_path, rng):
    memory = open_memory(tmp_path, strangers={"min_samples": 5, "min_span_s": 2.0})
    memory.enroll("Alice", True, [identity(rng)], now=0.0)
    stranger = identity(rng)
    matches = _see(memory, 7, stranger, rng, start=1.0, frames=6)
    events = memory.pop_events()
    assert [e.kind for e in events] == [EventKind.NEW_PERSON, EventKind.NEW_PERSON]
    assert events[0].person_id == ""
    assert events[1].person_id
    provisional_id = events[1].person_id
    assert memory.people[provisional_id].provisional
    assert memory.people[provisional_id].name == ""
    assert matches[-1].person_id == provisional_id
    assert [p.person_id for p, _ in memory.list_people(False, False)] != [provisional_id]
    with pytest.raises(MemoryRequestError, match="consent"):
        memory.enroll_track(7, "Bob", False, now=5.0)
    pid, _ = memory.enroll_track(7, "Bob", True, now=5.0)
    assert pid == provisional_id
    assert memory.people[pid].consent
    assert not memory.people[pid].provisional
    memory.close()


def test_provisional_identities_expire_and_duplicates_merge(tmp_path, rng):
    memory = open_memory(
        tmp_path, strangers={"min_samples": 3, "min_span_s": 0.0, "provisional_ttl_s": 100.0}
    )
    stranger = identity(rng)
    _see(memory, 1, stranger, rng, start=0.0, frames=4)
    _see(memory, 2, stranger, rng, start=0.0, frames=4, dt=0.0)  # second track, same face, same moment
    provisional = [p for p in memory.people.values() if p.provisional]
    assert len(provisional) >= 1
    stats = memory.consolidate(now=10.0)
    assert len([p for p in memory.people.values() if p.provisional]) == 1
    assert stats["merged"] == len(provisional) - 1
    memory.pop_events()
    assert memory.consolidate(now=1000.0)["expired"] == 1
    assert not memory.people
    assert [e.kind for e in memory.pop_events()] == [EventKind.FORGOTTEN]
    memory.close()


def test_tentative_asks_and_confirmation_names_the_track(tmp_path, rng):
    memory = open_memory(tmp_path)
    alice = identity(rng)
    pid, _ = memory.enroll("Alice", True, [alice], now=0.0)
    other = identity(rng)
    lookalike = (alice + 1.2 * other) / np.linalg.norm(alice + 1.2 * other)  # cosine ≈ 0.64 to Alice
    _see(memory, 5, lookalike, rng, start=1.0, frames=3)
    events = memory.pop_events()
    assert events
    assert events[0].kind == EventKind.ARE_YOU
    assert events[0].text == "Are you Alice?"
    identity_5 = memory.recent.get(5).identity  # what the memory asked about
    assert (identity_5.person_id, identity_5.band) == (pid, Band.TENTATIVE)
    # Yes names the track; its frames were never KNOWN for Alice, so nothing is learned from them.
    assert "0 of its samples joined" in memory.confirm(5, pid, confirmed=True, now=3.0)
    assert memory.recent.get(5).identity.band == Band.KNOWN
    assert (len(memory.people[pid].samples), len(memory.people[pid].learned)) == (1, 0)
    _see(memory, 6, lookalike, rng, start=4.0, frames=3)
    memory.confirm(6, pid, confirmed=False, now=6.0)
    matches = _see(memory, 6, lookalike, rng, start=7.0, frames=3)
    assert all(m.person_id != pid for m in matches[1:])
    with pytest.raises(MemoryRequestError, match="no person 'nobody'"):
        memory.confirm(6, "nobody", True, now=9.0)
    memory.close()


def test_failed_gate_faces_never_update_memory(tmp_path, rng):
    memory = open_memory(tmp_path)
    match = memory.refine([([FaceObservation(3, None)], 1.0)])[0][0]
    assert match.tier == Tier.NONE
    assert not memory.recent.get(3).samples
    memory.close()
