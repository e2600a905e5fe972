"""Rate-limit repeated warnings per kind, so one bad camera cannot flood the log but every new kind
of problem is still reported at once."""

from __future__ import annotations

import re
import time
from collections.abc import Callable


def problem_kind(message: str) -> str:
    """A key grouping messages that differ only in numbers (sizes, lengths, counts)."""
    return re.sub(r"\d+(\.\d+)?", "#", message)


class KeyedThrottle:
    """``allow(key)`` is True at most once per ``period_s`` per key; it also returns how many
    calls for that key were suppressed since the last allowed one."""

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        self._last[key] = now
        return True, self._suppressed.pop(key, 0)

    def message(self, key: str, text: str) -> str | None:
        """`text` with how many were suppressed since the last report when `allow(key)`, else None.

        The caller logs it: rclpy ties a log call's severity to the line it is made from, so the
        logging stays at the callers' lines (one severity each), not in one line here.
        """
        allowed, suppressed = self.allow(key)
        if not allowed:
            return None
        return text + (f" ({suppressed} more since the last report)" if suppressed else "")
