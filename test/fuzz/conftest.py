"""Prints the fuzz table at the end of a run that fuzzed anything (and writes out/fuzz/table.md)."""

from __future__ import annotations

from typing import Any

from fuzz.report import RESULTS, table, write
from harness import REPO


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.write_sep("=", "fuzz")
        terminalreporter.write_line(table(RESULTS))
        write(RESULTS, REPO / "out" / "fuzz" / "table.md")
