"""Managed (lifecycle) nodes of the suite: the autostart parameter, the release plumbing, one main().

Every node acquires its resources (models, GPU memory, database handles, topics) in on_configure /
on_activate and gives them back in two idempotent methods: `stop_input()` undoes activate and
`release()` undoes configure. ManagedNode calls them on deactivate, cleanup, shutdown and destroy,
so no node repeats that plumbing. `run_node()` is every entry point's main: a node whose autostart
fails exits with EXIT_CANNOT_START, so a supervisor (the stack runner, systemd) can tell a
configuration that will never start from a crash worth a respawn.
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import rclpy
import rclpy.utilities
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from humanoid_common.allocator import keep_large_buffers
from humanoid_common.config import EXIT_CANNOT_START, apply_fastdds_profile
from humanoid_common.throttle import KeyedThrottle
from humanoid_common.validation import shorten

#: Failed service calls are logged at most once per this many seconds per service.
SERVICE_LOG_PERIOD_S = 5.0


#: The lifecycle callbacks whose exceptions ManagedNode reports (rclpy turns them into ERROR silently).
TRANSITIONS = ("on_configure", "on_activate", "on_deactivate", "on_cleanup", "on_shutdown", "on_error")
#: Exceptions that carry a user-facing reason (a file, a value, a package): their message is enough.
_EXPECTED = (OSError, ValueError, LookupError, ImportError, RuntimeError)


def _reporting(
    name: str, callback: Callable[..., TransitionCallbackReturn]
) -> Callable[..., TransitionCallbackReturn]:
    """`callback` that logs why it failed instead of raising: rclpy would swallow the exception."""

    @functools.wraps(callback)
    def transition(self: ManagedNode, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return callback(self, state)
        except Exception as error:
            what = name.removeprefix("on_")
            self.get_logger().error(f"cannot {what}: {type(error).__name__}: {error}")
            if not isinstance(error, _EXPECTED):  # a bug: where it happened matters
                self.get_logger().error("".join(traceback.format_exception(error)).rstrip())
            return (
                TransitionCallbackReturn.FAILURE
                if what in ("configure", "activate")
                else TransitionCallbackReturn.ERROR
            )

    transition.reports_errors = True
    return transition


class ManagedNode(LifecycleNode):
    """A lifecycle node with an `autostart` parameter (default true).

    Subclasses declare their parameters, then call `self.autostart()` at the end of `__init__`; with
    autostart true the node configures and activates itself, like a plain node, and
    `autostart_ok` tells whether both transitions succeeded. An exception out of a subclass's
    lifecycle callback is logged with its reason (and, if unexpected, its traceback).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in TRANSITIONS:
            callback = cls.__dict__.get(name)
            if callback is not None and not getattr(callback, "reports_errors", False):
                setattr(cls, name, _reporting(name, callback))

    def __init__(self, node_name: str, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.declare_parameter(
            "autostart",
            True,
            ParameterDescriptor(description="Configure and activate at start-up (false: wait for a manager)"),
        )
        self.autostart_ok = True
        self._live: dict[str, tuple[Callable[[Any], str | None], Callable[[Any], None]]] = {}
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def live_parameter(
        self, name: str, check: Callable[[Any], str | None], apply: Callable[[Any], None]
    ) -> None:
        """Let the declared parameter `name` change while the node runs (`ros2 param set`, a governor).

        `check(value)` returns why a value is refused, or None; `apply(value)` puts an accepted one
        into effect. Other parameters keep their documented "read on configure" behaviour.
        """
        self._live[name] = (check, apply)

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        changes = [(p, *self._live[p.name]) for p in parameters if p.name in self._live]
        for parameter, check, _apply in changes:
            reason = check(parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=f"{parameter.name}: {reason}")
        for parameter, _check, apply in changes:
            apply(parameter.value)
        return SetParametersResult(successful=True)

    def create_guarded_service(self, srv_type: Any, name: str, callback: Callable[[Any, Any], Any], **kwargs):
        """`create_guarded_service` on this node."""
        return create_guarded_service(self, srv_type, name, callback, **kwargs)

    def autostart(self) -> None:
        self._warn_undeclared_overrides()
        if self.get_parameter("autostart").value:
            self.autostart_ok = (
                self.trigger_configure() == TransitionCallbackReturn.SUCCESS
                and self.trigger_activate() == TransitionCallbackReturn.SUCCESS
            )

    def _warn_undeclared_overrides(self) -> None:
        """A parameter given for this node (params file, -p) that it does not declare is ignored by
        rclpy without a word; name it, since it is most often a typo in a profile."""
        unknown = sorted(set(getattr(self, "_parameter_overrides", {})) - set(self._parameters))
        if unknown:
            self.get_logger().warning(
                f"ignoring parameters this node does not have: {', '.join(unknown)} "
                f"(check the spelling; `ros2 param list {self.get_fully_qualified_name()}` shows its own)"
            )

    def stop_input(self) -> None:
        """Undo on_activate (stop subscriptions, timers, worker threads); idempotent."""

    def release(self) -> None:
        """Undo on_configure (free models, stores, publishers); idempotent."""

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_input()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_input()
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self.stop_input()
        self.release()
        super().destroy_node()


def create_guarded_service(
    node: Node, srv_type: Any, name: str, callback: Callable[[Any, Any], Any], **kwargs: Any
) -> Any:
    """`node.create_service` whose callback cannot end the node: an exception (a bug, or a request
    nobody foresaw) becomes a failed response (`success` false and the reason in `message`, where the
    response has them), logged at most once per SERVICE_LOG_PERIOD_S."""
    throttle = KeyedThrottle(SERVICE_LOG_PERIOD_S)

    def guarded(request: Any, response: Any) -> Any:
        try:
            return callback(request, response)
        except Exception as error:
            reason = shorten(f"{type(error).__name__}: {error}")
            message = throttle.message(name, f"service {name} failed on a request: {reason}")
            if message is not None:
                node.get_logger().error(message)
            fresh = srv_type.Response()
            if hasattr(fresh, "success"):
                fresh.success = False
            if hasattr(fresh, "message"):
                fresh.message = f"internal error, request not carried out: {reason}"
            return fresh

    return node.create_service(srv_type, name, guarded, **kwargs)


class _StopRequested(Exception):  # noqa: N818 (a request, not an error)
    """SIGINT or SIGTERM arrived: leave the spin, then stop the nodes while ROS still works."""


def _raise_stop() -> None:
    raise _StopRequested


class _StopSignals:
    """SIGINT and SIGTERM end the spin with the ROS context still valid, so that each node's
    `destroy_node` can still publish (vla_node brakes the arm to rest before it goes silent).

    rclpy's own handler shuts the context down at once: every publish after it fails. Here the
    signal only wakes a watcher thread (signal.set_wakeup_fd) that triggers a guard condition; its
    callback, on the executor, raises _StopRequested out of `spin`. Only the main thread can install
    signal handlers; elsewhere this does nothing and `close` too.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, node: ManagedNode) -> None:
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._guard = node.create_guard_condition(_raise_stop)
        self._previous_fd = signal.set_wakeup_fd(self._write)
        self._previous = {sig: signal.signal(sig, lambda *_: None) for sig in self.SIGNALS}
        self._watcher = threading.Thread(target=self._watch, name="stop-signals", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while os.read(self._read, 1) not in (b"", b"\0"):  # a signal number; 0 is close()'s own
            self._guard.trigger()

    def close(self) -> None:
        """The previous handlers again, but SIGINT stays ignored while the nodes stop (run_nodes)."""
        if not self._previous:
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if sig == signal.SIGINT else handler)
        signal.set_wakeup_fd(self._previous_fd)
        os.write(self._write, b"\0")
        self._watcher.join(1.0)
        os.close(self._write)
        os.close(self._read)
        self._previous = {}


def _ignore_interrupts() -> None:
    """While the nodes stop, a further SIGINT is ignored: one always comes. A Ctrl-C (or a script's
    group signal) reaches every node and launch, and launch then sends each node a SIGINT of its own;
    under systemd a SIGTERM to the group makes launch do the same. Taken as KeyboardInterrupt, that
    second signal broke off the stop inside destroy_node (a traceback, exit -2, the arm's braking cut
    short). SIGTERM keeps its default (ends the process at once): launch's escalation still works."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_node(factory: Callable[[], ManagedNode], args: list[str] | None = None) -> int:
    """Every node's main: init rclpy (with the Fast DDS profile and large buffers kept in the heap),
    create the node, spin until Ctrl-C."""
    return run_nodes([factory], args)


def run_nodes(factories: Sequence[Callable[[], ManagedNode]], args: list[str] | None = None) -> int:
    """Create the nodes in order in one process and spin them together; the exit status
    (EXIT_CANNOT_START when one of them fails its autostart; the others are not started then; 0
    after SIGINT or SIGTERM, once every node has stopped cleanly).

    Always a SingleThreadedExecutor: rclpy's MultiThreadedExecutor (7.1.x, Jazzy) over Fast DDS
    stalls subscriptions for seconds and loses messages even with reliable QoS (bench/executors.py
    measures it). Work that takes long runs on the nodes' own worker threads instead.
    """
    status = _spin_nodes(factories, args)
    _free_the_participant()  # the nodes and the executor are out of scope now
    return status


def _spin_nodes(factories: Sequence[Callable[[], ManagedNode]], args: list[str] | None) -> int:
    apply_fastdds_profile()
    keep_large_buffers()
    # Our own stop on SIGINT/SIGTERM once spinning (_StopSignals); until then Python's defaults.
    rclpy.init(args=sys.argv if args is None else args, signal_handler_options=SignalHandlerOptions.NO)
    executor = SingleThreadedExecutor()
    nodes: list[ManagedNode] = []
    signals: _StopSignals | None = None
    status = 0
    try:
        for factory in factories:
            node = factory()
            nodes.append(node)
            executor.add_node(node)
            if not node.autostart_ok:
                node.get_logger().error("autostart failed (see the error above); exiting")
                status = EXIT_CANNOT_START
                break
        if status == 0:
            signals = _StopSignals(nodes[0])
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException, _StopRequested):
        pass
    finally:
        _ignore_interrupts()
        if signals is not None:
            signals.close()
        executor.shutdown()
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
    return status


def _free_the_participant() -> None:
    """Destroy the rcl context now, so Fast DDS removes its shared-memory segment (~17 MB of RAM in
    /dev/shm). A reference cycle keeps some rclpy handles alive after shutdown, and exit_now skips the
    collection that would free them: without this every clean stop left the segment behind."""
    gc.collect()
    rclpy.utilities.get_default_context().destroy()


def exit_now(status: int) -> NoReturn:
    """End a node process once run_nodes has returned, without the interpreter's teardown.

    The nodes have released everything themselves by then (ManagedNode.release, rclpy shut down);
    what is left is freeing the modules of torch, onnxruntime and OpenCV one object at a time, which
    took 1.3 to 1.4 s of a stop (perception_node, vla_node, idle) and over 2 s under load, past
    what a supervisor waits. The exit handlers still run (logging, thread pools) and output is
    flushed; then the process ends at once: 0.1 s from the signal to the exit.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
