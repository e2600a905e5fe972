"""What the demo measured, and its report (out/report.md). Plain Python, no rclpy: the recorder feeds
`DemoStats` from the topics; every number in the report comes from the run."""

from __future__ import annotations

import platform
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from tabletop_sim.episode import EpisodeResult
from tabletop_sim.people import SceneScript

#: /diagnostics values worth a row in "deadline misses and drops".
HEALTH_KEYS = (
    "deadline_misses",
    "skipped",
    "dropped",
    "malformed",
    "overruns",
    "late_steps",
    "holds.",
    "errors",
)


@dataclass(frozen=True)
class EventRecord:
    t_s: float  # seconds since the scene started
    kind: str
    name: str
    person_id: str
    text: str


@dataclass(frozen=True)
class PlannerRecord:
    """One request to the planner: what was asked, the checked plan, what the robot said and did."""

    t_s: float  # seconds since the scene started, when asked
    request: str
    plan: str  # the plan's tools and arguments, shortened for a table
    said: tuple[str, ...]
    outcome: str
    took_s: float  # from the request to the result


@dataclass
class DemoStats:
    profile: str
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_s: dict[str, float] = field(default_factory=dict)
    last_s: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)  # status name → values
    events: list[EventRecord] = field(default_factory=list)
    episodes: list[EpisodeResult] = field(default_factory=list)
    planner: list[PlannerRecord] = field(default_factory=list)
    governor_levels: list[tuple[float, int]] = field(default_factory=list)  # (t, level) at each change
    scene_s: float = 0.0
    wall_s: float = 0.0

    def received(self, topic: str, now_s: float) -> None:
        self.counts[topic] += 1
        self.first_s.setdefault(topic, now_s)
        self.last_s[topic] = now_s

    def sample(self, what: str, value: float) -> None:
        self.samples[what].append(float(value))

    def rate_hz(self, topic: str) -> float:
        n = self.counts.get(topic, 0)
        span = self.last_s.get(topic, 0.0) - self.first_s.get(topic, 0.0)
        return (n - 1) / span if n > 1 and span > 0 else 0.0

    def governor(self, t_s: float, level: int) -> None:
        if not self.governor_levels or self.governor_levels[-1][1] != level:
            self.governor_levels.append((t_s, level))


def _percentiles(values: list[float]) -> str:
    if not values:
        return "| – | – | – | – | 0 |"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"| {p50:.1f} | {p90:.1f} | {p99:.1f} | {max(values):.1f} | {len(values)} |"


def render_report(stats: DemoStats, script: SceneScript, latencies: dict[str, str]) -> str:
    """Markdown. `latencies` maps a sample name of `stats.samples` to its description."""
    ok = sum(e.success for e in stats.episodes)
    lines = [
        "# humanoid_stack demo report",
        "",
        f"Run {stats.started} on {platform.node()} ({platform.machine()}, "
        f"Python {platform.python_version()}), profile `{stats.profile}`: "
        f"{stats.scene_s:.0f} s of scripted scene, {stats.wall_s:.0f} s in all.",
        "Every number below was measured in this run.",
        "",
        "## Rates (messages the recorder received)",
        "",
        "| topic | messages | rate Hz |",
        "|---|---|---|",
        *(f"| {t} | {n} | {stats.rate_hz(t):.1f} |" for t, n in sorted(stats.counts.items())),
        "",
        "## Latency (ms)",
        "",
        "| what | median | p90 | p99 | max | n |",
        "|---|---|---|---|---|---|",
        *(f"| {text} {_percentiles(stats.samples.get(name, []))}" for name, text in latencies.items()),
        "",
        "## Deadline misses and drops (each node's last /diagnostics)",
        "",
        "| status | value | count |",
        "|---|---|---|",
    ]
    for status, values in sorted(stats.diagnostics.items()):
        for key, value in values.items():
            if any(k in key for k in HEALTH_KEYS):
                lines.append(f"| {status} | {key} | {value} |")
    lines += [
        "",
        "## Identities and events",
        "",
        "Who was in view (the script): "
        + (", ".join(f"{a.who} {a.start_s:g}–{a.end_s:g} s" for a in script.appearances) or "nobody")
        + "; enrolled before the scene: "
        + (", ".join(e.name for e in script.enrolments) or "nobody")
        + ".",
        "",
        "| t (s) | event | name | person id | says |",
        "|---|---|---|---|---|",
        *(
            f"| {e.t_s:.1f} | {e.kind} | {e.name or '–'} | {e.person_id[:8] or '–'} | {e.text} |"
            for e in stats.events
        ),
        "",
        f"## Tasks: {ok} of {len(stats.episodes)} succeeded",
        "",
        "| # | instruction | success | time to success (s) | final distance (m) |",
        "|---|---|---|---|---|",
    ]
    for i, e in enumerate(stats.episodes, 1):
        t = f"{e.time_to_success_s:.2f}" if e.time_to_success_s is not None else "–"
        lines.append(
            f"| {i} | {e.instruction} | {'yes' if e.success else 'no'} | {t} | {e.final_distance_m:.3f} |"
        )
    lines += [
        "",
        "## The planner: what people asked, what the robot said and did",
        "",
        "t: when asked, from the scene's start (negative: before it; the scene waits for the first plan).",
        "",
        "| t (s) | request | checked plan | the robot said | outcome | took (s) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r.t_s:.1f} | {r.request} | {r.plan or '–'} | {' / '.join(r.said) or '–'} | {r.outcome} "
            f"| {r.took_s:.1f} |"
            for r in stats.planner
        ),
    ]
    lines += ["", "## Load governor", ""]
    lines += [f"- {t:.1f} s: level {level}" for t, level in stats.governor_levels] or ["- no report received"]
    return "\n".join(lines) + "\n"
