"""Plan accuracy: a produced plan against the expected one of a benchmark item (no rclpy; issue 14).

An item (bench/planner_instructions.yaml) is a context, a request and what a careful robot would plan.
A plan is right when its tool sequence is exactly the expected one and each step matches its expected
step: `greet` and `wait_for` name the expected person (and `wait_for` the expected timeout, when the
item gives one); `vla` names the expected object, its instruction mentions that object (the checker's
mention rule, imported) and one of the item's accepted verbs; `say` holds each of the item's key words.
An expected refusal is one `say` step whatever it says. The raw plan is scored, before the checker.

Apart from accuracy, `ungrounded_names` lists each person or object argument the context does not
hold (the goal is none), and `unconsented_spoken` tells whether a `say` text speaks the name of a person
who did not consent (an item keeps that name; the planner's `Context` drops it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from planner_node.checker import _mentions, _words
from planner_node.context import Context, Person
from planner_node.plan_schema import TOOLS_BY_NAME

SPLITS = ("tune", "heldout")


@dataclass(frozen=True)
class ExpectedStep:
    """One expected tool call. None means not graded (a timeout left out, a say without key words)."""

    tool: str
    person: str | None = None
    object: str | None = None
    timeout_s: int | None = None
    verbs: tuple[str, ...] = ()
    words: tuple[tuple[str, ...], ...] = ()  # each entry: one of these words must be in the text


@dataclass(frozen=True)
class Expectation:
    """A refusal (one say step, content not graded) or a sequence of expected steps."""

    refusal: bool = False
    steps: tuple[ExpectedStep, ...] = ()


@dataclass(frozen=True)
class Item:
    id: str
    split: str
    context: Context
    request: str
    expected: tuple[Expectation, ...]  # the first is the intended plan; any one of them is right
    unconsented: tuple[str, ...] = ()  # names of people in the scene who did not consent


@dataclass(frozen=True)
class Score:
    correct: bool
    why: str  # empty when correct, else what differs (from the first expectation)
    ungrounded: tuple[str, ...] = field(default=())
    unconsented_spoken: bool = False


def _fail(item_id: str, message: str) -> ValueError:
    return ValueError(f"planner instructions, item {item_id}: {message}")


def _expected_step(raw: Mapping[str, Any], item_id: str) -> ExpectedStep:
    tool = raw.get("tool")
    if tool not in TOOLS_BY_NAME:
        raise _fail(item_id, f"unknown tool {tool!r} (tools: {', '.join(TOOLS_BY_NAME)})")
    allowed = {
        "say": {"words"},
        "greet": {"person"},
        "wait_for": {"person", "timeout_s"},
        "vla": {"object", "verbs"},
        "stop": set(),
    }[tool]
    extra = set(raw) - allowed - {"tool"}
    if extra:
        raise _fail(item_id, f"{tool} step has {', '.join(sorted(extra))}; it may have {sorted(allowed)}")
    if tool in ("greet", "wait_for") and not raw.get("person"):
        raise _fail(item_id, f"{tool} step needs a person")
    if tool == "vla" and not (raw.get("object") and raw.get("verbs")):
        raise _fail(item_id, "vla step needs an object and a list of accepted verbs")
    words = tuple(
        tuple(str(w) for w in (entry if isinstance(entry, list) else [entry]))
        for entry in raw.get("words", ())
    )
    return ExpectedStep(
        tool=tool,
        person=raw.get("person"),
        object=raw.get("object"),
        timeout_s=raw.get("timeout_s"),
        verbs=tuple(raw.get("verbs", ())),
        words=words,
    )


def _expectation(raw: Mapping[str, Any], item_id: str) -> Expectation:
    if raw.get("refusal"):
        if set(raw) != {"refusal"}:
            raise _fail(item_id, "a refusal has no steps")
        return Expectation(refusal=True)
    steps = raw.get("steps")
    if not steps:
        raise _fail(item_id, "expected needs `refusal: true` or a list of steps")
    return Expectation(steps=tuple(_expected_step(step, item_id) for step in steps))


def _context(raw: Mapping[str, Any]) -> tuple[Context, tuple[str, ...]]:
    people = [Person(p["name"], bool(p["consented"]), bool(p["in_view"])) for p in raw.get("people", ())]
    unconsented = tuple(p["name"] for p in raw.get("people", ()) if not p["consented"])
    arm = raw.get("arm", "idle")
    return Context(tuple(people), tuple(raw.get("objects", ())), None if arm == "idle" else arm), unconsented


def load_items(path: str | Path, split: str = "all") -> list[Item]:
    """The items of `path` in `split` (tune, heldout or all), checked for the form described above and
    for expectations that only name what their context holds."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {', '.join(SPLITS)} or all, got {split!r}")
    data = yaml.safe_load(Path(path).read_text())
    items, seen = [], set()
    for raw in data["items"]:
        item_id = str(raw.get("id"))
        if item_id in seen:
            raise _fail(item_id, "repeated id")
        seen.add(item_id)
        if raw.get("split") not in SPLITS:
            raise _fail(item_id, f"split must be one of {', '.join(SPLITS)}")
        context, unconsented = _context(raw["context"])
        expected = tuple(_expectation(e, item_id) for e in [raw["expected"], *raw.get("also", ())])
        for expectation in expected:
            for step in expectation.steps:
                if step.person is not None and not context.knows(step.person):
                    raise _fail(item_id, f"expects {step.person!r}, whom the context does not name")
                if step.object is not None and step.object not in context.objects:
                    raise _fail(item_id, f"expects {step.object!r}, which the context does not hold")
        item = Item(item_id, raw["split"], context, str(raw["request"]), expected, unconsented)
        if split in ("all", item.split):
            items.append(item)
    return items


def parse_plan(raw: str | Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The steps of a raw answer, or None when it is not a JSON object with a list of step objects."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    steps = raw.get("steps") if isinstance(raw, Mapping) else None
    if not isinstance(steps, list) or not all(
        isinstance(step, Mapping) and isinstance(step.get("args", {}), Mapping) for step in steps
    ):
        return None
    return steps


def _step_mismatch(step: Mapping[str, Any], expected: ExpectedStep) -> str | None:
    args = step.get("args", {})
    if set(args) != set(TOOLS_BY_NAME[expected.tool].args):
        return f"{expected.tool} has arguments {sorted(args)}"
    if expected.person is not None and args["person"] != expected.person:
        return f"{expected.tool} names {args['person']!r}, not {expected.person!r}"
    if expected.timeout_s is not None and args["timeout_s"] != expected.timeout_s:
        return f"wait_for waits {args['timeout_s']!r} s, not {expected.timeout_s}"
    if expected.tool == "vla":
        if args["object"] != expected.object:
            return f"vla is about {args['object']!r}, not {expected.object!r}"
        instruction = args["instruction"]
        words = _words(instruction) if isinstance(instruction, str) else ""
        if not _mentions(words, expected.object):
            return f"vla instruction {instruction!r} does not name the {expected.object}"
        if not any(_mentions(words, verb) for verb in expected.verbs):
            return f"vla instruction {instruction!r} does none of {list(expected.verbs)}"
    if expected.tool == "say":
        text = args["text"]
        words = _words(text) if isinstance(text, str) else ""
        missing = [entry for entry in expected.words if not any(_mentions(words, w) for w in entry)]
        if missing:
            return f"say {text!r} lacks {'/'.join(missing[0])!r}"
    return None


def _mismatch(steps: Sequence[Mapping[str, Any]], expectation: Expectation) -> str | None:
    tools = [step.get("tool") for step in steps]
    wanted = ["say"] if expectation.refusal else [step.tool for step in expectation.steps]
    if tools != wanted:
        what = "a refusal (one say)" if expectation.refusal else " → ".join(wanted)
        return f"tools {' → '.join(map(str, tools))}, expected {what}"
    if expectation.refusal:
        return None
    for index, (step, expected) in enumerate(zip(steps, expectation.steps, strict=True)):
        problem = _step_mismatch(step, expected)
        if problem:
            return f"step {index + 1}: {problem}"
    return None


def ungrounded_names(steps: Sequence[Mapping[str, Any]], context: Context) -> tuple[str, ...]:
    """Every person or object argument of `steps` that `context` does not hold."""
    found = []
    for step in steps:
        args = step.get("args", {})
        person, target = args.get("person"), args.get("object")
        if person is not None and not (isinstance(person, str) and context.knows(person)):
            found.append(f"person {person!r}")
        if target is not None and target not in context.objects:
            found.append(f"object {target!r}")
    return tuple(found)


def _speaks_unconsented(steps: Sequence[Mapping[str, Any]], names: Sequence[str]) -> bool:
    texts = [step.get("args", {}).get("text") for step in steps if step.get("tool") == "say"]
    return any(isinstance(text, str) and _mentions(_words(text), name) for text in texts for name in names)


def score_plan(raw: str | Mapping[str, Any], item: Item) -> Score:
    """How the raw answer `raw` (JSON text or parsed) does on `item`."""
    steps = parse_plan(raw)
    if steps is None:
        return Score(False, "not a JSON plan with a list of steps")
    ungrounded = ungrounded_names(steps, item.context)
    spoken = _speaks_unconsented(steps, item.unconsented)
    problems = [_mismatch(steps, expectation) for expectation in item.expected]
    if any(problem is None for problem in problems):
        return Score(True, "", ungrounded, spoken)
    return Score(False, problems[0] or "", ungrounded, spoken)
