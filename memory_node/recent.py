"""Tier 1: track-level observations of the last hour; a track keeps its identity."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from memory_node.bands import Match
from memory_node.config import TierConfig, VotingConfig
from memory_node.voting import TrackVote


class TrackSample(NamedTuple):
    """One good face of a track and whom its own frame matched KNOWN with margin ("" for nobody)."""

    taken: float
    embedding: np.ndarray
    known_for: str = ""


@dataclass
class TrackRecord:
    track_id: int
    first_seen: float
    last_seen: float
    vote: TrackVote
    samples: deque[TrackSample]  # faces that passed the quality gates
    events_sent: set[str] = field(default_factory=set)  # "new", "are_you:<id>", "welcome", ... once each
    left: bool = False  # LEFT already reported

    @property
    def identity(self) -> Match | None:
        return self.vote.decision

    def embeddings(self) -> np.ndarray:
        return np.stack([s.embedding for s in self.samples]) if self.samples else np.empty((0, 0), np.float32)

    def timed(self) -> list[tuple[float, np.ndarray]]:
        """The samples as (time, embedding), the form a person's samples take."""
        return [(s.taken, s.embedding) for s in self.samples]

    def known_for(self, person_id: str) -> list[tuple[float, np.ndarray]]:
        """The samples whose own frame was KNOWN with margin for `person_id`."""
        return [(s.taken, s.embedding) for s in self.samples if s.known_for == person_id]


class RecentTracks:
    """Tracks seen within `recent_ttl_s`; each with its vote and recent good embeddings."""

    def __init__(self, tiers: TierConfig, voting: VotingConfig) -> None:
        self._tiers = tiers
        self._voting = voting
        self.tracks: dict[int, TrackRecord] = {}

    def get(self, track_id: int) -> TrackRecord | None:
        return self.tracks.get(track_id)

    def touch(self, track_id: int, now: float) -> TrackRecord:
        record = self.tracks.get(track_id)
        # Back after a LEFT event: a new encounter, with nothing of the old one (votes, identity,
        # events). A tracker may also give a lost track's id to someone else who stands there now.
        if record is None or record.left:
            record = TrackRecord(
                track_id,
                now,
                now,
                TrackVote(self._voting),
                deque(maxlen=self._tiers.recent_samples_per_track),
            )
            self.tracks[track_id] = record
        record.last_seen = now
        return record

    def expire(self, now: float) -> None:
        for tid in [t for t, r in self.tracks.items() if now - r.last_seen > self._tiers.recent_ttl_s]:
            del self.tracks[tid]

    def forget_person(self, person_id: str) -> None:
        """Drop every track that was identified as `person_id` (with its samples)."""
        for tid in [t for t, r in self.tracks.items() if r.identity and r.identity.person_id == person_id]:
            del self.tracks[tid]
