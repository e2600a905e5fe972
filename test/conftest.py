"""Fixtures: a private ROS domain per test run, in-process and subprocess nodes (harness.py)."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator

import pytest

from harness import ProcessGroup, RosHarness, clean_zombie_shared_memory
from humanoid_common.config import apply_fastdds_profile


def pytest_configure(config: pytest.Config) -> None:
    # Started as a background job of a script (`make test &`), the run inherits SIGINT ignored, and so
    # would every node and child it starts: a SIGINT before a node installs its own handler would be
    # lost, and a child that never installs one would ignore it. Python's default handler is restored
    # (children get the default disposition).
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Set before anything creates a DDS participant; subprocesses inherit it. A random domain
    # keeps concurrent runs (and a robot on the same network) apart; discovery stays on this host.
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 101)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    apply_fastdds_profile()
    clean_zombie_shared_memory()


def pytest_unconfigure(config: pytest.Config) -> None:
    print(f"\n{clean_zombie_shared_memory()}")


@pytest.fixture
def ros() -> Iterator[RosHarness]:
    """A private rclpy context spinning in a background thread; torn down after the test."""
    harness = RosHarness()
    try:
        yield harness
    finally:
        harness.shutdown()


@pytest.fixture
def processes(tmp_path) -> Iterator[ProcessGroup]:
    """Start nodes or tools as separate processes; all are stopped (and killed if needed) after."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
