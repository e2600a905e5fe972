#!/usr/bin/env python3
"""Evaluate a policy on the tabletop reference task: success rate and time to completion.

Two modes, the same episodes (layouts from --seed, random instructions from --seed):

- offline (default): the core world and the policy in this process, no ROS, synchronous chunks
  (--execute-steps of each chunk run before the next inference). Measures the policy itself.
- --ros: the real system over rclpy topics: starts the sim node and vla_node as separate
  processes (or uses running ones with --no-start), and per episode disables motion, resets the sim,
  publishes an instruction on /vla/instruction, enables motion (/vla/enable) and reads /sim/status
  until success or timeout. --vla-mode async, sync or both (each with freshly started nodes).

Prints a table and writes JSON (default out/bench/vla_eval.json).

    python tools/vla/evaluate.py --episodes 50
    python tools/vla/evaluate.py --ros --vla-mode both --episodes 50
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tabletop_sim.episode import EpisodeResult, LoopSpec, run_episodes
from tabletop_sim.instructions import random_instruction
from tabletop_sim.render import Camera

REPO = Path(__file__).resolve().parents[2]

DEFAULT_POLICY = "reference:vla_node/models/reference"


def summarise(results: list[EpisodeResult]) -> dict[str, Any]:
    times = np.array([r.time_to_success_s for r in results if r.success])
    return {
        "episodes": len(results),
        "successes": len(times),
        "success_rate": round(len(times) / len(results), 3) if results else 0.0,
        "time_to_success_s": {
            "median": round(float(np.median(times)), 3) if len(times) else None,
            "p90": round(float(np.percentile(times, 90)), 3) if len(times) else None,
            "mean": round(float(times.mean()), 3) if len(times) else None,
        },
    }


def print_table(rows: dict[str, dict[str, Any]]) -> None:
    print(f"{'run':<28} {'episodes':>8} {'success':>8} {'median s':>9} {'p90 s':>7} {'mean s':>7}")
    for name, s in rows.items():
        t = s["time_to_success_s"]
        cells = [f"{v:.2f}" if v is not None else "-" for v in (t["median"], t["p90"], t["mean"])]
        rate = f"{s['success_rate']:.1%}"
        print(f"{name:<28} {s['episodes']:>8} {rate:>8} {cells[0]:>9} {cells[1]:>7} {cells[2]:>7}")


# --- offline: core world + policy in this process ---


def evaluate_offline(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from vla_node.backends import load_policy
    from vla_node.policy import Observation

    policy = load_policy(args.policy, device=args.device)
    key = policy.metadata.image_keys[0]

    def controller_for() -> Callable:
        policy.reset()
        return lambda image, q, text: policy.predict_chunk(
            Observation({key: image}, q.astype(np.float32), text)
        )

    spec = LoopSpec(
        control_period_s=policy.metadata.control_period_s,
        execute_steps=args.execute_steps,
        timeout_s=args.timeout,
    )
    with tqdm(total=args.episodes, desc="offline episodes", unit="ep") as bar:
        results = run_episodes(
            controller_for, args.episodes, args.seed, Camera(), spec, lambda _: bar.update()
        )
    name = f"offline (execute {args.execute_steps})"
    return {name: {**summarise(results), "results": [asdict(r) for r in results]}}


# --- ROS: real nodes in separate processes ---


def start_node(args: list[str], log: Path) -> subprocess.Popen:
    env = {
        k: v for k, v in os.environ.items() if k not in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH")
    }
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**env, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_node(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def evaluate_ros_mode(args: argparse.Namespace, mode: str, log_dir: Path) -> dict[str, Any]:
    import rclpy
    from tqdm import tqdm

    from tabletop_sim.ros_episodes import RosEpisodeDriver

    procs = []
    if not args.no_start:
        procs.append(
            start_node(
                ["-m", "tabletop_sim.node", "--ros-args", "-p", f"seed:={args.seed}"],
                log_dir / f"sim_{mode}.log",
            )
        )
        vla_args = [
            "-m",
            "vla_node.node",
            "--ros-args",
            "-p",
            f"policy:={args.policy}",
            "-p",
            f"device:={args.device}",
            "-p",
            f"mode:={mode}",
            "-p",
            f"control_rate_hz:={args.control_rate}",
            "-p",
            f"inference_delay_ms:={args.inference_delay_ms}",
        ]
        procs.append(start_node(vla_args, log_dir / f"vla_{mode}.log"))
    from rclpy.executors import SingleThreadedExecutor

    node = rclpy.create_node("vla_evaluator")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    driver = RosEpisodeDriver(node, args.reset_service, args.enable_service, spin_once=executor.spin_once)
    try:
        driver.wait_ready(args.startup_timeout)
        rng = np.random.default_rng(args.seed)
        results = []
        for _ in tqdm(range(args.episodes), desc=f"ROS episodes ({mode})", unit="ep"):
            instruction, target = random_instruction(rng)
            results.append(driver.episode(instruction, target, args.timeout))
        driver.enable(False)
    finally:
        executor.shutdown()
        node.destroy_node()
        for proc in procs:
            stop_node(proc)
    name = f"ros {mode} {args.control_rate:g} Hz" + (
        f" +{args.inference_delay_ms:g} ms" if args.inference_delay_ms else ""
    )
    return {name: {**summarise(results), "results": [asdict(r) for r in results]}}


def evaluate_ros(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy

    from humanoid_common.config import apply_fastdds_profile

    apply_fastdds_profile()
    rclpy.init()
    log_dir = args.out.parent / "vla_eval_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    try:
        for mode in ("async", "sync") if args.vla_mode == "both" else (args.vla_mode,):
            rows |= evaluate_ros_mode(args, mode, log_dir)
    finally:
        rclpy.try_shutdown()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000, help="layouts and instructions")
    parser.add_argument("--policy", default=DEFAULT_POLICY, help="reference:<dir> or onnx:<dir|file>")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=8.0, help="seconds (sim time) per episode")
    parser.add_argument("--execute-steps", type=int, default=8, help="offline: chunk steps run per inference")
    parser.add_argument("--ros", action="store_true", help="closed loop over ROS with the real nodes")
    parser.add_argument("--vla-mode", choices=("async", "sync", "both"), default="both")
    parser.add_argument("--control-rate", type=float, default=24.0, help="vla_node control_rate_hz")
    parser.add_argument("--inference-delay-ms", type=float, default=0.0, help="vla_node inference_delay_ms")
    parser.add_argument("--no-start", action="store_true", help="use already running sim and vla nodes")
    parser.add_argument("--reset-service", default="/tabletop_sim/reset")
    parser.add_argument("--enable-service", default="/vla/enable")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=Path("out/bench/vla_eval.json"))
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.timeout <= 0 or args.execute_steps < 1:
        parser.error("--episodes and --execute-steps must be >= 1 and --timeout > 0")
    rows = evaluate_ros(args) if args.ros else evaluate_offline(args)
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "policy": args.policy,
        "seed": args.seed,
        "timeout_s": args.timeout,
        "success_radius_m": 0.04,
        "runs": rows,
    }
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"→ {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
