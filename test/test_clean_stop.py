"""Every node stops cleanly on SIGINT (Ctrl-C, a script's group signal) and SIGTERM (systemd, launch's
escalation): exit 0, no traceback, quickly, also while it is busy (perception and memory in inference
on a camera faster than they run, the planner inside a model call, the CPU loaded by other work).

Under `ros2 launch` a node always gets a second signal: a group Ctrl-C (or systemd's SIGTERM to the
group) reaches the node and launch, and launch then sends every node a SIGINT of its own. So after
the first signal the test keeps sending SIGINT every 20 ms until the node has exited."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String

from harness import wait_active, wait_for
from humanoid_bringup.profiles import NODES
from humanoid_common.qos import load_qos_config

#: What a stop may take here: launch escalates SIGINT to SIGTERM after 5 s and SIGTERM to SIGKILL after
#: 5 s more, so a node slower than this is killed, not stopped. The goal is 2 s (issue 11); the printed
#: times are the measurement (0.2-0.3 s alone; once 2.6 s for perception_node late in a full test run
#: on the 2-core CI machine).
STOP_BOUND_S = 5.0


def _spin() -> None:
    while True:
        pass


def busy_arguments(tmp_path) -> dict[str, list[str]]:
    """The six nodes with their own defaults, the head camera at 15 Hz and no rate limits: perception
    and memory are in inference nearly all the time."""
    return {
        "perception_node": ["-p", "max_rate_hz:=0.0", "-p", "warmup_frames:=1"],
        "memory_node": ["-p", f"data_dir:={tmp_path / 'memory'}", "-p", "max_rate_hz:=0.0"],
        "vla_node": ["-p", "policy:=onnx:vla_node/models/reference"],
        "tabletop_sim": [
            "-r",
            "/camera/image_raw:=/tabletop/image_raw",
            "-r",
            "/camera/camera_info:=/tabletop/info",
        ],
        "people_scene": ["-p", "rate_hz:=15.0"],
        # In a model call when the signal comes: reading its prompt, or planning the request sent then.
        "planner_node": ["-p", "model:=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "-p", "threads:=1"],
        # Sheds load at once (the CPU is busy), so that at the stop it asks for the rates back from nodes
        # that are stopping too.
        "governor": [
            "-p",
            "perception_rates:=[0.0, 20.0]",
            "-p",
            "memory_rates:=[0.0, 10.0]",
            "-p",
            "step_s:=0.5",
        ],
    }


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_every_node_stops_cleanly_and_quickly_while_busy_whatever_follows(
    signal_name, ros, processes, tmp_path
):
    procs = {
        name: processes.start(["-m", "humanoid_bringup.composed", name, "--ros-args", *arguments], name)
        for name, arguments in busy_arguments(tmp_path).items()
    }
    assert set(procs) == set(NODES)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 50)
    wait_active(ros, processes, procs)

    def value(status_name: str, key: str) -> float:
        for array in reversed(list(diagnostics)):
            for status in array.status:
                if status.name == status_name:
                    return float({v.key: v.value for v in status.values}.get(key, 0) or 0)
        return 0.0

    wait_for(lambda: value("perception_node: inference", "rate_hz") > 0.5, 120, "perception in inference")
    wait_for(lambda: value("governor: load", "level") >= 1, 60, "the governor shedding load")
    topic = "/planner/instruction"
    request = ros.node("planner_user").create_publisher(String, topic, load_qos_config().profile(topic))
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(2)]
    for hog in hogs:
        hog.start()
    try:
        request.publish(String(data="say hello, then touch the red cup"))
        time.sleep(3.0)  # the load, the inference and the planning going on
        sent = time.monotonic()
        for proc in procs.values():
            proc.send_signal(getattr(signal, signal_name))
        took: dict[str, float] = {}
        while len(took) < len(procs) and time.monotonic() - sent < 30:
            time.sleep(0.02)
            for name, proc in procs.items():
                if name in took:
                    continue
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)  # launch's own, or an impatient user
                else:
                    took[name] = time.monotonic() - sent
    finally:
        for hog in hogs:
            hog.kill()
    print(f"\n{signal_name} while busy: " + ", ".join(f"{name} {s:.2f} s" for name, s in took.items()))
    for name, proc in procs.items():
        log = processes.log(proc)
        assert name in took, f"{name} still running 30 s after {signal_name}:\n{log[-3000:]}"
        assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{log[-3000:]}"
        assert "Traceback" not in log, f"{name}:\n{log[-3000:]}"
    slow = {name: round(s, 2) for name, s in took.items() if s > STOP_BOUND_S}
    assert not slow, f"slower than {STOP_BOUND_S} s to stop: {slow}"


def _dds_segments() -> set[str]:
    """Fast DDS's shared-memory segments in /dev/shm (one per participant, ~17 MB of RAM each)."""
    return {
        name
        for name in os.listdir("/dev/shm")
        if name.startswith("fastrtps_") and not name.endswith("_el") and "port" not in name
    }


@pytest.mark.integration
def test_a_clean_stop_leaves_no_shared_memory_behind(ros, processes, tmp_path):
    """Before the fix every clean stop left its participant's segment in /dev/shm: RAM that a node
    restarted again and again (launch's respawn) would use up. planner_node is left out: stopped inside
    a model call, its worker still holds the node when the process exits (docs/launch_and_rviz.md)."""
    names = ("governor", "people_scene", "tabletop_sim", "memory_node", "perception_node")
    arguments = busy_arguments(tmp_path)
    ros.node("shm_probe")  # this process's own participant (and segment) exists before the count
    before = _dds_segments()
    procs = {
        name: processes.start(["-m", "humanoid_bringup.composed", name, "--ros-args", *arguments[name]], name)
        for name in names
    }
    wait_active(ros, processes, procs)
    assert len(_dds_segments() - before) >= len(names)  # one each while they run: the check can fail
    for proc in procs.values():
        proc.send_signal(signal.SIGINT)
    for name, proc in procs.items():
        assert proc.wait(timeout=30) == 0, f"{name}:\n{processes.log(proc)[-3000:]}"
    assert _dds_segments() - before == set()
