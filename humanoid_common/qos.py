"""Per-topic QoS from config/qos.yaml, validated once, turned into rclpy QoSProfiles.

The parsing half is plain Python (TopicQos, parse_qos_config); `QosConfig.profile` builds the
rclpy profile. Errors name the offending key so a person can fix the file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

from humanoid_common.config import config_dir, read_yaml

_CHOICES = {
    "reliability": {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT},
    "history": {"keep_last": HistoryPolicy.KEEP_LAST, "keep_all": HistoryPolicy.KEEP_ALL},
    "durability": {
        "volatile": DurabilityPolicy.VOLATILE,
        "transient_local": DurabilityPolicy.TRANSIENT_LOCAL,
    },
    "liveliness": {
        "automatic": LivelinessPolicy.AUTOMATIC,
        "manual_by_topic": LivelinessPolicy.MANUAL_BY_TOPIC,
    },
}


class QosConfigError(ValueError):
    """qos.yaml is malformed; the message names the file and key."""


@dataclass(frozen=True)
class TopicQos:
    """QoS of one topic as written in qos.yaml (durations in milliseconds, 0 = unset)."""

    reliability: str = "reliable"
    history: str = "keep_last"
    depth: int = 10
    durability: str = "volatile"
    deadline_ms: float = 0.0
    lifespan_ms: float = 0.0
    liveliness: str = "automatic"
    liveliness_lease_ms: float = 0.0
    external: bool = False

    def profile(self, *, for_subscription: bool = False) -> QoSProfile:
        """The rclpy profile. An external topic's subscription requests no DDS deadline or lease:
        its publisher is a driver that usually offers none, and a request would make the pair
        incompatible (no messages at all). Such deadlines are watched locally (humanoid_common.watch).
        """
        local_watch = for_subscription and self.external
        return QoSProfile(
            reliability=_CHOICES["reliability"][self.reliability],
            history=_CHOICES["history"][self.history],
            depth=self.depth,
            durability=_CHOICES["durability"][self.durability],
            deadline=_duration(0 if local_watch else self.deadline_ms),
            lifespan=_duration(self.lifespan_ms),
            liveliness=_CHOICES["liveliness"][self.liveliness],
            liveliness_lease_duration=_duration(0 if local_watch else self.liveliness_lease_ms),
        )


def _duration(ms: float) -> Duration:
    return Duration(nanoseconds=round(ms * 1e6))


def _parse_topic(entry: Any, base: TopicQos, where: str) -> TopicQos:
    if not isinstance(entry, dict):
        raise QosConfigError(f"{where}: expected a mapping of QoS fields, got {type(entry).__name__}")
    known = {f.name: f for f in fields(TopicQos)}
    values = {f: getattr(base, f) for f in known}
    for key, value in entry.items():
        if key not in known:
            raise QosConfigError(f"{where}.{key}: unknown QoS field (expected one of {', '.join(known)})")
        if key in _CHOICES:
            if value not in _CHOICES[key]:
                raise QosConfigError(f"{where}.{key}: {value!r} is not one of {', '.join(_CHOICES[key])}")
        elif key == "external":
            if not isinstance(value, bool):
                raise QosConfigError(f"{where}.{key}: expected true or false, got {value!r}")
        elif key == "depth":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise QosConfigError(f"{where}.{key}: expected an integer >= 1, got {value!r}")
        else:  # durations
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise QosConfigError(f"{where}.{key}: expected milliseconds >= 0, got {value!r}")
            value = float(value)
        values[key] = value
    return TopicQos(**values)


def parse_qos_config(data: Any, source: str = "qos.yaml") -> dict[str, TopicQos]:
    """Validate the parsed YAML of a qos file; return topic name → TopicQos."""
    if not isinstance(data, dict):
        raise QosConfigError(f"{source}: expected a mapping with 'defaults' and 'topics'")
    unknown = set(data) - {"defaults", "topics"}
    if unknown:
        raise QosConfigError(
            f"{source}: unknown top-level key(s) {sorted(unknown)} (expected defaults, topics)"
        )
    defaults = _parse_topic(data.get("defaults") or {}, TopicQos(), f"{source}: defaults")
    topics = data.get("topics")
    if not isinstance(topics, dict) or not topics:
        raise QosConfigError(f"{source}: 'topics' must be a non-empty mapping of topic name to QoS fields")
    parsed = {}
    for name, entry in topics.items():
        if not isinstance(name, str) or not name.startswith("/"):
            raise QosConfigError(
                f"{source}: topics.{name}: topic keys must be absolute names like /camera/image_raw"
            )
        parsed[name] = _parse_topic(entry or {}, defaults, f"{source}: topics.{name}")
    parsed[""] = defaults
    return parsed


class QosConfig:
    """The validated QoS file. Unknown topics get the file's defaults."""

    def __init__(self, topics: dict[str, TopicQos], source: str) -> None:
        self._topics = topics
        self.source = source

    def __getitem__(self, topic: str) -> TopicQos:
        return self._topics.get(topic, self._topics[""])

    def __contains__(self, topic: str) -> bool:
        return bool(topic) and topic in self._topics

    @property
    def topics(self) -> list[str]:
        return sorted(t for t in self._topics if t)

    def profile(self, topic: str, *, for_subscription: bool = False) -> QoSProfile:
        return self[topic].profile(for_subscription=for_subscription)


def load_qos_config(path: str | Path | None = None) -> QosConfig:
    """Load and validate a qos file (default: config/qos.yaml of this suite)."""
    path = Path(path) if path else config_dir() / "qos.yaml"
    data = read_yaml(path, "QoS file", QosConfigError)
    return QosConfig(parse_qos_config(data, str(path)), str(path))
