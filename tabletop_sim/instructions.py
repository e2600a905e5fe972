"""Instruction templates for the reference task and a parser that finds the named object."""

from __future__ import annotations

import re

import numpy as np

from tabletop_sim.world import OBJECT_KINDS

TEMPLATES: tuple[str, ...] = (
    "touch the {}",
    "move to the {}",
    "point at the {}",
    "go to the {}",
    "reach for the {}",
    "put your hand on the {}",
    "move the arm over the {}",
    "tap the {}",
)

OBJECT_NAMES: tuple[str, ...] = tuple(kind.name for kind in OBJECT_KINDS)


def instruction_for(object_name: str, template: str = TEMPLATES[0]) -> str:
    if object_name not in OBJECT_NAMES:
        raise ValueError(f"unknown object {object_name!r} (known: {', '.join(OBJECT_NAMES)})")
    return template.format(object_name)


def random_instruction(
    rng: np.random.Generator, object_names: tuple[str, ...] = OBJECT_NAMES
) -> tuple[str, str]:
    """(instruction text, target object name), both drawn from `rng`."""
    target = object_names[rng.integers(len(object_names))]
    return instruction_for(target, TEMPLATES[rng.integers(len(TEMPLATES))]), target


def parse_target(instruction: str) -> str:
    """The object an instruction names ("Touch the Red  cup!" → "red cup").

    Raises ValueError when no object or more than one distinct object is named.
    """
    words = " ".join(re.findall(r"[a-z]+", instruction.lower()))
    found = [name for name in OBJECT_NAMES if re.search(rf"\b{name}\b", words)]
    if len(found) != 1:
        what = "no known object" if not found else f"several objects ({', '.join(found)})"
        raise ValueError(f"instruction {instruction!r} names {what}; known: {', '.join(OBJECT_NAMES)}")
    return found[0]
