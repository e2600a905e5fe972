#!/usr/bin/env python3
"""VLA benchmarks in one run: policy inference latency per backend, control-loop period jitter while
inference runs (with injected latency), holds caused by an empty queue, camera-to-command latency.

1. Latency: the reference policy in PyTorch and its ONNX export under ONNX Runtime, same inputs.
   The instruction embedding is computed once per instruction by the node (cached), so here it is a
   fixed vector and MiniLM is not loaded; this part imports no ROS and runs on a GPU machine with
   only torch, onnxruntime, opencv and numpy (``--device cuda:0``).
2. Control (CPU, rclpy): the real vla_node in this process on its own executor, as its main() runs
   it (same GIL switch interval), fed by bench/vla_feeder.py in another process (320x240 rgb8 camera
   at 30 Hz, joint states at 100 Hz, the instruction), motion enabled, for each control rate x
   injected inference delay (real ONNX model plus the delay). Jitter = |tick interval - period|;
   overruns = control deadlines skipped. Also the synchronous mode at 24 Hz for contrast.

The model is vla_node/models/reference (part A's trained checkpoint). When it is absent the same
network with untrained random weights is built under out/bench/ (labelled "untrained": latency does
not depend on the weights). Prints tables and writes out/bench/vla.json.

    python bench/vla.py [--quick] [--device cpu|cuda:0] [--checkpoint DIR] [--skip-control]
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vla_node.policy import Observation  # noqa: E402

DEFAULT_CHECKPOINT = REPO / "vla_node" / "models" / "reference"
OUT = REPO / "out" / "bench"


def fixed_embedding(dim: int):
    vector = np.random.default_rng(0).standard_normal(dim).astype(np.float32)
    return lambda _text: vector


def prepare_models(checkpoint: Path) -> tuple[Path, str]:
    """The checkpoint folder with policy.onnx + policy.json beside the torch weights, and its label."""
    if (checkpoint / "metadata.yaml").is_file() and (checkpoint / "policy.onnx").is_file():
        return checkpoint, "trained"
    import torch

    from vla_node.reference_policy import (
        NetConfig,
        ReferencePolicyNet,
        build_metadata,
        read_metadata,
        save_checkpoint,
    )

    target = OUT / "reference_untrained"
    print(f"{checkpoint} has no trained model with policy.onnx: building untrained weights in {target}")
    torch.manual_seed(0)
    config = NetConfig()
    net = ReferencePolicyNet(config).eval()
    joints = [f"joint_{i}" for i in range(config.joints)]
    save_checkpoint(target, net, {"joint_names": joints, "control_period_s": 1 / 24})
    meta = build_metadata(config, tuple(joints), 1 / 24, "reference-untrained")
    example = (
        torch.zeros(1, 3, config.image_height, config.image_width),
        torch.zeros(1, config.joints),
        torch.zeros(1, config.text_dim),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            example,
            str(target / "policy.onnx"),
            input_names=["image", "state", "instruction_embedding"],
            output_names=["chunk"],
            dynamo=False,
        )
    description = {
        "metadata": {
            "name": "onnx:reference-untrained",
            "image_keys": list(meta.image_keys),
            "image_size": {k: list(v) for k, v in meta.image_size.items()},
            "state_dim": meta.state_dim,
            "action_dim": meta.action_dim,
            "joint_names": joints,
            "chunk_length": meta.chunk_length,
            "control_period_s": meta.control_period_s,
        },
        "inputs": {"images": {"camera": "image"}, "state": "state", "instruction": "instruction_embedding"},
        "output": "chunk",
        "text_encoder": "minilm",
    }
    (target / "policy.json").write_text(json.dumps(description, indent=1))
    read_metadata(target)
    return target, "untrained"


def measure_latency(checkpoint: Path, device: str, runs: int, threads: int) -> list[dict]:
    from vla_node.backends import PolicyLoadError, load_policy

    rows = []
    for backend in ("reference", "onnx"):
        name = "PyTorch" if backend == "reference" else "ONNX Runtime"
        started = time.monotonic()
        try:
            policy = load_policy(
                f"{backend}:{checkpoint}", device=device, instruction_encoder=fixed_embedding(384)
            )
        except PolicyLoadError as error:  # e.g. an onnxruntime build without the device's provider
            rows.append({"backend": name, "device": device, "unavailable": str(error)})
            print(f"  {name:<13} {device:<7} unavailable: {error}", flush=True)
            continue
        load_s = time.monotonic() - started
        meta = policy.metadata
        rng = np.random.default_rng(1)
        image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        observation = Observation(
            {meta.image_keys[0]: image}, np.zeros(meta.state_dim, np.float32), "touch it"
        )
        for _ in range(5):
            policy.predict_chunk(observation)
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            policy.predict_chunk(observation)
            samples.append((time.perf_counter() - t0) * 1e3)
        p50, p90, p99 = np.percentile(samples, [50, 90, 99])
        rows.append(
            {
                "backend": name,
                "device": device,
                "threads": threads,
                "runs": runs,
                "load_s": load_s,
                "median_ms": p50,
                "p90_ms": p90,
                "p99_ms": p99,
                "max_ms": max(samples),
            }
        )
        print(f"  {name:<13} {device:<7} median {p50:7.2f} ms  p99 {p99:7.2f} ms  ({runs} runs)", flush=True)
    return rows


def start_feeder(joints: list[str]) -> subprocess.Popen:
    """bench/vla_feeder.py in its own process (camera and robot drivers are other processes)."""
    command = [sys.executable, str(REPO / "bench" / "vla_feeder.py"), "--joints", ",".join(joints)]
    return subprocess.Popen(command, cwd=REPO, start_new_session=True)


def stop_feeder(feeder: subprocess.Popen) -> None:
    feeder.send_signal(signal.SIGINT)
    try:
        feeder.wait(timeout=10)
    except subprocess.TimeoutExpired:
        feeder.kill()
        feeder.wait()


def measure_control(checkpoint: Path, rates: list[float], delays: list[float], seconds: float) -> list[dict]:
    from humanoid_common.config import apply_fastdds_profile
    from vla_node.node import SWITCH_INTERVAL_S
    from vla_node.reference_policy import read_metadata

    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the node's main() does
    apply_fastdds_profile()
    joints = read_metadata(checkpoint)["joint_names"]
    limits = OUT / "bench_limits.yaml"
    limits.write_text(json.dumps({"joints": {name: {} for name in joints}}))  # JSON is YAML
    scenarios = [(rate, delay, "async") for rate in rates for delay in delays]
    scenarios += [(24.0, delay, "sync") for delay in delays]
    rows = []
    feeder = start_feeder(joints)
    try:
        for rate, delay, mode in scenarios:
            rows.append(run_scenario(checkpoint, limits, rate, delay, mode, seconds))
    finally:
        stop_feeder(feeder)
    return rows


def run_scenario(
    checkpoint: Path, limits: Path, rate: float, delay: float, mode: str, seconds: float
) -> dict:
    """The vla_node on its own executor, as its main() runs it, fed by the feeder process."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_srvs.srv import SetBool

    from vla_node.control_loop import ControlLoop
    from vla_node.node import VlaNode

    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)  # as run_node()
    node = VlaNode(
        context=context,
        parameter_overrides=[
            Parameter("policy", value=f"onnx:{checkpoint}"),
            Parameter("control_rate_hz", value=rate),
            Parameter("inference_delay_ms", value=delay),
            Parameter("mode", value=mode),
            Parameter("limits_file", value=str(limits)),
            Parameter("inference_threads", value=1),
        ],
    )
    if node.policy is None:
        raise SystemExit("the vla_node did not configure; see its log above")
    driver = rclpy.create_node("vla_bench_driver", context=context)  # only calls /vla/enable
    executor.add_node(node)
    executor.add_node(driver)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        client = driver.create_client(SetBool, "/vla/enable")
        if not client.wait_for_service(timeout_sec=10):
            raise SystemExit("/vla/enable did not appear")
        client.call_async(SetBool.Request(data=True))
        deadline = time.monotonic() + 15
        while node.queue.stats.chunks == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if node.queue.stats.chunks == 0:
            raise SystemExit("no action chunk within 15 s: is bench/vla_feeder.py publishing?")
        before = dict(node.safety.counts)
        node.control_loop.reset_stats()
        node.camera_to_command_ms = type(node.camera_to_command_ms)(10000)
        # The same loop with an empty step beside the node: what the process and machine alone cost.
        probe = ControlLoop(1 / rate, lambda _deadline: None, name="bench-probe")
        probe.start()
        time.sleep(seconds)
        probe.stop()
        loop = node.control_loop
        jitter = loop.jitter_ms.summary()
        counts = {
            k: node.safety.counts[k] - before.get(k, 0) for k in ("sent", "empty_queue", "stale_camera")
        }
        row = {
            "mode": mode,
            "rate_hz": rate,
            "injected_ms": delay,
            "ticks": jitter["count"],
            "jitter_p50_ms": jitter["median"],
            "jitter_p99_ms": jitter["p99"],
            "jitter_max_ms": jitter["max"],
            "overruns": loop.overruns,
            "empty_loop_jitter_p99_ms": probe.jitter_ms.p99,
            "inference_median_ms": node.worker.latency_ms.median,
            "empty_queue_holds": counts["empty_queue"],
            "stale_holds": counts["stale_camera"],
            "sent": counts["sent"],
            "camera_to_command_median_ms": node.camera_to_command_ms.median,
        }
    finally:
        executor.shutdown(timeout_sec=5)
        spinner.join(timeout=5)
        node.destroy_node()
        driver.destroy_node()
        context.try_shutdown()
    print(
        f"  {mode:<5} {rate:5.0f} Hz  +{delay:4.0f} ms  jitter p50 {row['jitter_p50_ms']:.3f} p99 "
        f"{row['jitter_p99_ms']:.3f} max {row['jitter_max_ms']:.2f} ms  overruns {row['overruns']}  "
        f"(empty loop p99 {row['empty_loop_jitter_p99_ms']:.3f})  "
        f"inference {row['inference_median_ms']:.0f} ms  empty-queue holds "
        f"{row['empty_queue_holds']}/{row['ticks']}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer runs, shorter scenarios")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (cuda: latency only)")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch and ONNX Runtime")
    parser.add_argument("--skip-control", action="store_true", help="latency only (no ROS needed)")
    parser.add_argument("--json", type=Path, default=OUT / "vla.json")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    checkpoint, label = prepare_models(args.checkpoint)
    print(f"inference latency ({label} model {checkpoint}):", flush=True)
    latency = measure_latency(checkpoint, args.device, 20 if args.quick else 200, args.threads)
    control = []
    if not args.skip_control and args.device == "cpu":
        rates = [24.0, 50.0]
        delays = [20.0, 400.0] if args.quick else [20.0, 100.0, 200.0, 400.0]
        print("control loop (vla_node on its own executor, feeder process, motion enabled):", flush=True)
        control = measure_control(checkpoint, rates, delays, 3.0 if args.quick else 10.0)
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "model": {"checkpoint": str(checkpoint), "weights": label},
        "quick": args.quick,
        "latency": latency,
        "control": control,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
