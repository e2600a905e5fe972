"""Bags as rosbag2 writes them on Humble and Jazzy: read and replayed whole, whatever their quirks.

Each bag is written here and then laid out as rosbag2 leaves it (tools: rosbags' writer, then
metadata.yaml rewritten to the target version), reproducing what made replays of real rosbag2
bags (its own test bags talker, convert_a/b, rewriter_a/b, cdr_test, bag_with_topics_and_service_events)
publish nothing:

- metadata versions 4 and 5 (no files/custom_data/type hash/ros_distro keys), 8 and 9;
- sqlite3 and mcap storage;
- offered-QoS strings that differ between metadata.yaml and the storage (deadline 0/0 in one,
  2147483647/4294967295 in the other), or no QoS in the sqlite3 db at all;
- service-event topics (pkg/srv/Name_Event) and topics of types not installed here
  (rosbag2_interfaces/msg/WriteSplitEvent, a service of an unknown package).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rclpy.serialization import serialize_message
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.metadata import dump_qos_v8, dump_qos_v9
from std_msgs.msg import String
from std_srvs.srv import SetBool_Event, SetBool_Request, SetBool_Response
from test_bags import REPLAY, RawSink, make_detections, pad4, run_to_end

from harness import wait_for
from humanoid_common.bags import (
    STORAGES,
    BagReader,
    DistroWriter,
    add_topic,
    ensure_type,
    open_writer,
    ros_distro,
    typestore,
)
from humanoid_stack.msg import DetectionArray

START_NS = 1_700_000_000_000_000_000
STEP_NS = 10_000_000  # 10 ms between messages
CHATTER = "/bagtest/chatter"
DETECTIONS = "/bagtest/detections"
SET_BOOL_EVENTS = "/bagtest/enable/_service_event"
PROBE_EVENTS = "/bagtest/probe/_service_event"
SPLIT_EVENTS = "/events/write_split"
UNKNOWN_SERVICE = "bagtest_unknown_msgs/srv/Probe_Event"
UNKNOWN_MESSAGE = "rosbag2_interfaces/msg/WriteSplitEvent"  # rosbag2 records it; no wheel has it


def qos(duration: QosTime) -> Qos:
    """A reliable, volatile offer (as rosbag2 records it) with every duration set to `duration`."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=10,
        reliability=QosReliability.RELIABLE,
        durability=QosDurability.VOLATILE,
        deadline=duration,
        lifespan=duration,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=duration,
        avoid_ros_namespace_conventions=False,
    )


UNSET = qos(QosTime(0, 0))
INFINITE_HUMBLE = qos(QosTime(2147483647, 4294967295))  # what Humble's rmw stores in the db
INFINITE_NS = qos(QosTime(9223372036, 854775807))  # convert_a's metadata.yaml


@dataclass(frozen=True)
class Layout:
    """How rosbag2 left a bag: metadata version, storage, and the QoS strings in each place."""

    name: str
    version: int
    storage: str
    listed_qos: Qos  # metadata.yaml's
    stored_qos: Qos | None  # the storage's; None: an empty string in the sqlite3 db
    services: bool = False


LAYOUTS = [
    Layout("humble-v4-sqlite3", 4, "sqlite3", UNSET, INFINITE_HUMBLE),  # talker, cdr_test
    Layout("v4-mcap", 4, "mcap", UNSET, INFINITE_HUMBLE),  # talker (mcap)
    Layout("v5-sqlite3-no-db-qos", 5, "sqlite3", INFINITE_NS, None),  # convert_a/b, rewriter_a/b
    Layout("v5-mcap", 5, "mcap", INFINITE_NS, UNSET),
    Layout("v8-sqlite3-services", 8, "sqlite3", UNSET, UNSET, services=True),
    Layout("v9-mcap-services", 9, "mcap", INFINITE_NS, UNSET, services=True),
]
QOS_QUIRKS = [layout for layout in LAYOUTS if layout.listed_qos != layout.stored_qos]
# Keys rosbag2 added to metadata.yaml in each version (rosbags writes all of them).
ADDED_IN = {5: ["files"], 6: ["custom_data"], 8: ["ros_distro"]}


def set_bool_event(seq: int) -> SetBool_Event:
    event = SetBool_Event(request=[SetBool_Request(data=seq % 2 == 0)])
    event.info.event_type = event.info.REQUEST_RECEIVED
    event.info.sequence_number = seq
    if seq % 2:
        event.response = [SetBool_Response(success=True, message=f"done {seq}")]
    return event


def write_bag(path: Path, layout: Layout) -> list[tuple[str, int, bytes]]:
    """Write `layout`'s bag; the messages it holds (topic, stamp, bytes) in time order."""
    store = typestore()
    stored = [layout.stored_qos or UNSET]
    messages = []
    with DistroWriter(
        path, version=max(8, layout.version), storage_plugin=STORAGES[layout.storage]
    ) as writer:
        connections = {
            CHATTER: add_topic(writer, CHATTER, "std_msgs/msg/String", store, stored),
            DETECTIONS: add_topic(writer, DETECTIONS, "humanoid_stack/msg/DetectionArray", store, stored),
        }
        if layout.services:
            connections[SET_BOOL_EVENTS] = add_topic(
                writer, SET_BOOL_EVENTS, "std_srvs/srv/SetBool_Event", store, stored
            )
            # Unknown here: rosbag2 stores the .srv text and the type hash; the bytes are opaque.
            connections[PROBE_EVENTS] = add_unknown(writer, PROBE_EVENTS, UNKNOWN_SERVICE, stored)
            add_unknown(writer, SPLIT_EVENTS, UNKNOWN_MESSAGE, stored)  # no message: no split happened
        for seq in range(12):
            topic, data = _message(seq, layout.services)
            stamp = START_NS + seq * STEP_NS
            writer.write(connections[topic], stamp, data)
            messages.append((topic, stamp, data))
    as_rosbag2(path, layout)
    return messages


def add_unknown(writer: Writer, topic: str, msgtype: str, qos: list[Qos]) -> Connection:
    """A topic of a type unknown here, stored as rosbag2 does (its definition text and hash)."""
    return writer.add_connection(
        topic, msgtype, msgdef="int32 value\n", rihs01="RIHS01_" + "1" * 64, offered_qos_profiles=qos
    )


def _message(seq: int, services: bool) -> tuple[str, bytes]:
    """The seq-th message of a test bag: chatter, detections and (with services) service events."""
    kind = seq % (4 if services else 2)
    if kind == 0:
        return CHATTER, serialize_message(String(data=f"msg {seq}"))
    if kind == 1:
        return DETECTIONS, serialize_message(make_detections(seq))
    if kind == 2:
        return SET_BOOL_EVENTS, serialize_message(set_bool_event(seq))
    return PROBE_EVENTS, seq.to_bytes(4, "little") + b"probe"


def as_rosbag2(path: Path, layout: Layout) -> None:
    """Rewrite metadata.yaml (and the sqlite3 db's QoS) as rosbag2 of `layout.version` leaves them."""
    metadata = path / "metadata.yaml"
    document = yaml.safe_load(metadata.read_text())
    info = document["rosbag2_bagfile_information"]
    info["version"] = layout.version
    for version, keys in ADDED_IN.items():
        if layout.version < version:
            for key in keys:
                del info[key]
    dump = dump_qos_v9 if layout.version >= 9 else dump_qos_v8
    for topic in info["topics_with_message_count"]:
        if layout.version < 7:
            del topic["topic_metadata"]["type_description_hash"]
        topic["topic_metadata"]["offered_qos_profiles"] = dump([layout.listed_qos])
    metadata.write_text(yaml.safe_dump(document, sort_keys=False))
    if layout.stored_qos is None:
        (db,) = path.glob("*.db3")
        with sqlite3.connect(db) as connection:
            connection.execute("UPDATE topics SET offered_qos_profiles = ''")
        connection.close()


def known(messages: list[tuple[str, int, bytes]]) -> list[tuple[str, int, bytes]]:
    """The messages of types installed here (what a replay publishes)."""
    return [m for m in messages if m[0] != PROBE_EVENTS]


# --- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", QOS_QUIRKS, ids=lambda layout: layout.name)
def test_layout_reproduces_the_qos_quirk(tmp_path, layout):
    """rosbags' Reader matches metadata.yaml's topics to the storage's by QoS string: 0 messages."""
    messages = write_bag(tmp_path / "bag", layout)
    with Reader(tmp_path / "bag") as reader:
        assert reader.message_count == len(messages)
        assert list(reader.messages()) == []


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_reader_gives_every_message(tmp_path, layout):
    messages = write_bag(tmp_path / "bag", layout)
    info = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == layout.version
    with BagReader(tmp_path / "bag") as bag:
        assert [(t, s, bytes(d)) for t, s, d in bag.messages()] == messages
        assert [(t, s, bytes(d)) for t, s, d in bag.messages([CHATTER])] == [
            m for m in messages if m[0] == CHATTER
        ]
        services = [SET_BOOL_EVENTS, PROBE_EVENTS, SPLIT_EVENTS] if layout.services else []
        assert {name: topic.count for name, topic in bag.topics.items()} == {
            topic: sum(m[0] == topic for m in messages) for topic in [CHATTER, DETECTIONS, *services]
        }
        assert all(topic.offered_qos == (layout.listed_qos,) for topic in bag.topics.values())
    if layout.services:
        store = typestore()
        event = store.deserialize_cdr(messages[2][2], "std_srvs/srv/SetBool_Event")
        assert (event.info.sequence_number, event.request[0].data, event.response) == (2, True, [])


# --- writing ---------------------------------------------------------------------------------------


def test_service_types_register_from_their_idl():
    """pkg/srv/Name_Event is found under share/pkg/srv (not msg/) and decodes rclpy's bytes."""
    store = typestore()
    ensure_type(store, "std_srvs/srv/SetBool_Event")
    event = store.deserialize_cdr(serialize_message(set_bool_event(3)), "std_srvs/srv/SetBool_Event")
    assert event.response[0].message == "done 3"
    assert {"std_srvs/srv/SetBool_Request", "std_srvs/srv/SetBool_Response"} <= set(store.fielddefs)


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_recorded_bags_name_the_ros_distro(tmp_path, monkeypatch, storage):
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    assert ros_distro() == "jazzy"  # the installed ros-jazzy-rclpy wheel
    monkeypatch.setenv("ROS_DISTRO", "humble")
    with open_writer(tmp_path / "bag", storage) as writer:
        add_topic(writer, CHATTER, "std_msgs/msg/String", typestore(), [UNSET])
    text = (tmp_path / "bag" / "metadata.yaml").read_text()
    assert yaml.safe_load(text)["rosbag2_bagfile_information"]["ros_distro"] == "humble"
    (storage_file,) = (tmp_path / "bag").glob("bag.*")
    storage_bytes = storage_file.read_bytes()
    assert b'ros_distro: "humble"' in storage_bytes  # the storage's copy of metadata.yaml
    assert b"rosbags" not in storage_bytes.replace(b"rosbags-", b"")  # mcap's library field may say rosbags-x
    if storage == "sqlite3":
        with sqlite3.connect(storage_file) as connection:
            assert connection.execute("SELECT ros_distro FROM schema").fetchall() == [("humble",)]
        connection.close()


# --- replay ----------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_replay_publishes_every_message_of_installed_types(ros, processes, tmp_path, layout):
    messages = write_bag(tmp_path / "bag", layout)
    topics = {CHATTER: String, DETECTIONS: DetectionArray}
    if layout.services:
        topics[SET_BOOL_EVENTS] = SetBool_Event
    sink = RawSink(ros, topics)
    args = [REPLAY, str(tmp_path / "bag"), "--wait-subscribers", "1", "-q", "--rate", "5"]
    log = run_to_end(processes, args, "replay")
    expected = known(messages)
    wait_for(lambda: len(sink.arrivals) >= len(expected), 5, "all replayed messages")
    assert f"replayed {len(expected)} messages" in log, log
    assert [(a.topic, a.data) for a in sink.in_order()] == [(t, pad4(d)) for t, _, d in expected]
    warnings = [line for line in log.splitlines() if "skipping" in line]
    if layout.services:
        assert len(warnings) == 1, log
        assert f"{PROBE_EVENTS} [{UNKNOWN_SERVICE}] (3 messages)" in warnings[0]
        assert f"{SPLIT_EVENTS} [{UNKNOWN_MESSAGE}] (0 messages)" in warnings[0]
    else:
        assert warnings == [], log


def only_unknown_types(path: Path) -> None:
    with open_writer(path) as writer:
        writer.write(add_unknown(writer, PROBE_EVENTS, UNKNOWN_SERVICE, [UNSET]), START_NS, b"\0\1\0\0probe")


def no_messages(path: Path) -> None:
    with open_writer(path) as writer:
        add_topic(writer, CHATTER, "std_msgs/msg/String", typestore(), [UNSET])


@pytest.mark.integration
@pytest.mark.parametrize(
    ("make_bag", "reason"),
    [
        (only_unknown_types, "has a type installed here"),
        (no_messages, f"the bag holds no messages on {CHATTER}"),
    ],
    ids=["unknown-types", "empty"],
)
def test_replaying_nothing_is_an_error(processes, tmp_path, make_bag, reason):
    make_bag(tmp_path / "bag")
    proc = processes.start([REPLAY, str(tmp_path / "bag"), "-q"], "replay")
    assert proc.wait(timeout=20) == 1, processes.log(proc)
    assert "bag_replay: replayed 0 messages: " in processes.log(proc)
    assert reason in processes.log(proc), processes.log(proc)
