"""Every message and service type crosses a process boundary over Fast DDS unchanged."""

from __future__ import annotations

import random

import pytest
from messages import ECHO_QOS, MESSAGE_NAMES, SERVICE_NAMES, interface, populated

from harness import wait_for

SEED = 7


def test_the_interfaces_are_the_designed_ones():
    assert MESSAGE_NAMES == [
        "ActionChunk",
        "Detection",
        "DetectionArray",
        "Keypoint2D",
        "MemoryEvent",
        "Person",
        "PersonArray",
        "PersonInfo",
    ]
    assert SERVICE_NAMES == ["ConfirmIdentity", "Enroll", "Forget", "ListPeople"]


def test_filled_messages_differ_from_defaults():
    for name in MESSAGE_NAMES:
        msg_class = interface("msg", name)
        assert populated(msg_class, random.Random(1)) != msg_class(), name
        assert populated(msg_class, random.Random(1)) == populated(msg_class, random.Random(1)), name


@pytest.mark.integration
def test_round_trip_between_processes(ros, processes):
    relay = processes.start(["test/roundtrip_relay.py", str(SEED)], "relay")
    node = ros.node("roundtrip_test")
    received = {
        name: ros.collect(interface("msg", name), f"/roundtrip/out/{name}", ECHO_QOS)
        for name in MESSAGE_NAMES
    }
    publishers = {
        name: node.create_publisher(interface("msg", name), f"/roundtrip/in/{name}", 10)
        for name in MESSAGE_NAMES
    }
    wait_for(
        lambda: all(p.get_subscription_count() for p in publishers.values()) or relay.poll() is not None,
        20,
        "the relay's subscriptions",
    )
    assert relay.poll() is None, processes.log(relay)
    sent = {}
    for name, publisher in publishers.items():
        sent[name] = populated(interface("msg", name), random.Random(f"{SEED}-{name}"))
        publisher.publish(sent[name])
    wait_for(lambda: all(received.values()), 10, "every message type back from the relay")
    for name in MESSAGE_NAMES:
        assert received[name][0] == sent[name], name

    # The graph names our types as humanoid_stack/msg/...
    types = dict(node.get_topic_names_and_types())
    for name in MESSAGE_NAMES:
        assert types[f"/roundtrip/in/{name}"] == [f"humanoid_stack/msg/{name}"]

    for name in SERVICE_NAMES:
        srv = interface("srv", name)
        client = node.create_client(srv, f"/roundtrip/{name}")
        assert client.wait_for_service(timeout_sec=10), name
        rng = random.Random(f"{SEED}-{name}")
        request, expected = populated(srv.Request, rng), populated(srv.Response, rng)
        future = client.call_async(request)
        wait_for(future.done, 10, f"the {name} response")
        assert future.result() == expected, name
