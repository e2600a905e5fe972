#!/usr/bin/env python3
"""perception_node overhead: raw Ultralytics predict vs the node end to end, on the same frames.

1. raw: ``YOLO(model).predict(frame)`` timed per frame (after warm-up), back to back, and frames
   per second.
2. node (skipped with ``--raw-only``): perception_node runs as its own process (tracker none,
   max_rate_hz 0, same model and device); this process publishes each frame as sensor_msgs/Image and
   waits for its DetectionArray (lockstep): latency = publish → detections received. Then frames are
   published at ``--feed-hz`` for a few seconds: throughput = detections received per second.

In the lockstep part each frame also gets a raw predict, before or after its node round trip
(alternating), so both are measured under the same machine conditions. Overhead = node median − that
interleaved raw median (transport both ways, conversion, the worker hand-off), goal ≤ 10 % of the
raw median. Prints a table and writes JSON (default out/bench/perception.json).
``--raw-only`` imports no ROS (for a GPU machine without ROS): ultralytics, torch/onnxruntime, cv2, numpy.

    python bench/perception.py [--frames 100] [--quick] [--model PATH] [--device cuda:0] [--half]
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


class RawModel:
    """Ultralytics called directly in this process, with the node's model, device and precision."""

    def __init__(self, args: argparse.Namespace, frames: list[np.ndarray]) -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        self.model = YOLO(args.model, task=args.task)
        self.kwargs = {
            "device": args.device,
            "imgsz": args.imgsz,
            "verbose": False,
            "quantize": 16 if args.half else None,
        }
        for frame in frames[: args.warmup]:
            self.model.predict(frame, **self.kwargs)
        if not args.raw_only:  # the node's ONNX Runtime settings (no busy-waiting threads), for parity
            from perception_node.detector import without_spinning

            without_spinning(self.model, args.model)

    def predict_ms(self, frame: np.ndarray) -> float:
        start = time.perf_counter()
        self.model.predict(frame, **self.kwargs)
        return (time.perf_counter() - start) * 1e3


def bench_raw(raw: RawModel, frames: list[np.ndarray]) -> dict:
    """Raw latency per frame and throughput, back to back (the --raw-only measurement)."""
    times = []
    start = time.perf_counter()
    for i, frame in enumerate(frames, start=1):
        times.append(raw.predict_ms(frame))
        progress("raw predict", i, len(frames))
    total = time.perf_counter() - start
    return {"latency_ms": stats(times), "throughput_hz": len(frames) / total}


def bench_node(args: argparse.Namespace, frames: list[np.ndarray], raw: RawModel) -> dict:
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
        "model": args.model, "task": args.task, "device": args.device, "half": str(args.half).lower(),
        "imgsz": args.imgsz, "tracker": "none", "max_rate_hz": 0.0, "warmup_frames": args.warmup,
    }  # fmt: skip
    command = [sys.executable, "-m", "perception_node.node", "--ros-args"]
    for key, value in params.items():
        command += ["-p", f"{key}:={value}"]
    node_log = open(Path(args.json).with_suffix(".node.log"), "wb")  # noqa: SIM115 (closed below)
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
        # Raw and node take turns on each frame (order alternating), so a machine that speeds up or
        # slows down during the run affects both alike.
        for i, (frame, image) in enumerate(zip(frames, images, strict=True), start=1):
            if i % 2:
                raw_times.append(raw.predict_ms(frame))
            latency, msg = round_trip(i, image)
            if not i % 2:
                raw_times.append(raw.predict_ms(frame))
            latencies.append(latency)
            inference.append(msg.inference_ms)
            in_node.append(msg.latency_ms)
            progress("raw + node lockstep", i, len(images))
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
        in_window = [t for t, _ in received.values() if t <= end + 0.5]
        return {
            "raw_interleaved_ms": stats(raw_times),
            "latency_ms": stats(latencies),
            "node_inference_ms": stats(inference),
            "node_stamp_to_publish_ms": stats(in_node),
            "throughput_hz": len(in_window) / (args.feed_seconds + 0.5),
            "fed_hz": sent / args.feed_seconds,
            "node_memory_mib": process_memory_mib(proc.pid),
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


def print_table(result: dict) -> None:
    rows = [("raw predict, back to back", result["raw"]["latency_ms"], result["raw"]["throughput_hz"])]
    if "node" in result:
        node = result["node"]
        rows.append(("raw predict, interleaved", node["raw_interleaved_ms"], None))
        rows.append(("node end to end", node["latency_ms"], node["throughput_hz"]))
    print(f"\n{'':26}{'median ms':>10}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'throughput Hz':>15}")
    for name, lat, throughput in rows:
        rate = "" if throughput is None else f"{throughput:.1f}"
        print(f"{name:26}{lat['median']:10.1f}{lat['p90']:9.1f}{lat['p99']:9.1f}{lat['max']:9.1f}{rate:>15}")
    if "overhead" in result:
        o = result["overhead"]
        verdict = "meets" if o["meets_goal"] else "MISSES"
        print(f"\nnode overhead at the median: {o['median_ms']:.1f} ms = {o['ratio'] * 100:.1f} % of raw "
              f"({verdict} the goal of <= 10 %)")  # fmt: skip
        print(
            f"node-side medians: inference {o['node_inference_median_ms']:.1f} ms, "
            f"image stamp to detections published {o['node_stamp_to_publish_median_ms']:.1f} ms"
        )
        memory = result["node"]["node_memory_mib"]
        if memory:
            print(f"node process memory: {memory['rss']:.0f} MiB resident, peak {memory['peak']:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model file (default: yolo11n.onnx from the asset cache)")
    parser.add_argument("--task", default="detect", choices=("detect", "pose"))
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
    parser.add_argument(
        "--raw-only", action="store_true", help="only the raw Ultralytics part; imports no ROS"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 frames, 3 s of throughput")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help=f"output (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.feed_seconds = 10, 3.0
    args.model = args.model or default_model()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    frames, source = load_frames(args.frames)
    if args.size:  # the camera resolution under test; both parts get the same resized frames
        width, height = (int(v) for v in args.size.lower().split("x"))
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
        source += f" resized to {width}x{height}"
    started = datetime.now(timezone.utc).isoformat()
    print(
        f"raw: {Path(args.model).name} on {args.device}{' fp16' if args.half else ''}, "
        f"{len(frames)} frames of {source}"
    )
    raw = RawModel(args, frames)
    result = {"raw": bench_raw(raw, frames)}
    if not args.raw_only:
        print("node: perception_node in its own process, lockstep with raw, then fed at", args.feed_hz, "Hz")
        result["node"] = bench_node(args, frames, raw)
        raw_median = result["node"]["raw_interleaved_ms"]["median"]
        overhead = result["node"]["latency_ms"]["median"] - raw_median
        result["overhead"] = {
            "median_ms": overhead,
            "ratio": overhead / raw_median,
            "meets_goal": bool(overhead <= 0.1 * raw_median),
            "node_inference_median_ms": result["node"]["node_inference_ms"]["median"],
            "node_stamp_to_publish_median_ms": result["node"]["node_stamp_to_publish_ms"]["median"],
        }
    print_table(result)
    report = {
        "config": {k: v for k, v in vars(args).items() if k != "json"} | {"frames_source": source},
        "host": {
            "hostname": socket.gethostname(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(),
        **result,
    }
    Path(args.json).write_text(json.dumps(report, indent=2, default=float))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
