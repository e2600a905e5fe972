"""Checks every node applies to what it reads from the ROS graph (plain Python, no rclpy).

A subscription callback raises `InvalidMessageError` for input it cannot use. The subscription wrapper
(`humanoid_common.watch.WatchedSubscription`) then drops the message, counts it on /diagnostics and
logs the reason at most once per period, shortened: neither a hostile publisher nor a broken driver
can end a node, make it act on garbage, or grow its log with the size of its input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Longest text of one input taken into a log line or a diagnostic value.
MAX_LOGGED_CHARS = 200
#: A stamp further than this ahead of the receiving node's clock is refused (clocks not in sync, or
#: forged). Zero stamps are allowed: many drivers leave them empty.
MAX_FUTURE_S = 60.0
#: Longest frame_id accepted (nodes copy it into what they publish).
MAX_FRAME_ID_CHARS = 256
_NS = 1_000_000_000


class InvalidMessageError(ValueError):
    """A message a node cannot use; the text says why (it is logged shortened)."""


def shorten(text: Any, limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` as a string of at most about `limit` characters, saying how long it was."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def quoted(value: str, limit: int = 40) -> str:
    """A string from the wire for an error message: repr (control characters visible), shortened."""
    return shorten(repr(value), limit)


def stamp_ns(stamp: Any, now_ns: int | None = None, *, what: str = "header.stamp") -> int:
    """A builtin_interfaces/Time as integer nanoseconds, or InvalidMessageError when it is negative, its
    nanosec field is not below 1e9, or it lies more than MAX_FUTURE_S ahead of `now_ns` (skipped
    while the node's clock is still zero, e.g. sim time before the first /clock)."""
    sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    if sec < 0:
        raise InvalidMessageError(f"{what} is negative ({sec} s)")
    if not 0 <= nanosec < _NS:
        raise InvalidMessageError(f"{what}.nanosec is {nanosec}, not below 1e9")
    ns = sec * _NS + nanosec
    if now_ns and ns - now_ns > MAX_FUTURE_S * _NS:
        raise InvalidMessageError(
            f"{what} is {(ns - now_ns) / _NS:.3g} s ahead of this node's clock "
            f"(more than {MAX_FUTURE_S:g} s: clocks not synchronised, or a forged stamp)"
        )
    return ns


def header_stamp_ns(header: Any, now_ns: int | None = None) -> int:
    """A std_msgs/Header's stamp as nanoseconds (`stamp_ns`), after checking its frame_id's length."""
    bounded_text(header.frame_id, "header.frame_id", MAX_FRAME_ID_CHARS)
    return stamp_ns(header.stamp, now_ns)


def finite_values(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """`values` as float64, or InvalidMessageError naming the first NaN or infinite entry."""
    array = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InvalidMessageError(f"{what}[{int(bad[0])}] is {array.flat[bad[0]]}, not a finite number")
    return array


def finite_number(value: float, what: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite float within [low, high], or InvalidMessageError."""
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidMessageError(f"{what} is {number}, expected a finite number in [{low:g}, {high:g}]")
    return number


def bounded_text(value: str, what: str, max_chars: int) -> str:
    """`value` when it has at most `max_chars` characters and no NUL, else InvalidMessageError."""
    if len(value) > max_chars:
        raise InvalidMessageError(f"{what} has {len(value)} characters, more than {max_chars}")
    if "\0" in value:
        raise InvalidMessageError(f"{what} contains a NUL character: {quoted(value)}")
    return value


def bounded_count(items: Sequence[Any], what: str, max_items: int) -> Sequence[Any]:
    """`items` when there are at most `max_items`, else InvalidMessageError."""
    if len(items) > max_items:
        raise InvalidMessageError(f"{what} has {len(items)} entries, more than {max_items}")
    return items
