"""rosbag2 files without rosbag2: a typestore that knows our interfaces, writer and QoS helpers.

Bags are written with `rosbags` (pure Python; rosbag2_py is not installable here, DESIGN §4) so that
`ros2 bag play` of Humble and Jazzy reads them:

* bag format version 8: metadata.yaml stores each topic's offered QoS as a YAML *string* with integer
  enums, the form Humble's yaml-cpp parser expects (version 9 changed it to a nested list, which
  Humble rejects with "bad conversion"). Keys Humble does not know (type_description_hash,
  ros_distro) are ignored by it.
* the sqlite3 storage (default) needs no storage plugin on the robot; mcap is optional.

The typestore describes the CDR bytes a bag holds. ``ros2 bag play`` never reads the stored message
definitions (it loads type support by name), so the typestore's distribution does not decide
whether a bag plays on Humble; it must match the ROS runtime that *produced* the bytes, otherwise
offline readers (rosbags, Foxglove) would decode them with wrong definitions. It is therefore taken
from ROS_DISTRO when that names a distribution rosbags knows (set by a real ROS install's
setup.bash), else Jazzy, the distribution of this project's pip wheels. For the types our tools
generate offline (sensor_msgs/Image, CameraInfo, std_msgs, our own messages) Humble and Jazzy
definitions are identical, so those bags are valid on both.

Bags record the ROS distribution that wrote them (``ros_distro``, `ros_distro()`), not rosbags'
placeholder "rosbags".

Reading (`BagReader`) takes every message of bags written by rosbag2 on Humble and Jazzy (metadata
versions 4 to 9, sqlite3 and mcap). rosbags' own Reader yields a message only when the topic of
metadata.yaml equals the storage's topic *including the offered-QoS string*, and rosbag2 often
stores different strings in the two places (e.g. deadline 0/0 in metadata.yaml and
2147483647/4294967295 in the sqlite3 db, or no QoS in the db at all); it then yields nothing.
`BagReader` asks for the storages' own connections instead, matching by topic alone.

Functions that talk to a live ROS graph import rclpy lazily: converting a video to a bag needs no
ROS runtime.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import sys
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

if TYPE_CHECKING:
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from rclpy.topic_endpoint_info import TopicEndpointInfo

PACKAGE = "humanoid_stack"
BAG_VERSION = 8
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
DEFAULT_STORE = Stores.ROS2_JAZZY
_SOURCE_MSG_DIR = Path(__file__).resolve().parents[1] / "msg"
# rmw reports "infinite" durations as this many nanoseconds (INT64_MAX).
_INFINITE_NS = 2**63 - 1
_SERVICE_PART = re.compile(r"(?P<service>.+)_(?:Request|Response|Event)")
_DISTRO_WHEEL = re.compile(r"ros-(?P<distro>[a-z]+)-rclpy")
_PLACEHOLDER_DISTRO = re.compile(r"^(?P<key>\s*ros_distro: )rosbags$", re.MULTILINE)


class BagError(RuntimeError):
    """A bag, message type or topic cannot be used; the message says why."""


# --- message types ---------------------------------------------------------------------------------


def msg_dir() -> Path:
    """msg/ of this package: the checkout's, else share/humanoid_stack/msg of the ROS install."""
    if any(_SOURCE_MSG_DIR.glob("*.msg")):
        return _SOURCE_MSG_DIR
    for share in _share_dirs(PACKAGE):
        if any((share / "msg").glob("*.msg")):
            return share / "msg"
    raise BagError(f"cannot find the {PACKAGE} .msg files (no checkout msg/, no share/{PACKAGE}/msg)")


def _share_dirs(package: str) -> list[Path]:
    """share/<package> under every ament prefix (the ament index, else this interpreter's prefix)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)  # pip-wheel ROS installs share/ into the venv without an index
    return [
        Path(p) / "share" / package for p in dict.fromkeys(prefixes) if (Path(p) / "share" / package).is_dir()
    ]


def ros_distro() -> str:
    """The ROS distribution here: $ROS_DISTRO (a sourced install), else that of the installed
    ros-<distro>-rclpy wheel, else "" (what rosbag2 records when ROS_DISTRO is unset)."""
    if distro := os.environ.get("ROS_DISTRO", "").strip().lower():
        return distro
    for dist in importlib.metadata.distributions():
        if match := _DISTRO_WHEEL.fullmatch(dist.metadata["Name"] or ""):
            return match["distro"]
    return ""


def store_for_distro(distro: str | None = None) -> Stores:
    """The rosbags store of a ROS 2 distribution name (default: `ros_distro()`; unknown: Jazzy)."""
    distro = (distro or ros_distro()).strip().lower()
    return Stores.__members__.get(f"ROS2_{distro.upper()}", DEFAULT_STORE) if distro else DEFAULT_STORE


@cache
def typestore(store: Stores | None = None) -> Typestore:
    """A typestore of the ROS 2 distribution with all humanoid_stack messages registered.

    Cached: registering more types later (``ensure_type``) is visible to every user.
    """
    types = get_typestore(store or store_for_distro())
    custom: dict[str, Any] = {}
    for path in sorted(msg_dir().glob("*.msg")):
        custom.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    types.register(custom)
    return types


def normalize_type(msgtype: str) -> str:
    """'sensor_msgs/Image' or 'sensor_msgs/msg/Image' → 'sensor_msgs/msg/Image'."""
    parts = msgtype.strip("/").split("/")
    if len(parts) == 2:
        parts.insert(1, "msg")
    if len(parts) != 3 or not all(parts):
        raise BagError(f"{msgtype!r} is not a message type name like sensor_msgs/msg/Image")
    return "/".join(parts)


def ensure_type(store: Typestore, msgtype: str) -> None:
    """Register `msgtype` (and what it uses) from installed interface files if the store lacks it.

    Messages come from share/<pkg>/msg/<Name>.msg; a service's Request, Response and Event types
    (pkg/srv/Name_Event is what rosbag2 records on <service>/_service_event) from its .idl.
    """
    msgtype = normalize_type(msgtype)
    if msgtype in store.fielddefs:
        return
    package, kind, name = msgtype.split("/")
    if kind == "srv":
        found = _service_types(package, _service_name(msgtype))
    else:
        found = get_types_from_msg(_interface_file(package, "msg", f"{name}.msg").read_text(), msgtype)
    store.register(found)
    for fields in found.values():
        for dependency in _referenced_types(fields):
            ensure_type(store, dependency)


def _interface_file(package: str, kind: str, filename: str) -> Path:
    """share/<package>/<kind>/<filename> of the first ament prefix that has it."""
    for share in _share_dirs(package):
        if (share / kind / filename).is_file():
            return share / kind / filename
    raise BagError(
        f"no definition of {package}/{kind}/{Path(filename).stem}: neither the typestore nor "
        f"share/{package}/{kind}/{filename} of any ament prefix has it "
        "(source the workspace that provides it)"
    )


def _service_name(msgtype: str) -> str:
    """'pkg/srv/Name_Event' (or _Request, _Response) → 'Name'."""
    match = _SERVICE_PART.fullmatch(msgtype.split("/")[2])
    if not match:
        raise BagError(f"{msgtype} is not a service's Request, Response or Event type")
    return match["service"]


def _service_types(package: str, service: str) -> dict[str, Any]:
    """Request and Response of a service from its installed .idl, and the Event type that wraps them."""
    found = get_types_from_idl(_interface_file(package, "srv", f"{service}.idl").read_text())
    prefix = f"{package}::srv::{service}"
    found.update(
        get_types_from_idl(
            f"module {package} {{ module srv {{ struct {service}_Event {{\n"
            "  service_msgs::msg::ServiceEventInfo info;\n"
            f"  sequence<{prefix}_Request, 1> request;\n"
            f"  sequence<{prefix}_Response, 1> response;\n"
            "}; }; };"
        )
    )
    return found


def _referenced_types(node: Any) -> Iterable[str]:
    """Message type names inside a parsed field tree (nested tuples of rosbags' typesdict)."""
    if isinstance(node, str):
        if node.count("/") == 2:
            yield node
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from _referenced_types(item)


def import_message(msgtype: str) -> type:
    """The rclpy message class of a type name, e.g. 'sensor_msgs/msg/Image' → sensor_msgs.msg.Image."""
    package, kind, name = normalize_type(msgtype).split("/")
    try:
        module = importlib.import_module(f"{package}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as error:
        raise BagError(
            f"cannot import {msgtype} ({error}); install or source the package that provides it"
        ) from None


# --- writing -------------------------------------------------------------------------------------


class DistroWriter(Writer):
    """rosbags' Writer, recording `ros_distro()` where rosbags writes its placeholder "rosbags":
    metadata.yaml, the storage's copy of it (sqlite3 metadata table, mcap metadata record) and the
    sqlite3 schema table."""

    def close(self) -> None:
        distro = ros_distro()
        storage = self.storage
        if storage is not None:
            if isinstance(storage, Sqlite3Writer):
                storage.cursor.execute("UPDATE schema SET ros_distro = ?", (distro,))
            close_storage = storage.close
            storage.close = lambda version, text: close_storage(version, _name_distro(text, distro))
        super().close()
        self.metapath.write_text(_name_distro(self.metapath.read_text(), distro))


def _name_distro(metadata: str, distro: str) -> str:
    """Metadata YAML with rosbags' placeholder distribution replaced by `distro`."""
    return _PLACEHOLDER_DISTRO.sub(lambda m: f"{m['key']}{json.dumps(distro)}", metadata)


def open_writer(path: str | Path, storage: str = "sqlite3") -> Writer:
    """A Writer for a new bag (format version 8, see the module doc), not yet opened.

    Use it as a context manager, or call open() and close() in a finally so the bag is complete.
    """
    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r} (expected one of {', '.join(STORAGES)})")
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} exists already; choose a new output folder")
    return DistroWriter(path, version=BAG_VERSION, storage_plugin=STORAGES[storage])


def add_topic(writer: Writer, topic: str, msgtype: str, store: Typestore, qos: Sequence[Qos] = ()) -> Any:
    """Add a connection for `topic`, registering `msgtype` first if needed; return the connection.

    A service event type is stored with its service's .srv text and installed type hash, as rosbag2
    does (rosbags generates definitions of messages only).
    """
    msgtype = normalize_type(msgtype)
    ensure_type(store, msgtype)
    package, kind, _ = msgtype.split("/")
    if kind != "srv":
        return writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=list(qos))
    service = _service_name(msgtype)
    hashes = json.loads(_interface_file(package, "srv", f"{service}.json").read_text())["type_hashes"]
    return writer.add_connection(
        topic,
        msgtype,
        msgdef=_interface_file(package, "srv", f"{service}.srv").read_text(),
        rihs01=next(h["hash_string"] for h in hashes if h["type_name"] == msgtype),
        offered_qos_profiles=list(qos),
    )


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BagTopic:
    """A topic of a bag: its type(s), message count and the QoS its publishers offered."""

    name: str
    types: tuple[str, ...]
    count: int
    offered_qos: tuple[Qos, ...]

    @property
    def msgtype(self) -> str:
        if len(self.types) != 1:
            raise BagError(f"{self.name} has several types in the bag ({', '.join(self.types)})")
        return self.types[0]


class BagReader:
    """Every message of a rosbag2 bag (a folder with metadata.yaml, or one .db3/.mcap file).

    Topics come from metadata.yaml and the storage files; messages from the storage files' own
    connections, matched by topic name only (the module doc says why). A topic's count and offered
    QoS are metadata.yaml's when it lists the topic, else the storage's.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.topics: dict[str, BagTopic] = {}
        self._storage_connections: list[Connection] = []
        try:
            self._reader = Reader(self.path)
        except (ReaderError, OSError) as error:
            raise BagError(f"cannot read the bag {self.path}: {error}") from None

    def __enter__(self) -> BagReader:
        try:
            self._reader.open()
        except (ReaderError, OSError) as error:
            raise BagError(f"cannot read the bag {self.path}: {error}") from None
        storage = self._reader.storage
        self._storage_connections = [
            c for s in getattr(storage, "storages", [storage]) for c in s.connections
        ]
        self.topics = _bag_topics(self._reader.connections, self._storage_connections)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._reader.close()

    @property
    def ros_distro(self) -> str | None:
        return self._reader.ros_distro

    @property
    def message_count(self) -> int:
        """Messages the bag says it holds (metadata.yaml)."""
        return self._reader.message_count

    def messages(self, topics: Collection[str] | None = None) -> Iterator[tuple[str, int, bytes]]:
        """(topic, bag time in ns, CDR bytes) in time order within each storage file; all topics
        when `topics` is None."""
        wanted = [c for c in self._storage_connections if topics is None or c.topic in topics]
        if not wanted:  # rosbags reads every connection when given none
            return
        try:
            for connection, timestamp, data in self._reader.messages(connections=wanted):
                yield connection.topic, timestamp, data
        except ReaderError as error:
            raise BagError(f"cannot read the messages of {self.path}: {error}") from None


def _bag_topics(listed: Sequence[Connection], stored: Sequence[Connection]) -> dict[str, BagTopic]:
    """Topics of metadata.yaml's connections (`listed`) and of the storage files (`stored`)."""
    topics = {}
    for name in dict.fromkeys(c.topic for c in [*listed, *stored]):
        in_metadata = [c for c in listed if c.topic == name]
        in_storage = [c for c in stored if c.topic == name]
        offered = [q for c in in_metadata for q in c.ext.offered_qos_profiles] or [
            q for c in in_storage for q in c.ext.offered_qos_profiles
        ]
        types = dict.fromkeys(c.msgtype for c in [*in_metadata, *in_storage])
        count = sum(c.msgcount for c in in_metadata or in_storage)
        topics[name] = BagTopic(name, tuple(types), count, tuple(offered))
    return topics


# --- QoS ---------------------------------------------------------------------------------------


def _qos_time(ns: int) -> QosTime:
    if ns <= 0 or ns >= _INFINITE_NS:  # unset / infinite: 0 means "default" in every bag version
        return QosTime(0, 0)
    return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)


def qos_to_bag(profile: QoSProfile) -> Qos:
    """An rclpy QoSProfile (e.g. a publisher's offered QoS from the graph) in rosbags' form."""
    return Qos(
        history=QosHistory(int(profile.history)),
        depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability)),
        durability=QosDurability(int(profile.durability)),
        deadline=_qos_time(profile.deadline.nanoseconds),
        lifespan=_qos_time(profile.lifespan.nanoseconds),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=_qos_time(profile.liveliness_lease_duration.nanoseconds),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def _combined_qos(reliabilities: Sequence[Any], durabilities: Sequence[Any], depth: int) -> QoSProfile:
    """Reliable only if every publisher is; transient-local only if every publisher is.

    A reliable reader does not match a best-effort writer, and a transient-local reader does not
    match a volatile one, so these choices receive from every publisher (ros2 bag's own rule).
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliable = bool(reliabilities) and all(r == ReliabilityPolicy.RELIABLE for r in reliabilities)
    latched = bool(durabilities) and all(d == DurabilityPolicy.TRANSIENT_LOCAL for d in durabilities)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def subscription_qos(publishers: Sequence[TopicEndpointInfo], depth: int = 10) -> QoSProfile:
    """A subscription QoS that matches every publisher seen (reliable when none is seen)."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    if not publishers:
        return _combined_qos([ReliabilityPolicy.RELIABLE], [DurabilityPolicy.VOLATILE], depth)
    profiles = [p.qos_profile for p in publishers]
    return _combined_qos([q.reliability for q in profiles], [q.durability for q in profiles], depth)


def qos_from_bag(offered: Sequence[Qos], depth: int = 10) -> QoSProfile | None:
    """A publisher QoS that every recorded subscriber pattern accepts; None when nothing was recorded."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    if not offered:
        return None
    reliability = [
        ReliabilityPolicy.BEST_EFFORT
        if q.reliability == QosReliability.BEST_EFFORT
        else ReliabilityPolicy.RELIABLE
        for q in offered
    ]
    durability = [
        DurabilityPolicy.TRANSIENT_LOCAL
        if q.durability == QosDurability.TRANSIENT_LOCAL
        else DurabilityPolicy.VOLATILE
        for q in offered
    ]
    return _combined_qos(reliability, durability, max([depth, *(q.depth for q in offered)]))


def describe_qos(profile: QoSProfile) -> str:
    """One line: reliability, durability, history/depth and the durations that are set."""
    parts = [
        profile.reliability.name.lower(),
        profile.durability.name.lower(),
        f"{profile.history.name.lower()}({profile.depth})",
    ]
    for name in ("deadline", "lifespan", "liveliness_lease_duration"):
        ns = getattr(profile, name).nanoseconds
        if 0 < ns < _INFINITE_NS:
            parts.append(f"{name}={ns / 1e6:g}ms")
    parts.append(f"liveliness={profile.liveliness.name.lower()}")
    return ", ".join(parts)


# --- live graph ------------------------------------------------------------------------------------


def topic_types(node: Node) -> dict[str, list[str]]:
    """Topic name → type names currently in the graph as seen by `node`."""
    return dict(node.get_topic_names_and_types())


def wait_for_topic_type(node: Node, topic: str, timeout: float) -> str:
    """The single type of `topic` once a publisher of it is in the graph; BagError after `timeout` s.

    Graph queries need no spinning: rmw's discovery thread keeps the graph cache current.
    """
    deadline = time.monotonic() + timeout
    while True:
        types = topic_types(node).get(topic, [])
        if types and node.count_publishers(topic) > 0:
            if len(types) > 1:
                raise BagError(
                    f"{topic} has several types in the graph ({', '.join(types)}); cannot pick one"
                )
            return types[0]
        if time.monotonic() > deadline:
            raise BagError(
                f"no publisher of {topic} appeared within {timeout:g} s "
                "(is its node running, with the same ROS_DOMAIN_ID and discovery range?)"
            )
        time.sleep(0.05)


def subscribe_compatible(
    node: Node, topic: str, msgtype: str, callback: Any, *, depth: int = 10, raw: bool = False
) -> tuple[Any, QoSProfile]:
    """Subscribe to `topic` with a QoS every publisher seen now matches; return (subscription, qos)."""
    qos = subscription_qos(node.get_publishers_info_by_topic(topic), depth)
    return node.create_subscription(import_message(msgtype), topic, callback, qos, raw=raw), qos
