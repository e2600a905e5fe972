#!/usr/bin/env python3
"""Message delivery through rclpy's executors: why every node of the suite spins single-threaded.

A publisher process sends ``--messages`` std_msgs/String at ``--rate`` Hz (reliable, depth 10) to a
subscriber process that spins a SingleThreadedExecutor or a MultiThreadedExecutor (4 threads), one
after the other, on the same input. Per executor: messages received of those sent, and the gap
between consecutive receptions (median, p99, max). With reliable QoS every message should arrive
and the largest gap should be about one publishing period. Prints a table and writes JSON (default
out/bench/executors.json). The script re-invokes itself with the hidden ``--role pub|sub``.

    python bench/executors.py [--messages 300] [--rate 50] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "out" / "bench" / "executors.json"
EXECUTORS = ("single", "multi")
TOPIC = "/bench/executors"


def _ros(role: str):
    """rclpy initialised with the suite's Fast DDS profile, and this role's node."""
    from humanoid_common.config import apply_fastdds_profile

    apply_fastdds_profile()
    import rclpy

    rclpy.init()
    return rclpy.create_node(f"bench_executors_{role}")


def publish(args: argparse.Namespace) -> None:
    import rclpy
    from std_msgs.msg import String

    node = _ros("pub")
    publisher = node.create_publisher(String, TOPIC, 10)
    while publisher.get_subscription_count() < 1:
        time.sleep(0.01)
    time.sleep(0.5)  # let the subscriber's side of the match settle too
    next_at = time.monotonic()
    for i in range(args.messages):
        publisher.publish(String(data=str(i)))
        next_at += 1.0 / args.rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    time.sleep(1.0)  # the last ones in flight
    rclpy.shutdown()


def subscribe(args: argparse.Namespace) -> None:
    node = _ros("sub")
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from std_msgs.msg import String

    received: list[float] = []
    node.create_subscription(String, TOPIC, lambda _msg: received.append(time.monotonic()), 10)
    executor = SingleThreadedExecutor() if args.executor == "single" else MultiThreadedExecutor(4)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    duration = args.messages / args.rate
    end = time.monotonic() + duration + 10.0
    while time.monotonic() < end and len(received) < args.messages:
        time.sleep(0.05)
    time.sleep(1.0)
    print(json.dumps({"received": received}), flush=True)
    os._exit(0)  # a stalled MultiThreadedExecutor may not shut down cleanly


def run_once(args: argparse.Namespace, executor: str, env: dict[str, str]) -> dict:
    common = [sys.executable, __file__, "--messages", str(args.messages), "--rate", str(args.rate)]
    sub = subprocess.Popen(
        [*common, "--role", "sub", "--executor", executor], env=env, stdout=subprocess.PIPE, text=True
    )
    pub = subprocess.Popen([*common, "--role", "pub"], env=env)
    out, _ = sub.communicate(timeout=args.messages / args.rate + 60)
    pub.wait(timeout=30)
    times = json.loads(out.strip().splitlines()[-1])["received"]
    gaps_ms = np.diff(times) * 1e3 if len(times) > 1 else np.array([float("nan")])
    return {
        "executor": executor,
        "sent": args.messages,
        "received": len(times),
        "gap_median_ms": float(np.median(gaps_ms)),
        "gap_p99_ms": float(np.percentile(gaps_ms, 99)),
        "gap_max_ms": float(gaps_ms.max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per executor, alternating")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--role", choices=("pub", "sub"), help=argparse.SUPPRESS)
    parser.add_argument("--executor", choices=EXECUTORS, default="single", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "pub":
        publish(args)
        return 0
    if args.role == "sub":
        subscribe(args)
        return 0

    env = {
        **os.environ,
        "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", str(random.randint(102, 200))),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    }
    started = datetime.now(timezone.utc).isoformat()
    runs = []
    for repeat in range(args.repeats):
        for executor in EXECUTORS:
            print(f"run {repeat + 1}/{args.repeats}: {executor}-threaded executor ...", flush=True)
            runs.append({"repeat": repeat, **run_once(args, executor, env)})

    print(f"\n{args.messages} messages at {args.rate:g} Hz, reliable depth 10, publisher in another process")
    header = f"{'executor':<10} {'run':>3} {'received':>12} {'gap median':>11} {'gap p99':>9} {'gap max':>9}"
    print(header + "  (ms)")
    for run in runs:
        print(
            f"{run['executor']:<10} {run['repeat'] + 1:>3} {run['received']:>6}/{run['sent']:<5}"
            f" {run['gap_median_ms']:>11.1f} {run['gap_p99_ms']:>9.1f} {run['gap_max_ms']:>9.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "executors",
        "started": started,
        "host": {"hostname": platform.node(), "cpus": os.cpu_count()},
        "config": {"messages": args.messages, "rate_hz": args.rate, "repeats": args.repeats},
        "runs": runs,
    }
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
