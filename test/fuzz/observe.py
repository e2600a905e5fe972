"""What the fuzz runner reads from a node under test: its /diagnostics statuses and its memory."""

from __future__ import annotations

import threading
from typing import Any

import psutil
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy

MIB = 1024 * 1024


class StatusBoard:
    """The newest status of each wanted name on /diagnostics, as a dict of its values plus
    `status_level` (0-3) and `status_message`. Keeps nothing else, whatever arrives on the topic (the
    fuzzer's own garbage too)."""

    def __init__(self, node: Any, names: set[str]) -> None:
        self._names = names
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, int] = dict.fromkeys(names, 0)
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_array, qos)

    def _on_array(self, array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name in self._names:
                values = {kv.key: kv.value for kv in status.values}
                with self._lock:
                    self._latest[status.name] = {
                        **values,
                        "status_level": status.level[0],
                        "status_message": status.message,
                    }
                    self.updates[status.name] += 1

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._latest.get(name)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its children."""
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in (process, *process.children(recursive=True)))
