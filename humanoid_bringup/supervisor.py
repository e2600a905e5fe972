"""Start, watch, restart, stop: the process supervision behind the stack runner (no rclpy).

Each child runs in its own session (Ctrl-C reaches only the runner, which forwards SIGINT), its
output is copied line by line with a `[name]` prefix, optionally into `<log_dir>/<name>.log` too.
A child that exits with EXIT_CANNOT_START (its configuration cannot work) is a failure of the whole
stack; any other death is respawned after a delay that doubles while the child keeps dying young.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from humanoid_common.config import EXIT_CANNOT_START


@dataclass(frozen=True)
class ChildSpec:
    name: str
    command: list[str]
    env: dict[str, str] | None = None  # the whole environment; None: the runner's
    respawn: bool = True


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    starts: int = 0
    respawn_at: float | None = None
    quick_deaths: int = 0  # deaths in a row, each within stable_s of its start
    readers: list[threading.Thread] = field(default_factory=list)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class Supervisor:
    """Keeps a set of child processes running until `stop()`."""

    def __init__(
        self,
        specs: list[ChildSpec],
        *,
        output: IO[str] | None = None,
        log_dir: Path | None = None,
        respawn_delay_s: float = 1.0,
        max_respawn_delay_s: float = 30.0,
        stable_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique, got {names}")
        self.children = {spec.name: Child(spec) for spec in specs}
        self.output = output or sys.stdout
        self.log_dir = log_dir
        self.respawn_delay_s = respawn_delay_s
        self.max_respawn_delay_s = max_respawn_delay_s
        self.stable_s = stable_s
        self.failure: str | None = None
        self._clock = clock
        self._lock = threading.Lock()  # one writer on `output` at a time
        self._stopping = False

    # ---------------------------------------------------------------- running
    def start(self) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for child in self.children.values():
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        proc = subprocess.Popen(
            child.spec.command,
            env=child.spec.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child.proc, child.started_at, child.respawn_at = proc, self._clock(), None
        child.starts += 1
        log = (self.log_dir / f"{child.spec.name}.log").open("ab") if self.log_dir else None
        reader = threading.Thread(
            target=self._copy_output, args=(child.spec.name, proc.stdout, log), daemon=True
        )
        reader.start()
        child.readers.append(reader)
        self._event(child.spec.name, f"started (pid {proc.pid}, start {child.starts})")

    def _copy_output(self, name: str, stream: IO[bytes], log: IO[bytes] | None) -> None:
        with stream:
            for raw in stream:
                if log is not None:
                    log.write(raw)
                    log.flush()
                with self._lock:
                    self.output.write(f"[{name}] {raw.decode(errors='replace')}")
                    self.output.flush()
        if log is not None:
            log.close()

    def _event(self, name: str, what: str) -> None:
        with self._lock:
            self.output.write(f"[run_stack] {name}: {what}\n")
            self.output.flush()

    def poll(self) -> None:
        """Notice exits, schedule and perform respawns; sets `failure` when the stack cannot run."""
        now = self._clock()
        for child in self.children.values():
            if child.respawn_at is not None:
                if now >= child.respawn_at and not self._stopping:
                    self._spawn(child)
                continue
            code = child.proc.poll() if child.proc else None
            if code is None or self._stopping:
                continue
            self._event(child.spec.name, describe_exit(code))
            if code == EXIT_CANNOT_START:
                self.failure = f"{child.spec.name} cannot start with this configuration (see its log above)"
                return
            if not child.spec.respawn:
                if code != 0:
                    self.failure = f"{child.spec.name} {describe_exit(code)} and is not respawned"
                child.proc = None
                continue
            child.quick_deaths = child.quick_deaths + 1 if now - child.started_at < self.stable_s else 1
            delay = min(self.max_respawn_delay_s, self.respawn_delay_s * 2 ** (child.quick_deaths - 1))
            child.respawn_at = now + delay
            self._event(child.spec.name, f"respawning in {delay:g} s")

    def run(self, stop: threading.Event, period_s: float = 0.1) -> int:
        """Start everything, supervise until `stop` is set or the stack fails; stop all. Exit status."""
        self.start()
        try:
            while not stop.is_set() and self.failure is None:
                self.poll()
                stop.wait(period_s)
        finally:
            self.stop()
        if self.failure:
            with self._lock:
                self.output.write(f"[run_stack] stopping: {self.failure}\n")
            return 1
        return 0

    # ---------------------------------------------------------------- stopping
    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGINT to every child (a clean ROS shutdown), SIGKILL to those still there after timeout."""
        self._stopping = True
        running = [c for c in self.children.values() if c.proc is not None and c.proc.poll() is None]
        for child in running:
            _signal_group(child.proc, signal.SIGINT)
        deadline = self._clock() + timeout_s
        for child in running:
            try:
                child.proc.wait(max(0.1, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                self._event(child.spec.name, f"still running {timeout_s:g} s after SIGINT: SIGKILL")
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(5)
        for child in self.children.values():
            if child.proc is not None:
                _signal_group(child.proc, signal.SIGKILL)  # nothing of a child's group outlives it
            for reader in child.readers:
                reader.join(timeout=2)

    def pid(self, name: str) -> int | None:
        child = self.children[name]
        return child.proc.pid if child.proc is not None and child.proc.poll() is None else None


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
