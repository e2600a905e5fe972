#!/usr/bin/env python3
"""Replay a rosbag2 bag onto live topics with its original timing (a `ros2 bag play` substitute).

Messages are published as the serialized CDR bytes stored in the bag. Each message is due at
start + (t_msg - t_first) / rate on the monotonic clock, so timing errors never accumulate. A topic's
QoS comes from config/qos.yaml when the topic is listed there (by its name in the bag), else from the
QoS its publishers offered when it was recorded, else reliable with depth 10. --clock publishes
rosgraph_msgs/Clock with the bag time for nodes running with use_sim_time.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosbags.rosbag2 import Reader, ReaderError
from rosgraph_msgs.msg import Clock
from tqdm import tqdm

from humanoid_common.allocator import keep_large_buffers
from humanoid_common.bags import BagError, describe_qos, import_message, qos_from_bag
from humanoid_common.config import apply_fastdds_profile
from humanoid_common.qos import QosConfigError, load_qos_config

CLOCK_TOPIC = "/clock"
SETTLE_S = 0.2  # after subscribers are matched, before the first message
SPIN_S = 0.0005  # busy-wait this long before a message is due instead of sleeping


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bag", type=Path, help="bag folder (with metadata.yaml)")
    parser.add_argument("-r", "--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    parser.add_argument("-l", "--loop", action="store_true", help="play the bag again and again")
    parser.add_argument(
        "--clock",
        type=float,
        nargs="?",
        const=100.0,
        metavar="HZ",
        help="publish /clock with the bag time at HZ (default 100) and before every message",
    )
    parser.add_argument("--topics", nargs="+", metavar="TOPIC", help="replay only these topics (bag names)")
    parser.add_argument(
        "--start-delay", type=float, default=0.0, metavar="S", help="wait S seconds before playing"
    )
    parser.add_argument(
        "--remap",
        action="append",
        default=[],
        metavar="OLD:=NEW",
        help="publish topic OLD as NEW (repeatable)",
    )
    parser.add_argument(
        "--wait-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="before playing, wait until every topic has N matched subscribers (default 0: do not wait)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="longest wait for subscribers (default 10)",
    )
    parser.add_argument("--qos-file", type=Path, help="QoS file instead of config/qos.yaml")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    if args.clock is not None and args.clock <= 0:
        parser.error("--clock HZ must be positive")
    if args.topics:
        args.topics = [_absolute(t) for t in args.topics]
    try:
        args.remap = dict(_remap_rule(rule) for rule in args.remap)
    except ValueError as error:
        parser.error(str(error))
    return args


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else f"/{topic}"


def _remap_rule(rule: str) -> tuple[str, str]:
    old, sep, new = rule.partition(":=")
    if not sep or not old or not new:
        raise ValueError(f"--remap {rule!r}: expected OLD:=NEW")
    return _absolute(old), _absolute(new)


def _stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


@dataclass
class Track:
    """One replayed topic: its publisher and the bag connections feeding it."""

    topic: str
    publisher: Any
    connections: list[Any]


class Player:
    """Publishes a bag's messages on a schedule against the monotonic clock."""

    def __init__(self, node: Any, reader: Reader, tracks: list[Track], args: argparse.Namespace) -> None:
        self.reader = reader
        self.rate = args.rate
        self.quiet = args.quiet
        self.stop = threading.Event()
        self.by_connection = {c.id: t.publisher for t in tracks for c in t.connections}
        self.connections = [c for t in tracks for c in t.connections]
        self.count = sum(c.msgcount for c in self.connections)
        self.clock_pub = None
        self.clock_period = 0.0
        if args.clock is not None:
            self.clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, _qos_for(CLOCK_TOPIC, None, args.qos))
            self.clock_period = 1.0 / args.clock
        # Bag time at the monotonic instant `self.start`; set per pass.
        self.start = 0.0
        self.first_ns = 0
        self.next_tick = 0.0
        self.last_clock = 0
        self.lateness_ms: deque[float] = deque(maxlen=100_000)  # publish time minus due time

    def bag_time(self, now: float) -> int:
        return self.first_ns + round((now - self.start) * self.rate * 1e9)

    def publish_clock(self, bag_ns: int) -> None:
        """Publish /clock, never going backwards within a pass."""
        if self.clock_pub is not None:
            self.last_clock = max(bag_ns, self.last_clock)
            self.clock_pub.publish(Clock(clock=_stamp(self.last_clock)))

    def wait_until(self, target: float, target_ns: int) -> bool:
        """Sleep until monotonic `target` (bag time `target_ns`), publishing clock ticks meanwhile.

        Returns False when stopped. A tick never runs ahead of the message that is due next.
        """
        while not self.stop.is_set():
            now = time.monotonic()
            if self.clock_pub is not None and self.next_tick <= min(now, target):
                self.publish_clock(min(self.bag_time(now), target_ns))
                self.next_tick += self.clock_period
                if self.next_tick <= now:  # after a stall: skip the missed ticks, do not burst them
                    self.next_tick = now + self.clock_period
                continue
            if now >= target:
                return True
            wake = min(target, self.next_tick) if self.clock_pub is not None else target
            if wake - now > SPIN_S:
                time.sleep(min(wake - now - SPIN_S, 0.05))
            # else: spin through the last moment; a sleep would wake ~0.2 ms (median) too late
        return False

    def lateness_summary(self) -> str:
        late = sorted(self.lateness_ms)
        p95 = late[round(0.95 * (len(late) - 1))]
        return (
            f"publish lateness: median {late[len(late) // 2]:.2f} ms, p95 {p95:.2f} ms, max {late[-1]:.2f} ms"
        )

    def play_once(self, number: int) -> int:
        """One pass through the bag; returns the number of messages published."""
        published = 0
        bar = tqdm(
            total=self.count,
            unit="msg",
            desc=f"pass {number}" if number > 1 else "replay",
            disable=self.quiet,
            file=sys.stderr,
            mininterval=0.5,
        )
        with bar:
            for connection, timestamp, data in self.reader.messages(connections=self.connections):
                if published == 0:
                    self.first_ns = self.last_clock = timestamp
                    self.start = self.next_tick = time.monotonic()
                target = self.start + (timestamp - self.first_ns) / (self.rate * 1e9)
                if not self.wait_until(target, timestamp):
                    break
                self.publish_clock(timestamp)
                self.by_connection[connection.id].publish(bytes(data))
                self.lateness_ms.append((time.monotonic() - target) * 1e3)
                published += 1
                bar.update()
        return published


def _qos_for(topic: str, recorded: list[Any] | None, config: Any) -> QoSProfile:
    if topic in config:
        return config.profile(topic)
    return qos_from_bag(recorded or []) or QoSProfile(depth=10)


def _tracks(node: Any, reader: Reader, args: argparse.Namespace) -> list[Track]:
    by_topic: dict[str, list[Any]] = {}
    for connection in reader.connections:
        by_topic.setdefault(connection.topic, []).append(connection)
    wanted = args.topics or sorted(by_topic)
    missing = [t for t in wanted if t not in by_topic]
    if missing:
        raise BagError(f"{args.bag} has no topic {', '.join(missing)} (it has {', '.join(sorted(by_topic))})")
    tracks = []
    for topic in wanted:
        connections = by_topic[topic]
        types = {c.msgtype for c in connections}
        if len(types) != 1:
            raise BagError(f"{topic} has several types in the bag ({', '.join(sorted(types))})")
        offered = [q for c in connections for q in c.ext.offered_qos_profiles]
        qos = _qos_for(topic, offered, args.qos)
        name = args.remap.get(topic, topic)
        publisher = node.create_publisher(import_message(types.pop()), name, qos)
        print(f"{topic} -> {name} [{connections[0].msgtype}] {describe_qos(qos)}", flush=True)
        tracks.append(Track(name, publisher, connections))
    return tracks


def _wait_for_subscribers(tracks: list[Track], needed: int, timeout: float, stop: threading.Event) -> None:
    """Wait (bounded) until each publisher has `needed` matched subscriptions."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        short = [t.topic for t in tracks if t.publisher.get_subscription_count() < needed]
        if not short:
            # The writer has matched; give the reader side a moment to match the writer too, or a
            # best-effort reader drops the first samples as coming from an unknown writer.
            stop.wait(SETTLE_S)
            return
        if time.monotonic() > deadline:
            print(
                f"bag_replay: fewer than {needed} subscriber(s) on {', '.join(short)}; playing anyway",
                file=sys.stderr,
            )
            return
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.qos = load_qos_config(args.qos_file)
    except QosConfigError as error:
        print(f"bag_replay: {error}", file=sys.stderr)
        return 2

    apply_fastdds_profile()
    keep_large_buffers()
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)  # argv is ours, not --ros-args
    node = rclpy.create_node("bag_player")
    try:
        with Reader(args.bag) as reader:
            tracks = _tracks(node, reader, args)
            player = Player(node, reader, tracks, args)
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: player.stop.set())
            if args.wait_subscribers > 0:
                _wait_for_subscribers(tracks, args.wait_subscribers, args.wait_timeout, player.stop)
            player.stop.wait(args.start_delay)
            total, passes = 0, 0
            while not player.stop.is_set():
                passes += 1
                published = player.play_once(passes)
                total += published
                if not args.loop or published == 0:
                    break
            for publisher in [t.publisher for t in tracks] + [p for p in [player.clock_pub] if p]:
                if publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
                    publisher.wait_for_all_acked(Duration(seconds=2))  # the last messages arrive
    except (BagError, ReaderError, OSError) as error:
        print(f"bag_replay: {error}", file=sys.stderr)
        return 2
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"replayed {total} messages in {passes} pass(es)")
    if player.lateness_ms:
        print(player.lateness_summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
