"""Approximate-time synchronisation of two or more message streams (we have no message_filters).

``ApproximateTimeSync`` is plain Python (no rclpy): feed it ``(index, stamp_ns, msg)`` and it calls
``callback(*msgs)`` with one message per input whose stamps lie within ``slop_s`` of each other.
``RosApproximateTimeSync`` wires it to rclpy subscriptions using each message's ``header.stamp``.

Matching is eager: when a message arrives, the best set *containing it* is delivered at once. A
partner that would be closer but has not arrived yet is not waited for, so the input that arrives
last (typically the camera, whose transport latency exceeds that of joint states) decides the pairing.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rclpy.callback_groups import CallbackGroup
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from rclpy.subscription import Subscription

__all__ = ["ApproximateTimeSync", "RosApproximateTimeSync", "stamp_to_ns"]


class ApproximateTimeSync:
    """Match messages from ``num_inputs`` streams by timestamp, within ``slop_s`` seconds.

    Each input has a bounded queue (``queue_size``). On ``add`` the set of one message per input that
    contains the new message, has all stamps within ``slop_s`` (inclusive) of each other and has the
    smallest spread (max - min stamp) is delivered as ``callback(*msgs)`` in input order; ties go to
    the newer stamps. Then every queued message stamped at or before the one used from its queue is
    discarded, and later arrivals stamped at or before an input's last delivered stamp are rejected,
    so no message is delivered twice and the delivered stamps never go backwards.

    Counters for diagnostics: ``delivered`` (sets), ``dropped`` (evicted by the queue bound),
    ``superseded`` (discarded unused because a newer one was delivered), ``late`` (rejected on arrival).
    Thread-safe; the callback runs outside the internal lock.
    """

    def __init__(
        self,
        num_inputs: int,
        callback: Callable[..., Any],
        queue_size: int = 10,
        slop_s: float = 0.05,
    ) -> None:
        if num_inputs < 2:
            raise ValueError(f"num_inputs must be at least 2, got {num_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if not slop_s >= 0.0:
            raise ValueError(f"slop_s must be >= 0, got {slop_s}")
        self.num_inputs = num_inputs
        self.queue_size = queue_size
        self.slop_ns = round(slop_s * 1e9)
        self._callback = callback
        self._queues: list[deque[tuple[int, Any]]] = [deque(maxlen=queue_size) for _ in range(num_inputs)]
        self._last_delivered: list[int | None] = [None] * num_inputs
        self._lock = threading.Lock()
        self.delivered = 0
        self.dropped = 0
        self.superseded = 0
        self.late = 0

    def queued(self, index: int) -> int:
        """Number of messages waiting in input ``index``'s queue."""
        return len(self._queues[index])

    def add(self, index: int, stamp_ns: int, msg: Any) -> None:
        """Queue ``msg`` stamped ``stamp_ns`` (nanoseconds) on input ``index``; deliver a set if one forms."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"input index {index} out of range for {self.num_inputs} inputs")
        with self._lock:
            last = self._last_delivered[index]
            if last is not None and stamp_ns <= last:
                self.late += 1
                return
            queue = self._queues[index]
            if len(queue) == queue.maxlen:
                self.dropped += 1
            queue.append((stamp_ns, msg))
            chosen = self._best_set(index, stamp_ns)
            if chosen is None:
                return
            msgs = self._consume(chosen)
            self.delivered += 1
        self._callback(*msgs)

    def _best_set(self, index: int, stamp_ns: int) -> list[tuple[int, Any]] | None:
        """The smallest-spread in-slop set containing the new message, or None."""
        candidates: list[list[tuple[int, Any]]] = []
        for i, queue in enumerate(self._queues):
            if i == index:
                candidates.append([queue[-1]])  # the message just added
                continue
            near = [entry for entry in queue if abs(entry[0] - stamp_ns) <= self.slop_ns]
            if not near:
                return None
            candidates.append(near)
        best: list[tuple[int, Any]] | None = None
        best_key: tuple[int, int] | None = None
        # Each candidate list holds only stamps within slop of the new one, so the product stays small.
        for combo in itertools.product(*candidates):
            stamps = [entry[0] for entry in combo]
            spread = max(stamps) - min(stamps)
            if spread > self.slop_ns:
                continue
            key = (spread, -sum(stamps))
            if best_key is None or key < best_key:
                best, best_key = list(combo), key
        return best

    def _consume(self, chosen: list[tuple[int, Any]]) -> list[Any]:
        """Remove the chosen messages and everything older from each queue; return the messages."""
        for i, (used_stamp, _) in enumerate(chosen):
            queue = self._queues[i]
            kept = [entry for entry in queue if entry[0] > used_stamp]
            self.superseded += len(queue) - len(kept) - 1
            queue.clear()
            queue.extend(kept)
            self._last_delivered[i] = used_stamp
        return [entry[1] for entry in chosen]


def stamp_to_ns(stamp: Any) -> int:
    """A ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class RosApproximateTimeSync:
    """Subscribe to several stamped topics on ``node`` and feed an ``ApproximateTimeSync``.

    ``inputs`` is a list of ``(msg_type, topic, qos)``; every type must have a ``header``. The callback
    receives one message per input, in the order of ``inputs``. ``sync`` exposes the counters.
    """

    def __init__(
        self,
        node: Node,
        inputs: Sequence[tuple[type, str, QoSProfile | int]],
        callback: Callable[..., Any],
        *,
        queue_size: int = 10,
        slop_s: float = 0.05,
        callback_group: CallbackGroup | None = None,
    ) -> None:
        for msg_type, topic, _ in inputs:
            if "header" not in msg_type.get_fields_and_field_types():
                raise TypeError(f"{msg_type.__name__} on {topic} has no header; cannot synchronise by stamp")
        self._node = node
        self.sync = ApproximateTimeSync(len(inputs), callback, queue_size=queue_size, slop_s=slop_s)
        self.subscriptions: list[Subscription] = [
            node.create_subscription(
                msg_type, topic, self._make_handler(i), qos, callback_group=callback_group
            )
            for i, (msg_type, topic, qos) in enumerate(inputs)
        ]

    def _make_handler(self, index: int) -> Callable[[Any], None]:
        def handler(msg: Any) -> None:
            self.sync.add(index, stamp_to_ns(msg.header.stamp), msg)

        return handler

    def destroy(self) -> None:
        """Destroy the subscriptions (the node stays)."""
        for sub in self.subscriptions:
            self._node.destroy_subscription(sub)
        self.subscriptions.clear()
