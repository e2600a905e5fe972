#!/usr/bin/env python3
"""One-way latency and loss of camera-sized sensor_msgs/Image messages over Fast DDS (DESIGN §4).

Every scenario of {two processes, two nodes in one process} x {Fast DDS defaults, our profile
config/fastdds.xml, the profile plus large buffers kept in the heap (humanoid_common.allocator, as
every node of the stack runs)} x {reliable depth 10, best effort depth 1} runs on the same input
(same image bytes, frame count and rate) in fresh child processes, because Fast DDS reads its
profile variable when the participant is created and malloc settings are per process. The script
re-invokes itself with the hidden ``--role pub|sub|both``.

Latency is receive time minus send time, both ``time.time_ns()`` (CLOCK_REALTIME) on this host, and
includes serialisation, transport and deserialisation into Python. The publisher waits until the
subscription is matched and sends ``--warmup`` frames that are not counted, so discovery is not
measured. Prints a table and writes JSON (default out/bench/transport.json).

Run from the repository root::

    python bench/transport.py [--frames 300] [--rate 30] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import array
import itertools
import json
import os
import platform
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from humanoid_common.allocator import keep_large_buffers
from humanoid_common.config import PROFILE_VARIABLES, config_dir

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = config_dir() / "fastdds.xml"
DEFAULT_JSON = REPO / "out" / "bench" / "transport.json"
LAYOUTS = ("processes", "in-process")
FASTDDS_CONFIGS = ("default", "profile", "profile+heap")
RATIOS = (("default", "profile"), ("profile", "profile+heap"))  # printed as first / second
QOS_DEPTH = {"reliable": 10, "best_effort": 1}
MARK = "@@bench "  # prefix of protocol lines on a child's stdout; anything else there is ignored


class BenchError(RuntimeError):
    """A scenario could not be measured (child failed or timed out)."""


@dataclass(frozen=True)
class Scenario:
    """One measured combination."""

    layout: str
    fastdds: str
    qos: str

    @property
    def name(self) -> str:
        return f"{self.layout}/{self.fastdds}/{self.qos}"


# --------------------------------------------------------------------------------------------------
# Statistics


def percentile(sorted_values: list[float], q: float) -> float:
    """Linearly interpolated percentile (numpy's default) of an ascending, non-empty list."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values: list[float]) -> dict[str, float] | None:
    """min, mean, median, p90, p99 and max of a list (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "mean": sum(ordered) / len(ordered),
        "median": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
    }


# --------------------------------------------------------------------------------------------------
# Child side: rclpy is imported only here


def _emit(event: str, **payload: Any) -> None:
    sys.stdout.write(MARK + json.dumps({"event": event, **payload}) + "\n")
    sys.stdout.flush()


def _shm_segments() -> list[int]:
    """Sizes (bytes) of the Fast DDS shared-memory data segments this process maps, largest first.

    Taken right after the participant exists: its own segments, plus a peer's when discovery already
    ran. Evidence of the segment size in effect (default 0.5 MB, our profile 16 MB); note that
    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST makes rmw_fastrtps add a default SHM transport of its own.
    """
    sizes: dict[str, int] = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) < 6 or not parts[5].startswith("/dev/shm/fastrtps_") or "_port" in parts[5]:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            sizes[parts[5]] = sizes.get(parts[5], 0) + hi - lo
    return sorted(sizes.values(), reverse=True)


def _qos(kind: str) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = ReliabilityPolicy.RELIABLE if kind == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(
        reliability=reliability,
        history=HistoryPolicy.KEEP_LAST,
        depth=QOS_DEPTH[kind],
        durability=DurabilityPolicy.VOLATILE,
    )


def _image(width: int, height: int) -> Any:
    """The benchmark frame: rgb8, identical pseudo-random bytes in every child, data set from bytes."""
    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    msg.data = array.array("B", random.Random(0).randbytes(width * height * 3))
    return msg


def _publish(node: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Wait for a match, then send warm-up plus counted frames at the requested rate."""
    from sensor_msgs.msg import Image

    publisher = node.create_publisher(Image, args.topic, _qos(args.qos))
    msg = _image(args.width, args.height)
    waited = time.monotonic()
    while publisher.get_subscription_count() < 1:
        if time.monotonic() - waited > args.match_timeout:
            raise BenchError(f"no subscription matched {args.topic} within {args.match_timeout:g} s")
        time.sleep(0.01)
    match_s = time.monotonic() - waited
    total = args.warmup + args.frames
    period_ns = round(1e9 / args.rate)
    publish_ms: list[float] = []
    start = time.monotonic_ns()
    for seq in range(total):
        delay = start + seq * period_ns - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        msg.header.frame_id = str(seq)
        sent = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(sent, 1_000_000_000)
        publisher.publish(msg)
        if seq >= args.warmup:
            publish_ms.append((time.time_ns() - sent) / 1e6)
    elapsed = (time.monotonic_ns() - start) / 1e9
    return {
        "sent": args.frames,
        "warmup": args.warmup,
        "match_wait_s": match_s,
        "rate_hz_achieved": (total - 1) / elapsed if elapsed > 0 else None,
        "publish_call_ms": summarize(publish_ms),
        "publisher": publisher,
    }


class _Collector:
    """Subscription that records (seq, send ns, receive ns) of every frame."""

    def __init__(self, node: Any, args: argparse.Namespace) -> None:
        from sensor_msgs.msg import Image

        self.samples: list[tuple[int, int, int]] = []
        self.bad_size = 0
        self.last_rx = time.monotonic()
        self._size = args.width * args.height * 3
        self._last_seq = args.warmup + args.frames - 1
        node.create_subscription(Image, args.topic, self._on_image, _qos(args.qos))

    def _on_image(self, msg: Any) -> None:
        received = time.time_ns()
        stamp = msg.header.stamp
        self.samples.append((int(msg.header.frame_id), stamp.sec * 1_000_000_000 + stamp.nanosec, received))
        if len(msg.data) != self._size:
            self.bad_size += 1
        self.last_rx = time.monotonic()

    @property
    def got_last(self) -> bool:
        return bool(self.samples) and self.samples[-1][0] >= self._last_seq

    def drain(self, executor: Any, idle_s: float = 1.0, max_s: float = 10.0) -> None:
        """After the publisher is done: spin until the last frame arrived or nothing came for idle_s."""
        since = time.monotonic()
        while not self.got_last and time.monotonic() - max(self.last_rx, since) < idle_s:
            if time.monotonic() - since > max_s:
                break
            executor.spin_once(timeout_sec=0.05)

    def result(self, warmup: int, frames: int) -> dict[str, Any]:
        first: dict[int, float] = {}
        for seq, sent, received in self.samples:
            if warmup <= seq < warmup + frames and seq not in first:
                first[seq] = (received - sent) / 1e6
        counted = sum(1 for seq, _, _ in self.samples if warmup <= seq < warmup + frames)
        return {
            "received": len(first),
            "duplicates": counted - len(first),
            "bad_size": self.bad_size,
            "latencies_ms": [first[seq] for seq in sorted(first)],
        }


def _wait_for_stop(done: threading.Event | None = None) -> None:
    """Block until the parent writes 'stop' or closes our stdin, then set `done`."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    if done is not None:
        done.set()


def run_child(args: argparse.Namespace) -> int:
    """Body of a child process: publisher, subscriber, or both as two nodes in this process."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    heap_buffers = keep_large_buffers() if args.heap_buffers else False
    if args.heap_buffers and not heap_buffers:
        _emit("error", message="large buffers could not be kept in the heap (not glibc, or MALLOC_* set)")
        return 1
    rclpy.init()
    executor = SingleThreadedExecutor()
    try:
        if args.role in ("sub", "both"):
            sub_node = rclpy.create_node("bench_transport_sub")
            collector = _Collector(sub_node, args)
            executor.add_node(sub_node)
        if args.role in ("pub", "both"):
            pub_node = rclpy.create_node("bench_transport_pub")
        segments = _shm_segments()
        if args.role == "pub":
            sent = _publish(pub_node, args)
            publisher = sent.pop("publisher")
            _emit("sent", shm_segments=segments, heap_buffers=heap_buffers, **sent)
            # Keep the writer (and its reliable repairs) alive until the parent has the subscriber's result.
            _wait_for_stop()
            publisher.destroy()
        elif args.role == "sub":
            stop = threading.Event()
            threading.Thread(target=_wait_for_stop, args=(stop,), daemon=True).start()
            _emit("ready", shm_segments=segments)
            while not stop.is_set():
                executor.spin_once(timeout_sec=0.05)
            collector.drain(executor)
            _emit(
                "result",
                shm_segments=segments,
                heap_buffers=heap_buffers,
                **collector.result(args.warmup, args.frames),
            )
        else:
            outcome: dict[str, Any] = {}

            def publish() -> None:
                try:
                    outcome.update(_publish(pub_node, args))
                except BaseException as error:  # reported by the main thread
                    outcome["error"] = error

            thread = threading.Thread(target=publish, name="bench-pub")
            thread.start()
            while thread.is_alive():
                executor.spin_once(timeout_sec=0.05)
            if "error" in outcome:
                raise outcome["error"]
            outcome.pop("publisher")
            collector.drain(executor)
            _emit(
                "result",
                shm_segments=segments,
                heap_buffers=heap_buffers,
                **outcome,
                **collector.result(args.warmup, args.frames),
            )
    except BenchError as error:
        _emit("error", message=str(error))
        return 1
    finally:
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


# --------------------------------------------------------------------------------------------------
# Parent side


class _Child:
    """A child process speaking the MARK protocol on stdout; stderr kept for error messages."""

    def __init__(self, role: str, argv: list[str], env: dict[str, str]) -> None:
        self.role = role
        pipe = subprocess.PIPE
        self.proc = subprocess.Popen(argv, env=env, stdin=pipe, stdout=pipe, stderr=pipe, text=True)
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=30)
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if stream is self.proc.stderr:
                self._stderr.append(line)
            elif line.startswith(MARK):
                self._events.put(json.loads(line[len(MARK) :]))
        if stream is self.proc.stdout:
            self._events.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"{self.role}: no '{event}' within {timeout:g} s{self.stderr_tail()}") from None
        if item is None:
            self.proc.wait(timeout=5)
            raise BenchError(
                f"{self.role} exited with {self.proc.returncode} before '{event}'{self.stderr_tail()}"
            )
        if item["event"] == "error":
            raise BenchError(f"{self.role}: {item['message']}")
        if item["event"] != event:
            raise BenchError(f"{self.role}: expected '{event}', got '{item['event']}'")
        return item

    def stop(self) -> None:
        """Tell the child to finish (a 'stop' line, then end of input)."""
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write("stop\n")
            stdin.close()
        except OSError:  # the child is gone already
            pass

    def close(self, timeout: float = 5.0) -> str:
        """Stop the child, escalating to SIGINT and SIGKILL; say how it ended ("exit 0" when clean)."""
        self.stop()
        for sig in (None, signal.SIGINT, signal.SIGKILL):
            if sig is not None:
                self.proc.send_signal(sig)
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
            return f"exit {code}" + (f" after {sig.name}" if sig is not None else "")
        return "still running after SIGKILL"

    def stderr_tail(self, chars: int = 1500) -> str:
        text = "".join(self._stderr)[-chars:].strip()
        return f"\n--- {self.role} stderr ---\n{text}" if text else ""


def scenario_env(fastdds: str, profile: Path) -> dict[str, str]:
    """Child environment: profile variables unset (defaults) or pointing at the profile."""
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
    env["SKIP_DEFAULT_XML_FILE"] = "1"  # no DEFAULT_FASTRTPS_PROFILES.xml from the working directory
    if fastdds != "default":
        env.update(dict.fromkeys(PROFILE_VARIABLES, str(profile)))
    return env


def run_scenario(scenario: Scenario, args: argparse.Namespace, topic: str) -> dict[str, Any]:
    """Run one scenario in fresh children; return its merged raw result."""
    base = [sys.executable, str(Path(__file__).resolve())]
    opts = ["--topic", topic, "--qos", scenario.qos, "--frames", str(args.frames), "--rate", str(args.rate)]
    opts += ["--width", str(args.width), "--height", str(args.height), "--warmup", str(args.warmup)]
    opts += ["--heap-buffers"] if scenario.fastdds == "profile+heap" else []
    env = scenario_env(scenario.fastdds, args.profile)
    send_time = (args.warmup + args.frames) / args.rate + args.match_timeout + 15
    children: list[_Child] = []
    try:
        if scenario.layout == "in-process":
            children.append(_Child("both", [*base, "--role", "both", *opts], env))
            result = children[0].expect("result", send_time + 15)
        else:
            sub = _Child("sub", [*base, "--role", "sub", *opts], env)
            pub = _Child("pub", [*base, "--role", "pub", *opts], env)
            children += [pub, sub]
            ready = sub.expect("ready", args.match_timeout + 15)
            sent = pub.expect("sent", send_time)
            sub.stop()
            result = {**sent, **sub.expect("result", 20)}
            result["shm_segments"] = {"pub": sent["shm_segments"], "sub": ready["shm_segments"]}
    finally:
        exits = {child.role: child.close() for child in children}
    result["exit"] = exits
    return result


def _ros_versions() -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {"ROS_DISTRO": os.environ.get("ROS_DISTRO")}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        distro = re.fullmatch(r"ros-([a-z]+)-rclpy", name)
        if distro and not found["ROS_DISTRO"]:
            found["ROS_DISTRO"] = distro.group(1)
        if name in ("ros-rclpy", "ros-fastrtps", "ros-rmw-fastrtps-cpp"):
            found[name] = dist.version
    return found


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _mb(segments: Any) -> str:
    if isinstance(segments, dict):
        segments = segments.get("sub") or segments.get("pub")
    return f"{segments[0] / 2**20:.1f}M" if segments else "?"


def print_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Print the result table and the latency ratios between set-ups (RATIOS); return the ratios."""
    header = f"{'scenario':36} {'shm':>6} {'median':>7} {'p90':>7} {'p99':>7} {'max':>7} {'recv/sent':>9}"
    header += f" {'loss%':>6}"
    print("\none-way latency, ms\n" + header + "\n" + "-" * len(header))
    for row in rows:
        lat = row.get("latency_ms") or {}
        if "error" in row:
            print(f"{row['scenario']:36} FAILED: {row['error'].splitlines()[0]}")
            continue
        recv = f"{row['received']}/{row['sent']}"
        print(
            f"{row['scenario']:36} {_mb(row.get('shm_segments')):>6} {_fmt(lat.get('median')):>7} "
            f"{_fmt(lat.get('p90')):>7} {_fmt(lat.get('p99')):>7} {_fmt(lat.get('max')):>7} "
            f"{recv:>9} {row['loss_pct']:>6.1f}"
        )
    by_name = {row["scenario"]: row for row in rows}
    ratios = []
    for first, second in RATIOS:
        print(f"\n{first} / {second}")
        for layout, qos in itertools.product(LAYOUTS, QOS_DEPTH):
            a = (by_name.get(f"{layout}/{first}/{qos}") or {}).get("latency_ms")
            b = (by_name.get(f"{layout}/{second}/{qos}") or {}).get("latency_ms")
            if not a or not b:
                continue
            ratio = {
                "of": first,
                "over": second,
                "layout": layout,
                "qos": qos,
                "median": a["median"] / b["median"],
                "p99": a["p99"] / b["p99"],
            }
            ratios.append(ratio)
            print(f"  {layout + '/' + qos:24} median x{ratio['median']:.2f}   p99 x{ratio['p99']:.2f}")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="counted frames per scenario (300)")
    parser.add_argument("--rate", type=float, default=30.0, help="publish rate in Hz (30)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--warmup", type=int, default=None, help="uncounted first frames (20; quick 10)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 frames per scenario")
    parser.add_argument("--profile", type=Path, default=DEFAULT_PROFILE, help="Fast DDS XML profile")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"output ({DEFAULT_JSON})")
    parser.add_argument(
        "--discovery-range",
        choices=("LOCALHOST", "SUBNET"),
        default="LOCALHOST",
        help="ROS_AUTOMATIC_DISCOVERY_RANGE of the children (LOCALHOST)",
    )
    parser.add_argument("--match-timeout", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("pub", "sub", "both"), help=argparse.SUPPRESS)
    parser.add_argument("--qos", choices=tuple(QOS_DEPTH), default="best_effort", help=argparse.SUPPRESS)
    parser.add_argument("--topic", default="/bench/transport", help=argparse.SUPPRESS)
    parser.add_argument("--heap-buffers", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick and "--frames" not in (argv if argv is not None else sys.argv):
        args.frames = 40
    if args.warmup is None:
        args.warmup = 10 if args.quick else 20
    if args.role:
        return run_child(args)

    args.profile = args.profile.resolve()
    if not args.profile.is_file():
        parser.error(f"profile not found: {args.profile}")
    # Children inherit: a private domain unless one is set, discovery range as chosen.
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = args.discovery_range
    topic = f"/bench/transport_{os.getpid()}"
    scenarios = [Scenario(*combo) for combo in itertools.product(LAYOUTS, FASTDDS_CONFIGS, QOS_DEPTH)]
    started = datetime.now(timezone.utc)
    print(
        f"{len(scenarios)} scenarios, {args.frames} frames (+{args.warmup} warm-up) of "
        f"{args.width}x{args.height} rgb8 at {args.rate:g} Hz, ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for index, scenario in enumerate(scenarios, 1):
        t0 = time.monotonic()
        row: dict[str, Any] = {"scenario": scenario.name, **asdict(scenario)}
        try:
            raw = run_scenario(scenario, args, topic)
            latencies = raw.pop("latencies_ms")
            row.update(raw)
            row.pop("event", None)
            row["latency_ms"] = summarize(latencies)
            row["lost"] = row["sent"] - row["received"]
            row["loss_pct"] = 100.0 * row["lost"] / row["sent"]
            lat = row["latency_ms"] or {}
            note = (
                f"median {_fmt(lat.get('median'))} ms, p99 {_fmt(lat.get('p99'))} ms, "
                f"{row['received']}/{row['sent']} received, shm {_mb(row.get('shm_segments'))}"
            )
        except BenchError as error:
            row["error"] = str(error)
            note = "FAILED: " + str(error).splitlines()[0]
        row["wall_s"] = time.monotonic() - t0
        unclean = {role: how for role, how in row.get("exit", {}).items() if how != "exit 0"}
        if unclean:
            note += f"; children: {unclean}"
        rows.append(row)
        print(f"[{index}/{len(scenarios)}] {scenario.name:36} {note} ({row['wall_s']:.1f} s)", flush=True)

    ratios = print_table(rows)
    report = {
        "benchmark": "transport",
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "config": {
            "frames": args.frames,
            "warmup": args.warmup,
            "rate_hz": args.rate,
            "width": args.width,
            "height": args.height,
            "encoding": "rgb8",
            "bytes_per_frame": args.width * args.height * 3,
            "qos_depth": QOS_DEPTH,
            "profile": str(args.profile),
            "profile_env": list(PROFILE_VARIABLES),
            "ROS_DOMAIN_ID": os.environ["ROS_DOMAIN_ID"],
            "ROS_AUTOMATIC_DISCOVERY_RANGE": args.discovery_range,
            "RMW_IMPLEMENTATION": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
            "RMW_FASTRTPS_PUBLICATION_MODE": os.environ.get("RMW_FASTRTPS_PUBLICATION_MODE"),
        },
        "host": {
            "hostname": socket.gethostname(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "ros": _ros_versions(),
        "scenarios": rows,
        "ratios": ratios,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
