"""The face memory: tiers 0-3 behind one object, with voting, strangers, consent, events, forgetting.

Plain Python (no rclpy). The node calls `provisional()` as soon as a frame's faces are embedded
(Tier 0 hot cache / Tier 1 recent tracks, microseconds), then `refine()` from its lookup worker
(Tier 2 index in one batched search, Tier 3 store for writes and the cold archive), `tick()`
periodically for LEFT events and expiry, and `consolidate()` every consolidation period.
All public methods are thread-safe (one re-entrant lock).

Anchored learning (issue 12): a person's enrolled samples are anchors; samples learned from the
camera are kept apart and can never make a face KNOWN (memory_node.bands.classify_anchored), so the
memory cannot drift onto a stranger. A sample is learned only from a frame KNOWN with margin for the
person, whose similarity to their anchors is at least `known`, on a track that had at least
`voting.known_votes` such frames; a track that leaves and ConfirmIdentity(confirmed) follow that one
rule (`_learn`).

Guards that hold whoever calls (issue 10): an Enroll under an existing person's name adds only the
faces their anchors already KNOW; ConfirmIdentity(confirmed) needs the track to be voted at least
TENTATIVE for that person; names are normalised and compared by look (memory_node.names), never a
look-alike twin.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from humanoid_common.validation import quoted
from memory_node.bands import Band, Match, Tier, classify, classify_anchored
from memory_node.config import MemoryConfig, Thresholds
from memory_node.consolidation import (
    cap_samples,
    duplicate_pairs,
    mean_pairwise_similarity,
    weighted_centroid,
)
from memory_node.crypto import Cipher, load_key
from memory_node.errors import MemoryRequestError
from memory_node.hot_cache import HotCache
from memory_node.index import VectorIndex
from memory_node.names import normalise_name, same_name
from memory_node.recent import RecentTracks, TrackRecord, TrackSample
from memory_node.store import PersonRecord, PersonStore

STORE_FILE = "people.sqlite"
ARCHIVE_FILE = "archive.sqlite"  # the cold file: people unseen for a long time


class EventKind(IntEnum):
    """Same values as humanoid_stack/MemoryEvent."""

    WELCOME_BACK = 0
    ARE_YOU = 1
    NEW_PERSON = 2
    LEFT = 3
    FORGOTTEN = 4


@dataclass(frozen=True)
class Event:
    kind: EventKind
    stamp: float
    person_id: str = ""
    name: str = ""
    track_id: int = -1
    similarity: float = 0.0
    absent_s: float = 0.0
    text: str = ""


@dataclass(frozen=True)
class FaceObservation:
    """One face of a frame as the memory sees it."""

    track_id: int
    embedding: np.ndarray | None  # None when the face failed the quality gates


def _describe(identity: Match, people: dict[str, PersonRecord]) -> str:
    person = people.get(identity.person_id)
    who = (person.name or identity.person_id) if person else "nobody known"
    return f"{who} ({identity.band.name})"


class FaceMemory:
    def __init__(
        self,
        config: MemoryConfig,
        thresholds: Thresholds,
        dim: int,
        store: PersonStore,
        archive: PersonStore,
    ) -> None:
        self.config = config
        self.thresholds = thresholds
        self.dim = dim
        self.store = store
        self.archive = archive
        tiers = config.tiers
        self.hot = HotCache(tiers.hot_cache_size, tiers.hot_cache_ttl_s)
        self.recent = RecentTracks(tiers, config.voting)
        self.index = VectorIndex(dim, tiers.exact_search_max, 1 + tiers.index_samples_per_person)
        self.learned_index = VectorIndex(dim, tiers.exact_search_max, max(1, tiers.index_learned_per_person))
        self.people: dict[str, PersonRecord] = {}
        self._events: list[Event] = []
        self._lock = threading.RLock()
        self._repair_archive()
        for person in store.load():
            self._check_dim(person)
            self.people[person.person_id] = person
        self._index_people(list(self.people.values()))

    @classmethod
    def open(cls, config: MemoryConfig, thresholds: Thresholds, dim: int) -> FaceMemory:
        """Open (or create) the store and archive under storage.data_dir with the configured key."""
        data = config.data_path()
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        store_path, archive_path = data / STORE_FILE, data / ARCHIVE_FILE
        cipher = Cipher(load_key(config.key_path(), config.storage.key_env, create=not store_path.exists()))
        store = PersonStore(store_path, cipher)
        try:
            return cls(config, thresholds, dim, store, PersonStore(archive_path, cipher))
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        with self._lock:
            self.store.close()
            self.archive.close()

    # -- helpers ----------------------------------------------------------------------------------
    def _check_dim(self, person: PersonRecord) -> None:
        if person.centroid is not None and len(person.centroid) != self.dim:
            raise MemoryRequestError(
                f"the store holds {len(person.centroid)}-d embeddings but the face model makes "
                f"{self.dim}-d ones; "
                f"use the backend the store was built with, or another storage.data_dir"
            )

    def _repair_archive(self) -> None:
        """A crash between the two writes of an archive move leaves a person in both files: main wins."""
        for pid in set(self.store.ids()) & set(self.archive.ids()):
            self.archive.delete_person(pid)

    def _vectors(self, person: PersonRecord) -> np.ndarray | None:
        """A person's anchor vectors in Tier 2: the centroid of their anchors and the newest anchors."""
        if person.centroid is None:
            return None
        count = self.config.tiers.index_samples_per_person
        recent = [e for _, e in person.samples[-count:]] if count else []
        return np.stack([person.centroid, *recent])

    def _index_person(self, person: PersonRecord) -> None:
        self._index_people([person])

    def _index_people(self, people: Sequence[PersonRecord]) -> None:
        """(Re)index people's anchor vectors and learned samples, each index in one insertion."""
        count = self.config.tiers.index_learned_per_person
        empty = np.empty((0, self.dim), np.float32)
        anchors = {p.person_id: self._vectors(p) for p in people}
        self.index.set_people({pid: empty if v is None else v for pid, v in anchors.items()})
        self.learned_index.set_people(
            {
                p.person_id: np.stack([e for _, e in p.learned[-count:]]) if count and p.learned else empty
                for p in people
            }
        )

    def _anchor_known(self, person: PersonRecord, embeddings: Sequence[np.ndarray]) -> np.ndarray:
        """Per embedding: its best similarity to `person`'s anchor vectors reaches `known`."""
        vectors = self._vectors(person)
        if vectors is None or not len(embeddings):
            return np.zeros(len(embeddings), bool)
        return (np.stack(embeddings) @ vectors.T).max(axis=1) >= self.thresholds.known

    def _centroid(self, samples: Sequence[tuple[float, np.ndarray]], now: float) -> np.ndarray:
        return weighted_centroid(samples, now, self.config.consolidation.recency_half_life_s)

    def _emit(self, kind: EventKind, stamp: float, **fields: object) -> None:
        self._events.append(Event(kind, stamp, **fields))  # type: ignore[arg-type]

    def pop_events(self) -> list[Event]:
        with self._lock:
            events, self._events = self._events, []
            return events

    # -- fast path: tiers 0 and 1 -----------------------------------------------------------------
    def provisional(self, faces: Sequence[FaceObservation]) -> list[Match]:
        """Answer at once from the track's identity (Tier 1) or the hot cache (Tier 0)."""
        with self._lock:
            return [self._fast_match(face) for face in faces]

    def _fast_match(self, face: FaceObservation) -> Match:
        record = self.recent.get(face.track_id)
        identity = record.identity if record else None
        if identity is not None and identity.person_id in self.people:
            similarity = identity.similarity
            centroid = self.people[identity.person_id].centroid
            if face.embedding is not None and centroid is not None:
                similarity = float(centroid @ face.embedding)
            return replace(identity, similarity=similarity, tier=Tier.RECENT)
        if face.embedding is None:
            return Match(tier=Tier.NONE)
        entry, top1, top2 = self.hot.search(face.embedding)
        if entry is None:
            return Match(tier=Tier.HOT, similarity=0.0)
        band, margin = classify(top1, top2, self.thresholds)
        if band == Band.UNKNOWN:
            return Match(similarity=top1, margin=margin, tier=Tier.HOT)
        return Match(entry.person_id, entry.name, top1, margin, band, Tier.HOT)

    # -- refined path: tier 2 search (batched), tier 3 writes, voting and events -------------------
    def refine(self, frames: Sequence[tuple[Sequence[FaceObservation], float]]) -> list[list[Match]]:
        """Refined matches for several frames (each: faces, time), one search of each index for all."""
        with self._lock:
            flat = [f.embedding for faces, _ in frames for f in faces if f.embedding is not None]
            found = self._search(np.stack(flat)) if flat else []
            anchors, learned = iter(a for a, _ in found), iter(b for _, b in found)
            results = []
            for faces, now in frames:
                matches = []
                for face in faces:
                    record = self.recent.touch(face.track_id, now)
                    if face.embedding is None:
                        matches.append(self._failed_gate_match(record))
                        continue
                    match = self._index_match(next(anchors), next(learned))
                    known_for = match.person_id if match.band == Band.KNOWN else ""
                    record.samples.append(TrackSample(now, face.embedding, known_for))
                    matches.append(self._decide(record, match, now))
                results.append(matches)
            return results

    def _search(self, queries: np.ndarray) -> list[tuple[list, list]]:
        """(anchor candidates, learned candidates) per query. Learned samples cannot change a face
        the anchors make KNOWN, so only the other faces are searched among them."""
        anchors = self.index.search(queries)
        learned: list[list] = [[] for _ in anchors]
        if len(self.learned_index):
            rest = [i for i, found in enumerate(anchors) if not self._anchors_know(found)]
            for i, found in zip(rest, self.learned_index.search(queries[rest]) if rest else [], strict=True):
                learned[i] = found
        return list(zip(anchors, learned, strict=True))

    def _anchors_know(self, candidates: list) -> bool:
        if not candidates:
            return False
        second = candidates[1].similarity if len(candidates) > 1 else None
        return classify(candidates[0].similarity, second, self.thresholds)[0] == Band.KNOWN

    def _failed_gate_match(self, record: TrackRecord) -> Match:
        identity = record.identity
        if identity is not None and identity.person_id in self.people:
            return replace(identity, tier=Tier.RECENT)
        return Match(tier=Tier.NONE)

    def _index_match(self, anchors: list, learned: list) -> Match:
        if not anchors and not learned:
            return Match(tier=Tier.INDEX)
        person_id, similarity, margin, band = classify_anchored(anchors, learned, self.thresholds)
        person = self.people.get(person_id)
        if band == Band.UNKNOWN or person is None:
            return Match(similarity=similarity, margin=margin, tier=Tier.INDEX)
        return Match(person.person_id, person.name, similarity, margin, band, Tier.INDEX)

    def _decide(self, record: TrackRecord, match: Match, now: float) -> Match:
        decision = record.vote.add(match)
        if decision is None:  # too few frames yet: report this frame's own answer
            return match
        if decision.band == Band.KNOWN and decision.person_id in self.people:
            self._on_known(record, decision, now)
        elif decision.band == Band.TENTATIVE and decision.person_id in self.people:
            self._on_tentative(record, decision, now)
        elif decision.band == Band.UNKNOWN:
            decision = self._on_unknown(record, decision, now)
        return replace(decision, tier=match.tier)

    def _on_known(self, record: TrackRecord, decision: Match, now: float) -> None:
        person = self.people[decision.person_id]
        key = f"known:{person.person_id}"
        self.hot.put(person.person_id, person.name, person.centroid, now)
        previous, person.last_seen = person.last_seen, now  # in memory each frame; stored per encounter
        if key in record.events_sent:
            return
        record.events_sent.add(key)
        absent = now - (previous if previous is not None else person.first_seen)
        if previous is None or absent > self.config.events.welcome_back_after_s:
            text = f"Welcome back, {person.name}!" if person.name else "Welcome back!"
            self._emit(
                EventKind.WELCOME_BACK,
                now,
                person_id=person.person_id,
                name=person.name,
                track_id=record.track_id,
                similarity=decision.similarity,
                absent_s=absent,
                text=text,
            )
        person.interactions += 1
        self.store.touch(person.person_id, now, person.interactions)

    def _on_tentative(self, record: TrackRecord, decision: Match, now: float) -> None:
        key = f"are_you:{decision.person_id}"
        if key in record.events_sent:
            return
        record.events_sent.add(key)
        name = self.people[decision.person_id].name
        self._emit(
            EventKind.ARE_YOU,
            now,
            person_id=decision.person_id,
            name=name,
            track_id=record.track_id,
            similarity=decision.similarity,
            text=f"Are you {name}?" if name else "Have we met before?",
        )

    def _on_unknown(self, record: TrackRecord, decision: Match, now: float) -> Match:
        if "new" not in record.events_sent:
            record.events_sent.add("new")
            restored = self._restore_from_archive(record, now)
            if restored is not None:
                return restored
            self._emit(
                EventKind.NEW_PERSON, now, track_id=record.track_id, text="Hello! I don't think we have met."
            )
        return self._maybe_provisional(record, now) or decision

    def _restore_from_archive(self, record: TrackRecord, now: float) -> Match | None:
        """Bring back an archived person whose centroid matches this track (Tier 3 cold file)."""
        archived = [p for p in self.archive.load() if p.centroid is not None]
        if not archived:
            return None
        query = self._centroid(record.timed(), now)
        sims = np.stack([p.centroid for p in archived]) @ query
        best = int(np.argmax(sims))
        if sims[best] < self.thresholds.known:
            return None
        person = archived[best]
        self._unarchive(person)
        match = Match(person.person_id, person.name, float(sims[best]), 1.0, Band.KNOWN, Tier.STORE)
        record.vote.force(match)
        self._on_known(record, match, now)
        return match

    def _maybe_provisional(self, record: TrackRecord, now: float) -> Match | None:
        """A stranger with enough consistent good samples over enough time becomes an unnamed identity."""
        cfg = self.config.strangers
        if (
            len(record.samples) < cfg.min_samples
            or record.samples[-1].taken - record.samples[0].taken < cfg.min_span_s
        ):
            return None
        vectors = record.embeddings()
        consistency = mean_pairwise_similarity(vectors)
        if consistency < (cfg.min_consistency or self.thresholds.tentative):
            return None
        samples = record.timed()
        person = PersonRecord(
            uuid.uuid4().hex,
            provisional=True,
            first_seen=now,
            last_seen=now,
            interactions=1,
            centroid=self._centroid(samples, now),
            samples=samples,
        )
        self.store.put_person(person, replace_samples=True)
        self.people[person.person_id] = person
        self._index_person(person)
        match = Match(person.person_id, "", consistency, 1.0, Band.KNOWN, Tier.RECENT)
        record.vote.force(match)
        record.events_sent.add(f"known:{person.person_id}")
        self._emit(
            EventKind.NEW_PERSON,
            now,
            person_id=person.person_id,
            track_id=record.track_id,
            similarity=consistency,
            text="I will remember you for a while. Tell me your name if you want me to keep it.",
        )
        return match

    # -- time -------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """LEFT events for tracks unseen for `left_after_s`; their good samples join the person; expiry."""
        with self._lock:
            for record in list(self.recent.tracks.values()):
                if record.left or now - record.last_seen <= self.config.events.left_after_s:
                    continue
                record.left = True
                identity = record.identity
                person = (
                    self.people.get(identity.person_id) if identity and identity.band == Band.KNOWN else None
                )
                if person is not None:
                    self._learn(person, record)
                    record.samples.clear()
                    if self._in_view_elsewhere(person.person_id, record, now):
                        continue  # the same person on another track (a tracker's new id): not gone
                elif identity is None and not record.events_sent:
                    continue  # seen too briefly to have been announced: nothing to say
                name = person.name if person else ""
                self._emit(
                    EventKind.LEFT,
                    now,
                    person_id=person.person_id if person else "",
                    name=name,
                    track_id=record.track_id,
                    absent_s=now - record.last_seen,
                    text=f"{name} left." if name else "A visitor left.",
                )
            self.recent.expire(now)
            self.hot.expire(now)

    def _in_view_elsewhere(self, person_id: str, record: TrackRecord, now: float) -> bool:
        return any(
            other is not record
            and not other.left
            and now - other.last_seen <= self.config.events.left_after_s
            and other.identity is not None
            and other.identity.person_id == person_id
            for other in self.recent.tracks.values()
        )

    def _learn(self, person: PersonRecord, record: TrackRecord) -> int:
        """Keep the track's samples whose frames were KNOWN with margin for the person and whose
        similarity to the person's anchors reaches `known`, as learned samples (never anchors), when at
        least `voting.known_votes` frames were; store in one transaction; returns how many were added."""
        samples = record.known_for(person.person_id)
        if len(samples) < self.config.voting.known_votes:
            return 0
        near = self._anchor_known(person, [e for _, e in samples])
        samples = [s for s, ok in zip(samples, near, strict=True) if ok]
        if not samples:
            return 0
        person.last_seen = max(person.last_seen or record.last_seen, record.last_seen)
        person.learned = cap_samples(person.learned + samples, self.config.consolidation.max_learned_samples)
        self.store.put_person(person, replace_samples=True)
        self._index_person(person)
        return len(samples)

    # -- requests ---------------------------------------------------------------------------------
    def enrolment_name(self, name: str, consent: bool) -> str:
        """The normalised name of an enrolment, or MemoryRequestError (no consent, a refused name).
        Cheap: the node checks it before it decodes any picture."""
        if not consent:
            raise MemoryRequestError(
                "enrolment needs consent=true: without consent nothing is stored long-term"
            )
        return normalise_name(name, self.config.requests.max_name_chars)

    def _named(self, name: str) -> PersonRecord | None:
        """The consenting person whose name looks like `name` (memory_node.names), brought back from
        the archive if they are there; None when nobody's does."""
        found = [p for p in self.people.values() if p.consent and same_name(p.name, name)]
        archived = [] if found else [p for p in self.archive.load() if p.consent and same_name(p.name, name)]
        found += archived
        if len(found) > 1:
            raise MemoryRequestError(
                f"the name {quoted(name)} looks like the names of {len(found)} people in memory; "
                f"forget the duplicates first, or choose a name that looks different"
            )
        if archived:
            self._unarchive(archived[0])
        return found[0] if found else None

    def _unarchive(self, person: PersonRecord) -> None:
        self.store.put_person(person, replace_samples=True)
        self.archive.delete_person(person.person_id)
        self.archive.scrub()
        self.people[person.person_id] = person
        self._index_person(person)

    def enroll(
        self,
        name: str,
        consent: bool,
        embeddings: Sequence[np.ndarray],
        now: float,
        images: Sequence[bytes] = (),
    ) -> tuple[str, int]:
        """Add a consenting person, or anchors to the consenting person whose name looks like `name`
        (only the faces their anchors already KNOW: a caller cannot walk someone's anchors towards a
        stranger); returns (id, samples added)."""
        name = self.enrolment_name(name, consent)
        if not embeddings:
            raise MemoryRequestError("no face passed the quality gates: nothing to enrol")
        with self._lock:
            embeddings = [np.asarray(e, np.float32) for e in embeddings]
            person = self._named(name)
            if person is None:
                self._refuse_a_second_name(name, embeddings)
                person = PersonRecord(uuid.uuid4().hex, name, True, first_seen=now)
                keep = np.ones(len(embeddings), bool)
            else:
                keep = self._anchor_known(person, embeddings)
                if not keep.any():
                    raise MemoryRequestError(
                        f"the name {quoted(name)} is {quoted(person.name)}'s, who is in memory, but none "
                        f"of these {len(embeddings)} faces is recognised as them (below the known "
                        f"threshold against their enrolled faces): nothing was added. To enrol someone "
                        f"else, use a name that looks different"
                    )
            samples = [(now, e) for e, ok in zip(embeddings, keep, strict=True) if ok]
            self.people[person.person_id] = person
            person.samples = cap_samples(person.samples + samples, self.config.consolidation.max_samples)
            person.centroid = self._centroid(person.samples, now)
            self.store.put_person(person, replace_samples=True)
            if self.config.storage.store_images:
                for jpeg, ok in zip(images, keep, strict=False):
                    if ok:
                        self.store.add_image(person.person_id, now, jpeg)
            self._index_person(person)
            return person.person_id, len(samples)

    def _refuse_a_second_name(self, name: str, embeddings: Sequence[np.ndarray]) -> None:
        """One face, one name: faces the memory already KNOWS as a consenting person do not become a
        new person under another name (the robot would then greet either name for that face)."""
        for candidates in self.index.search(np.stack(embeddings), people=1):
            best = candidates[0] if candidates else None
            owner = self.people.get(best.person_id) if best else None
            if owner is not None and owner.consent and best.similarity >= self.thresholds.known:
                raise MemoryRequestError(
                    f"these faces are {quoted(owner.name)}'s (similarity {best.similarity:.2f}), who is in "
                    f"memory: they were not enrolled as {quoted(name)}. Enrol them under "
                    f"{quoted(owner.name)}, or forget {quoted(owner.name)} first"
                )

    def enroll_track(self, track_id: int, name: str, consent: bool, now: float) -> tuple[str, int]:
        """Enrol the person on a visible track from its recent good samples.

        A track already identified as an unnamed provisional identity turns that identity into a
        named, consented person (its earlier samples are kept), unless the name is someone else's.
        """
        with self._lock:
            record = self.recent.get(track_id)
            if record is None or not record.samples:
                raise MemoryRequestError(f"track {track_id} has no recent face that passed the quality gates")
            name = self.enrolment_name(name, consent)
            identity = record.identity
            person = self.people.get(identity.person_id) if identity else None
            if person is not None and person.provisional and self._named(name) is None:
                # The unnamed identity was formed from this face's own tracks: its samples are the
                # anchors, and the track's faces its anchors KNOW join them.
                person.name, person.consent, person.provisional = name, True, False
                near = self._anchor_known(person, [s.embedding for s in record.samples])
                added = int(near.sum())
                new = [s for s, ok in zip(record.timed(), near, strict=True) if ok]
                person.samples = cap_samples(person.samples + new, self.config.consolidation.max_samples)
                person.centroid = self._centroid(person.samples, now)
                self.store.put_person(person, replace_samples=True)
                self._index_person(person)
                pid = person.person_id
            else:
                pid, added = self.enroll(name, consent, [s.embedding for s in record.samples], now)
            record.samples.clear()
            person = self.people[pid]
            match = Match(pid, person.name, 1.0, 1.0, Band.KNOWN, Tier.RECENT)
            record.vote.force(match)
            record.events_sent.add(f"known:{pid}")
            self.hot.put(pid, person.name, person.centroid, now)
            return pid, added

    def confirm(self, track_id: int, person_id: str, confirmed: bool, now: float) -> str:
        """Answer to "are you X?": yes → the track is X; no → the track never votes for X.

        Yes is taken only for a track the memory itself votes at least TENTATIVE for X. Its samples
        join X's learned samples under the one learning rule (`_learn`): a caller's yes cannot make a
        stranger's face part of X, nor change what X's anchors make KNOWN.
        """
        with self._lock:
            person = self.people.get(person_id)
            if person is None:
                raise MemoryRequestError(f"no person {quoted(person_id)} in memory")
            record = self.recent.get(track_id)
            if record is None:
                raise MemoryRequestError(f"track {track_id} is not among the recent tracks")
            who = person.name or person_id
            if not confirmed:
                record.vote.excluded.add(person_id)
                if record.identity and record.identity.person_id == person_id:
                    record.vote.force(Match(band=Band.UNKNOWN, tier=Tier.RECENT))
                return f"track {track_id} will not be matched to {who} again"
            identity = record.identity
            if identity is None or identity.person_id != person_id or identity.band < Band.TENTATIVE:
                seen = "undecided" if identity is None else _describe(identity, self.people)
                raise MemoryRequestError(
                    f"track {track_id} is not at least TENTATIVE for {who} (the memory takes it for "
                    f"{seen}): nothing was added. Confirm only the person an ARE_YOU event asked about"
                )
            added = self._learn(person, record)
            record.samples.clear()
            match = Match(person_id, person.name, 1.0, 1.0, Band.KNOWN, Tier.RECENT)
            record.vote.force(match)
            self._on_known(record, match, now)
            return f"track {track_id} is {who}; {added} of its samples joined their learned samples"

    def resolve(self, person_id: str, name: str) -> str:
        """The id of the person given by id, or by a display name that looks like exactly one person's."""
        with self._lock:
            if person_id:
                if person_id in self.people or person_id in self.archive.ids():
                    return person_id
                raise MemoryRequestError(f"no person {quoted(person_id)} in memory or archive")
            if not name:
                raise MemoryRequestError("give a person_id or a display_name")
            name = normalise_name(name, self.config.requests.max_name_chars)
            people = [*self.people.values(), *self.archive.load()]
            matches = [p.person_id for p in people if same_name(p.name, name)]
            if len(matches) != 1:
                raise MemoryRequestError(
                    f"display name {quoted(name)} matches {len(matches)} people; give the person_id"
                )
            return matches[0]

    def forget(self, person_id: str, now: float, reason: str = "") -> None:
        """Remove a person from every tier, the index, the archive and the files (scrubbed).

        The files are rewritten outside the memory's lock: a long scrub does not hold up the frames.
        """
        with self._lock:
            self.people.pop(person_id, None)
            self.index.remove(person_id)
            self.learned_index.remove(person_id)
            self.hot.remove(person_id)
            self.recent.forget_person(person_id)
            for store in (self.store, self.archive):
                store.delete_person(person_id)
            self._emit(
                EventKind.FORGOTTEN, now, person_id=person_id, text=reason or "I have forgotten that person."
            )
        for store in (self.store, self.archive):
            store.scrub()

    def drop_learned(self, person_id: str) -> int:
        """Remove the samples a person's memory learned from the camera (their anchors stay); the files
        are scrubbed. Returns how many were dropped."""
        with self._lock:
            person = self.people.get(person_id)
            if person is None:
                raise MemoryRequestError(
                    f"no person {quoted(person_id)} in memory (archived people learn nothing)"
                )
            dropped, person.learned = len(person.learned), []
            if dropped:
                self.store.put_person(person, replace_samples=True)
                self._index_person(person)
        if dropped:
            self.store.scrub()
        return dropped

    def list_people(
        self, include_provisional: bool, include_archived: bool
    ) -> list[tuple[PersonRecord, bool]]:
        """(person, archived) pairs."""
        with self._lock:
            people = [(p, False) for p in self.people.values()]
            if include_archived:
                people += [(p, True) for p in self.archive.load()]
            return [(p, a) for p, a in people if include_provisional or not p.provisional]

    # -- consolidation ----------------------------------------------------------------------------
    def consolidate(self, now: float) -> dict[str, int]:
        """Cap samples and recompute centroids, expire and merge provisional identities, archive absentees."""
        cfg = self.config.consolidation
        with self._lock:
            stats = {"updated": 0, "expired": 0, "merged": 0, "archived": 0}
            for person in list(self.people.values()):
                if person.provisional and now - person.first_seen > self.config.strangers.provisional_ttl_s:
                    self.forget(person.person_id, now, "An unnamed visitor's memory expired (no consent).")
                    stats["expired"] += 1
            provisional = sorted(
                (p for p in self.people.values() if p.provisional), key=lambda p: p.first_seen
            )
            if provisional:
                centroids = np.stack([p.centroid for p in provisional])
                threshold = cfg.merge_similarity or self.thresholds.known
                for keep, merge in duplicate_pairs([p.person_id for p in provisional], centroids, threshold):
                    gone = self.people.pop(merge)
                    kept = self.people[keep]
                    kept.interactions += gone.interactions
                    kept.last_seen = max(kept.last_seen or 0.0, gone.last_seen or 0.0)
                    kept.samples = kept.samples + gone.samples
                    kept.learned = kept.learned + gone.learned
                    self.index.remove(merge)
                    self.learned_index.remove(merge)
                    self.store.delete_person(merge)
                    stats["merged"] += 1
            for person in self.people.values():
                if not person.samples:
                    continue
                person.samples = cap_samples(person.samples, cfg.max_samples)
                person.learned = cap_samples(person.learned, cfg.max_learned_samples)
                person.centroid = self._centroid(person.samples, now)
                self.store.put_person(person, replace_samples=True)
                self._index_person(person)
                stats["updated"] += 1
            for person in list(self.people.values()):
                seen = person.last_seen if person.last_seen is not None else person.first_seen
                if not person.provisional and now - seen > cfg.archive_after_s:
                    self.archive.put_person(person, replace_samples=True)
                    self.store.delete_person(person.person_id)
                    del self.people[person.person_id]
                    self.index.remove(person.person_id)
                    self.learned_index.remove(person.person_id)
                    self.hot.remove(person.person_id)
                    stats["archived"] += 1
            if stats["merged"] or stats["archived"] or stats["expired"]:
                self.store.scrub()
            return stats
