#!/usr/bin/env python3
"""Record live topics into a rosbag2 bag (version 8, playable by `ros2 bag play` on Humble and Jazzy).

Messages are taken as serialized CDR bytes (raw subscriptions, no deserialisation) and stored with
their receive time (system clock, ns). Each topic's type comes from the live graph; its subscription
QoS matches every publisher seen (best effort if any publisher is), and the publishers' offered QoS
is stored in the bag so a player can offer the same. The bag is always closed properly: on Ctrl-C,
SIGTERM, --duration, --max-messages, or an error.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from humanoid_common.allocator import keep_large_buffers
from humanoid_common.bags import (
    BagError,
    add_topic,
    ensure_type,
    import_message,
    open_writer,
    qos_to_bag,
    subscribe_compatible,
    topic_types,
    typestore,
    wait_for_topic_type,
)
from humanoid_common.config import apply_fastdds_profile

# Topics every rclpy node (this recorder included) publishes itself; --all skips them.
OWN_TOPICS = frozenset({"/rosout", "/parameter_events"})
RECORD_DEPTH = 100  # deep enough that a slow disk write does not drop a burst


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("topics", nargs="*", metavar="TOPIC", help="topics to record")
    parser.add_argument(
        "-a", "--all", action="store_true", help="record every topic (also ones appearing later)"
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="bag folder to create (must not exist)"
    )
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="storage format")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--max-messages", type=int, help="stop after this many messages (all topics)")
    parser.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for each topic's publisher (default 10)"
    )
    args = parser.parse_args(argv)
    if bool(args.topics) == args.all:
        parser.error("name the topics to record, or give --all (not both)")
    if args.max_messages is not None and args.max_messages < 1:
        parser.error("--max-messages must be at least 1")
    args.topics = [t if t.startswith("/") else f"/{t}" for t in args.topics]
    return args


class Recorder:
    """Raw subscriptions writing into an open rosbags Writer, counting per topic."""

    def __init__(self, node: Any, writer: Any, store: Any, max_messages: int | None) -> None:
        self.node = node
        self.writer = writer
        self.store = store
        self.max_messages = max_messages
        self.counts: Counter[str] = Counter()
        self.topics: dict[str, str] = {}
        self._subscriptions: list[Any] = []

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def full(self) -> bool:
        return self.max_messages is not None and self.total >= self.max_messages

    def add(self, topic: str, msgtype: str) -> None:
        offered = [qos_to_bag(p.qos_profile) for p in self.node.get_publishers_info_by_topic(topic)]
        connection = add_topic(self.writer, topic, msgtype, self.store, offered)

        def on_message(data: bytes) -> None:
            stamp = time.time_ns()  # first thing: the receive time is what replay reproduces
            if self.full:
                return
            self.writer.write(connection, stamp, data)
            self.counts[topic] += 1

        subscription, qos = subscribe_compatible(
            self.node, topic, msgtype, on_message, depth=RECORD_DEPTH, raw=True
        )
        self._subscriptions.append(subscription)
        self.topics[topic] = msgtype
        print(f"recording {topic} [{msgtype}] ({qos.reliability.name.lower()})", flush=True)

    def add_new_topics(self) -> None:
        """--all: subscribe to topics that appeared since the last look."""
        for topic, types in topic_types(self.node).items():
            if topic in self.topics or topic in OWN_TOPICS or self.node.count_publishers(topic) == 0:
                continue
            if len(types) != 1:
                print(f"skipping {topic}: several types {types}", file=sys.stderr)
                self.topics[topic] = ""
                continue
            try:
                self.add(topic, types[0])
            except BagError as error:
                print(f"skipping {topic}: {error}", file=sys.stderr)
                self.topics[topic] = ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    stop = threading.Event()
    apply_fastdds_profile()
    keep_large_buffers()
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)  # argv is ours, not --ros-args
    node = rclpy.create_node("bag_recorder")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    writer = None
    started = time.monotonic()
    try:
        # Resolve every type before creating the bag: a missing topic leaves no empty bag behind.
        types = {topic: wait_for_topic_type(node, topic, args.wait) for topic in args.topics}
        store = typestore()
        for msgtype in types.values():
            import_message(msgtype)
            ensure_type(store, msgtype)
        for signum in (signal.SIGINT, signal.SIGTERM):  # from here on a signal ends the recording cleanly
            signal.signal(signum, lambda *_: stop.set())
        writer = open_writer(args.output, args.storage)
        writer.open()
        recorder = Recorder(node, writer, store, args.max_messages)
        for topic, msgtype in types.items():
            recorder.add(topic, msgtype)
        started = time.monotonic()
        next_scan = started
        while not stop.is_set() and not recorder.full:
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
            if args.all and time.monotonic() >= next_scan:
                recorder.add_new_topics()
                next_scan = time.monotonic() + 0.5
            executor.spin_once(timeout_sec=0.05)
    except BagError as error:
        print(f"bag_record: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # while waiting for topics: nothing recorded yet
        return 130
    finally:
        if writer is not None and writer.storage is not None:
            writer.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()

    elapsed = time.monotonic() - started
    print(f"wrote {args.output} ({args.storage}): {recorder.total} messages in {elapsed:.1f} s")
    for topic in sorted(t for t, msgtype in recorder.topics.items() if msgtype):
        print(f"  {topic}: {recorder.counts[topic]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
