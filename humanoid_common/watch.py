"""Subscriptions and publishers that watch their deadline and QoS compatibility (DESIGN §3).

Every node creates its topics through these so that deadline misses are counted the same way
everywhere (for /diagnostics and for the node's own reaction), and a QoS mismatch, which would
otherwise silently deliver nothing, is logged as a warning a person can act on.

A subscription also stands between the graph and the node's callback: a message the callback refuses
(`InvalidMessageError`) or fails on (any other exception: a bug, but never a reason to end the node) is
dropped, counted, and logged at most once per period per topic with its text shortened. Only
accepted messages refresh the topic's age, so a stream of garbage cannot make stale data look fresh.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node
from rclpy.qos import qos_policy_name_from_kind

try:  # Jazzy and newer
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

from humanoid_common.diagnostics import ERROR, OK, WARN, Level
from humanoid_common.qos import QosConfig, TopicQos
from humanoid_common.throttle import KeyedThrottle
from humanoid_common.validation import InvalidMessageError, shorten

#: A topic's drops and callback errors are logged at most once per this many seconds.
DROP_LOG_PERIOD_S = 5.0
#: The inputs status stays WARN this long after a drop.
RECENT_DROP_S = 10.0


@dataclass
class TopicHealth:
    """Counters of one topic endpoint, read by diagnostics and by node logic."""

    topic: str
    deadline_ms: float
    messages: int = 0  # accepted (subscriptions) or published
    deadline_misses: int = 0
    incompatible_qos: int = 0
    last_message_ns: int | None = None  # node clock (sim time when use_sim_time is set)
    dropped: int = 0  # refused by the callback (InvalidMessageError)
    callback_errors: int = 0  # the callback raised anything else
    last_problem: str = ""  # the latest drop or error, shortened
    last_problem_at: float | None = None  # time.monotonic() of it


def _describe(qos: TopicQos) -> str:
    deadline = f", deadline {qos.deadline_ms:g} ms" if qos.deadline_ms else ""
    return f"{qos.reliability}, {qos.durability}, depth {qos.depth}{deadline}"


class WatchedSubscription:
    """A subscription with deadline counting and incompatible-QoS warnings.

    Our own topics use the DDS deadline (rclpy's deadline-missed event). Topics marked `external`
    in qos.yaml request no DDS deadline (see TopicQos.profile) and are watched here by a watchdog
    timer of one deadline period that every message resets: each whole period without a message,
    after the first one, counts one miss, as DDS does. While messages arrive in time the timer never
    fires (a polling timer would wake the executor many times a second, and each wake costs about a
    millisecond of Python on a small CPU).
    """

    def __init__(
        self,
        node: Node,
        msg_type: Any,
        topic: str,
        callback: Callable[[Any], None],
        qos: QosConfig,
        *,
        on_deadline_missed: Callable[[TopicHealth], None] | None = None,
        raw: bool = False,
        callback_group: Any = None,
    ) -> None:
        self._node = node
        self._callback = callback
        self._on_deadline_missed = on_deadline_missed
        self._log_throttle = KeyedThrottle(DROP_LOG_PERIOD_S)
        self.qos = qos[topic]
        self.health = TopicHealth(topic, self.qos.deadline_ms)
        local_watch = self.qos.external and self.qos.deadline_ms > 0
        events = SubscriptionEventCallbacks(
            deadline=None if local_watch or not self.qos.deadline_ms else self._dds_deadline_missed,
            incompatible_qos=self._incompatible,
        )
        self.subscription = node.create_subscription(
            msg_type,
            topic,
            self._on_message,
            self.qos.profile(for_subscription=True),
            event_callbacks=events,
            raw=raw,
            callback_group=callback_group,
        )
        self._watchdog = None
        if local_watch:
            self._watchdog = node.create_timer(
                self.qos.deadline_ms / 1000.0, lambda: self._missed(1), callback_group=callback_group
            )
            self._watchdog.cancel()  # armed by the first message (reset also un-cancels)

    def _now_ns(self) -> int:
        return self._node.get_clock().now().nanoseconds

    def _on_message(self, msg: Any) -> None:
        try:
            self._callback(msg)
        except InvalidMessageError as error:
            self.health.dropped += 1
            self._problem("dropped a message", str(error), "drop")
            return
        except Exception as error:  # a bug in the callback: report it loudly, keep the node alive
            self.health.callback_errors += 1
            where = traceback.extract_tb(error.__traceback__)[-1]
            text = f"{type(error).__name__}: {error} (at {where.filename}:{where.lineno})"
            self._problem("the callback failed on a message, which was dropped", text, "error")
            return
        self.health.messages += 1
        self.health.last_message_ns = self._now_ns()
        if self._watchdog is not None:
            self._watchdog.reset()

    def _problem(self, what: str, text: str, kind: str) -> None:
        self.health.last_problem = shorten(text)
        self.health.last_problem_at = time.monotonic()
        message = self._log_throttle.message(
            kind, f"'{self.subscription.topic_name}': {what}: {self.health.last_problem}"
        )
        if message is None:
            return
        if kind == "error":  # one severity per logging line (rclpy refuses a change)
            self._node.get_logger().error(message)
        else:
            self._node.get_logger().warning(message)

    def _missed(self, count: int) -> None:
        self.health.deadline_misses += count
        if self._on_deadline_missed:
            self._on_deadline_missed(self.health)

    def _dds_deadline_missed(self, info: Any) -> None:
        self._missed(info.total_count_change)

    def _incompatible(self, info: Any) -> None:
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        self._node.get_logger().warning(
            f"'{self.subscription.topic_name}': a publisher offers QoS incompatible with this "
            f"subscription ({policy} policy), so none of its messages arrive. This subscription "
            f"requests {_describe(self.qos)}; make the publisher match or change config/qos.yaml."
        )
        self.health.incompatible_qos = info.total_count

    def age_s(self) -> float | None:
        """Seconds since the last message (node clock), None before the first."""
        if self.health.last_message_ns is None:
            return None
        return (self._now_ns() - self.health.last_message_ns) / 1e9

    def destroy(self) -> None:
        if self._watchdog is not None:
            self._node.destroy_timer(self._watchdog)
        self._node.destroy_subscription(self.subscription)


class WatchedPublisher:
    """A publisher that counts offered-deadline misses and warns about incompatible subscribers."""

    def __init__(self, node: Node, msg_type: Any, topic: str, qos: QosConfig, *, callback_group: Any = None):
        self._node = node
        self.qos = qos[topic]
        self.health = TopicHealth(topic, self.qos.deadline_ms)
        events = PublisherEventCallbacks(
            deadline=self._deadline_missed if self.qos.deadline_ms else None,
            incompatible_qos=self._incompatible,
        )
        self.publisher = node.create_publisher(
            msg_type, topic, self.qos.profile(), event_callbacks=events, callback_group=callback_group
        )

    def publish(self, msg: Any) -> None:
        self.publisher.publish(msg)
        self.health.messages += 1
        self.health.last_message_ns = self._node.get_clock().now().nanoseconds

    def _deadline_missed(self, info: Any) -> None:
        self.health.deadline_misses += info.total_count_change

    def _incompatible(self, info: Any) -> None:
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        self._node.get_logger().warning(
            f"'{self.publisher.topic_name}': a subscriber requests QoS incompatible with this "
            f"publisher ({policy} policy) and receives nothing. This publisher offers "
            f"{_describe(self.qos)}; make the subscriber match or change config/qos.yaml."
        )
        self.health.incompatible_qos = info.total_count

    def destroy(self) -> None:
        self._node.destroy_publisher(self.publisher)


def inputs_status(subscriptions: Callable[[], Iterable[WatchedSubscription]]):
    """A diagnostics task over a node's watched subscriptions: per topic the accepted, dropped and
    failed messages and the last problem. ERROR once a callback has failed (a bug to report), WARN
    within RECENT_DROP_S of a drop, else OK. `subscriptions` is called at each report (a node's
    subscriptions come and go with its lifecycle)."""

    def status() -> tuple[Level, str, Mapping[str, Any]]:
        values: dict[str, Any] = {}
        dropped = errors = 0
        recent: list[str] = []
        now = time.monotonic()
        for sub in subscriptions():
            health, topic = sub.health, sub.health.topic
            values[f"accepted.{topic}"] = health.messages
            values[f"dropped.{topic}"] = health.dropped
            values[f"callback_errors.{topic}"] = health.callback_errors
            if health.last_problem:
                values[f"last_problem.{topic}"] = health.last_problem
            dropped += health.dropped
            errors += health.callback_errors
            if health.last_problem_at is not None and now - health.last_problem_at < RECENT_DROP_S:
                recent.append(topic)
        if errors:
            return ERROR, f"{errors} messages made a callback fail (a bug; see last_problem.*)", values
        if recent:
            return WARN, f"dropping invalid messages on {', '.join(recent)} ({dropped} in all)", values
        return OK, f"{dropped} invalid messages dropped in all", values

    return status
