"""Tier 1: track-level observations of the last hour; a track keeps its identity."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from memory_node.bands import Match
from memory_node.config import TierConfig, VotingConfig
from memory_node.voting import TrackVote


@dataclass
class TrackRecord:
    track_id: int
    first_seen: float
    last_seen: float
    vote: TrackVote
    samples: deque[tuple[float, np.ndarray]]  # (time, embedding) of faces that passed the gates
    events_sent: set[str] = field(default_factory=set)  # "new", "are_you:<id>", "welcome", ... once each
    left: bool = False  # LEFT already reported

    @property
    def identity(self) -> Match | None:
        return self.vote.decision

    def embeddings(self) -> np.ndarray:
        return np.stack([e for _, e in self.samples]) if self.samples else np.empty((0, 0), np.float32)


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
