"""What the robot knows right now, as the planner may use it (no rclpy; issue 14).

A `Context` is built from the live graph (people from the face memory, objects from detections and the
sim, the arm's current task) and is the only source of names and objects for a plan: the plan schema
is built from it and the checker grounds every step in it. Privacy: a person without consent has no
name here — the name is dropped when the `Person` is made, so it can reach neither the prompt nor the
schema nor a log line. Labels from the wire are normalised (NFKC, single spaces) and dropped when they
hold characters that are not shown or change how text is shown, or are too long: a hostile name or
class label can neither smuggle lines into the prompt nor be named by a plan.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field

#: Longest person name or object label taken into a context (memory_node allows 64 for names).
MAX_LABEL_CHARS = 64
#: Longest rendering of the arm's current task in the prompt.
MAX_TASK_CHARS = 200
#: Shown instead of an arm task that holds characters the prompt must not carry.
UNSHOWABLE_TASK = "an instruction that cannot be shown"
#: General categories refused in any text the planner takes in or speaks: control, format (zero-width,
#: bidi overrides), surrogate, private use, unassigned, line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def refused_character(text: str) -> str | None:
    """The first character of `text` that the planner refuses to show or speak, or None."""
    return next((char for char in text if unicodedata.category(char) in REFUSED_CATEGORIES), None)


def clean_label(text: str, max_chars: int = MAX_LABEL_CHARS) -> str | None:
    """`text` NFKC-normalised with runs of white space made one space, or None when it is empty, longer
    than `max_chars` or holds a refused character."""
    if len(text) > 4 * max_chars:  # before normalising: NFKC of a huge string is work for nothing
        return None
    normalised = unicodedata.normalize("NFKC", text)
    if refused_character(normalised) is not None:
        return None
    label = " ".join(normalised.split())
    return label if label and len(label) <= max_chars else None


@dataclass(frozen=True)
class Person:
    """A person known to the face memory. `name` is empty unless the person consented to it."""

    name: str
    consented: bool
    in_view: bool

    def __post_init__(self) -> None:
        name = clean_label(self.name) if self.consented else None
        object.__setattr__(self, "name", name or "")


@dataclass(frozen=True)
class Context:
    """People, objects and the arm's task at one instant; names and objects sorted, without duplicates.

    `arm_task` is the instruction the arm is busy with, None when it is idle.
    """

    people: tuple[Person, ...] = ()
    objects: tuple[str, ...] = ()
    arm_task: str | None = None
    _in_view: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        named: dict[str, bool] = {}
        unnamed: list[Person] = []
        for person in self.people:
            if person.name:
                named[person.name] = named.get(person.name, False) or person.in_view
            else:
                unnamed.append(person)
        people = tuple(Person(name, True, seen) for name, seen in sorted(named.items())) + tuple(unnamed)
        labels = (clean_label(name) for name in self.objects)
        objects = tuple(sorted({label.lower() for label in labels if label}))
        task = self.arm_task
        if task is not None:
            task = clean_label(task, MAX_TASK_CHARS) or UNSHOWABLE_TASK
        object.__setattr__(self, "people", people)
        object.__setattr__(self, "objects", objects)
        object.__setattr__(self, "arm_task", task)
        object.__setattr__(self, "_in_view", frozenset(name for name, seen in named.items() if seen))

    @property
    def names(self) -> tuple[str, ...]:
        """The names a plan may use: people who consented, in view or not."""
        return tuple(person.name for person in self.people if person.name)

    def knows(self, name: str) -> bool:
        return name in self.names

    def sees(self, name: str) -> bool:
        """Whether the consented person called `name` is in view now."""
        return name in self._in_view

    @property
    def strangers_in_view(self) -> int:
        """People in view whose name the robot may not use (no consent, or not known)."""
        return sum(1 for person in self.people if person.in_view and not person.name)

    def render(self) -> str:
        """The context as one line of JSON for the prompt (names, objects, arm; nothing else)."""
        return json.dumps(
            {
                "people_in_view": sorted(self._in_view),
                "people_known_not_in_view": [name for name in self.names if name not in self._in_view],
                "unnamed_people_in_view": self.strangers_in_view,
                "objects": list(self.objects),
                "arm": "idle" if self.arm_task is None else f"busy: {self.arm_task}",
            },
            ensure_ascii=False,
        )
