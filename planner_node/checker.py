"""The deterministic plan checker: parse, validate and ground a plan before anything runs (no rclpy).

The grammar already constrains what a model writes, but the checker trusts nothing: a backend without
grammar, a truncated answer or a hostile one all come through here. It refuses, saying exactly why: text
that is not one JSON object (duplicate keys, NaN and Infinity included), keys other than `steps` /
`tool` / `args`, fewer than one or more than `max_steps` steps, an unknown tool, missing or extra
arguments, values of the wrong type, texts that are empty, too long or hold control or format
characters, timeouts that are not whole seconds within bounds, a person the context does not name (no
consent means no name, so an unconsented person is as unknown as a stranger), greeting someone not in
view who was not waited for first, an object not seen, and a `vla` instruction that does not begin with
one of the arm's skills, does not name its object or also names another one (an accepted one is
rewritten as "<skill> the <object>", the words the VLA policy was trained on). `check_step` is the same
test for one step against the context of the moment: the executor calls it before every step.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from planner_node.context import Context, clean_label, refused_character
from planner_node.plan_schema import DEFAULT_LIMITS, TOOLS_BY_NAME, Plan, PlanLimits, Step, spoken_list
from planner_node.stop_request import says_stop

#: Longest raw answer parsed (a plan of max_steps steps is far shorter).
MAX_RAW_CHARS = 16_000
#: Colour words: "the green cup" does not mean the red cup, although both are cups.
COLOURS = frozenset(
    {"red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black", "white"}
    | {"grey", "gray", "silver", "gold"}
)


@dataclass(frozen=True)
class PlanError:
    """Why a plan (or one of its steps) is refused. `reason` is a sentence the robot can say."""

    reason: str
    step: int | None = None  # index of the refused step; None when the plan as a whole is refused
    spoken: bool = False  # the reason is a sentence for the people here, not only for the log

    def __str__(self) -> str:
        return self.reason if self.step is None else f"step {self.step + 1}: {self.reason}"


class _RefusedError(Exception):
    """Raised inside the checker; becomes a PlanError at its public functions. `spoken`: the reason is
    about the request (who or what is not here, what the arm cannot do), not about the model's text."""

    def __init__(self, reason: str, *, spoken: bool = False) -> None:
        super().__init__(reason)
        self.spoken = spoken

    def error(self, step: int | None = None) -> PlanError:
        return PlanError(str(self), step, self.spoken)


def _shown(value: Any) -> str:
    """A value from a plan for a spoken sentence: the clean label, or a stand-in."""
    label = clean_label(value) if isinstance(value, str) else None
    return label or "that"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):  # json.loads would keep the last value silently
        repeated = next(key for index, (key, _) in enumerate(pairs) if key in dict(pairs[:index]))
        raise _RefusedError(f"the plan repeats the key {_shown(repeated)!r}")
    return data


def _no_constant(name: str) -> None:
    raise _RefusedError(f"the plan contains {name}, which is not a number")


def _load(raw: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if not isinstance(raw, str):
        raise _RefusedError(f"a plan is JSON text or a mapping, not {type(raw).__name__}")
    if len(raw) > MAX_RAW_CHARS:
        raise _RefusedError(f"the plan has {len(raw)} characters; at most {MAX_RAW_CHARS} are read")
    try:
        data = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise _RefusedError(f"the plan is not valid JSON ({error.msg} at character {error.pos})") from None
    except ValueError:  # an integer of more digits than Python converts
        raise _RefusedError("the plan holds a number too long to read") from None
    except RecursionError:
        raise _RefusedError("the plan is nested too deeply") from None
    if not isinstance(data, dict):
        raise _RefusedError("the plan must be a JSON object")
    return data


def _keys(value: Any, expected: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _RefusedError(f"{what} must be an object")
    if set(value) != set(expected):
        extra = sorted(str(key) for key in value if key not in expected)
        missing = [key for key in expected if key not in value]
        problem = f"has no {missing[0]!r}" if missing else f"has an unexpected {_shown(extra[0])!r}"
        raise _RefusedError(f"{what} {problem}")
    return value


def _text(value: Any, arg: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise _RefusedError(f"{arg} must be text")
    if not value.strip():
        raise _RefusedError(f"{arg} is empty")
    if len(value) > max_chars:
        raise _RefusedError(f"{arg} has {len(value)} characters; at most {max_chars} are allowed")
    char = refused_character(value)
    if char is not None:
        what = unicodedata.name(char, "a control character")
        raise _RefusedError(f"{arg} contains U+{ord(char):04X} ({what}), which cannot be spoken or shown")
    return value


def _timeout(value: Any, limits: PlanLimits) -> int:
    # bool is an int in Python, not in JSON; integral floats (10.0) are integers in JSON Schema too
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _RefusedError("timeout_s must be a number of seconds")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise _RefusedError(f"timeout_s ({value}) must be a whole number of seconds")
    if not limits.min_timeout_s <= value <= limits.max_timeout_s:
        shown = (
            f"{value:.0f}"
            if abs(value) < 1e9
            else ("a huge number" if value > 0 else "a huge negative number")
        )
        raise _RefusedError(
            f"timeout_s ({shown}) must be between {limits.min_timeout_s} and {limits.max_timeout_s} seconds"
        )
    return int(value)


def _argument(arg: str, value: Any, limits: PlanLimits) -> Any:
    """A checked argument value (context-free rules)."""
    if arg == "text":
        return _text(value, "the text", limits.max_text_chars)
    if arg == "instruction":
        instruction = _text(value, "the arm's instruction", limits.max_instruction_chars)
        if _skill(_words(instruction), limits) is None:
            raise _RefusedError(f"My arm can only {spoken_list(limits.arm_skills)} something.", spoken=True)
        return instruction
    if arg == "timeout_s":
        return _timeout(value, limits)
    if not isinstance(value, str):  # person, object: checked against the context by _ground
        raise _RefusedError(f"{arg} must be text")
    return value


def _skill(words: str, limits: PlanLimits) -> str | None:
    """The longest of the arm's skills that `words` begin with, or None."""
    found = [s for s in limits.arm_skills if re.match(rf"{re.escape(_words(s))}(?!\S)", words)]
    return max(found, key=len, default=None)


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


def _mentions(words: str, label: str) -> bool:
    return re.search(rf"(?<!\S){re.escape(_words(label))}(?!\S)", words) is not None


def _refers_to(words: str, label: str) -> bool:
    """Whether request `words` can mean the object `label`: its last word (the noun, also in the plural)
    is there, not right after a colour that the label does not have."""
    *modifiers, noun = _words(label).split()
    found = False
    for match in re.finditer(rf"(?<!\S){re.escape(noun)}(?:s|es)?(?!\S)", words):
        before = words[: match.start()].split()[-1:]
        if before and before[0] in COLOURS and before[0] not in modifiers:
            continue
        found = True
    return found


def _ground(step: Step, context: Context, expected: Collection[str], limits: PlanLimits) -> Step:
    """The step, if it names only what `context` holds; a `vla` instruction is written as the policy
    was trained ("<skill> the <object>", the object as the context writes it: "touch the phone" →
    "touch the cell phone")."""
    person = step.args.get("person")
    if person is not None:
        if not context.knows(person):
            raise _RefusedError(f"I don't know anyone called {_shown(person)}.", spoken=True)
        if step.tool == "greet" and not context.sees(person) and person not in expected:
            raise _RefusedError(f"{person} is not in view.", spoken=True)
    target = step.args.get("object")
    if target is None:
        return step
    if target not in context.objects:
        raise _RefusedError(f"I can't see {_shown(target)} here.", spoken=True)
    words = _words(step.args["instruction"])
    skill = _skill(words, limits) or ""  # _argument checked that there is one
    about = words[len(_words(skill)) :]
    if not _refers_to(about, target):
        raise _RefusedError(f"the arm's instruction does not name the {target}.")
    rest = re.sub(rf"(?<!\S){re.escape(_words(target))}(?!\S)", " ", about)
    others = [name for name in context.objects if name != target and _mentions(rest, name)]
    if others:
        raise _RefusedError(f"the arm's instruction names the {others[0]} as well as the {target}.")
    return Step(step.tool, {**step.args, "instruction": f"{skill} the {target}"})


def _step(raw: Any, limits: PlanLimits) -> Step:
    entry = _keys(raw, ("tool", "args"), "a step")
    tool = TOOLS_BY_NAME.get(entry["tool"]) if isinstance(entry["tool"], str) else None
    if tool is None:
        raise _RefusedError(f"I have no tool called {_shown(entry['tool'])}.")
    args = _keys(entry["args"], tool.args, f"the arguments of {tool.name}")
    return Step(tool.name, {arg: _argument(arg, args[arg], limits) for arg in tool.args})


def check_step(
    step: Step, context: Context, limits: PlanLimits = DEFAULT_LIMITS, *, expected: Collection[str] = ()
) -> PlanError | None:
    """None when `step` may run in `context`, else why not. `expected` names people a plan waits for
    before this step (they may be greeted although not in view yet)."""
    try:
        checked = _step(step.as_dict(), limits)
        _ground(checked, context, expected, limits)
    except _RefusedError as refused:
        return refused.error()
    return None


def check_plan(
    raw: str | Mapping[str, Any],
    context: Context,
    limits: PlanLimits = DEFAULT_LIMITS,
    *,
    request: str | None = None,
) -> Plan | PlanError:
    """The plan in `raw` (JSON text, or what a backend already parsed) if every step passes, else the
    first reason to refuse it. With `request`, a person the plan names must be named in the request and
    an object it acts on must be one the request can mean: the grammar lets a model name only what is
    there, so asked for someone or something absent it can put what is there in its place ("greet Bob"
    → greet Alice, "touch the green cup" → touch the red cup), which must never happen."""
    try:
        steps = _keys(_load(raw), ("steps",), "the plan")["steps"]
    except _RefusedError as refused:
        return refused.error()
    if not isinstance(steps, list) or not 1 <= len(steps) <= limits.max_steps:
        count = f"{len(steps)} steps" if isinstance(steps, list) else "no list of steps"
        return PlanError(f"a plan has 1 to {limits.max_steps} steps; this one has {count}")
    checked: list[Step] = []
    waited: set[str] = set()
    for index, raw_step in enumerate(steps):
        try:
            step = _ground(_step(raw_step, limits), context, waited, limits)
        except _RefusedError as refused:
            return refused.error(index)
        person = step.args.get("person")
        if request is not None and person is not None and not _mentions(_words(request), person):
            # The reason is spoken: it must not say who the model put in (whom the robot knows).
            return PlanError("I don't know the person you mean.", index, spoken=True)
        target = step.args.get("object")
        if request is not None and target is not None and not _refers_to(_words(request), target):
            return PlanError("I can't see the object you mean.", index, spoken=True)
        if step.tool == "wait_for":
            waited.add(step.args["person"])
        checked.append(step)
    return Plan(tuple(checked))


def plan_to_run(
    raw: str | Mapping[str, Any], context: Context, request: str, limits: PlanLimits = DEFAULT_LIMITS
) -> tuple[Plan, PlanError | None]:
    """What the robot does with a model's answer: the checked plan, or a spoken refusal and the reason
    it was refused. When the request says stop, a refusal keeps the plan's leading `stop` steps that
    passed ("stop, then <something that cannot be done>" still stops the arm). An accepted plan that
    gives the busy arm a new task stops the running one first, unless it already does."""
    checked = check_plan(raw, context, limits, request=request)
    if isinstance(checked, PlanError):
        said = checked.reason if checked.spoken else "Sorry, I could not make a safe plan for that."
        stops = _leading_stops(raw, checked, context, limits, request) if says_stop(request) else ()
        return Plan(stops + refusal(said, limits).steps), checked
    return _one_arm_task_at_a_time(checked, context, limits), None


def _leading_stops(
    raw: str | Mapping[str, Any], error: PlanError, context: Context, limits: PlanLimits, request: str
) -> tuple[Step, ...]:
    """The `stop` steps that begin the part of `raw` before the step `error` refused."""
    if not error.step:  # None (the plan as a whole) or the first step
        return ()
    before = check_plan({"steps": _load(raw)["steps"][: error.step]}, context, limits, request=request)
    if not isinstance(before, Plan):
        return ()
    return tuple(itertools.takewhile(lambda step: step.tool == "stop", before.steps))


def _one_arm_task_at_a_time(plan: Plan, context: Context, limits: PlanLimits) -> Plan:
    """`plan` with a `stop` before its first `vla` step when the arm is busy and nothing stops it first
    (and the plan has room for one more step)."""
    tools = [step.tool for step in plan.steps]
    if context.arm_task is None or "vla" not in tools or len(tools) >= limits.max_steps:
        return plan
    first = tools.index("vla")
    if "stop" in tools[:first]:
        return plan
    return Plan((*plan.steps[:first], Step("stop", {}), *plan.steps[first:]))


def refusal(error: PlanError | str, limits: PlanLimits = DEFAULT_LIMITS) -> Plan:
    """A one-step plan that says why a request is refused (cut to the longest `say` text)."""
    reason = error.reason if isinstance(error, PlanError) else error
    shown = "".join(" " if refused_character(char) else char for char in reason)
    text = " ".join(shown.split()) or "I can't do that."
    if len(text) > limits.max_text_chars:
        text = text[: limits.max_text_chars - 1] + "…"
    return Plan((Step("say", {"text": text}),))
