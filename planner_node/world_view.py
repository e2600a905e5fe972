"""The planner's running picture of the world, fed from the node's topics (no rclpy; issue 14).

Every input is reduced here to what a `Context` holds, under one lock (the ROS callbacks write, the
planning thread reads):
- people: names the face memory recognised (band KNOWN) in the last `in_view_s` are in view; the
  memory's person list adds those known but not in view. A name arrives only with consent (the memory
  sends none otherwise); a LEFT event takes a person out of view at once, a FORGOTTEN event out of
  the picture altogether, until the memory names them again.
- objects: detection labels scored at least `min_object_score` within the last `object_memory_s`,
  plus the objects the task status names (the sim's scene). Labels in `excluded_objects` ("person" by
  default) never become objects: the arm is not sent to a person.
- the arm: the instruction last published on /vla/instruction, busy until the task status reports
  success for it (an empty instruction means idle).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from planner_node.context import Context, Person, clean_label
from planner_node.executor import VlaState, VlaStatus


@dataclass(frozen=True)
class WorldViewConfig:
    in_view_s: float = 3.0
    object_memory_s: float = 10.0
    min_object_score: float = 0.5
    excluded_objects: tuple[str, ...] = ("person",)

    def __post_init__(self) -> None:
        if not (self.in_view_s > 0 and self.object_memory_s > 0):
            raise ValueError("planner: in_view_s and object_memory_s must be > 0 s")
        if not 0 <= self.min_object_score <= 1:
            raise ValueError(f"planner: min_object_score must be in [0, 1], got {self.min_object_score}")


class WorldView:
    """Thread-safe; every method takes `now` (monotonic seconds) where time matters."""

    def __init__(self, config: WorldViewConfig = WorldViewConfig()) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}  # consented name → last time recognised
        self._known: frozenset[str] = frozenset()  # consented names in long-term memory
        self._forgotten: set[str] = set()  # names forgotten since the memory last listed them
        self._labels: dict[str, float] = {}  # object label → last time detected
        self._scene: frozenset[str] = frozenset()  # objects the task status names
        self._excluded = frozenset(label.lower() for label in config.excluded_objects)
        self._arm_task = ""
        self._task_succeeded: str | None = None  # the instruction the task status last reported done
        self._task_superseded = False

    # -- people -------------------------------------------------------------------------------------
    def people_recognised(self, names: Iterable[str], now: float) -> None:
        """Names of faces the memory recognised (band KNOWN) in one frame."""
        with self._lock:
            for name in names:
                label = clean_label(name)
                if label:
                    self._seen[label] = now
                    self._forgotten.discard(label)

    def known_people(self, names: Iterable[str]) -> None:
        """The consented names the memory lists now (replaces the previous list)."""
        with self._lock:
            self._known = frozenset(label for label in map(clean_label, names) if label)
            self._forgotten.clear()

    def person_left(self, name: str) -> None:
        with self._lock:
            self._seen.pop(clean_label(name) or "", None)

    def person_forgotten(self, name: str) -> None:
        label = clean_label(name) or ""
        with self._lock:
            self._seen.pop(label, None)
            self._forgotten.add(label)

    # -- objects ------------------------------------------------------------------------------------
    def objects_detected(self, labels: Iterable[tuple[str, float]], now: float) -> None:
        """(label, score) of one frame's detections."""
        with self._lock:
            for label, score in labels:
                clean = clean_label(label)
                if clean and score >= self.config.min_object_score and clean.lower() not in self._excluded:
                    self._labels[clean.lower()] = now

    def scene_objects(self, labels: Iterable[str]) -> None:
        with self._lock:
            cleaned = (clean_label(label) for label in labels)
            self._scene = frozenset(c.lower() for c in cleaned if c and c.lower() not in self._excluded)

    # -- the arm ------------------------------------------------------------------------------------
    def arm_instruction(self, instruction: str) -> None:
        """An instruction seen on /vla/instruction (from us or anyone else)."""
        with self._lock:
            if instruction != self._arm_task:
                self._task_superseded = True
            self._arm_task = instruction

    def task_status(self, instruction: str, success: bool) -> None:
        """The task status topic's report: `instruction` is the task it judges."""
        with self._lock:
            if success:
                self._task_succeeded = instruction

    def begin_task(self, instruction: str) -> None:
        """We are about to publish `instruction`: from now on `task_state` is about it."""
        with self._lock:
            self._arm_task = instruction
            self._task_succeeded = None
            self._task_superseded = False

    def task_state(self, instruction: str) -> VlaStatus:
        """How the task `instruction` (begun with begin_task) stands."""
        with self._lock:
            if self._arm_task != instruction or self._task_superseded:
                shown = self._arm_task or "nothing (stopped)"
                return VlaStatus(VlaState.FAILED, f"the arm was given another task: {shown}")
            if self._task_succeeded == instruction:
                return VlaStatus(VlaState.SUCCEEDED)
            return VlaStatus(VlaState.RUNNING)

    # -- the picture --------------------------------------------------------------------------------
    def context(self, now: float) -> Context:
        cfg = self.config
        with self._lock:
            in_view = {name for name, at in self._seen.items() if now - at <= cfg.in_view_s}
            names = (self._known | in_view) - (self._forgotten - in_view)
            people = tuple(Person(name, True, name in in_view) for name in names)
            objects = {label for label, at in self._labels.items() if now - at <= cfg.object_memory_s}
            busy = self._arm_task and self._task_succeeded != self._arm_task
            return Context(people, tuple(objects | self._scene), self._arm_task if busy else None)
