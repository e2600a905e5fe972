#!/usr/bin/env python3
"""Replay a rosbag2 bag onto live topics with its original timing (a `ros2 bag play` substitute).

Messages are published as the serialized CDR bytes stored in the bag. Each message is due at
start + (t_msg - t_first) / rate on the monotonic clock, so timing errors never accumulate. A topic's
QoS comes from config/qos.yaml when the topic is listed there (by its name in the bag), else from the
QoS its publishers offered when it was recorded, else reliable with depth 10. --clock publishes
rosgraph_msgs/Clock with the bag time for nodes running with use_sim_time.

Any rosbag2 bag plays (metadata versions 4 to 9, sqlite3 and mcap; humanoid_common.bags.BagReader).
Topics whose types are not installed here are skipped with one warning; the rest plays. Exit codes:
0 played, 1 nothing played (the reason is printed), 2 a bad bag, topic or option.
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
from rosgraph_msgs.msg import Clock
from tqdm import tqdm

from humanoid_common.allocator import keep_large_buffers
from humanoid_common.bags import BagError, BagReader, BagTopic, describe_qos, import_message, qos_from_bag
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


class NothingReplayedError(BagError):
    """No message was published; the message says why."""


@dataclass
class Track:
    """One replayed topic: the bag's topic and the publisher of its (possibly remapped) name."""

    source: BagTopic
    topic: str
    publisher: Any


class Player:
    """Publishes a bag's messages on a schedule against the monotonic clock."""

    def __init__(self, node: Any, bag: BagReader, tracks: list[Track], args: argparse.Namespace) -> None:
        self.bag = bag
        self.rate = args.rate
        self.quiet = args.quiet
        self.stop = threading.Event()
        self.by_topic = {t.source.name: t.publisher for t in tracks}
        self.count = sum(t.source.count for t in tracks)
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
            for topic, timestamp, data in self.bag.messages(self.by_topic):
                if published == 0:
                    self.first_ns = self.last_clock = timestamp
                    self.start = self.next_tick = time.monotonic()
                target = self.start + (timestamp - self.first_ns) / (self.rate * 1e9)
                if not self.wait_until(target, timestamp):
                    break
                self.publish_clock(timestamp)
                self.by_topic[topic].publish(bytes(data))
                self.lateness_ms.append((time.monotonic() - target) * 1e3)
                published += 1
                bar.update()
        return published


def _qos_for(topic: str, recorded: list[Any] | None, config: Any) -> QoSProfile:
    if topic in config:
        return config.profile(topic)
    return qos_from_bag(recorded or []) or QoSProfile(depth=10)


def _tracks(node: Any, bag: BagReader, args: argparse.Namespace) -> list[Track]:
    """A publisher for each wanted topic whose type is installed here; one warning for the others."""
    wanted = args.topics or sorted(bag.topics)
    missing = [t for t in wanted if t not in bag.topics]
    if missing:
        raise BagError(
            f"{args.bag} has no topic {', '.join(missing)} (it has {', '.join(sorted(bag.topics))})"
        )
    tracks, unknown = [], []
    for topic in (bag.topics[name] for name in wanted):
        try:
            message = import_message(topic.msgtype)
        except BagError:
            unknown.append(topic)
            continue
        qos = _qos_for(topic.name, list(topic.offered_qos), args.qos)
        name = args.remap.get(topic.name, topic.name)
        publisher = node.create_publisher(message, name, qos)
        print(f"{topic.name} -> {name} [{topic.msgtype}] {describe_qos(qos)}", flush=True)
        tracks.append(Track(topic, name, publisher))
    if unknown:
        listed = ", ".join(
            f"{t.name} [{t.msgtype}] ({t.count} message{'s' * (t.count != 1)})" for t in unknown
        )
        print(
            f"bag_replay: skipping {len(unknown)} topic(s) of types not installed here: {listed}; "
            "install or source the packages that provide them to replay these",
            file=sys.stderr,
            flush=True,
        )
    if not tracks:
        raise NothingReplayedError(f"no topic of {args.bag} has a type installed here")
    return tracks


def _why_nothing(tracks: list[Track], stopped: bool) -> str:
    """Why a replay of `tracks` published no message."""
    if stopped:
        return "stopped before the first message"
    topics = ", ".join(t.source.name for t in tracks)
    listed = sum(t.source.count for t in tracks)
    if listed == 0:
        return f"the bag holds no messages on {topics}"
    return f"the bag's storage gave none of the {listed} messages its metadata lists on {topics}"


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
        with BagReader(args.bag) as bag:
            tracks = _tracks(node, bag, args)
            player = Player(node, bag, tracks, args)
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
            if total == 0:
                raise NothingReplayedError(_why_nothing(tracks, player.stop.is_set()))
    except NothingReplayedError as error:
        print(f"bag_replay: replayed 0 messages: {error}", file=sys.stderr)
        return 1
    except (BagError, OSError) as error:
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
