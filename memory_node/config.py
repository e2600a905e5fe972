"""Face memory configuration: YAML (config/memory.yaml) → validated dataclasses.

Every value is checked once at start; an error names the file and key and says what to change.
Thresholds are per embedding model and live in config/face_thresholds.yaml (written by calibration).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from humanoid_common.config import read_yaml


class MemoryConfigError(ValueError):
    """The memory configuration is invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class Thresholds:
    """Cosine-similarity bands of one embedding model (from calibration, never hard-coded)."""

    known: float
    tentative: float
    margin: float
    gallery_size: int = 0  # people in memory the bands were calibrated for (0: not recorded)


@dataclass(frozen=True)
class VotingConfig:
    window: int = 7  # frames of one track considered
    known_votes: int = 3  # KNOWN frames for the same person needed before a track is KNOWN
    min_votes: int = 2  # frames before any decision (new person / are-you) is made


@dataclass(frozen=True)
class TierConfig:
    hot_cache_size: int = 64  # Tier 0: people kept in the LRU
    hot_cache_ttl_s: float = 60.0  # Tier 0: a person not seen for this long drops out
    recent_ttl_s: float = 3600.0  # Tier 1: tracks kept for the last hour
    recent_samples_per_track: int = 20  # Tier 1: good embeddings kept per track (for enrolment)
    exact_search_max: int = 100_000  # Tier 2: exact numpy search up to this many vectors, HNSW above
    index_samples_per_person: int = 3  # Tier 2: newest anchor samples indexed besides the centroid
    index_learned_per_person: int = 2  # Tier 2: newest learned samples indexed (they never make KNOWN)


@dataclass(frozen=True)
class StrangerConfig:
    min_samples: int = 5  # good samples before a stranger becomes a provisional identity
    min_span_s: float = 2.0  # ... collected over at least this long
    min_consistency: float = 0.0  # mean pairwise similarity of those samples; 0 = use thresholds.tentative
    provisional_ttl_s: float = 7 * 86400.0  # unnamed identities expire unless consent is recorded


@dataclass(frozen=True)
class EventConfig:
    welcome_back_after_s: float = 600.0  # KNOWN person unseen this long → WELCOME_BACK
    left_after_s: float = 10.0  # track unseen this long → LEFT


@dataclass(frozen=True)
class ConsolidationConfig:
    period_s: float = 1800.0  # background consolidation every 30 min
    max_samples: int = 50  # anchor (enrolled) samples kept per person
    max_learned_samples: int = 20  # samples learned from the camera kept per person
    recency_half_life_s: float = 30 * 86400.0  # sample weight halves with this age in the centroid
    merge_similarity: float = 0.0  # provisional identities this close are merged; 0 = thresholds.known
    archive_after_s: float = 180 * 86400.0  # people unseen this long move to the cold archive


@dataclass(frozen=True)
class StorageConfig:
    data_dir: str = "~/.local/share/humanoid_stack/memory"
    key_file: str = ""  # empty: <data_dir>/memory.key
    key_env: str = "HUMANOID_MEMORY_KEY"  # base64 32-byte key; wins over the file when set
    store_images: bool = False  # keep (encrypted) face crops; off by default (privacy)


@dataclass(frozen=True)
class RequestConfig:
    """Bounds on service requests (issue 10): they hold without DDS security."""

    max_name_chars: int = 64  # display names, after NFKC normalisation
    max_images: int = 20  # images or image files in one Enroll
    max_image_pixels: int = 16_000_000  # width × height of one enrolment image, checked before decoding
    image_dirs: tuple[str, ...] = ()  # folders Enroll may read image_paths from; none by default
    enroll_burst: int = 5  # Enroll calls allowed in a row ...
    enroll_interval_s: float = 10.0  # ... then one more every this many seconds (0: no limit)
    forget_burst: int = 3
    forget_interval_s: float = 20.0


@dataclass(frozen=True)
class MemoryConfig:
    voting: VotingConfig = field(default_factory=VotingConfig)
    tiers: TierConfig = field(default_factory=TierConfig)
    strangers: StrangerConfig = field(default_factory=StrangerConfig)
    events: EventConfig = field(default_factory=EventConfig)
    consolidation: ConsolidationConfig = field(default_factory=ConsolidationConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    requests: RequestConfig = field(default_factory=RequestConfig)

    def data_path(self) -> Path:
        return Path(self.storage.data_dir).expanduser()

    def key_path(self) -> Path:
        return (
            Path(self.storage.key_file).expanduser()
            if self.storage.key_file
            else self.data_path() / "memory.key"
        )


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise MemoryConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise MemoryConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(fields)})")
    values = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        key = f"{where}.{name}"
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value, key)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise MemoryConfigError(f"{key}: expected true or false, got {value!r}")
            values[name] = value
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise MemoryConfigError(f"{key}: expected a list of non-empty strings, got {value!r}")
            values[name] = tuple(value)
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise MemoryConfigError(f"{key}: expected a number, got {value!r}")
            if isinstance(default, int) and not float(value).is_integer():
                raise MemoryConfigError(f"{key}: expected a whole number, got {value!r}")
            values[name] = type(default)(value)
        else:
            if not isinstance(value, str):
                raise MemoryConfigError(f"{key}: expected a string, got {value!r}")
            values[name] = value
    return cls(**values)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise MemoryConfigError(message)


def validate(cfg: MemoryConfig, where: str = "memory") -> MemoryConfig:
    """Check ranges and relations between values; returns cfg unchanged."""
    v, t, s, e, c = cfg.voting, cfg.tiers, cfg.strangers, cfg.events, cfg.consolidation
    _check(v.window >= 1, f"{where}.voting.window ({v.window}) must be at least 1")
    _check(
        1 <= v.known_votes <= v.window,
        f"{where}.voting.known_votes ({v.known_votes}) must be between 1 and voting.window ({v.window})",
    )
    _check(
        1 <= v.min_votes <= v.window,
        f"{where}.voting.min_votes ({v.min_votes}) must be between 1 and voting.window ({v.window})",
    )
    _check(t.hot_cache_size >= 1, f"{where}.tiers.hot_cache_size ({t.hot_cache_size}) must be at least 1")
    for name in ("hot_cache_ttl_s", "recent_ttl_s"):
        _check(getattr(t, name) > 0, f"{where}.tiers.{name} ({getattr(t, name)}) must be > 0")
    _check(t.recent_samples_per_track >= 1, f"{where}.tiers.recent_samples_per_track must be at least 1")
    _check(t.exact_search_max >= 0, f"{where}.tiers.exact_search_max must be >= 0")
    _check(t.index_samples_per_person >= 0, f"{where}.tiers.index_samples_per_person must be >= 0")
    _check(t.index_learned_per_person >= 0, f"{where}.tiers.index_learned_per_person must be >= 0")
    _check(s.min_samples >= 2, f"{where}.strangers.min_samples ({s.min_samples}) must be at least 2")
    _check(s.min_span_s >= 0, f"{where}.strangers.min_span_s must be >= 0")
    _check(-1 <= s.min_consistency <= 1, f"{where}.strangers.min_consistency must be in [-1, 1] (0 = auto)")
    _check(s.provisional_ttl_s > 0, f"{where}.strangers.provisional_ttl_s must be > 0")
    _check(e.welcome_back_after_s >= 0, f"{where}.events.welcome_back_after_s must be >= 0")
    _check(e.left_after_s > 0, f"{where}.events.left_after_s ({e.left_after_s}) must be > 0")
    _check(c.period_s > 0, f"{where}.consolidation.period_s ({c.period_s}) must be > 0")
    _check(
        c.max_samples >= s.min_samples,
        f"{where}.consolidation.max_samples ({c.max_samples}) must be >= "
        f"strangers.min_samples ({s.min_samples})",
    )
    _check(c.max_learned_samples >= 0, f"{where}.consolidation.max_learned_samples must be >= 0")
    _check(c.recency_half_life_s > 0, f"{where}.consolidation.recency_half_life_s must be > 0")
    _check(-1 <= c.merge_similarity <= 1, f"{where}.consolidation.merge_similarity must be in [-1, 1]")
    _check(c.archive_after_s > 0, f"{where}.consolidation.archive_after_s must be > 0")
    _check(bool(cfg.storage.data_dir), f"{where}.storage.data_dir must not be empty")
    r = cfg.requests
    for name in ("max_name_chars", "max_images", "max_image_pixels", "enroll_burst", "forget_burst"):
        _check(getattr(r, name) >= 1, f"{where}.requests.{name} ({getattr(r, name)}) must be at least 1")
    for name in ("enroll_interval_s", "forget_interval_s"):
        _check(getattr(r, name) >= 0, f"{where}.requests.{name} ({getattr(r, name)}) must be >= 0")
    _check(bool(cfg.storage.key_env), f"{where}.storage.key_env must not be empty")
    return cfg


def parse_memory_config(data: Any, source: str = "memory.yaml", base_dir: Path | None = None) -> MemoryConfig:
    """Build and validate a MemoryConfig from the parsed YAML (top-level key `memory`).

    Relative `requests.image_dirs` are taken relative to `base_dir` (the YAML file's folder), `~`
    is expanded.
    """
    if not isinstance(data, dict) or "memory" not in data:
        raise MemoryConfigError(f"{source}: expected a top-level 'memory:' mapping")
    cfg = validate(_build(MemoryConfig, data["memory"], f"{source}: memory"), f"{source}: memory")
    base = (base_dir or Path.cwd()).absolute()
    dirs = tuple(str(base / Path(d).expanduser()) for d in cfg.requests.image_dirs)
    return dataclasses.replace(cfg, requests=dataclasses.replace(cfg.requests, image_dirs=dirs))


def load_memory_config(path: str | Path) -> MemoryConfig:
    data = read_yaml(path, "memory config", MemoryConfigError)
    return parse_memory_config(data, str(path), Path(path).parent)


def parse_thresholds(data: Any, model_name: str, source: str = "face_thresholds.yaml") -> Thresholds:
    """Thresholds of `model_name` from the calibration YAML (`models: <model>: known, tentative, margin`)."""
    data = data.get("models") if isinstance(data, dict) else None
    if not isinstance(data, dict) or model_name not in data:
        models = ", ".join(sorted(data)) if isinstance(data, dict) else "none"
        raise MemoryConfigError(
            f"{source}: no thresholds for embedding model {model_name!r} (calibrated: {models}); "
            f"run tools/calibrate_faces for it"
        )
    entry = data[model_name]
    values = {}
    for key in ("known", "tentative", "margin"):
        value = entry.get(key) if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MemoryConfigError(f"{source}: {model_name}.{key}: expected a number, got {value!r}")
        values[key] = float(value)
    if not -1.0 <= values["tentative"] < values["known"] <= 1.0:
        raise MemoryConfigError(
            f"{source}: {model_name}.known ({values['known']}) must be above "
            f"{model_name}.tentative ({values['tentative']}), both in [-1, 1]"
        )
    if not 0.0 <= values["margin"] < 1.0:
        raise MemoryConfigError(f"{source}: {model_name}.margin ({values['margin']}) must be in [0, 1)")
    size = entry.get("gallery_size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise MemoryConfigError(
            f"{source}: {model_name}.gallery_size: expected a whole number >= 0, got {size!r}"
        )
    return Thresholds(**values, gallery_size=size)


def load_thresholds(path: str | Path, model_name: str) -> Thresholds:
    path = Path(path)
    data = read_yaml(path, "face thresholds (tools/calibrate_faces.py writes them)", MemoryConfigError)
    return parse_thresholds(data, model_name, str(path))
