"""KNOWN / TENTATIVE / UNKNOWN from the best two similarities, per-model thresholds and a margin."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from memory_node.config import Thresholds


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
