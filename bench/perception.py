#!/usr/bin/env python3
"""perception_node's backends side by side on the same frames: each alone, and each through the node.

1. raw: each backend (``--backends``, perception_node.detector.load_detector, tracker none) detects
   frame after frame in this process, after warm-up: wall time and CPU time (all threads of the
   process) per frame, and frames per second. With ``--cameras 1,2,4``, also batches of N different
   frames through ``detect_batch`` (one model call for N cameras): time per batch and its ratio to
   one frame.
2. node (skipped with ``--raw-only``): perception_node runs in its own process with that backend
   (tracker none, max_rate_hz 0); this process publishes each frame as sensor_msgs/Image and waits
   for its DetectionArray (lockstep): latency = publish → detections received. Each frame also gets a
   raw call of the same backend here, before or after its node round trip (alternating), so both are
   measured under the same machine conditions. Overhead = node median − that interleaved raw median
   (transport both ways, conversion, the worker hand-off), goal ≤ 10 % of the raw median. Then frames
   are published at ``--feed-hz`` for a few seconds: throughput. The node's resident memory and its CPU
   time per frame come from /proc.

Prints a table and writes JSON (default out/bench/perception.json). ``--raw-only`` imports no ROS (for
a GPU machine without ROS).

    python bench/perception.py [--backends ultralytics,onnx] [--cameras 1,2,4] [--frames 100]
        [--quick] [--model PATH] [--task pose] [--device cuda:0] [--half]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "out" / "bench" / "perception.json"
sys.path.insert(0, str(REPO))  # run as a script from anywhere


def default_model() -> str:
    from humanoid_common.assets import asset_path

    return str(asset_path("yolo11n.onnx"))


def load_frames(count: int) -> tuple[list[np.ndarray], str]:
    """Frames of the street video (asset cache) or, where it is missing, Ultralytics' two samples."""
    try:
        from humanoid_common.assets import AssetError, asset_path

        video = asset_path("vtest.avi")
    except (ImportError, AssetError):
        video = None
    frames: list[np.ndarray] = []
    if video is not None:
        capture = cv2.VideoCapture(str(video))
        while len(frames) < count:
            ok, frame = capture.read()
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            frames.append(frame)
        return frames, "vtest.avi"
    from ultralytics.utils import ASSETS

    samples = [cv2.imread(str(ASSETS / name)) for name in ("bus.jpg", "zidane.jpg")]
    return [samples[i % 2] for i in range(count)], "bus.jpg, zidane.jpg"


def stats(values: list[float]) -> dict[str, float]:
    data = np.asarray(values, dtype=float)
    median, p90, p99 = np.percentile(data, [50, 90, 99])
    return {
        "count": len(data),
        "median": median,
        "p90": p90,
        "p99": p99,
        "mean": data.mean(),
        "max": data.max(),
    }


def process_memory_mib(pid: int) -> dict[str, float]:
    """Resident memory of a process now and at its peak (VmRSS, VmHWM), MiB; empty off Linux."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if line.startswith(("VmRSS", "VmHWM")))
    return {"rss": int(fields["VmRSS"].split()[0]) / 1024, "peak": int(fields["VmHWM"].split()[0]) / 1024}


def progress(label: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"  {label}: {done}/{total}", flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, seconds (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RawBackend:
    """One backend loaded in this process with the node's settings (tracker none)."""

    def __init__(self, args: argparse.Namespace, backend: str, frames: list[np.ndarray]) -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from perception_node.detector import DetectorConfig, load_detector

        self.name = backend
        config = DetectorConfig(
            model=args.model, task=args.task, backend=backend, imgsz=args.imgsz, device=args.device,
            half=args.half, tracker=None,
        )  # fmt: skip
        self.detector = load_detector(config)
        self.detector.warm_up(args.warmup, cameras=max(args.cameras))
        # The gpu backend captures a graph per input shape: the first frame of the camera's size pays
        # for its capture (reported, not measured with the rest).
        self.first_call_ms = self.detect_ms([frames[0]])[0]

    def detect_ms(self, frames: list[np.ndarray]) -> tuple[float, float]:
        """Wall and CPU milliseconds of one call on ``frames`` (one batch)."""
        cpu, start = time.process_time(), time.perf_counter()
        self.detector.detect_batch(frames)
        return (time.perf_counter() - start) * 1e3, (time.process_time() - cpu) * 1e3


def bench_raw(raw: RawBackend, frames: list[np.ndarray], cameras: list[int]) -> dict:
    """Back to back: per frame (wall, CPU, throughput), then per batch of N cameras."""
    wall, cpu = [], []
    start = time.perf_counter()
    for i, frame in enumerate(frames, start=1):
        w, c = raw.detect_ms([frame])
        wall.append(w)
        cpu.append(c)
        progress(f"{raw.name} raw", i, len(frames))
    total = time.perf_counter() - start
    result = {"latency_ms": stats(wall), "cpu_ms": stats(cpu), "throughput_hz": len(frames) / total}
    batches = {}
    for n in (n for n in cameras if n > 1):
        batch_of = [[frames[(i + k) % len(frames)] for k in range(n)] for i in range(len(frames))]
        times = [raw.detect_ms(batch)[0] for batch in batch_of]
        batches[n] = {"latency_ms": stats(times), "ratio_to_one": float(np.median(times) / np.median(wall))}
    if batches:
        result["batches"] = batches
    runner = getattr(raw.detector, "runner", None)
    if hasattr(runner, "replay_ms"):  # the gpu backend: its CUDA graphs replayed alone
        result["graph_replay_ms"] = runner.replay_ms()
    return result


def bench_node(args: argparse.Namespace, frames: list[np.ndarray], raw: RawBackend) -> dict:
    """Lockstep node round trips interleaved with raw predicts of the same frame, then throughput."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from humanoid_common.allocator import keep_large_buffers
    from humanoid_common.config import apply_fastdds_profile
    from humanoid_common.images import numpy_to_image
    from humanoid_stack.msg import DetectionArray

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(120, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    apply_fastdds_profile()
    keep_large_buffers()  # as in every node of the stack: the camera side gets the same settings
    params = {
        "model": args.model, "task": args.task, "backend": raw.name, "device": args.device,
        "half": str(args.half).lower(),
        "imgsz": args.imgsz, "tracker": "none", "max_rate_hz": 0.0, "warmup_frames": args.warmup,
    }  # fmt: skip
    command = [sys.executable, "-m", "perception_node.node", "--ros-args"]
    for key, value in params.items():
        command += ["-p", f"{key}:={value}"]
    node_log = open(Path(args.json).with_suffix(f".{raw.name}.node.log"), "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=node_log, stderr=subprocess.STDOUT, start_new_session=True
    )
    rclpy.init()
    client = rclpy.create_node("perception_bench")
    received: dict[int, tuple[float, DetectionArray]] = {}

    def on_detections(msg: DetectionArray) -> None:
        received[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = (time.perf_counter(), msg)

    client.create_subscription(DetectionArray, "/perception/detections", on_detections, 100)
    publisher = client.create_publisher(
        Image, "/camera/image_raw", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    )
    images = [numpy_to_image(f, "bgr8") for f in frames]

    def send(image: Image) -> tuple[int, float]:
        image.header.stamp = client.get_clock().now().to_msg()
        image.header.frame_id = "camera"
        sent_at = time.perf_counter()
        publisher.publish(image)
        return image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec, sent_at

    def spin_until(predicate, timeout: float) -> bool:
        # spin_once returns with the first callback, so a long timeout adds no latency; a short one
        # would poll, and every executor wake takes CPU from the node under test.
        end = time.monotonic() + timeout
        while not predicate() and (left := end - time.monotonic()) > 0:
            rclpy.spin_once(client, timeout_sec=min(left, 1.0))
        return predicate()

    try:
        print("  waiting for the node (model load, warm-up)", flush=True)
        if not spin_until(lambda: publisher.get_subscription_count() > 0 or proc.poll() is not None, 180):
            raise RuntimeError("perception_node did not subscribe within 180 s")
        if proc.poll() is not None:
            raise RuntimeError(f"perception_node exited with {proc.returncode}; see {node_log.name}")
        spin_until(lambda: client.count_publishers("/perception/detections") > 0, 30)
        latencies, inference, in_node, raw_times = [], [], [], []

        def round_trip(i: int, image: Image) -> tuple[float, DetectionArray]:
            stamp, sent_at = send(image)
            if not spin_until(lambda s=stamp: s in received, 30):
                raise RuntimeError(f"no detections for frame {i} within 30 s")
            got_at, msg = received[stamp]
            return (got_at - sent_at) * 1e3, msg

        for image in images[: args.warmup]:
            round_trip(0, image)
        node_cpu_start = cpu_seconds(proc.pid)
        # Raw and node take turns on each frame (order alternating), so a machine that speeds up or
        # slows down during the run affects both alike.
        for i, (frame, image) in enumerate(zip(frames, images, strict=True), start=1):
            if i % 2:
                raw_times.append(raw.detect_ms([frame])[0])
            latency, msg = round_trip(i, image)
            if not i % 2:
                raw_times.append(raw.detect_ms([frame])[0])
            latencies.append(latency)
            inference.append(msg.inference_ms)
            in_node.append(msg.latency_ms)
            progress(f"{raw.name} raw + node lockstep", i, len(images))
        node_cpu_ms = (cpu_seconds(proc.pid) - node_cpu_start) * 1e3 / len(images)
        memory = process_memory_mib(proc.pid)
        received.clear()
        period = 1.0 / args.feed_hz
        start = time.perf_counter()
        end = start + args.feed_seconds
        sent = 0
        while time.perf_counter() < end:
            send(images[sent % len(images)])
            sent += 1
            spin_until(lambda: False, max(0.0, start + sent * period - time.perf_counter()))
        spin_until(lambda: False, 0.5)  # the last frame in flight
        # Frames fed during the window and answered by its end + 0.5 s, per second of feeding: equal to
        # the feed rate when the node keeps up.
        in_window = [t for t, _ in received.values() if t <= end + 0.5]
        return {
            "raw_interleaved_ms": stats(raw_times),
            "latency_ms": stats(latencies),
            "node_inference_ms": stats(inference),
            "node_stamp_to_publish_ms": stats(in_node),
            "throughput_hz": len(in_window) / args.feed_seconds,
            "fed_hz": sent / args.feed_seconds,
            "node_cpu_ms_per_frame": node_cpu_ms,
            "node_memory_mib": memory,
        }
    finally:
        client.destroy_node()
        rclpy.try_shutdown()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        node_log.close()


def overhead(node: dict) -> dict:
    raw_median = node["raw_interleaved_ms"]["median"]
    median_ms = node["latency_ms"]["median"] - raw_median
    ratio = median_ms / raw_median
    return {"median_ms": median_ms, "ratio": ratio, "meets_goal": ratio <= 0.1}


def print_table(results: dict[str, dict]) -> None:
    header = f"{'':34}{'median ms':>10}{'p90 ms':>9}{'p99 ms':>9}{'CPU ms':>8}{'rate Hz':>9}"
    print("\n" + header)
    for backend, result in results.items():
        raw = result["raw"]
        alone = raw["latency_ms"], raw["cpu_ms"]["median"], raw["throughput_hz"]
        rows = [(f"{backend}: raw, back to back", *alone)]
        for n, batch in raw.get("batches", {}).items():
            rows.append((f"{backend}: raw, {n} cameras batched", batch["latency_ms"], None, None))
        if "node" in result:
            node = result["node"]
            rows.append((f"{backend}: raw, interleaved", node["raw_interleaved_ms"], None, None))
            rows.append((f"{backend}: node end to end", node["latency_ms"], node["node_cpu_ms_per_frame"],
                         node["throughput_hz"]))  # fmt: skip
        for name, lat, cpu, rate in rows:
            cpu_text = "" if cpu is None else f"{cpu:.1f}"
            rate_text = "" if rate is None else f"{rate:.1f}"
            print(
                f"{name:34}{lat['median']:10.2f}{lat['p90']:9.2f}{lat['p99']:9.2f}{cpu_text:>8}{rate_text:>9}"
            )
    print()
    for backend, result in results.items():
        print(f"{backend}: first frame of the camera's size {result['raw']['first_call_ms']:.1f} ms")
        for n, batch in result["raw"].get("batches", {}).items():
            print(f"{backend}: {n} cameras batched take {batch['ratio_to_one']:.2f}x one camera's time")
        if "graph_replay_ms" in result["raw"]:
            replays = result["raw"]["graph_replay_ms"]
            print(f"{backend}: CUDA graph replay alone (median ms by input shape): {replays}")
        if "overhead" in result:
            o = result["overhead"]
            verdict = "meets" if o["meets_goal"] else "MISSES"
            memory = result["node"]["node_memory_mib"]
            rss = f"; node resident {memory['rss']:.0f} MiB, peak {memory['peak']:.0f} MiB" if memory else ""
            print(f"{backend}: node overhead at the median {o['median_ms']:.2f} ms = "
                  f"{o['ratio'] * 100:.1f} % of raw ({verdict} the goal of <= 10 %){rss}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model file (default: yolo11n.onnx from the asset cache)")
    parser.add_argument("--task", default="detect", choices=("detect", "pose"))
    parser.add_argument(
        "--backends", help="comma-separated (default: ultralytics,onnx on cpu, ultralytics,gpu on cuda)"
    )
    parser.add_argument("--cameras", default="1", help="batch sizes for the raw part, e.g. 1,2,4")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N")
    parser.add_argument("--half", action="store_true", help="FP16 (CUDA only)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument(
        "--size", default="640x480", help="camera frame size WxH the frames are resized to ('' keeps 768x576)"
    )
    parser.add_argument("--frames", type=int, default=100, help="measured frames per part (default 100)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured frames first (default 3)")
    parser.add_argument("--feed-hz", type=float, default=30.0, help="camera rate of the throughput part")
    parser.add_argument("--feed-seconds", type=float, default=10.0, help="length of the throughput part")
    parser.add_argument("--raw-only", action="store_true", help="only the raw part; imports no ROS")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 frames, 3 s of throughput")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help=f"output (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.feed_seconds = 10, 3.0
    args.model = args.model or default_model()
    args.cameras = sorted({int(n) for n in args.cameras.split(",")} | {1})
    gpu = args.device.startswith("cuda")
    backends = (args.backends or ("ultralytics,gpu" if gpu else "ultralytics,onnx")).split(",")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    frames, source = load_frames(args.frames)
    if args.size:  # the camera resolution under test; every part gets the same resized frames
        width, height = (int(v) for v in args.size.lower().split("x"))
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
        source += f" resized to {width}x{height}"
    started = datetime.now(timezone.utc).isoformat()
    print(
        f"{Path(args.model).name} on {args.device}{' fp16' if args.half else ''}, "
        f"backends {', '.join(backends)}, {len(frames)} frames of {source}"
    )
    results: dict[str, dict] = {}
    for backend in backends:
        raw = RawBackend(args, backend, frames)
        results[backend] = {
            "raw": bench_raw(raw, frames, args.cameras) | {"first_call_ms": raw.first_call_ms}
        }
        if not args.raw_only:
            print(f"node ({backend}): perception_node in its own process, lockstep with raw, then fed at "
                  f"{args.feed_hz:g} Hz")  # fmt: skip
            results[backend]["node"] = bench_node(args, frames, raw)
            results[backend]["overhead"] = overhead(results[backend]["node"])
        raw.detector.close()
    print_table(results)
    report = {
        "config": {k: v for k, v in vars(args).items() if k != "json"} | {"frames_source": source},
        "host": {
            "hostname": socket.gethostname(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(),
        "backends": results,
    }
    Path(args.json).write_text(json.dumps(report, indent=2, default=float))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
