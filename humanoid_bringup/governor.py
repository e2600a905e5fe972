"""The load governor's decisions (plain Python): shed perception and memory work when the VLA node
misses deadlines or the machine is saturated, give it back when the pressure is gone.

Levels: 0 runs every node at its profile rate; level i runs perception at `perception_rates[i]` and
memory at `memory_rates[i]` (the ladders come from the profile; their first entries are the profile
rates). Under pressure the level goes up one step at most every `step_s`; after `recover_s` of calm
it comes down one step. Between the two thresholds (hysteresis) the level holds, so shedding load
that ends the pressure does not immediately bring it back.

The deadline misses come from another node over /diagnostics, so `MissCounter` takes them only as
they can be: non-negative whole counts that grow no faster than a control loop of at most
MAX_CONTROL_RATE_HZ can miss deadlines. A report that is not is refused (InvalidMessageError), never
read as pressure: a forged or corrupt count must not drive the robot's perception to its lowest rate.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from humanoid_common.validation import InvalidMessageError, bounded_count, bounded_text, finite_number

#: The fastest control loop of the stack (the VLA node runs at 1 to 100 Hz): no deadline counter can
#: grow faster than one miss per period of it.
MAX_CONTROL_RATE_HZ = 100.0
#: Allowance on the time between two reports (delivery jitter; reports queued behind a stall).
REPORT_SLACK_S = 1.0
#: The largest count taken at all: a loop at 100 Hz needs about 3 years to miss 10^10 deadlines.
MAX_COUNT = 10**10
#: A status with more values than this is not one of the VLA node's (it has a few dozen).
MAX_VALUES = 256
MAX_VALUE_CHARS = 32


@dataclass(frozen=True)
class GovernorConfig:
    perception_rates: tuple[float, ...]
    memory_rates: tuple[float, ...]
    cpu_high_percent: float = 90.0  # pressure above
    cpu_low_percent: float = 70.0  # calm below
    gpu_high_percent: float = 95.0
    gpu_low_percent: float = 80.0
    thermal_high_c: float = 85.0
    thermal_low_c: float = 80.0
    step_s: float = 2.0
    recover_s: float = 10.0

    def validate(self) -> None:
        for name in ("perception_rates", "memory_rates"):
            rates = getattr(self, name)
            if not rates or any(r < 0 for r in rates):
                raise ValueError(f"governor.{name} must list rates >= 0 Hz, normal first, got {list(rates)}")
            if any(later > earlier > 0 for earlier, later in itertools.pairwise(rates)):
                raise ValueError(f"governor.{name} must not rise from level to level, got {list(rates)}")
        for high, low in (("cpu_high_percent", "cpu_low_percent"), ("gpu_high_percent", "gpu_low_percent"),
                          ("thermal_high_c", "thermal_low_c")):  # fmt: skip
            if getattr(self, low) >= getattr(self, high):
                raise ValueError(
                    f"governor.{low} ({getattr(self, low)}) must be below {high} ({getattr(self, high)})"
                )
        if self.step_s <= 0 or self.recover_s <= 0:
            raise ValueError("governor.step_s and governor.recover_s must be > 0 s")

    @property
    def levels(self) -> int:
        return max(len(self.perception_rates), len(self.memory_rates))


@dataclass(frozen=True)
class Sample:
    """What the governor sees at one moment; None where the source is absent."""

    now: float
    vla_deadline_misses: int | None = None  # cumulative count reported by the VLA node
    cpu_percent: float | None = None
    gpu_percent: float | None = None
    temperature_c: float | None = None  # the hottest zone


class Governor:
    def __init__(self, config: GovernorConfig) -> None:
        config.validate()
        self.config = config
        self.level = 0
        self.reasons: list[str] = []  # why the last sample was pressure (empty: none)
        self.changes = 0
        self._last_misses: int | None = None
        self._changed_at = -float("inf")
        self._calm_since: float | None = None

    def rates(self) -> dict[str, float]:
        """Target max_rate_hz per node at the current level."""

        def at(ladder: tuple[float, ...]) -> float:
            return ladder[min(self.level, len(ladder) - 1)]

        return {
            "perception_node": at(self.config.perception_rates),
            "memory_node": at(self.config.memory_rates),
        }

    def update(self, sample: Sample) -> bool:
        """Take a sample; True when the level changed."""
        c = self.config
        new_misses = 0
        if sample.vla_deadline_misses is not None:
            if self._last_misses is not None and sample.vla_deadline_misses >= self._last_misses:
                new_misses = sample.vla_deadline_misses - self._last_misses  # (a restarted node resets)
            self._last_misses = sample.vla_deadline_misses
        self.reasons = [
            text
            for hit, text in (
                (new_misses > 0, f"VLA missed {new_misses} deadlines"),
                (_above(sample.cpu_percent, c.cpu_high_percent), f"CPU {sample.cpu_percent or 0:.0f} %"),
                (_above(sample.gpu_percent, c.gpu_high_percent), f"GPU {sample.gpu_percent or 0:.0f} %"),
                (_above(sample.temperature_c, c.thermal_high_c), f"{sample.temperature_c or 0:.0f} °C"),
            )
            if hit
        ]
        calm = not new_misses and all(
            value is None or value < low
            for value, low in (
                (sample.cpu_percent, c.cpu_low_percent),
                (sample.gpu_percent, c.gpu_low_percent),
                (sample.temperature_c, c.thermal_low_c),
            )
        )
        self._calm_since = (
            (self._calm_since if self._calm_since is not None else sample.now) if calm else None
        )
        since_change = sample.now - self._changed_at
        if self.reasons and self.level < c.levels - 1 and since_change >= c.step_s:
            return self._set(self.level + 1, sample.now)
        if (
            self._calm_since is not None
            and self.level > 0
            and sample.now - self._calm_since >= c.recover_s
            and since_change >= c.recover_s
        ):
            return self._set(self.level - 1, sample.now)
        return False

    def release(self) -> bool:
        """Back to level 0 (the profile's rates), as when the governor stops: load it shed must not
        stay shed without it. True when the level changed."""
        if self.level == 0:
            return False
        return self._set(0, self._changed_at)

    def _set(self, level: int, now: float) -> bool:
        self.level, self._changed_at = level, now
        self.changes += 1
        return True


class MissCounter:
    """The sum of the VLA node's cumulative `deadline_misses.*` counters, taken from its reports.

    `update` refuses (InvalidMessageError) a report whose counters are not whole numbers in
    [0, MAX_COUNT], that names a counter twice, or whose counters grew by more than a loop at
    MAX_CONTROL_RATE_HZ can miss in the time since the last accepted report (plus REPORT_SLACK_S). A
    counter that went down means the VLA node restarted: that report becomes the new baseline.
    """

    def __init__(self) -> None:
        self._counters: dict[str, int] | None = None
        self._at_s = 0.0
        self.total: int | None = None

    @staticmethod
    def parse(values: Iterable[tuple[str, str]]) -> dict[str, int]:
        """The `deadline_misses.*` counters of a status's (key, value) pairs, checked."""
        counters: dict[str, int] = {}
        for key, value in bounded_count(list(values), "status values", MAX_VALUES):
            if not key.startswith("deadline_misses."):
                continue
            if key in counters:
                raise InvalidMessageError(f"{key[:60]} appears twice in one status")
            text = bounded_text(value, key[:60], MAX_VALUE_CHARS)
            try:
                number = float(text)
            except ValueError:
                raise InvalidMessageError(f"{key[:60]} is {text!r}, not a number") from None
            count = finite_number(number, key[:60], low=0, high=MAX_COUNT)
            if count != int(count):
                raise InvalidMessageError(f"{key[:60]} is {text!r}, not a whole count")
            counters[key] = int(count)
        return counters

    def update(self, counters: Mapping[str, int], now_s: float) -> int:
        """Take the checked counters of one report received at `now_s` (monotonic seconds); the total."""
        last = self._counters
        if last is not None and all(counters.get(key, 0) >= count for key, count in last.items()):
            allowed = MAX_CONTROL_RATE_HZ * (max(0.0, now_s - self._at_s) + REPORT_SLACK_S)
            for key, count in counters.items():
                if count - last.get(key, 0) > allowed:
                    raise InvalidMessageError(
                        f"{key[:60]} grew by {count - last.get(key, 0)} in {now_s - self._at_s:.2f} s, more "
                        f"than a {MAX_CONTROL_RATE_HZ:g} Hz loop can miss ({allowed:.0f})"
                    )
        self._counters, self._at_s = dict(counters), now_s
        self.total = sum(counters.values())
        return self.total


def _above(value: float | None, limit: float) -> bool:
    return value is not None and value > limit
