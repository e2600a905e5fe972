#!/usr/bin/env python3
"""Inspect live topics without ros2cli: list, echo, hz, info (a small `ros2 topic` substitute).

Types come from the graph; subscriptions pick a QoS every publisher matches (best effort if any
publisher is), so a best-effort camera is heard as well as a reliable topic.
"""

from __future__ import annotations

import argparse
import array
import itertools
import signal
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from humanoid_common.bags import (
    BagError,
    describe_qos,
    subscribe_compatible,
    topic_types,
    wait_for_topic_type,
)
from humanoid_common.config import apply_fastdds_profile

ARRAY_ITEMS = 16  # echo shows this many items of a long array, then the count of the rest
_SEQUENCES = (list, tuple, array.array, np.ndarray, bytes, bytearray)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="topics in the graph")
    listing.add_argument("-t", "--show-types", action="store_true", help="show each topic's type")

    echo = commands.add_parser("echo", help="print messages of a topic")
    echo.add_argument("topic")
    count = echo.add_mutually_exclusive_group()
    count.add_argument(
        "--once", action="store_const", const=1, dest="count", help="print one message and exit"
    )
    count.add_argument("-n", type=int, dest="count", help="print N messages and exit")
    echo.add_argument("--no-arr", action="store_true", help="show arrays only by type and length")

    hz = commands.add_parser("hz", help="measure the publishing rate of a topic")
    hz.add_argument("topic")
    hz.add_argument("--window", type=int, default=10000, help="periods in the statistics (default 10000)")
    hz.add_argument("--duration", type=float, help="measure this many seconds, print the result and exit")

    info = commands.add_parser("info", help="type, publishers and subscribers of a topic")
    info.add_argument("topic")
    info.add_argument("-v", "--verbose", action="store_true", help="each endpoint's node and QoS")

    # A snapshot of the graph: discovery of other processes' endpoints takes up to ~2.5 s here
    # (measured with Fast DDS on one host), so list and info wait that long before looking.
    for sub in (listing, info):
        sub.add_argument(
            "--spin-time", type=float, default=3.0, help="seconds of discovery first (default 3)"
        )
    for sub in (echo, hz, info):
        sub.add_argument(
            "--timeout", type=float, default=5.0, help="seconds to wait for the topic (default 5)"
        )
    args = parser.parse_args(argv)
    if getattr(args, "count", None) is not None and args.count < 1:
        parser.error("-n must be at least 1")
    if getattr(args, "window", 2) < 2:
        parser.error("--window must be at least 2")
    if hasattr(args, "topic") and not args.topic.startswith("/"):
        args.topic = f"/{args.topic}"
    return args


# --- formatting ------------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if value == "" or value != value.strip() or ":" in value else value
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def format_message(msg: Any, *, no_arr: bool = False, indent: int = 0) -> list[str]:
    """YAML-like lines of a message's fields (nested messages indented, long arrays truncated)."""
    pad = "  " * indent
    lines = []
    for name, field_type in msg.get_fields_and_field_types().items():
        value = getattr(msg, name)
        if hasattr(value, "get_fields_and_field_types"):
            lines.append(f"{pad}{name}:")
            lines += format_message(value, no_arr=no_arr, indent=indent + 1)
        elif isinstance(value, _SEQUENCES):
            lines += _format_sequence(name, field_type, value, no_arr, pad, indent)
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}")
    return lines


def _format_sequence(
    name: str, field_type: str, value: Any, no_arr: bool, pad: str, indent: int
) -> list[str]:
    if no_arr:
        return [f"{pad}{name}: '<{field_type}, length: {len(value)}>'"]
    if len(value) == 0:
        return [f"{pad}{name}: []"]
    if hasattr(value[0], "get_fields_and_field_types"):  # YAML block list, items at the key's indent
        lines = [f"{pad}{name}:"]
        for item in value[:ARRAY_ITEMS]:
            nested = format_message(item, no_arr=no_arr, indent=indent + 1) or [f"{pad}  {{}}"]
            lines += [f"{pad}- {nested[0][len(pad) + 2 :]}", *nested[1:]]
        if len(value) > ARRAY_ITEMS:
            lines.append(f"{pad}- '... {len(value) - ARRAY_ITEMS} more'")
        return lines
    items = value.tolist() if isinstance(value, np.ndarray) else list(value)
    shown = ", ".join(_scalar(v) for v in items[:ARRAY_ITEMS])
    more = f", '... {len(items) - ARRAY_ITEMS} more'" if len(items) > ARRAY_ITEMS else ""
    return [f"{pad}{name}: [{shown}{more}]"]


def period_stats(stamps: list[float]) -> dict[str, float]:
    """Rate and period statistics of monotonic arrival times (at least two)."""
    periods = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "rate": len(periods) / (stamps[-1] - stamps[0]) if stamps[-1] > stamps[0] else float("inf"),
        "min": min(periods),
        "max": max(periods),
        "std": statistics.pstdev(periods),
        "window": len(stamps),
    }


# --- commands --------------------------------------------------------------------------------------


def _spin_until(
    executor: Any, stop: threading.Event, done: Callable[[], bool], seconds: float | None
) -> None:
    deadline = None if seconds is None else time.monotonic() + seconds
    while not stop.is_set() and not done():
        if deadline is not None and time.monotonic() >= deadline:
            return
        executor.spin_once(timeout_sec=0.05)


def cmd_list(node: Any, args: argparse.Namespace, stop: threading.Event) -> int:
    stop.wait(args.spin_time)
    for topic, types in sorted(topic_types(node).items()):
        print(f"{topic} [{', '.join(types)}]" if args.show_types else topic)
    return 0


def cmd_echo(node: Any, args: argparse.Namespace, stop: threading.Event, executor: Any) -> int:
    msgtype = wait_for_topic_type(node, args.topic, args.timeout)
    printed = 0

    def on_message(msg: Any) -> None:
        nonlocal printed
        if args.count is not None and printed >= args.count:
            return
        print("\n".join([*format_message(msg, no_arr=args.no_arr), "---"]), flush=True)
        printed += 1

    subscribe_compatible(node, args.topic, msgtype, on_message)
    _spin_until(executor, stop, lambda: args.count is not None and printed >= args.count, None)
    return 0


def cmd_hz(node: Any, args: argparse.Namespace, stop: threading.Event, executor: Any) -> int:
    msgtype = wait_for_topic_type(node, args.topic, args.timeout)
    stamps: deque[float] = deque(maxlen=args.window + 1)
    subscribe_compatible(node, args.topic, msgtype, lambda _: stamps.append(time.monotonic()), raw=True)

    def report() -> None:
        if len(stamps) < 2:
            print(f"no rate yet: {len(stamps)} message(s) received", flush=True)
            return
        s = period_stats(list(stamps))
        print(
            f"average rate: {s['rate']:.3f}\n\tmin: {s['min']:.4f}s max: {s['max']:.4f}s "
            f"std dev: {s['std']:.5f}s window: {s['window']}",
            flush=True,
        )

    end = None if args.duration is None else time.monotonic() + args.duration
    while not stop.is_set() and (end is None or time.monotonic() < end):
        _spin_until(executor, stop, lambda: False, 1.0 if end is None else min(1.0, end - time.monotonic()))
        report()
    return 0 if len(stamps) >= 2 else 1


def cmd_info(node: Any, args: argparse.Namespace, stop: threading.Event) -> int:
    # The topic may show up through one participant before the others are discovered: wait the
    # discovery time first, as `list` does, then (bounded) for the topic itself.
    stop.wait(args.spin_time)
    deadline = time.monotonic() + args.timeout
    while args.topic not in topic_types(node):
        if time.monotonic() > deadline:
            raise BagError(f"{args.topic} is not in the graph after {args.timeout:g} s")
        time.sleep(0.05)
    publishers = node.get_publishers_info_by_topic(args.topic)
    subscribers = node.get_subscriptions_info_by_topic(args.topic)
    print(f"Type: {', '.join(topic_types(node).get(args.topic, []))}")
    print(f"Publisher count: {len(publishers)}")
    if args.verbose:
        _print_endpoints(publishers)
    print(f"Subscription count: {len(subscribers)}")
    if args.verbose:
        _print_endpoints(subscribers)
    return 0


def _print_endpoints(endpoints: list[Any]) -> None:
    for endpoint in endpoints:
        node = f"{endpoint.node_namespace.rstrip('/')}/{endpoint.node_name}"
        print(f"  {node} [{endpoint.topic_type}]\n    QoS: {describe_qos(endpoint.qos_profile)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    apply_fastdds_profile()
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)  # argv is ours, not --ros-args
    node = rclpy.create_node("topic_tool", start_parameter_services=False)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if args.command == "list":
            return cmd_list(node, args, stop)
        if args.command == "echo":
            return cmd_echo(node, args, stop, executor)
        if args.command == "hz":
            return cmd_hz(node, args, stop, executor)
        return cmd_info(node, args, stop)
    except BagError as error:
        print(f"topic: {error}", file=sys.stderr)
        return 2
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
