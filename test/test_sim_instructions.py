"""Instruction templates and the parser the sim uses to find the named object."""

from __future__ import annotations

import numpy as np
import pytest

from tabletop_sim.instructions import (
    OBJECT_NAMES,
    TEMPLATES,
    instruction_for,
    parse_target,
    random_instruction,
)


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("name", OBJECT_NAMES)
def test_every_template_parses_back_to_its_object(template, name):
    assert parse_target(instruction_for(name, template)) == name


def test_parser_ignores_case_spacing_and_punctuation():
    assert parse_target("  Touch the RED   cup, please!") == "red cup"


@pytest.mark.parametrize("text", ["touch the purple pyramid", "", "touch the red block"])
def test_parser_rejects_instructions_without_a_known_object(text):
    with pytest.raises(ValueError, match="no known object"):
        parse_target(text)


def test_parser_rejects_two_objects():
    with pytest.raises(ValueError, match="several objects"):
        parse_target("move from the red cup to the green ball")


def test_random_instructions_are_reproducible_and_cover_all_objects():
    a = [random_instruction(np.random.default_rng(9)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    targets = {random_instruction(rng)[1] for _ in range(100)}
    assert targets == set(OBJECT_NAMES)
    with pytest.raises(ValueError, match="unknown object"):
        instruction_for("yellow duck")
