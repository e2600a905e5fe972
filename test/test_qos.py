"""QoS file loading and validation, and deadline / incompatibility events between real nodes."""

from __future__ import annotations

import textwrap
import time

import pytest
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from harness import wait_for
from humanoid_common.diagnostics import ERROR
from humanoid_common.qos import QosConfigError, load_qos_config, parse_qos_config
from humanoid_common.validation import InvalidMessageError
from humanoid_common.watch import WatchedPublisher, WatchedSubscription, inputs_status


def write(tmp_path, text: str):
    path = tmp_path / "qos.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_file_loads_and_covers_the_topic_graph():
    qos = load_qos_config()
    for topic in (
        "/camera/image_raw",
        "/joint_states",
        "/perception/detections",
        "/memory/people",
        "/memory/events",
        "/vla/joint_command",
        "/diagnostics",
    ):
        assert topic in qos, topic
    camera = qos.profile("/camera/image_raw")
    assert camera.reliability == ReliabilityPolicy.BEST_EFFORT
    assert camera.depth == 1
    assert camera.deadline == Duration(seconds=0.1)


def test_unknown_topic_gets_defaults(tmp_path):
    qos = load_qos_config(write(tmp_path, "defaults: {depth: 3}\ntopics: {/a: {}}\n"))
    assert qos["/not/listed"].depth == 3
    assert "/not/listed" not in qos


def test_external_subscription_requests_no_dds_deadline():
    qos = load_qos_config()
    assert qos["/camera/image_raw"].external
    publisher_side = qos.profile("/camera/image_raw")
    subscriber_side = qos.profile("/camera/image_raw", for_subscription=True)
    assert publisher_side.deadline == Duration(seconds=0.1)
    assert subscriber_side.deadline == Duration()
    assert qos.profile("/perception/detections", for_subscription=True).deadline == Duration(seconds=0.5)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("topics: {/a: {reliabilty: reliable}}", ["topics./a.reliabilty", "unknown QoS field"]),
        ("topics: {/a: {reliability: sometimes}}", ["topics./a.reliability", "'sometimes'", "best_effort"]),
        ("topics: {/a: {depth: 0}}", ["topics./a.depth", "integer >= 1"]),
        ("topics: {/a: {depth: true}}", ["topics./a.depth"]),
        ("topics: {/a: {deadline_ms: -5}}", ["topics./a.deadline_ms", "milliseconds >= 0"]),
        ("topics: {/a: {lifespan_ms: soon}}", ["topics./a.lifespan_ms"]),
        ("topics: {/a: {external: yes please}}", ["topics./a.external", "true or false"]),
        ("topics: {camera: {}}", ["topics.camera", "absolute names"]),
        ("defaults: {durability: forever}\ntopics: {/a: {}}", ["defaults.durability", "transient_local"]),
        ("topics: {/a: [1, 2]}", ["topics./a", "mapping"]),
        ("topicz: {/a: {}}", ["unknown top-level key", "topicz"]),
        ("topics: {}", ["'topics' must be a non-empty mapping"]),
        ("- just a list", ["expected a mapping"]),
        ("topics: {/a: {depth: 1}", ["not valid YAML"]),
    ],
)
def test_malformed_file_names_the_key(tmp_path, text, names):
    path = write(tmp_path, text)
    with pytest.raises(QosConfigError) as error:
        load_qos_config(path)
    message = str(error.value)
    assert str(path) in message
    for name in names:
        assert name in message


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(QosConfigError, match="cannot read QoS file"):
        load_qos_config(tmp_path / "absent.yaml")


def test_parse_is_plain_data():
    parsed = parse_qos_config({"topics": {"/x": {"deadline_ms": 20, "reliability": "best_effort"}}})
    assert parsed["/x"].deadline_ms == 20.0
    assert parsed["/x"].reliability == "best_effort"
    assert parsed[""].reliability == "reliable"


@pytest.mark.integration
def test_dds_deadline_missed_fires_when_publisher_stops(ros, tmp_path):
    qos = load_qos_config(write(tmp_path, "topics: {/qos_test/ours: {deadline_ms: 50}}"))
    talker, listener = ros.node("talker"), ros.node("listener")
    missed = []
    received = []
    watched = WatchedSubscription(
        listener, String, "/qos_test/ours", received.append, qos, on_deadline_missed=missed.append
    )
    publisher = WatchedPublisher(talker, String, "/qos_test/ours", qos)
    wait_for(lambda: publisher.publisher.get_subscription_count() == 1, 10, "the subscription to match")
    for i in range(10):  # steady 50 Hz: no misses
        publisher.publish(String(data=str(i)))
        time.sleep(0.02)
    wait_for(lambda: len(received) >= 10, 5, "ten messages")
    assert watched.health.deadline_misses == 0
    # The publisher stops: both ends see the deadline pass, period after period.
    wait_for(lambda: watched.health.deadline_misses >= 3, 5, "three deadline misses on the subscription")
    assert missed
    assert missed[-1] is watched.health
    assert publisher.health.deadline_misses >= 1
    # It resumes: the misses stop growing.
    before = watched.health.deadline_misses
    for i in range(10):
        publisher.publish(String(data=str(i)))
        time.sleep(0.02)
    assert watched.health.deadline_misses - before <= 1


@pytest.mark.integration
def test_external_topic_is_watched_locally_and_matches_a_plain_driver(ros, tmp_path):
    qos = load_qos_config(write(tmp_path, "topics: {/qos_test/driver: {deadline_ms: 50, external: true}}"))
    driver, listener = ros.node("driver"), ros.node("listener")
    received = []
    watched = WatchedSubscription(listener, String, "/qos_test/driver", received.append, qos)
    # A driver with default QoS (no deadline offered) still delivers to the watched subscription.
    publisher = driver.create_publisher(String, "/qos_test/driver", 10)
    wait_for(lambda: publisher.get_subscription_count() == 1, 10, "the subscription to match")
    time.sleep(0.2)  # silence before the first message is no miss
    assert watched.health.deadline_misses == 0

    def send(count: int) -> None:
        for i in range(count):  # every 20 ms, within the 50 ms deadline
            publisher.publish(String(data=str(i)))
            time.sleep(0.02)

    send(10)
    wait_for(lambda: len(received) == 10, 5, "ten messages")
    assert watched.health.deadline_misses == 0
    assert watched.age_s() < 0.5
    wait_for(lambda: watched.health.deadline_misses >= 3, 5, "locally detected deadline misses")
    assert watched.age_s() >= 0.15
    # The driver resumes: the misses stop growing (one may land while the first message travels).
    before = watched.health.deadline_misses
    send(10)
    wait_for(lambda: len(received) == 20, 5, "ten more messages")
    assert watched.health.deadline_misses - before <= 1


@pytest.mark.integration
def test_incompatible_publisher_is_reported(ros, tmp_path, capfd):
    qos = load_qos_config(write(tmp_path, "topics: {/qos_test/mismatch: {reliability: reliable}}"))
    listener, talker = ros.node("listener"), ros.node("talker")
    watched = WatchedSubscription(listener, String, "/qos_test/mismatch", lambda _: None, qos)
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    talker.create_publisher(String, "/qos_test/mismatch", best_effort)
    wait_for(lambda: watched.health.incompatible_qos >= 1, 10, "an incompatible-QoS event")
    captured = capfd.readouterr()
    logged = captured.err + captured.out
    assert "'/qos_test/mismatch': a publisher offers QoS incompatible" in logged
    assert "RELIABILITY" in logged


@pytest.mark.integration
def test_refused_and_failing_messages_are_dropped_counted_logged_and_the_node_goes_on(ros, tmp_path, capfd):
    """A callback that refuses a message (InvalidMessageError) or fails on one (a bug) costs only that
    message: both are counted and logged (a warning and an error of one node's logger: rclpy ties a
    severity to the logging line), later messages arrive, and only accepted ones refresh the age."""
    qos = load_qos_config(write(tmp_path, "topics: {/qos_test/inputs: {reliability: reliable}}"))
    listener, talker = ros.node("listener"), ros.node("talker")
    accepted = []

    def callback(msg: String) -> None:
        if msg.data == "bad":
            raise InvalidMessageError("a bad one")
        if msg.data == "bug":
            raise RuntimeError("a bug")
        accepted.append(msg.data)

    watched = WatchedSubscription(listener, String, "/qos_test/inputs", callback, qos)
    publisher = talker.create_publisher(String, "/qos_test/inputs", 10)
    wait_for(lambda: publisher.get_subscription_count() == 1, 10, "the subscription to match")
    for data in ("ok", "bad", "bug", "bad", "bug", "ok"):
        publisher.publish(String(data=data))
    wait_for(lambda: len(accepted) == 2, 10, "the valid messages around the bad ones")
    health = watched.health
    assert (health.messages, health.dropped, health.callback_errors) == (2, 2, 2)
    logged = "".join(capfd.readouterr())
    assert "'/qos_test/inputs': dropped a message: a bad one" in logged
    assert "the callback failed on a message, which was dropped: RuntimeError: a bug" in logged
    level, _, values = inputs_status(lambda: [watched])()
    assert level == ERROR
    assert values["dropped./qos_test/inputs"] == 2
