"""Similarity thresholds for the KNOWN / TENTATIVE / UNKNOWN bands, calibrated from labelled faces.

From embeddings labelled with an identity and the source image they came from:

- genuine pairs: same identity, different source images (independent evidence). Pairs of samples
  from the same source image (flips, crops of one photo) are counted apart and never used for the
  numbers: they are not independent and would flatter the false-reject rate.
- impostor pairs: different identities.

`known` is the threshold at the target false-accept rate (FAR) `far_known`, `tentative` the one at the
looser `far_tentative`. Each is the larger (more conservative) of the empirical quantile of the impostor
scores and a normal fit of their tail: with n impostor pairs no FAR below 1/n can be shown empirically,
so the fit extrapolates, and the maximum guards against a fit that is too optimistic. `margin` is
`known − tentative`: a KNOWN answer needs the runner-up to fall below the TENTATIVE threshold when the
best match is just at `known` (and never less than `min_margin`).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import yaml

from memory_node.config import Thresholds


@dataclass(frozen=True)
class LabelledEmbedding:
    """One face embedding with the person it shows and the image it came from."""

    identity: str
    source: str
    embedding: np.ndarray


@dataclass(frozen=True)
class CalibrationTargets:
    """False-accept rates the thresholds aim for."""

    far_known: float = 1e-4  # a stranger greeted by someone's name: rare by design
    far_tentative: float = 1e-2  # asking "are you X?" is cheap, but should not happen every few seconds
    min_margin: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.far_known < self.far_tentative < 1.0:
            raise ValueError(
                f"need 0 < far_known ({self.far_known}) < far_tentative ({self.far_tentative}) < 1: "
                "KNOWN must be the stricter band"
            )
        if not 0.0 <= self.min_margin < 1.0:
            raise ValueError(f"min_margin must be in [0, 1), got {self.min_margin}")


@dataclass(frozen=True)
class PairScores:
    """Cosine similarities of all sample pairs, by kind."""

    genuine: np.ndarray  # same identity, different source images
    same_source: np.ndarray  # same identity, same source image (not independent; reported only)
    impostor: np.ndarray  # different identities


@dataclass(frozen=True)
class Calibration:
    """Thresholds of one model and the evidence behind them."""

    thresholds: Thresholds
    evidence: dict[str, Any]


def pair_scores(samples: Sequence[LabelledEmbedding]) -> PairScores:
    """Cosine similarity of every pair of (L2-normalised) samples, split into genuine/same-source/impostor."""
    genuine, same_source, impostor = [], [], []
    for a, b in itertools.combinations(samples, 2):
        score = float(np.dot(a.embedding, b.embedding))
        if a.identity != b.identity:
            impostor.append(score)
        elif a.source != b.source:
            genuine.append(score)
        else:
            same_source.append(score)
    return PairScores(np.array(genuine), np.array(same_source), np.array(impostor))


def threshold_at_far(impostor: np.ndarray, far: float) -> tuple[float, dict[str, float]]:
    """The conservative threshold for a false-accept rate (scores >= threshold accept), with its parts."""
    ordered = np.sort(impostor)
    allowed = int(np.floor(far * len(ordered)))  # false accepts the target permits among these pairs
    empirical = float(ordered[len(ordered) - allowed - 1]) + 1e-6
    std = float(ordered.std(ddof=1)) if len(ordered) > 1 else 0.0
    fitted = float(ordered.mean()) + NormalDist().inv_cdf(1.0 - far) * std
    threshold = max(empirical, fitted)
    return threshold, {"empirical": round(empirical, 4), "normal_fit": round(fitted, 4)}


def _rate(scores: np.ndarray, threshold: float, accept: bool) -> float | None:
    if scores.size == 0:
        return None
    return float(np.mean(scores >= threshold) if accept else np.mean(scores < threshold))


def _summary(scores: np.ndarray) -> dict[str, float | int]:
    if scores.size == 0:
        return {"pairs": 0}
    return {
        "pairs": int(scores.size),
        "min": round(float(scores.min()), 4),
        "mean": round(float(scores.mean()), 4),
        "max": round(float(scores.max()), 4),
        "std": round(float(scores.std(ddof=1)), 4) if scores.size > 1 else 0.0,
    }


def calibrate(
    samples: Sequence[LabelledEmbedding],
    targets: CalibrationTargets = CalibrationTargets(),  # frozen, so a shared default is safe
) -> Calibration:
    """Thresholds for the targets from labelled samples (needs at least two identities)."""
    identities = {sample.identity for sample in samples}
    if len(identities) < 2:
        raise ValueError(f"calibration needs faces of at least 2 people, got {len(identities)}")
    scores = pair_scores(samples)
    if scores.impostor.size < 2:
        raise ValueError("calibration needs at least 2 impostor pairs (faces of different people)")
    known, known_parts = threshold_at_far(scores.impostor, targets.far_known)
    tentative, tentative_parts = threshold_at_far(scores.impostor, targets.far_tentative)
    if known >= 1.0:
        raise ValueError(
            f"impostor similarities are so high (max {scores.impostor.max():.3f}) that no threshold "
            f"below 1 reaches FAR {targets.far_known}: check the labels (same person in two folders?)"
        )
    if known - tentative < 1e-3:
        raise ValueError(
            f"only {scores.impostor.size} impostor pairs: too few to tell FAR {targets.far_known} from "
            f"{targets.far_tentative} (both thresholds come out at {known:.3f}); add faces of more people"
        )
    margin = max(targets.min_margin, known - tentative)
    thresholds = Thresholds(round(known, 4), round(tentative, 4), round(margin, 4))
    fit = NormalDist(float(scores.impostor.mean()), max(float(scores.impostor.std(ddof=1)), 1e-9))
    evidence = {
        "identities": len(identities),
        "samples": len(samples),
        "source_images": len({sample.source for sample in samples}),
        "genuine": _summary(scores.genuine),
        "same_source_pairs_not_used": int(scores.same_source.size),
        "impostor": _summary(scores.impostor),
        "smallest_far_shown_by_data": round(1.0 / scores.impostor.size, 6),
        "known_from": known_parts,
        "tentative_from": tentative_parts,
        "at_known": {
            "far_empirical": _rate(scores.impostor, thresholds.known, accept=True),
            "far_normal_fit": float(f"{1.0 - fit.cdf(thresholds.known):.3g}"),
            "frr": _rate(scores.genuine, thresholds.known, accept=False),
        },
        "at_tentative": {
            "far_empirical": _rate(scores.impostor, thresholds.tentative, accept=True),
            "far_normal_fit": float(f"{1.0 - fit.cdf(thresholds.tentative):.3g}"),
            "frr": _rate(scores.genuine, thresholds.tentative, accept=False),
        },
    }
    return Calibration(thresholds, evidence)


def write_thresholds(
    path: Path,
    calibrations: dict[str, tuple[str, Calibration]],
    targets: CalibrationTargets,
    data_description: str,
) -> None:
    """Write {model_name: (backend, calibration)} as YAML, atomically (temp file + rename).

    Layout: `models: {<model_name>: {known, tentative, margin, backend, evidence}}` (what
    memory_node.config.load_thresholds reads) next to how and from what data they were computed.
    """
    document = {
        "generated_by": "tools/calibrate_faces.py (re-run it rather than editing by hand)",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data_description,
        "targets": asdict(targets),
        "method": "known/tentative: max(empirical impostor quantile, normal fit of impostor scores) at the "
        "target FAR; margin: known - tentative (at least min_margin)",
        "models": {
            model: {"backend": backend, **asdict(calibration.thresholds), "evidence": calibration.evidence}
            for model, (backend, calibration) in calibrations.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        yaml.safe_dump(document, handle, sort_keys=False, allow_unicode=True, width=100)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)
