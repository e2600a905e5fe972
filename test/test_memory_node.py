"""memory_node over real rclpy topics: the acceptance scenario.

Alice is enrolled, arrives, leaves; a stranger comes and is remembered unnamed; the node restarts;
Alice returns and is welcomed back; what her visits taught is dropped, then she is forgotten without a
trace in the data folder. The thresholds here say they hold for 1 person, so /diagnostics warns once
the memory holds two.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from memory_helpers import Camera, call, face_crop, frame

from harness import wait_for
from humanoid_common.assets import asset_path, assets_dir
from humanoid_common.config import config_dir
from humanoid_common.qos import load_qos_config
from humanoid_stack.msg import MemoryEvent, PersonArray
from humanoid_stack.srv import Enroll, Forget, ListPeople
from memory_node.crypto import new_key_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

E = MemoryEvent
CONFIG = {
    "memory": {
        "voting": {"window": 5, "known_votes": 2, "min_votes": 2},
        "strangers": {"min_samples": 3, "min_span_s": 0.5},
        "events": {"welcome_back_after_s": 3.0, "left_after_s": 2.0},
        "requests": {"image_dirs": [str(assets_dir())]},  # the enrolment photos
    }
}


def test_acceptance_scenario_over_topics(ros, processes, tmp_path: Path):
    config = tmp_path / "memory.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    thresholds = yaml.safe_load((config_dir() / "face_thresholds.yaml").read_text())
    for model in thresholds["models"].values():
        model["gallery_size"] = 1  # the shipped bands, said to hold for one person only
    thresholds_file = tmp_path / "face_thresholds.yaml"
    thresholds_file.write_text(yaml.safe_dump(thresholds))
    data = tmp_path / "data"
    env = {"HUMANOID_MEMORY_KEY": new_key_text()}
    args = [
        "-m", "memory_node.node", "--ros-args",
        "-p", f"config_file:={config}", "-p", f"data_dir:={data}",
        "-p", "use_detections:=false", "-p", "tick_period_s:=0.2",
        "-p", f"thresholds_file:={thresholds_file}",
    ]  # fmt: skip
    alice = face_crop("face_obama2.jpg", (208, 227, 469, 635))
    stranger = face_crop("face_biden.jpg", (424, 159, 711, 563))

    node = ros.node("scenario")
    events: list[MemoryEvent] = ros.collect(
        MemoryEvent, "/memory/events", load_qos_config().profile("/memory/events")
    )
    people: list[PersonArray] = ros.collect(
        PersonArray, "/memory/people", load_qos_config().profile("/memory/people")
    )
    diagnostics: list[DiagnosticArray] = ros.collect(DiagnosticArray, "/diagnostics", 50)
    camera = Camera(node)

    def memory_status() -> DiagnosticStatus | None:
        found = [s for array in diagnostics[-20:] for s in array.status if s.name == "memory_node: memory"]
        return found[-1] if found else None

    def warned() -> bool:
        status = memory_status()
        return status is not None and status.level == DiagnosticStatus.WARN

    def seen(kind: int, count: int = 1) -> bool:
        return sum(e.type == kind for e in events) >= count

    proc = processes.start(args, "memory_node_1", env=env)
    try:
        wait_for(
            lambda: node.count_publishers("/memory/people") >= 1 or proc.poll() is not None, 60, "the node"
        )
        assert proc.poll() is None, processes.log(proc)
        photos = [str(asset_path("face_obama.jpg")), str(asset_path("face_obama3.jpg"))]
        reply = call(
            node, Enroll, "/memory/enroll", Enroll.Request(name="Alice", consent=True, image_paths=photos)
        )
        assert reply.success, reply.message
        assert reply.samples_added == 2
        alice_id = reply.person_id

        camera.scene = frame(alice)  # Alice arrives: first sight since enrolment
        wait_for(lambda: seen(E.WELCOME_BACK), 60, "welcome back, Alice", interval=0.1)
        refined = [p for p in people if not p.provisional and p.people and p.people[0].band == 2]
        assert refined[-1].people[0].display_name == "Alice"
        assert refined[-1].embedding_model == "w600k_mbf"
        assert any(p.provisional for p in people)
        camera.scene = frame(None)  # Alice leaves
        wait_for(lambda: seen(E.LEFT), 30, "Alice left", interval=0.1)
        camera.scene = frame(stranger)  # a stranger comes and stays long enough to be remembered
        wait_for(lambda: seen(E.NEW_PERSON, 2), 90, "a new (then provisional) person", interval=0.1)
        camera.scene = frame(None)
        wait_for(lambda: seen(E.LEFT, 2), 30, "the stranger left", interval=0.1)
        wait_for(warned, 10, "the memory status warning of a gallery past its calibration")
        assert "2 people, more than the 1 the face thresholds were calibrated for" in memory_status().message
        assert processes.stop(proc) == 0

        proc = processes.start(args, "memory_node_2", env=env)  # restart: memory from the store
        wait_for(lambda: node.count_publishers("/memory/people") >= 1, 60, "the restarted node")
        camera.scene = frame(alice)
        wait_for(lambda: seen(E.WELCOME_BACK, 2), 60, "welcome back after the restart", interval=0.1)
        camera.scene = frame(None)

        got = [(e.type, e.display_name) for e in events]
        assert got[:6] == [
            (E.WELCOME_BACK, "Alice"),
            (E.LEFT, "Alice"),
            (E.NEW_PERSON, ""),
            (E.NEW_PERSON, ""),
            (E.LEFT, ""),
            (E.WELCOME_BACK, "Alice"),
        ], got
        assert events[0].person_id == events[5].person_id == alice_id
        assert events[2].person_id == ""
        assert events[3].person_id == events[4].person_id != ""
        assert events[5].absent_s > 3.0

        listed = call(node, ListPeople, "/memory/list_people", ListPeople.Request(include_provisional=True))
        assert {(p.display_name, p.provisional) for p in listed.people} == {("Alice", False), ("", True)}
        alice = next(p for p in listed.people if p.display_name == "Alice")
        assert alice.anchor_samples == 2  # the enrolment; her visit taught only learned samples
        assert alice.learned_samples >= CONFIG["memory"]["voting"]["known_votes"]  # her KNOWN frames
        assert alice.samples == alice.anchor_samples + alice.learned_samples
        reply = call(node, Forget, "/memory/forget", Forget.Request(display_name="Alice", learned_only=True))
        assert reply.success, reply.message
        assert f"dropped {alice.learned_samples} learned samples" in reply.message
        listed = call(node, ListPeople, "/memory/list_people", ListPeople.Request())
        assert [(p.anchor_samples, p.learned_samples) for p in listed.people] == [(2, 0)]
        reply = call(node, Forget, "/memory/forget", Forget.Request(display_name="Alice"))
        assert reply.success, reply.message
        assert reply.person_id == alice_id
        wait_for(lambda: seen(E.FORGOTTEN), 10, "the forgotten event")
        listed = call(node, ListPeople, "/memory/list_people", ListPeople.Request(include_provisional=True))
        assert [p.display_name for p in listed.people] == [""]
        for path in data.iterdir():
            blob = path.read_bytes()
            assert b"Alice" not in blob, path.name
            assert alice_id.encode() not in blob, path.name
    finally:
        camera.stop()
        processes.stop(proc)
    assert "Traceback" not in processes.log(proc), processes.log(proc)
