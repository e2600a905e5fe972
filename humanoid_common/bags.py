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

Functions that talk to a live ROS graph import rclpy lazily: converting a video to a bag needs no
ROS runtime.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
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


def store_for_distro(distro: str | None = None) -> Stores:
    """The rosbags store of a ROS 2 distribution name (default: $ROS_DISTRO, else Jazzy)."""
    distro = (distro or os.environ.get("ROS_DISTRO") or "").strip().lower()
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
    """Register `msgtype` (and what it uses) from installed .msg files if the store lacks it."""
    msgtype = normalize_type(msgtype)
    if msgtype in store.fielddefs:
        return
    package, _, name = msgtype.split("/")
    for share in _share_dirs(package):
        path = share / "msg" / f"{name}.msg"
        if path.is_file():
            found = get_types_from_msg(path.read_text(), msgtype)
            store.register(found)
            for dependency in _referenced_types(found[msgtype]):
                ensure_type(store, dependency)
            return
    raise BagError(
        f"no definition of {msgtype}: neither the typestore nor share/{package}/msg/{name}.msg "
        "of any ament prefix has it (source the workspace that provides it)"
    )


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


def open_writer(path: str | Path, storage: str = "sqlite3") -> Writer:
    """A rosbags Writer for a new bag (format version 8, see the module doc), not yet opened.

    Use it as a context manager, or call open() and close() in a finally so the bag is complete.
    """
    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r} (expected one of {', '.join(STORAGES)})")
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} exists already; choose a new output folder")
    return Writer(path, version=BAG_VERSION, storage_plugin=STORAGES[storage])


def add_topic(writer: Writer, topic: str, msgtype: str, store: Typestore, qos: Sequence[Qos] = ()) -> Any:
    """Add a connection for `topic`, registering `msgtype` first if needed; return the connection."""
    msgtype = normalize_type(msgtype)
    ensure_type(store, msgtype)
    return writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=list(qos))


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
