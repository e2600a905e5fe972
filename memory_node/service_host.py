"""Services answered on a thread of their own, so that long ones never hold up the node's executor.

rclpy answers a service only by returning from its callback, and every node of this stack spins one
SingleThreadedExecutor (humanoid_common.lifecycle.run_nodes; rclpy 7.1's MultiThreadedExecutor loses
messages, and coroutine callbacks that await a Future busy-loop it). A 20-image Enroll (seconds of
face detection) on the node's executor therefore delayed every other callback: ListPeople, the camera
subscription, the timers. `ServiceHost` puts such services on a second node in the same process and
context, spun by its own SingleThreadedExecutor on its own thread, under the same service names: the
main executor stays free, and the hosted services are answered one after another (their work shares
the memory's own locks with the rest of the node).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Any

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from humanoid_common.lifecycle import create_guarded_service


class ServiceHost:
    """A helper node `<owner>_services` with its own executor thread; `close()` stops and frees it."""

    def __init__(self, owner: Node) -> None:
        name = f"{owner.get_name()}_services"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)
        # The same context, namespace and remapping rules as its owner; its own name even where the
        # command line renames every node of the process (a global __node remap). A plain node with
        # nothing but the hosted services (and its log): no parameters, lifecycle or type services.
        self.node = Node(
            name,
            context=owner.context,
            namespace=owner.get_namespace(),
            cli_args=["--ros-args", "-r", f"__node:={name}"],
            start_parameter_services=False,
            parameter_overrides=[Parameter("start_type_description_service", value=False)],
        )
        self._executor = SingleThreadedExecutor(context=owner.context)
        # Also at interpreter exit: a node whose start was interrupted (Ctrl-C before run_nodes holds
        # it) is never destroyed, and a thread left inside rclpy (or an executor never shut down)
        # then aborts the process.
        atexit.register(self.close)
        self._executor.add_node(self.node)
        self._wake = self.node.create_guard_condition(lambda: None)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while not self._stop.is_set():
                self._executor.spin_once()
        except ExternalShutdownException:  # the process is shutting down (Ctrl-C)
            pass

    def add(self, srv_type: Any, name: str, callback: Callable[[Any, Any], Any]) -> None:
        """A service on the helper node; an exception in `callback` becomes a failed response."""
        create_guarded_service(self.node, srv_type, name, callback)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop after the request in progress (if any), then free the node."""
        atexit.unregister(self.close)
        self._stop.set()
        if self._thread.is_alive():
            # Woken by us: a shut-down context does not wake this thread's executor (rclpy 7.1).
            self._wake.trigger()
            self._thread.join(timeout_s)
        self._executor.shutdown(timeout_sec=0)
        self.node.destroy_node()
