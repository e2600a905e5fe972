"""planner_node.scoring: a produced plan against a benchmark item's expected plan (no model, no ROS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planner_node.checker import check_plan
from planner_node.context import Context, Person
from planner_node.plan_schema import ARM_SKILLS, EXAMPLES, Plan
from planner_node.scoring import Expectation, ExpectedStep, Item, load_items, score_plan, ungrounded_names

INSTRUCTIONS = Path(__file__).resolve().parents[1] / "bench" / "planner_instructions.yaml"
SCENE = Context(
    (Person("Ana", True, True), Person("Bob", True, False), Person("Carol", False, True)),
    ("red cup", "blue block"),
)


def item(*expected: Expectation) -> Item:
    return Item("x", "tune", SCENE, "request", expected, unconsented=("Carol",))


def plan(*steps: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"steps": [{"tool": tool, "args": args} for tool, args in steps]}


TAP_CUP = Expectation(steps=(ExpectedStep("vla", object="red cup", verbs=("tap", "touch")),))
REFUSAL = Expectation(refusal=True)
WAIT_GREET = Expectation(
    steps=(ExpectedStep("wait_for", person="Bob", timeout_s=30), ExpectedStep("greet", person="Bob"))
)
LUNCH = Expectation(steps=(ExpectedStep("say", words=(("lunch",), ("ready", "served"))),))


@pytest.mark.parametrize(
    ("raw", "expectation", "correct"),
    [
        (plan(("vla", {"object": "red cup", "instruction": "Tap the red cup!"})), TAP_CUP, True),
        (plan(("vla", {"object": "red cup", "instruction": "please touch the RED  cup"})), TAP_CUP, True),
        (plan(("vla", {"object": "red cup", "instruction": "point at the red cup"})), TAP_CUP, False),
        (plan(("vla", {"object": "red cup", "instruction": "tap the cup"})), TAP_CUP, False),
        (plan(("vla", {"object": "blue block", "instruction": "tap the blue block"})), TAP_CUP, False),
        (plan(("vla", {"object": "red cup", "instruction": "tapping the red cup"})), TAP_CUP, False),
        (plan(("say", {"text": "Sorry, I can't."})), REFUSAL, True),
        (plan(("say", {"text": "no"}), ("say", {"text": "really no"})), REFUSAL, False),
        (plan(("greet", {"person": "Ana"})), REFUSAL, False),
        (
            plan(("wait_for", {"person": "Bob", "timeout_s": 30}), ("greet", {"person": "Bob"})),
            WAIT_GREET,
            True,
        ),
        (
            plan(("wait_for", {"person": "Bob", "timeout_s": 60}), ("greet", {"person": "Bob"})),
            WAIT_GREET,
            False,
        ),
        (
            plan(("greet", {"person": "Bob"}), ("wait_for", {"person": "Bob", "timeout_s": 30})),
            WAIT_GREET,
            False,
        ),
        (
            plan(("wait_for", {"person": "Ana", "timeout_s": 30}), ("greet", {"person": "Bob"})),
            WAIT_GREET,
            False,
        ),
        (plan(("say", {"text": "Lunch is served."})), LUNCH, True),
        (plan(("say", {"text": "Lunch time!"})), LUNCH, False),
        (plan(("say", {"text": "Lunch is ready"}), ("stop", {})), LUNCH, False),
        (plan(("stop", {})), Expectation(steps=(ExpectedStep("stop"),)), True),
        (plan(("stop", {"now": True})), Expectation(steps=(ExpectedStep("stop"),)), False),
        ('{"steps": [{"tool": "stop", "args": {}}]}', Expectation(steps=(ExpectedStep("stop"),)), True),
        ("not json", REFUSAL, False),
        ('{"steps": "say"}', REFUSAL, False),
    ],
)
def test_plans_are_right_only_when_tools_arguments_verbs_and_words_match(raw, expectation, correct):
    score = score_plan(raw, item(expectation))
    assert score.correct == correct, score.why
    assert bool(score.why) != correct


def test_a_timeout_left_out_of_the_item_is_not_graded_and_any_alternative_counts():
    any_wait = Expectation(
        steps=(ExpectedStep("wait_for", person="Bob"), ExpectedStep("greet", person="Bob"))
    )
    raw = plan(("wait_for", {"person": "Bob", "timeout_s": 77}), ("greet", {"person": "Bob"}))
    assert score_plan(raw, item(any_wait)).correct
    assert not score_plan(raw, item(REFUSAL)).correct
    assert score_plan(raw, item(REFUSAL, any_wait)).correct
    assert score_plan(plan(("say", {"text": "Bob isn't here."})), item(REFUSAL, any_wait)).correct
    assert score_plan(raw, item(REFUSAL)).why.startswith("tools wait_for → greet, expected a refusal")


def test_ungrounded_names_are_arguments_the_context_does_not_hold():
    raw = plan(
        ("greet", {"person": "Carol"}),  # in view but unconsented: no name in the context
        ("wait_for", {"person": "Zoe", "timeout_s": 5}),
        ("vla", {"object": "banana", "instruction": "touch the banana"}),
        ("greet", {"person": "Ana"}),
        ("say", {"text": "I can't see a banana."}),  # spoken text is not an argument
    )
    assert ungrounded_names(raw["steps"], SCENE) == ("person 'Carol'", "person 'Zoe'", "object 'banana'")
    score = score_plan(raw, item(REFUSAL))
    assert not score.correct
    assert len(score.ungrounded) == 3


def test_an_unconsented_name_in_a_spoken_text_is_flagged():
    assert score_plan(plan(("say", {"text": "Hello Carol!"})), item(REFUSAL)).unconsented_spoken
    assert not score_plan(plan(("say", {"text": "Hello there!"})), item(REFUSAL)).unconsented_spoken
    assert not score_plan(plan(("say", {"text": "Hello Caroline"})), item(REFUSAL)).unconsented_spoken


def _as_plan(expectation: Expectation) -> dict[str, Any]:
    """A plan meeting `expectation` (the first verb, the key words, 10 s where no timeout is given)."""
    if expectation.refusal:
        return plan(("say", {"text": "I can't do that."}))
    steps = []
    for step in expectation.steps:
        if step.tool == "say":
            steps.append(("say", {"text": " ".join(words[0] for words in step.words) or "done"}))
        elif step.tool == "greet":
            steps.append(("greet", {"person": step.person}))
        elif step.tool == "wait_for":
            steps.append(("wait_for", {"person": step.person, "timeout_s": step.timeout_s or 10}))
        elif step.tool == "vla":
            steps.append(
                ("vla", {"object": step.object, "instruction": f"{skill(step.verbs[0])} the {step.object}"})
            )
        else:
            steps.append((step.tool, {}))
    return plan(*steps)


def skill(verb: str) -> str:
    """The arm's skill that begins with `verb` ("point" → "point at")."""
    return next(s for s in ARM_SKILLS if s.split()[0] == verb)


def test_the_instruction_set_is_large_split_and_each_expected_plan_passes_the_checker():
    items = load_items(INSTRUCTIONS)
    tune = [i for i in items if i.split == "tune"]
    heldout = [i for i in items if i.split == "heldout"]
    assert len(items) >= 70
    assert len(tune) >= 40
    assert len(heldout) >= 30
    assert len({i.id for i in items}) == len(items)
    assert load_items(INSTRUCTIONS, "heldout") == heldout
    for entry in items:
        for expectation in entry.expected:
            raw = _as_plan(expectation)
            assert isinstance(check_plan(raw, entry.context, request=entry.request), Plan), entry.id
            assert score_plan(raw, entry).correct, entry.id
            assert not score_plan(raw, entry).ungrounded


def test_heldout_items_use_other_names_and_objects_than_tune_items():
    items = load_items(INSTRUCTIONS)

    def vocabulary(split: str) -> set[str]:
        found = set()
        for entry in (i for i in items if i.split == split):
            found |= set(entry.context.names) | set(entry.context.objects) | set(entry.unconsented)
        return found

    assert not vocabulary("tune") & vocabulary("heldout")
    requests = {i.request.casefold() for i in items if i.split == "tune"}
    assert not any(i.request.casefold() in requests for i in items if i.split == "heldout")
    examples = set()
    for context, _request, _plan in EXAMPLES:
        examples |= set(context.names) | set(context.objects)
    assert not examples & (vocabulary("tune") | vocabulary("heldout"))  # the prompt gives nothing away


def test_malformed_items_are_refused_with_the_item_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "items:\n- id: z1\n  split: tune\n  context: {people: [], objects: [cup]}\n  request: hi\n"
        "  expected: {steps: [{tool: vla, object: bottle, verbs: [touch]}]}\n"
    )
    with pytest.raises(ValueError, match="item z1: expects 'bottle'"):
        load_items(bad)
    with pytest.raises(ValueError, match="split must be"):
        load_items(INSTRUCTIONS, "train")
