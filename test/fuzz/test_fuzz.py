"""Each node of the stack survives malformed messages on every topic and hostile service requests,
keeps producing valid output, counts what it dropped, and keeps its memory (docs/fuzz.md).

`make test` sends FUZZ_MESSAGES=200 (the default) per topic; `make fuzz` sends 2,000.
"""

from __future__ import annotations

import os

import pytest

from fuzz.report import RESULTS
from fuzz.runner import run
from fuzz.targets import (
    GOVERNOR,
    MEMORY,
    PEOPLE_SCENE,
    PERCEPTION,
    PERCEPTION_COMPRESSED,
    PLANNER,
    SIM,
    VLA,
)

pytestmark = pytest.mark.integration
MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "200"))
TARGETS = [PERCEPTION, PERCEPTION_COMPRESSED, SIM, GOVERNOR, PEOPLE_SCENE, MEMORY, VLA, PLANNER]


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name.replace(" ", ""))
def test_no_message_kills_the_node(target, ros, processes, tmp_path):
    result = run(target, MESSAGES, ros, processes, tmp_path)
    RESULTS.append(result)
    assert not result.failures, "\n".join(result.failures)
