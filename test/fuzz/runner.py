"""The one fuzz runner: starts a node as a process, feeds every topic it subscribes to malformed
messages with valid ones interleaved, calls its services with hostile requests, then checks it.

Checks (each a failure in `Result.failures`): the process is alive and exits cleanly on SIGINT; the
node produces valid output after the fuzzing (the target's observer sends a valid stimulus and waits
for the answer); its `inputs` status on /diagnostics counted drops on every fuzzed topic, no
callback failed, and no more drops than malformed messages were sent; its services answered; its
resident memory grew by less than RSS_GROWTH_LIMIT; the target's invariant held on its output.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rclpy._rclpy_pybind11 import RCLError

from fuzz.malformed import malformed, refusable
from fuzz.observe import MIB, StatusBoard, rss_bytes
from harness import ProcessGroup, RosHarness, wait_for
from humanoid_common.qos import load_qos_config

#: Pause after each message: a node at work still takes most of them from its (depth 1) queues.
PACE_S = 0.002
#: Share of valid messages among those sent to a topic.
VALID_SHARE = 0.2
#: A node's resident memory may grow this much over a run (model caches, allocator arenas); a leak
#: of one message per thousand of these (up to 1 MB each) exceeds it in the long run.
RSS_GROWTH_LIMIT = 160 * MIB
#: Each service gets a call every this many rounds (every round for a node without topics).
SERVICE_EVERY = 10
#: Requests of one service in flight at most: a service's DDS request queue keeps 10 (the rmw
#: default), so a larger burst loses requests in the middleware before the node could answer.
MAX_IN_FLIGHT = 5
#: A service that leaves MAX_IN_FLIGHT requests unanswered this long has stopped answering.
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicSpec:
    topic: str
    msg_type: type
    valid: Callable[[random.Random], Any]  # a valid message (stamped now by the runner, if it has a header)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    srv_type: type
    request: Callable[[random.Random], Any]  # a hostile request


class Observer(Protocol):
    """A target's view of the node's output, created before the node starts."""

    def output(self) -> str:
        """Send a valid stimulus, wait for the node's valid answer (AssertionError if none); say what came."""

    def violations(self) -> list[str]:
        """Every breach of the target's invariant seen on the node's output so far."""


@dataclass(frozen=True)
class Target:
    name: str  # as in the table
    node: str  # the node's name: its statuses are "<node>: <task>"
    command: Callable[
        [Path], tuple[list[str], dict[str, str]]
    ]  # (python arguments, environment) in a tmp dir
    topics: tuple[TopicSpec, ...]
    observer: Callable[[Session], Observer]
    services: tuple[ServiceSpec, ...] = ()
    startup_s: float = 90.0


@dataclass
class Row:
    """One line of the table: a topic or a service of a node."""

    node: str
    channel: str
    service: bool = False
    malformed: int = 0  # messages, or requests of a service
    valid: int = 0  # messages, or answered requests of a service
    crashes: int = 0
    accepted: int | None = None  # as the node counted them, over the whole run (valid stimuli too)
    dropped: int | None = None
    callback_errors: int | None = None
    violations: int = 0
    rss_before: int = 0
    rss_after: int = 0


@dataclass
class Result:
    target: str
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0


class Session:
    """The test side of one run: publishers, service clients and the node's statuses."""

    def __init__(self, ros: RosHarness, target: Target) -> None:
        self.ros = ros
        self.target = target
        self.node = ros.node(f"fuzz_{target.node}")
        self.qos = load_qos_config()
        self.publishers = {
            spec.topic: self.node.create_publisher(spec.msg_type, spec.topic, self.qos.profile(spec.topic))
            for spec in target.topics
        }
        self.clients = {
            spec.name: self.node.create_client(spec.srv_type, spec.name) for spec in target.services
        }
        self.statuses = StatusBoard(self.node, {f"{target.node}: inputs"})

    def now(self) -> Any:
        return self.node.get_clock().now().to_msg()

    def stamped(self, msg: Any) -> Any:
        if hasattr(msg, "header"):
            msg.header.stamp = self.now()
        return msg

    def publish(self, topic: str, msg: Any) -> bool:
        """Publish a message, or raw bytes as they are; False when the middleware refused the bytes
        (Fast DDS cannot send more bytes than a bounded type's largest message, e.g. std_msgs/Empty)."""
        if not isinstance(msg, bytes):
            self.publishers[topic].publish(self.stamped(msg))
            return True
        try:
            self.publishers[topic].publish(msg)
        except RCLError:
            return False
        return True

    def inputs(self) -> dict[str, Any] | None:
        return self.statuses.get(f"{self.target.node}: inputs")

    def wait_ready(self, alive: Callable[[], bool], timeout: float) -> None:
        def ready() -> bool:
            if not alive():
                raise AssertionError("the node exited while starting")
            subscribed = all(p.get_subscription_count() > 0 for p in self.publishers.values())
            return subscribed and all(c.service_is_ready() for c in self.clients.values())

        wait_for(ready, timeout, f"{self.target.node} subscribing to its topics and serving", interval=0.1)

    def settled_inputs(self, timeout: float = 20.0) -> dict[str, Any]:
        """The inputs status once two consecutive reports count the same refused messages."""
        name = f"{self.target.node}: inputs"
        topics = [spec.topic for spec in self.target.topics]

        def total(status: dict[str, Any] | None) -> int | None:
            """Refused messages: accepted ones may go on arriving from others (/diagnostics)."""
            keys = [f"{k}.{t}" for t in topics for k in ("dropped", "callback_errors")]
            if status is None or any(key not in status for key in keys):
                return None
            return sum(int(status[key]) for key in keys)

        if not topics:
            return wait_for(self.inputs, timeout, f"a '{name}' status")
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            seen = self.statuses.updates[name]
            wait_for(lambda s=seen: self.statuses.updates[name] > s, timeout, f"a new '{name}' status")
            status = self.inputs()
            count = total(status)
            if count is not None and count == last:
                return status
            last = count
        raise AssertionError(
            f"'{name}' did not settle within {timeout:g} s (or lacks a topic): {self.inputs()}"
        )


def _fuzz(session: Session, messages: int, rng: random.Random, rows: dict[str, Row], futures: list) -> None:
    target = session.target
    every = SERVICE_EVERY if target.topics else 1  # a node without topics: its services every round
    for round_ in range(messages):
        for spec in target.topics:
            if rng.random() < VALID_SHARE:
                session.publish(spec.topic, spec.valid(rng))
                rows[spec.topic].valid += 1
            else:
                while not session.publish(spec.topic, malformed(session.stamped(spec.valid(rng)), rng)[1]):
                    pass  # bytes the middleware cannot carry for this type: another malformed message
                rows[spec.topic].malformed += 1
            time.sleep(PACE_S)
        if round_ % every == 0:
            for spec in target.services:
                pending = [f for name, f in futures if name == spec.name and not f.done()]
                wait_for(
                    lambda p=pending: sum(not f.done() for f in p) < MAX_IN_FLIGHT,
                    ANSWER_TIMEOUT_S,
                    f"{spec.name} answering (a request was in flight for {ANSWER_TIMEOUT_S:g} s)",
                    interval=0.002,
                )
                rows[spec.name].malformed += 1
                futures.append((spec.name, session.clients[spec.name].call_async(spec.request(rng))))


def run(target: Target, messages: int, ros: RosHarness, processes: ProcessGroup, tmp: Path) -> Result:
    """Fuzz one node with `messages` messages per topic; the rows and failures of the run."""
    started = time.monotonic()
    result = Result(target.name)
    rng = random.Random(f"fuzz {target.name}")
    session = Session(ros, target)
    observer = target.observer(session)
    args, env = target.command(tmp)
    proc = processes.start(args, target.node, env=env)
    rows = {spec.topic: Row(target.name, spec.topic) for spec in target.topics}
    rows |= {spec.name: Row(target.name, spec.name, service=True) for spec in target.services}
    result.rows = list(rows.values())
    alive = lambda: proc.poll() is None  # noqa: E731
    try:
        session.wait_ready(alive, target.startup_s)
        observer.output()  # warmed up: the node works on valid input
        before = rss_bytes(proc.pid)
        futures: list[tuple[str, Any]] = []
        _fuzz(session, messages, rng, rows, futures)
        answered = lambda: not alive() or all(f.done() for _, f in futures)  # noqa: E731
        wait_for(answered, ANSWER_TIMEOUT_S, "the last service answers", interval=0.05)
        if not alive():
            raise AssertionError("the node died during the fuzzing")
        result.output = observer.output()
        for name, future in futures:
            rows[name].valid += future.done()
        status = session.settled_inputs()
        after = rss_bytes(proc.pid)
    except AssertionError as error:
        result.failures.append(str(error))
        before = after = 0
        status = session.inputs()
    violations = observer.violations()
    crashed = not alive()
    code = processes.stop(proc)
    if crashed or code != 0:
        result.failures.append(
            f"{target.node} exited with status {code}; log:\n{processes.log(proc)[-4000:]}"
        )
    for row in result.rows:
        row.crashes = int(crashed)
        row.rss_before, row.rss_after = before, after
        row.violations = len(violations)
    _check_inputs(result, target, status or {})
    if violations:
        result.failures.append(f"{len(violations)} invariant violations, e.g. {violations[:3]}")
    if after - before > RSS_GROWTH_LIMIT:
        result.failures.append(f"resident memory grew {(after - before) / MIB:.0f} MiB during the run")
    unanswered = [row.channel for row in result.rows if row.service and row.valid < row.malformed]
    if unanswered:
        result.failures.append(f"services left requests unanswered: {unanswered}")
    result.seconds = time.monotonic() - started
    return result


def _check_inputs(result: Result, target: Target, status: dict[str, Any]) -> None:
    """Fill the rows with the node's own counts and check them."""
    if not status:
        result.failures.append(f"no '{target.node}: inputs' status on /diagnostics")
    for spec in target.topics:
        row = next(r for r in result.rows if r.channel == spec.topic)
        try:
            accepted, dropped, errors = (
                int(status[f"{k}.{spec.topic}"]) for k in ("accepted", "dropped", "callback_errors")
            )
        except KeyError:
            result.failures.append(
                f"no counts for {spec.topic} in the '{target.node}: inputs' status: {status}"
            )
            continue
        row.accepted, row.dropped, row.callback_errors = accepted, dropped, errors
        if dropped == 0 and refusable(spec.msg_type):
            result.failures.append(f"{spec.topic}: the node counted no dropped message")
        if dropped > row.malformed:
            result.failures.append(f"{spec.topic}: {dropped} dropped but only {row.malformed} malformed sent")
        if errors:
            problem = status.get(f"last_problem.{spec.topic}")
            result.failures.append(f"{spec.topic}: {errors} messages made the callback fail: {problem}")
