"""KNOWN / TENTATIVE / UNKNOWN from the best two similarities, per-model thresholds and a margin.

A person's gallery has two kinds of vectors: anchors (the consented enrolment, and the centroid of it)
and samples learned from the camera later. Only anchors can make a face KNOWN (`classify_anchored`):
learned samples widen what is asked about ("are you X?"), never what is greeted by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from memory_node.config import Thresholds
from memory_node.index import Candidate


class Band(IntEnum):
    """Same values as humanoid_stack/Person BAND_*."""

    UNKNOWN = 0
    TENTATIVE = 1
    KNOWN = 2


class Tier(IntEnum):
    """Same values as humanoid_stack/Person tier."""

    HOT = 0
    RECENT = 1
    INDEX = 2
    STORE = 3
    NONE = 255


@dataclass(frozen=True)
class Match:
    """What the memory makes of one face."""

    person_id: str = ""
    name: str = ""
    similarity: float = 0.0
    margin: float = 1.0
    band: Band = Band.UNKNOWN
    tier: Tier = Tier.NONE


def classify(top1: float, top2: float | None, thresholds: Thresholds) -> tuple[Band, float]:
    """Band and margin of a match; `top2` is the best similarity of a different person (None: only one).

    KNOWN needs top1 ≥ known and a margin ≥ thresholds.margin (two similar people make it TENTATIVE);
    TENTATIVE needs top1 ≥ tentative.
    """
    margin = 1.0 if top2 is None else top1 - top2
    if top1 >= thresholds.known and margin >= thresholds.margin:
        return Band.KNOWN, margin
    if top1 >= thresholds.tentative:
        return Band.TENTATIVE, margin
    return Band.UNKNOWN, margin


def classify_anchored(
    anchors: Sequence[Candidate], learned: Sequence[Candidate], thresholds: Thresholds
) -> tuple[str, float, float, Band]:
    """(person_id, similarity, margin, band) of one probe against everybody's anchors and learned samples.

    Each list holds at most one entry per person, best first. KNOWN comes from the anchors alone
    (`classify` of their best two). Otherwise the best of anchors and learned samples per person
    decides TENTATIVE; a person is named only at TENTATIVE or better ("" for UNKNOWN).
    """
    if anchors:
        top2 = anchors[1].similarity if len(anchors) > 1 else None
        band, margin = classify(anchors[0].similarity, top2, thresholds)
        if band == Band.KNOWN:
            return anchors[0].person_id, anchors[0].similarity, margin, band
    best: dict[str, float] = {}
    for entry in (*anchors, *learned):
        best[entry.person_id] = max(best.get(entry.person_id, -1.0), entry.similarity)
    if not best:
        return "", 0.0, 1.0, Band.UNKNOWN
    ranked = sorted(best.items(), key=lambda item: -item[1])
    person, similarity = ranked[0]
    band, margin = classify(similarity, ranked[1][1] if len(ranked) > 1 else None, thresholds)
    band = min(band, Band.TENTATIVE)
    return (person if band else ""), similarity, margin, band
