"""Multi-frame identity voting for one track: no KNOWN on one frame, no flip on one bad frame."""

from __future__ import annotations

from collections import Counter, deque

from memory_node.bands import Band, Match
from memory_node.config import VotingConfig


class TrackVote:
    """The last `window` per-frame matches of a track and the identity they support.

    A person leads when most frames of the window put them at least TENTATIVE; the track is KNOWN as
    that person once `known_votes` frames of the window were KNOWN for them, TENTATIVE once `min_votes`
    frames were TENTATIVE. A decided identity
    changes only when another person gets strictly more votes in the window. People the user said the
    track is not (ConfirmIdentity false) never win.
    """

    def __init__(self, config: VotingConfig) -> None:
        self._config = config
        self._frames: deque[Match] = deque(maxlen=config.window)
        self.excluded: set[str] = set()
        self.decision: Match | None = None

    def add(self, match: Match) -> Match | None:
        """Record one frame's match; returns the track's decision (None while undecided)."""
        self._frames.append(match)
        if len(self._frames) < self._config.min_votes:
            return self.decision
        votes = Counter(
            m.person_id
            for m in self._frames
            if m.person_id and m.band >= Band.TENTATIVE and m.person_id not in self.excluded
        )
        leader = self._leader(votes)
        if leader is None:
            self.decision = Match(band=Band.UNKNOWN, tier=match.tier, similarity=match.similarity)
            return self.decision
        frames = [m for m in self._frames if m.person_id == leader]
        known = sum(m.band == Band.KNOWN for m in frames)
        best = max(frames, key=lambda m: m.similarity)
        latest = frames[-1]
        tentative = sum(m.band == Band.TENTATIVE for m in frames)
        if known >= self._config.known_votes:
            band = Band.KNOWN
        elif tentative >= self._config.min_votes:
            band = Band.TENTATIVE
        else:  # KNOWN frames still accumulating: undecided, not "are you X?"
            return self.decision
        self.decision = Match(leader, best.name, latest.similarity, latest.margin, band, match.tier)
        return self.decision

    def _leader(self, votes: Counter[str]) -> str | None:
        if not votes:
            return None
        current = self.decision.person_id if self.decision else ""
        leader, count = votes.most_common(1)[0]
        if current and current in votes and current not in self.excluded and votes[current] >= count:
            return current
        if count * 2 <= len(self._frames) and not current:
            # No majority yet for anybody: a stranger that sometimes brushes past someone.
            return leader if count >= self._config.known_votes else None
        return leader

    def force(self, match: Match) -> None:
        """Set the decision (enrolment, confirmation, provisional identity) and restart the window."""
        self._frames.clear()
        self.decision = match
