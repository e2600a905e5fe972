"""Timestamped action queue fed by chunks of predicted actions (plain Python, no rclpy).

Time is counted in control ticks (one per control period). Step i of a chunk predicted from the
observation taken at tick k applies at tick k + i (chunks are re-timed to the control period first,
see `resample_chunk`). In asynchronous mode (the default) the next observation is requested while actions are
still queued; when its chunk arrives, the steps whose slot already passed while the model was thinking
are dropped (latency-aware alignment), and the overlap with what is queued is merged. In synchronous
mode (for comparison) the next observation is requested only when the queue is empty, and the chunk
starts at its arrival: the robot holds while the model thinks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np


class Merge(str, Enum):
    REPLACE = "replace"  # the newer chunk wins
    WEIGHTED = "weighted"  # (1 - w) * queued + w * new, w = new_chunk_weight


class Mode(str, Enum):
    ASYNC = "async"
    SYNC = "sync"


@dataclass(frozen=True)
class QueueConfig:
    mode: Mode = Mode.ASYNC
    threshold: float = 0.5  # request an observation when queued steps <= threshold * chunk length
    merge: Merge = Merge.WEIGHTED
    new_chunk_weight: float = 0.5  # weight of the newer chunk's step in a weighted merge

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "merge", Merge(self.merge))
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"chunk threshold must be within [0, 1], got {self.threshold}")
        if not 0.0 < self.new_chunk_weight <= 1.0:
            raise ValueError(f"new_chunk_weight must be within (0, 1], got {self.new_chunk_weight}")


@dataclass
class QueueStats:
    chunks: int = 0
    merged_steps: int = 0  # steps that overlapped a queued step and were merged
    dropped_late: int = 0  # steps whose time passed while the model was thinking
    skipped: int = 0  # queued steps the control loop passed over (it ran late)


class ActionQueue:
    """Actions keyed by control tick; `pop(tick)` gives the action due at that tick. Single owner."""

    def __init__(self, chunk_length: int, config: QueueConfig | None = None) -> None:
        if chunk_length < 1:
            raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
        self.chunk_length = chunk_length
        self.config = config or QueueConfig()
        self.stats = QueueStats()
        self._actions: dict[int, np.ndarray] = {}

    def reset(self) -> None:
        """Forget every queued action (new instruction, stop, or policy reset)."""
        self._actions.clear()

    def __len__(self) -> int:
        return len(self._actions)

    def pending(self, tick: int) -> int:
        """Queued steps due at `tick` or later."""
        return sum(1 for t in self._actions if t >= tick)

    def wants_observation(self, tick: int) -> bool:
        """Whether the control loop should send a new observation to the policy at this tick."""
        remaining = self.pending(tick)
        if self.config.mode is Mode.SYNC:
            return remaining == 0
        return remaining <= self.config.threshold * self.chunk_length

    def add_chunk(self, chunk: np.ndarray, observation_tick: int, tick: int) -> int:
        """Queue a (horizon, action_dim) chunk predicted from the observation taken at `observation_tick`.

        `tick` is the next tick the control loop will run. Returns the number of steps queued.
        Async: step i applies at observation_tick + i; steps whose tick already passed are dropped.
        Sync: step 0 applies at `tick`.
        """
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[0] < 1:
            raise ValueError(f"a chunk must be (horizon, action_dim), got shape {chunk.shape}")
        first = tick if self.config.mode is Mode.SYNC else observation_tick
        self.stats.chunks += 1
        queued = 0
        for step, action in enumerate(chunk):
            at = first + step
            if at < tick:
                self.stats.dropped_late += 1
                continue
            old = self._actions.get(at)
            if old is not None:
                self.stats.merged_steps += 1
                if self.config.merge is Merge.WEIGHTED:
                    w = self.config.new_chunk_weight
                    action = (1.0 - w) * old + w * action
            self._actions[at] = action
            queued += 1
        self._drop_before(tick, count=False)
        return queued

    def _drop_before(self, tick: int, *, count: bool) -> None:
        for at in [t for t in self._actions if t < tick]:
            del self._actions[at]
            if count:
                self.stats.skipped += 1

    def pop(self, tick: int) -> np.ndarray | None:
        """The action due at `tick`, or None when none is queued for it (the caller holds)."""
        self._drop_before(tick, count=True)
        return self._actions.pop(tick, None)


def resample_chunk(chunk: np.ndarray, from_period_s: float, to_period_s: float) -> np.ndarray:
    """A chunk re-timed from the policy's step period to the control period (linear interpolation).

    The result covers the same time span: step j is at j * to_period_s, up to the last input step.
    """
    chunk = np.asarray(chunk, dtype=np.float64)
    if math.isclose(from_period_s, to_period_s, rel_tol=1e-6):
        return chunk
    source_t = np.arange(chunk.shape[0]) * from_period_s
    target_t = np.arange(int(source_t[-1] / to_period_s + 1e-9) + 1) * to_period_s
    return np.stack([np.interp(target_t, source_t, chunk[:, j]) for j in range(chunk.shape[1])], axis=1)
