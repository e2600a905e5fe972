"""The fuzz table: one row per topic or service of each node, printed after the run (conftest.py)
and written to out/fuzz/table.md."""

from __future__ import annotations

from pathlib import Path

from fuzz.observe import MIB
from fuzz.runner import Result, Row

#: Every finished run of this pytest session, in order.
RESULTS: list[Result] = []

HEADER = (
    "| node | topic / service | sent: malformed / valid | crashes | accepted (node) | dropped (node) "
    "| callback errors | invariant violations | RSS before → after |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def _count(value: int | None) -> str:
    return "–" if value is None else str(value)


def _row(row: Row) -> str:
    sent = (
        f"{row.malformed} requests, {row.valid} answered" if row.service else f"{row.malformed} / {row.valid}"
    )
    rss = f"{row.rss_before / MIB:.0f} → {row.rss_after / MIB:.0f} MiB" if row.rss_before else "–"
    return (
        f"| {row.node} | {row.channel} | {sent} | {row.crashes} | {_count(row.accepted)} "
        f"| {_count(row.dropped)} | {_count(row.callback_errors)} | {row.violations} | {rss} |"
    )


def table(results: list[Result]) -> str:
    lines = [HEADER]
    for result in results:
        lines += [_row(row) for row in result.rows]
    return "\n".join(lines)


def write(results: list[Result], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = [
        f"- {r.target}: {r.seconds:.0f} s; output after the fuzzing: {r.output or 'none'}" for r in results
    ]
    failures = [f"- {r.target}: {failure}" for r in results for failure in r.failures]
    path.write_text(
        "\n".join([table(results), "", *notes, "", *(["Failures:", *failures] if failures else [])]) + "\n"
    )
