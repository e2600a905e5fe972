"""Similarity thresholds (KNOWN / TENTATIVE / margin) calibrated the way memory_node matches faces.

The node never compares two photos: it compares a camera face (a *probe*) with each person's gallery
and takes the best. So calibration builds galleries the way memory_node.memory.FaceMemory does and
scores probes against them (memory_node.bands.classify_anchored is the rule):

- *anchors*: a person's enrolled photos (k = 1, 2 or 3 of them, several choices of which) plus the
  L2-normalised centroid of those photos (enrolled together, so their recency weights are equal).
  A person's anchor score for a probe is the maximum cosine over their anchor vectors. Only anchors
  make a face KNOWN.
- *learned* samples: faces the camera saw later and the anchors already made KNOWN. The calibration
  gives every gallery, per camera condition, up to `learned_per_person` of the person's own
  non-enrolled photos whose anchor score reaches `known` (more than the node would learn: it keeps
  only frames of tracks with ≥ 3 KNOWN-with-margin frames). A probe's TENTATIVE score for a person is
  the maximum over anchors and learned samples.
- impostor scores: every probe against every gallery of another identity (one score per person and
  gallery: the *per-person* score). Genuine scores: every non-enrolled photo of a gallery's person.

A false accept per probe happens when *any* of the N people in memory scores above the threshold, so
for a per-probe false-accept rate α at gallery size N the per-person rate is p = 1 − (1 − α)^(1/N).
Each threshold is the conservative one at p (`tail_threshold`): the largest of the empirical quantile
of the per-person impostor scores and a tail fit that is not optimistic where the data can check it.
It is computed for each enrolment size k and camera condition, and the largest is taken (the band
must hold for each). An identity bootstrap of the pooled threshold (the calibration people resampled)
measures how much another set of people could move it, and raises it to its 90th percentile
(`identity_bootstrap`).
`margin` is known − tentative (at least `min_margin`): a face at `known` is KNOWN only when nobody
else is even an "are you X?" candidate for it.

Rates come with Clopper–Pearson 95 % intervals. They count scores as independent, which they are not
(one photo is scored against several galleries of one person): the intervals are narrower than the
truth; the counts of identities and photos beside them say how thin the data is.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import yaml

from memory_node.config import Thresholds, TierConfig
from memory_node.consolidation import weighted_centroid
from memory_node.face_sets import condition_order

CLEAN = "clean"


@dataclass(frozen=True)
class LabelledEmbedding:
    """One face embedding with the person it shows, the photo it came from and the camera condition.

    `embedding` is None when no face passed the quality gates in that photo under that condition: such
    a photo counts as a missed genuine probe (the node gets no embedding for that frame).
    """

    identity: str
    source: str
    embedding: np.ndarray | None
    condition: str = CLEAN


@dataclass(frozen=True)
class CalibrationTargets:
    """False-accept rates per probe at a gallery size, and how galleries are built."""

    far_known: float = 1e-3  # a stranger's face KNOWN as someone, per probe (camera frame)
    far_tentative: float = 2e-2  # a stranger's face making someone an "are you X?" candidate, per probe
    gallery_size: int = 100  # people in memory the shipped band is for
    report_sizes: tuple[int, ...] = (10, 100, 1000)
    enrol_sizes: tuple[int, ...] = (1, 2, 3)  # photos per person at enrolment
    choices: int = 3  # choices of which photos are enrolled, per person and k
    learned_per_person: int = TierConfig().index_learned_per_person  # learned vectors a person has in Tier 2
    min_margin: float = 0.05
    # Raise each threshold to this percentile of an identity bootstrap (0: report the bootstrap only):
    # with 30 calibration people a threshold moves with who was chosen. At 0.9 on the shipped set it
    # moved the 100-people known from 0.457 to 0.461 (InsightFace) and from 0.608 to 0.642 (SFace).
    identity_bootstrap: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 < self.far_known < self.far_tentative < 1.0:
            raise ValueError(
                f"need 0 < far_known ({self.far_known}) < far_tentative ({self.far_tentative}) < 1: "
                "KNOWN must be the stricter band"
            )
        if not 0.0 <= self.min_margin < 1.0:
            raise ValueError(f"min_margin must be in [0, 1), got {self.min_margin}")
        if self.gallery_size < 1 or any(n < 1 for n in self.report_sizes):
            raise ValueError(f"gallery sizes must be ≥ 1, got {self.gallery_size} and {self.report_sizes}")
        if not 0.0 <= self.identity_bootstrap < 1.0:
            raise ValueError(
                f"identity_bootstrap must be a percentile in [0, 1), got {self.identity_bootstrap}"
            )
        if not self.enrol_sizes or min(self.enrol_sizes) < 1 or self.choices < 1:
            raise ValueError(
                f"need enrolment sizes ≥ 1 and ≥ 1 choice, got {self.enrol_sizes}, {self.choices}"
            )

    def per_person(self, far: float, gallery_size: int) -> float:
        """The per-person false-accept rate that gives `far` per probe among `gallery_size` people."""
        return -math.expm1(math.log1p(-far) / gallery_size)


@dataclass(frozen=True)
class Calibration:
    """Thresholds of one model (for the shipped gallery size) and the evidence behind them."""

    thresholds: Thresholds
    evidence: dict[str, Any]
    bands: dict[int, Thresholds] = field(default_factory=dict)  # per reported gallery size


# -- statistics -----------------------------------------------------------------------------------
def _at_most(k: int, n: int, p: float, log_factorials: np.ndarray) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed over the shorter side."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    short = np.arange(0, k + 1) if k < n / 2 else np.arange(k + 1, n + 1)
    log_terms = (
        log_factorials[n]
        - log_factorials[short]
        - log_factorials[n - short]
        + short * math.log(p)
        + (n - short) * math.log1p(-p)
    )
    total = float(np.exp(log_terms).sum())
    return total if k < n / 2 else 1.0 - total


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) confidence interval of a binomial rate, by bisection on the binomial
    tails (numpy only: the robot's install needs no SciPy for the calibration tool)."""
    if trials <= 0:
        return 0.0, 1.0
    tail = (1.0 - level) / 2.0
    log_factorials = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, trials + 1)))])

    def solve(target: Callable[[float], float]) -> float:
        low, high = 0.0, 1.0  # target(p) falls from positive to negative as p grows
        for _ in range(60):
            middle = (low + high) / 2.0
            low, high = (middle, high) if target(middle) > 0 else (low, middle)
        return (low + high) / 2.0

    lower = 0.0
    if successes > 0:  # P(X >= successes | p) = tail
        lower = solve(lambda p: tail - (1.0 - _at_most(successes - 1, trials, p, log_factorials)))
    upper = 1.0
    if successes < trials:  # P(X <= successes | p) = tail
        upper = solve(lambda p: _at_most(successes, trials, p, log_factorials) - tail)
    return lower, upper


def rate(successes: int, trials: int) -> dict[str, Any]:
    """A rate with its count and 95 % Clopper–Pearson interval, rounded for the YAML."""
    low, high = clopper_pearson(successes, trials)
    return {
        "count": f"{successes}/{trials}",
        "rate": _sig(successes / trials) if trials else None,
        "ci95": [_sig(low), _sig(high)],
    }


def _sig(value: float) -> float:
    return float(f"{value:.3g}")


TAIL_FRACTION = 0.05  # the exponential tail fit uses the top 5 % of scores


def tail_threshold(scores: np.ndarray, p: float) -> tuple[float, dict[str, Any]]:
    """The conservative threshold with P(impostor score ≥ threshold) = p, and how it was chosen.

    Candidates: the empirical quantile (a lower bound only when p < 1/n: then it is the largest score),
    a normal fit of all scores, and an exponential fit of the top `TAIL_FRACTION` (peaks over a
    threshold; cosine scores are bounded by 1, so their true tail is lighter and this fit errs high).
    A fit is *optimistic* when, at a tail rate q the data shows with ≥ 10 scores above it, it puts the
    q-quantile below the empirical one. The least conservative fit that is optimistic nowhere is used
    (the exponential one if both are); the threshold is the larger of it and the empirical quantile.
    """
    ordered = np.sort(np.asarray(scores, np.float64))
    n = len(ordered)
    if n < 20:
        raise ValueError(f"only {n} impostor scores: too few to set a threshold (need ≥ 20)")
    allowed = math.floor(p * n)
    empirical = float(ordered[n - allowed - 1]) + 1e-6

    mean, std = float(ordered.mean()), max(float(ordered.std(ddof=1)), 1e-9)
    start = ordered[math.floor((1.0 - TAIL_FRACTION) * n)]
    excess = float(np.mean(ordered[ordered > start] - start)) if np.any(ordered > start) else 1e-9

    def normal(q: float) -> float:
        return mean + NormalDist().inv_cdf(1.0 - q) * std

    def exponential(q: float) -> float:
        if q >= TAIL_FRACTION:
            return float(np.quantile(ordered, 1.0 - q))
        return float(start) + max(excess, 1e-9) * math.log(TAIL_FRACTION / q)

    fits = {"normal": normal, "exponential_tail": exponential}
    checks = [q for q in (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5) if q * n >= 10]
    optimistic = {
        name: [q for q in checks if fit(q) < float(np.quantile(ordered, 1.0 - q)) - 1e-9]
        for name, fit in fits.items()
    }
    honest = [name for name in fits if not optimistic[name]]
    chosen = min(honest, key=lambda name: fits[name](p)) if honest else "exponential_tail"
    threshold = max(empirical, fits[chosen](p))
    parts = {
        "empirical": round(empirical, 4),
        "empirical_is_lower_bound": allowed == 0,
        "normal": round(normal(p), 4),
        "exponential_tail": round(exponential(p), 4),
        "optimistic_at": {name: qs for name, qs in optimistic.items() if qs},
        "fit_used": chosen,
        "extrapolated": bool(p * n < 10),
    }
    return threshold, parts


# -- galleries ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gallery:
    """One person enrolled with some of their photos: anchors = centroid, then the photos."""

    identity: str
    k: int
    choice: int
    enrolled: tuple[str, ...]  # sources
    anchors: np.ndarray  # (k + 1, dim)


def enrolment_choices(sources: Sequence[str], k: int, choices: int, key: str) -> list[tuple[str, ...]]:
    """Up to `choices` distinct sets of k of `sources`: the first k, then seeded random ones."""
    ordered = list(sources)
    if len(ordered) < k:
        return []
    picks = [tuple(ordered[:k])]
    every = math.comb(len(ordered), k)
    rng = np.random.default_rng(zlib.crc32(f"{key}|{k}".encode()))
    while len(picks) < min(choices, every):
        pick = tuple(ordered[i] for i in sorted(rng.choice(len(ordered), k, replace=False)))
        if pick not in picks:
            picks.append(pick)
    return picks


def build_galleries(samples: Sequence[LabelledEmbedding], targets: CalibrationTargets) -> list[Gallery]:
    """Galleries of every identity for every enrolment size and choice, from clean photos only.

    A person needs k + 1 clean photos for k (one left over as a genuine probe), except that people
    with a single photo are still enrolled with k = 1 (as distractors: nobody's face can be theirs).
    """
    clean: dict[str, dict[str, np.ndarray]] = {}
    for s in samples:
        if s.condition == CLEAN and s.embedding is not None:
            clean.setdefault(s.identity, {}).setdefault(s.source, np.asarray(s.embedding, np.float64))
    galleries = []
    for identity, photos in clean.items():
        for k in targets.enrol_sizes:
            if len(photos) <= k and not (k == 1 and len(photos) == 1):
                continue
            for choice, pick in enumerate(enrolment_choices(list(photos), k, targets.choices, identity)):
                vectors = np.stack([photos[s] for s in pick])
                centroid = weighted_centroid([(0.0, v) for v in vectors], 0.0, 1.0)  # as enrolled
                galleries.append(Gallery(identity, k, choice, pick, np.vstack([centroid, vectors])))
    return galleries


@dataclass
class GalleryScores:
    """Anchor scores of every probe (rows) against every gallery (columns), with labels."""

    galleries: list[Gallery]
    probes: list[LabelledEmbedding]  # with embeddings only
    missed: list[LabelledEmbedding]  # photos without a face that passed the gates
    anchor: np.ndarray  # (probes, galleries)
    impostor: np.ndarray  # bool mask
    genuine: np.ndarray  # bool mask: own identity, photo not enrolled
    conditions: np.ndarray  # per probe
    ks: np.ndarray  # per gallery
    vectors: np.ndarray  # probe embeddings

    def learned_scores(self, known: float, per_person: int) -> np.ndarray:
        """(probes, galleries): max over anchors and learned samples (learned = the person's own
        non-enrolled photos of the probe's condition whose anchor score reaches `known`)."""
        scores = self.anchor.copy()
        for g in range(len(self.galleries)):
            for condition in np.unique(self.conditions):
                rows = np.flatnonzero(self.genuine[:, g] & (self.conditions == condition))
                rows = rows[self.anchor[rows, g] >= known][:per_person]
                if not len(rows):
                    continue
                target = self.conditions == condition
                learned = (self.vectors[target] @ self.vectors[rows].T).max(axis=1)
                scores[target, g] = np.maximum(scores[target, g], learned)
        return scores


def score_galleries(samples: Sequence[LabelledEmbedding], galleries: Sequence[Gallery]) -> GalleryScores:
    probes = [s for s in samples if s.embedding is not None]
    missed = [s for s in samples if s.embedding is None]
    if not probes or not galleries:
        raise ValueError("calibration needs faces that passed the quality gates and at least one gallery")
    vectors = np.stack([np.asarray(p.embedding, np.float64) for p in probes])
    stacked = np.vstack([g.anchors for g in galleries])
    starts = np.cumsum([0, *[len(g.anchors) for g in galleries[:-1]]])
    anchor = np.maximum.reduceat(vectors @ stacked.T, starts, axis=1)
    identity = np.array([p.identity for p in probes])
    owner = np.array([g.identity for g in galleries])
    same = identity[:, None] == owner[None, :]
    enrolled = np.array([[p.source in g.enrolled for g in galleries] for p in probes])
    return GalleryScores(
        galleries=list(galleries),
        probes=probes,
        missed=missed,
        anchor=anchor,
        impostor=~same,
        genuine=same & ~enrolled,
        conditions=np.array([p.condition for p in probes]),
        ks=np.array([g.k for g in galleries]),
        vectors=vectors,
    )


@dataclass(frozen=True)
class Cell:
    """Impostor per-person scores of one (enrolment size, condition), with whose they are."""

    values: np.ndarray
    probe_people: np.ndarray  # identity code of each score's probe
    gallery_people: np.ndarray  # identity code of each score's gallery


def _cells(scores: GalleryScores, values: np.ndarray) -> dict[tuple[int, str], Cell]:
    """Impostor per-person scores per (enrolment size, condition)."""
    people = sorted({p.identity for p in scores.probes} | {g.identity for g in scores.galleries})
    code = {identity: i for i, identity in enumerate(people)}
    probe_codes = np.array([code[p.identity] for p in scores.probes])
    gallery_codes = np.array([code[g.identity] for g in scores.galleries])
    cells = {}
    for k in np.unique(scores.ks):
        for condition in np.unique(scores.conditions):
            mask = scores.impostor & (scores.conditions[:, None] == condition) & (scores.ks[None, :] == k)
            if mask.sum() >= 20:
                rows, columns = np.nonzero(mask)
                cells[(int(k), str(condition))] = Cell(
                    values[rows, columns], probe_codes[rows], gallery_codes[columns]
                )
    return cells


BOOTSTRAP_REPLICATES = 40
BOOTSTRAP_LEVEL = 0.9


def conservative_threshold(
    cells: dict[tuple[int, str], Cell], p: float, raise_to: float = 0.0
) -> tuple[float, dict[str, Any]]:
    """The largest `tail_threshold` over the cells, with the deciding cell and its parts.

    Also the pooled cells' `tail_threshold` over identity-bootstrap replicates (people drawn with
    replacement; reported as its median and 90th percentile): which few people look alike decides the
    tail, so another set of people can shift it (ORL's two splits put InsightFace's known 0.06 apart
    at 100 people). With `raise_to` > 0 the threshold is raised to that percentile of the replicates."""
    point, parts = -1.0, {}
    for (k, condition), cell in cells.items():
        threshold, detail = tail_threshold(cell.values, p)
        if threshold > point:
            point, parts = threshold, {"decided_by": {"enrolled_photos": k, "condition": condition}, **detail}
    pooled, pooled_parts = tail_threshold(np.concatenate([c.values for c in cells.values()]), p)
    parts["pooled_over_cells"] = round(pooled, 4)
    parts["pooled_fit_used"] = pooled_parts["fit_used"]
    people = 1 + max(int(max(c.probe_people.max(), c.gallery_people.max())) for c in cells.values())
    rng = np.random.default_rng(0)
    replicates = []
    values = np.concatenate([c.values for c in cells.values()])
    probe_people = np.concatenate([c.probe_people for c in cells.values()])
    gallery_people = np.concatenate([c.gallery_people for c in cells.values()])
    for _ in range(BOOTSTRAP_REPLICATES):
        counts = np.bincount(rng.integers(0, people, people), minlength=people)
        sample = np.repeat(values, counts[probe_people] * counts[gallery_people])
        if len(sample) >= 20:
            replicates.append(tail_threshold(sample, p)[0])
    boot = float(np.quantile(replicates, BOOTSTRAP_LEVEL)) if replicates else point
    raised = float(np.quantile(replicates, raise_to)) if replicates and raise_to else point
    parts["point_estimate"] = round(point, 4)
    parts["identity_bootstrap"] = {
        "replicates": BOOTSTRAP_REPLICATES,
        "median": round(float(np.median(replicates)), 4) if replicates else None,
        "percentile_90": round(boot, 4),
        "raised_to_percentile": raise_to,
    }
    return max(point, raised), parts


# -- rates ----------------------------------------------------------------------------------------
def _sets(scores: GalleryScores) -> dict[tuple[int, int], np.ndarray]:
    """Gallery columns per (k, choice): one gallery per identity, as one memory would hold them."""
    sets: dict[tuple[int, int], list[int]] = {}
    for g, gallery in enumerate(scores.galleries):
        sets.setdefault((gallery.k, gallery.choice), []).append(g)
    return {key: np.array(columns) for key, columns in sets.items()}


def band_rates(
    scores: GalleryScores, thresholds: Thresholds, gallery_size: int, targets: CalibrationTargets
) -> dict[str, Any]:
    """Measured rates of one band per camera condition.

    - far_known_per_person / far_tentative_per_person: impostor per-person scores at or above known
      (anchors) / tentative (anchors and learned samples): counted exactly.
    - far_known_per_probe / far_tentative_per_probe at this gallery size: 1 − (1 − p)^N from the
      per-person rate and its interval (extrapolated when N exceeds the identities scored).
    - tar: genuine probes KNOWN at this gallery size: anchor score ≥ known and a margin ≥ margin over
      N − 1 others, the runner-up drawn from this condition's per-person impostor scores (exact for
      the probe's own score, the runner-up's chance from the empirical distribution). Photos without a
      face that passed the gates count as misses.
    """
    learned = scores.learned_scores(thresholds.known, targets.learned_per_person)
    result: dict[str, Any] = {}
    for condition in sorted(np.unique(scores.conditions), key=condition_order):
        rows = scores.conditions == condition
        imp = scores.impostor & rows[:, None]
        gen = scores.genuine & rows[:, None]
        known_hits, imp_n = int((scores.anchor[imp] >= thresholds.known).sum()), int(imp.sum())
        tentative_hits = int((learned[imp] >= thresholds.tentative).sum())
        impostor_sorted = np.sort(scores.anchor[imp])
        genuine = scores.anchor[gen]
        runner_up_ok = np.searchsorted(impostor_sorted, genuine - thresholds.margin, side="left") / max(
            len(impostor_sorted), 1
        )
        accept = (genuine >= thresholds.known) * runner_up_ok ** (gallery_size - 1)
        missed = [m for m in scores.missed if m.condition == condition]
        missed_probes = sum(
            g.identity == m.identity and m.source not in g.enrolled for m in missed for g in scores.galleries
        )
        tar_n = len(genuine) + missed_probes
        tar_hits = round(float(accept.sum()))
        fit_known = _per_probe_fit(scores.anchor[imp], thresholds.known, gallery_size)
        fit_tentative = _per_probe_fit(learned[imp], thresholds.tentative, gallery_size)
        per_person_known = rate(known_hits, imp_n)
        per_person_tentative = rate(tentative_hits, imp_n)
        result[str(condition)] = {
            "tar": {**rate(tar_hits, tar_n), "no_face_passed_gates": len(missed)},
            "far_known_per_person": per_person_known,
            "far_known_per_probe": _per_probe(known_hits, imp_n, gallery_size),
            "far_known_per_probe_tail_fit": fit_known,
            "far_tentative_per_person": per_person_tentative,
            "far_tentative_per_probe": _per_probe(tentative_hits, imp_n, gallery_size),
            "far_tentative_per_probe_tail_fit": fit_tentative,
        }
    return result


def tail_rate(scores: np.ndarray, threshold: float) -> float:
    """P(score ≥ threshold) from the exponential fit of the top `TAIL_FRACTION` (empirical above it)."""
    ordered = np.sort(np.asarray(scores, np.float64))
    start = ordered[math.floor((1.0 - TAIL_FRACTION) * len(ordered))]
    if threshold <= start:
        return float(np.mean(ordered >= threshold))
    excess = max(float(np.mean(ordered[ordered > start] - start)), 1e-9)
    return TAIL_FRACTION * math.exp(-(threshold - start) / excess)


def _per_probe_fit(scores: np.ndarray, threshold: float, gallery_size: int) -> float | None:
    if len(scores) < 20:
        return None
    return _sig(-math.expm1(gallery_size * math.log1p(-min(tail_rate(scores, threshold), 1 - 1e-12))))


def _per_probe(hits: int, trials: int, gallery_size: int) -> dict[str, Any]:
    low, high = clopper_pearson(hits, trials)
    grow = lambda q: _sig(-math.expm1(gallery_size * math.log1p(-min(q, 1 - 1e-12))))  # noqa: E731
    return {"rate": grow(hits / trials) if trials else None, "ci95": [grow(low), grow(high)]}


def open_set_rates(
    scores: GalleryScores, thresholds: Thresholds, targets: CalibrationTargets
) -> dict[str, Any]:
    """Per-probe rates measured (not extrapolated) with one gallery per identity (a set: same k and
    choice), every probe's own identity left out when it plays the stranger: a stranger probe KNOWN
    (anchor top-1 ≥ known with margin), TENTATIVE or better (anchors and learned samples); a genuine
    probe KNOWN as its own person among everybody. Per condition, over all sets."""
    learned = scores.learned_scores(thresholds.known, targets.learned_per_person)
    counts: dict[str, list[int]] = {}
    for columns in _sets(scores).values():
        owners = np.array([scores.galleries[g].identity for g in columns])
        for row, probe in enumerate(scores.probes):
            c = counts.setdefault(probe.condition, [0, 0, 0, 0, 0])
            own = owners == probe.identity
            others = columns[~own]
            if len(others):  # the probe as a stranger: their own gallery is not in memory
                top = np.sort(scores.anchor[row, others])[::-1]
                second = top[1] if len(top) > 1 else -1.0
                c[0] += int(top[0] >= thresholds.known and top[0] - second >= thresholds.margin)
                c[1] += int(learned[row, others].max() >= thresholds.tentative)
                c[2] += 1
            if own.any() and scores.genuine[row, columns[own][0]]:  # genuine, photo not enrolled
                anchor = scores.anchor[row, columns]
                order = np.argsort(-anchor)
                top1 = anchor[order[0]]
                top2 = anchor[order[1]] if len(order) > 1 else -1.0
                c[3] += int(own[order[0]] and top1 >= thresholds.known and top1 - top2 >= thresholds.margin)
                c[4] += 1
    return {
        "gallery_identities": len({g.identity for g in scores.galleries}),
        **{
            condition: {
                "stranger_known": rate(c[0], c[2]),
                "stranger_tentative": rate(c[1], c[2]),
                "genuine_known_with_a_face": rate(c[3], c[4]),
            }
            for condition, c in sorted(counts.items(), key=lambda item: condition_order(item[0]))
        },
    }


# -- calibration ----------------------------------------------------------------------------------
def describe_data(samples: Sequence[LabelledEmbedding]) -> dict[str, Any]:
    identities = {s.identity for s in samples}
    sources = {s.source for s in samples}
    per_condition: dict[str, list[int]] = {}
    for s in samples:
        c = per_condition.setdefault(s.condition, [0, 0])
        c[0] += 1
        c[1] += s.embedding is None
    return {
        "identities": len(identities),
        "identities_with_3_or_more_photos": sum(
            len({s.source for s in samples if s.identity == i}) >= 3 for i in identities
        ),
        "photos": len(sources),
        "probes_per_condition": {
            c: {"photos": v[0], "no_face_passed_gates": v[1]}
            for c, v in sorted(per_condition.items(), key=lambda item: condition_order(item[0]))
        },
    }


def calibrate(
    samples: Sequence[LabelledEmbedding],
    targets: CalibrationTargets = CalibrationTargets(),  # frozen, so a shared default is safe
) -> Calibration:
    """Bands for every reported gallery size from labelled samples; the shipped one for gallery_size."""
    identities = {s.identity for s in samples}
    if len(identities) < 2:
        raise ValueError(f"calibration needs faces of at least 2 people, got {len(identities)}")
    galleries = build_galleries(samples, targets)
    if len({g.identity for g in galleries}) < 2:
        raise ValueError(
            "calibration needs clean photos (with a face passing the gates) of at least 2 people"
        )
    scores = score_galleries(samples, galleries)
    if not scores.genuine.any():
        raise ValueError("calibration needs at least one person with 2 or more photos (genuine probes)")
    anchor_cells = _cells(scores, scores.anchor)
    if not anchor_cells:
        raise ValueError("too few impostor scores: add faces of more people")
    sizes = sorted({*targets.report_sizes, targets.gallery_size})
    bands, evidence_bands = {}, {}
    for size in sizes:
        p_known = targets.per_person(targets.far_known, size)
        p_tentative = targets.per_person(targets.far_tentative, size)
        known, known_parts = conservative_threshold(anchor_cells, p_known, targets.identity_bootstrap)
        if known >= 1.0:
            raise ValueError(
                f"impostor similarities are so high (max {scores.anchor[scores.impostor].max():.3f}) "
                f"that no threshold below 1 reaches FAR {targets.far_known}: check the labels "
                "(same person in two folders?)"
            )
        learned = scores.learned_scores(known, targets.learned_per_person)
        tentative, tentative_parts = conservative_threshold(
            _cells(scores, learned), p_tentative, targets.identity_bootstrap
        )
        if known - tentative < 1e-3:
            raise ValueError(
                f"too few impostor scores to tell FAR {targets.far_known} from {targets.far_tentative} "
                f"(both thresholds come out at {known:.3f}); add faces of more people"
            )
        margin = max(targets.min_margin, known - tentative)
        band = Thresholds(round(known, 4), round(tentative, 4), round(margin, 4), gallery_size=size)
        bands[size] = band
        evidence_bands[size] = {
            **asdict(band),
            "per_person_far_known": _sig(p_known),
            "per_person_far_tentative": _sig(p_tentative),
            "known_from": known_parts,
            "tentative_from": tentative_parts,
            "rates": band_rates(scores, band, size, targets),
        }
    shipped = bands[targets.gallery_size]
    evidence = {
        "data": describe_data(samples),
        "galleries": {
            "enrolled_photos": list(targets.enrol_sizes),
            "choices_per_person": targets.choices,
            "galleries": len(galleries),
            "gallery_identities": len({g.identity for g in galleries}),
            "genuine_scores": int(scores.genuine.sum()),
            "impostor_per_person_scores": int(scores.impostor.sum()),
            "impostor_photo_person_pairs": _distinct_pairs(scores),
        },
        "bands": evidence_bands,
        "open_set_measured": open_set_rates(scores, shipped, targets),
    }
    return Calibration(shipped, evidence, bands)


def _distinct_pairs(scores: GalleryScores) -> int:
    """Impostor (photo, person) pairs, conditions apart: the nearest thing to independent scores."""
    pairs = set()
    for row, g in zip(*np.nonzero(scores.impostor), strict=True):
        pairs.add((scores.probes[row].source, scores.galleries[g].identity))
    return len(pairs)


def evaluate(
    samples: Sequence[LabelledEmbedding], calibration: Calibration, targets: CalibrationTargets
) -> dict[str, Any]:
    """The rates of a calibration's bands on other data (the held-out split), each at its gallery size;
    the open-set rates measured with the shipped band."""
    galleries = build_galleries(samples, targets)
    scores = score_galleries(samples, galleries)
    return {
        "data": describe_data(samples),
        "rates": {size: band_rates(scores, band, size, targets) for size, band in calibration.bands.items()},
        "open_set_measured": open_set_rates(scores, calibration.thresholds, targets),
    }


def pair_scores(samples: Iterable[LabelledEmbedding]) -> dict[str, np.ndarray]:
    """Cosine similarity of single-photo pairs (clean photos), the old calibration's view; reported
    beside the gallery scores to show how far apart the two views are."""
    clean = [s for s in samples if s.condition == CLEAN and s.embedding is not None]
    genuine, impostor = [], []
    for a, b in itertools.combinations(clean, 2):
        score = float(np.dot(a.embedding, b.embedding))
        if a.identity != b.identity:
            impostor.append(score)
        elif a.source != b.source:
            genuine.append(score)
    return {"genuine": np.array(genuine), "impostor": np.array(impostor)}


METHOD = (
    "Gallery-based (memory_node/calibration.py): probes scored against galleries built as memory_node "
    "builds them (k = 1, 2, 3 enrolled clean photos + their centroid as anchors; learned samples for the "
    "tentative band). For a per-probe false-accept rate alpha at gallery size N the per-person rate is p "
    "= 1 - (1 - alpha)^(1/N); each threshold is the largest over (k, camera condition) of max(empirical "
    "quantile, a tail fit that is not optimistic where the data checks it) at p (an identity bootstrap of"
    " the pooled threshold is reported in the evidence, not applied: at its 90th percentile SFace's known"
    " for 100 people would be 0.78, above the similarity of Obama's own bundled portraits); at the rates "
    "needed the data shows no impostor score that high, so the thresholds are extrapolated (an "
    "exponential fit of the top 5 % of per-person impostor scores: cosine scores are bounded by 1, so the"
    " true tail is lighter and the fit errs high). Targets per probe (camera frame) at gallery_size: "
    "far_known 1e-3, far_tentative 2e-2. A track needs 3 KNOWN frames (of <= 7) for the same person to be"
    " KNOWN and 2 TENTATIVE frames to ask 'are you X?'; whatever the correlation between a track's "
    "frames, the chance of that is at most frames x alpha / votes (Markov): for a 1 s track of 5 frames "
    "<= 1.7e-3 KNOWN and <= 5 % asked at the shipped gallery size, less in smaller memories. far_known "
    "1e-4 was tried: it put SFace's known at 0.75 and its genuine 1 s tracks below 95 % on clean photos. "
    "margin = known - tentative (>= min_margin): at known, nobody else may be an 'are you X?' candidate."
)


def write_thresholds(
    path: Path,
    calibrations: dict[str, tuple[str, Calibration]],
    targets: CalibrationTargets,
    data_description: str,
    method: str = METHOD,
) -> None:
    """Write {model_name: (backend, calibration)} as YAML, atomically (temp file + rename).

    Layout: `models: {<model_name>: {backend, known, tentative, margin, gallery_size, bands, evidence}}`
    (memory_node.config.load_thresholds reads the top-level three) next to how and from what data.
    """
    document = {
        "generated_by": "tools/calibrate_faces.py (re-run it rather than editing by hand)",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data_description,
        "targets": {
            **asdict(targets),
            "report_sizes": list(targets.report_sizes),
            "enrol_sizes": list(targets.enrol_sizes),
        },
        "method": method,
        "models": {
            model: {
                "backend": backend,
                **asdict(calibration.thresholds),
                "bands": {
                    int(n): {k: v for k, v in asdict(t).items() if k != "gallery_size"}
                    for n, t in calibration.bands.items()
                },
                "evidence": _plain(calibration.evidence),
            }
            for model, (backend, calibration) in calibrations.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        yaml.safe_dump(
            document, handle, sort_keys=False, allow_unicode=True, width=110, default_flow_style=None
        )
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def _plain(value: Any) -> Any:
    """numpy scalars and tuples → plain YAML types."""
    if isinstance(value, dict):
        return {(int(k) if isinstance(k, np.integer) else k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
