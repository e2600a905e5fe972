"""Test harness: real rclpy nodes in this process or in separate processes, bounded waits.

Used through the fixtures of conftest.py (`ros`, `processes`); importable by any test module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

REPO = Path(__file__).resolve().parents[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    """Poll until predicate() is truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class RosHarness:
    """A private rclpy context with an executor spinning in a background thread."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)  # see humanoid_common.lifecycle.run_node
        self._nodes: list[Node] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="ros-harness", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok() and not self._stopping.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except rclpy.executors.ExternalShutdownException:
                return

    def node(self, name: str, **kwargs: Any) -> Node:
        """Create a plain node on this context and spin it."""
        return self.add(rclpy.create_node(name, context=self.context, **kwargs))

    def add(self, node: Node) -> Node:
        """Spin a node created on this context (e.g. one of the suite's nodes)."""
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def collect(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10, **kwargs: Any) -> list[Any]:
        """Subscribe on a helper node; the returned list fills with received messages."""
        received: list[Any] = []
        helper = self.node(f"collector_{len(self._nodes)}")
        helper.create_subscription(msg_type, topic, received.append, qos, **kwargs)
        return received

    def wait_for_topic(self, topic: str, timeout: float = 10.0, publishers: int = 1) -> None:
        """Wait until `publishers` publishers of `topic` are visible in the graph."""
        probe = self._nodes[0] if self._nodes else self.node("graph_probe")
        wait_for(lambda: probe.count_publishers(topic) >= publishers, timeout, f"a publisher of {topic}")

    def shutdown(self) -> None:
        # The spinning thread stops first: destroying a node under a running wait set raises there.
        self._stopping.set()
        self._thread.join(timeout=5)
        for node in self._nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.context.try_shutdown()
        self.executor.shutdown(timeout_sec=1)


#: Six processes loading models at once on a shared 2-core machine.
START_TIMEOUT_S = 180.0


def wait_active(ros: RosHarness, processes: ProcessGroup, procs: dict[str, subprocess.Popen]) -> None:
    """Until every node of `procs` (node name → its process) answers get_state with active; a process
    that exits first fails the test with its log (autostart runs before a node spins)."""
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState

    probe = ros.node("state_probe")
    for name, proc in procs.items():
        client = probe.create_client(GetState, f"/{name}/get_state")
        wait_for(
            lambda client=client, proc=proc: client.service_is_ready() or proc.poll() is not None,
            START_TIMEOUT_S,
            f"{name} to start",
        )
        assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{processes.log(proc)[-3000:]}"
        assert call_service(client, GetState.Request(), 60, f"{name}'s state").current_state.id == (
            State.PRIMARY_STATE_ACTIVE
        ), f"{name} is not active"


def call_service(client: Any, request: Any, timeout: float, what: str, attempt_s: float = 5.0) -> Any:
    """The response to `request`, asked again every `attempt_s` until `timeout`. A client can see the
    service (its request reached the server's reader) before the server's response writer has
    matched the client's reader: a response sent then is lost, and one call would wait for ever.
    Seen in full test runs, with many participants to discover."""
    deadline = time.monotonic() + timeout
    while True:
        future = client.call_async(request)
        try:
            wait_for(future.done, min(attempt_s, deadline - time.monotonic()), what)
            return future.result()
        except AssertionError:
            client.remove_pending_request(future)
            if time.monotonic() >= deadline:
                raise


def clean_zombie_shared_memory() -> str:
    """Remove the Fast DDS shared-memory segments and ports of processes that died without closing
    them (`fastdds shm clean`; live processes' files stay). Each SIGKILLed node leaves its 16 MB
    segment in /dev/shm, which is RAM: the kill tests would otherwise fill it run after run.
    Returns the tool's report."""
    tool = Path(sys.executable).with_name("fastdds")
    command = str(tool) if tool.exists() else shutil.which("fastdds")
    if command is None:
        return "fastdds not found: zombie shared-memory files were not cleaned"
    done = subprocess.run([command, "shm", "clean"], capture_output=True, text=True, timeout=120, check=False)
    lines = (done.stdout + done.stderr).splitlines()
    return "fastdds shm clean: " + ", ".join(line for line in lines if line and not line.endswith(":"))


class ProcessGroup:
    """Child processes started from this venv's Python, each in its own session, always reaped."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: Sequence[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `python args...` (a module with -m, or a script path) with the test environment."""
        log = self.log_dir / f"{name}.log"
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._procs.append((proc, log))
        return proc

    def log(self, proc: subprocess.Popen) -> str:
        return next(path for p, path in self._procs if p is proc).read_text(errors="replace")

    def stop(self, proc: subprocess.Popen, timeout: float = 30.0) -> int:
        """SIGINT (a clean ROS shutdown), then SIGKILL of the whole group if it lingers."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return proc.returncode

    def stop_all(self) -> None:
        for proc, _ in self._procs:
            self.stop(proc)
        for proc, _ in self._procs:
            with contextlib.suppress(ProcessLookupError):  # nothing of the group may outlive the test
                os.killpg(proc.pid, signal.SIGKILL)
