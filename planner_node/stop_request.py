"""Spoken stop commands, recognised without the model (no rclpy).

A request that is nothing but a stop command ("stop!", "halt", "STOP, STOP NOW", "cancel that,
please", "stop what you're doing right now") is planned as one `stop` step at once: a robot must not
wait seconds for a language model before it stops, and the planner sends the stop before it plans
anything. A request that asks for anything more ("stop and greet Ana", "stop talking", "don't stop",
"cancel the meeting") goes to the model as usual: every word must be a stop verb or one of the few
words that go with one, and at least one must be a stop verb.
"""

from __future__ import annotations

import re
import unicodedata

from planner_node.plan_schema import Plan, Step

STOP_VERBS = frozenset({"stop", "halt", "freeze", "abort", "cancel", "quit", "enough"})
#: Words that may go with a stop verb without asking for anything else.
ALONG = frozenset(
    {"please", "now", "right", "immediately", "at", "once", "it", "that", "this", "everything", "all"}
    | {"hey", "ok", "okay", "oh", "no", "wait", "hold", "on", "just", "robot", "arm", "the", "your"}
    | {"what", "you", "re", "are", "doing", "moving", "motion", "task", "s"}
)
STOP_PLAN = Plan((Step("stop", {}),))
MAX_STOP_CHARS = 120


def _words(request: str) -> list[str]:
    return re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", request).casefold())


def is_stop_request(request: str) -> bool:
    """Whether `request` asks for nothing but stopping the arm (looked at on the ROS thread, so a long
    text is not read: no stop command is that long)."""
    if len(request) > MAX_STOP_CHARS:
        return False
    words = set(_words(request))
    return bool(words & STOP_VERBS) and words <= STOP_VERBS | ALONG


def says_stop(request: str) -> bool:
    """Whether `request` has a stop verb in it (it may ask for more)."""
    return any(w in STOP_VERBS for w in _words(request))
