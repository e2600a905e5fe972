"""Tier 3 store: encryption, key handling, persistence, crash safety, forgetting without a trace."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from memory_helpers import DIM, THRESHOLDS, identity, make_config, open_memory, sample

from harness import REPO
from memory_node.bands import Band
from memory_node.crypto import MemoryKeyError, WrongKeyError, new_key_text
from memory_node.memory import ARCHIVE_FILE, STORE_FILE, FaceMemory, FaceObservation

NAME = "Alice Quibblesworth"


def _digest(folder) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def _recognise(memory: FaceMemory, embedding: np.ndarray) -> str:
    candidates = memory.index.search(embedding)[0]
    return (
        candidates[0].person_id if candidates and candidates[0].similarity >= memory.thresholds.known else ""
    )


def test_key_file_created_0600_and_restart_keeps_people(tmp_path):
    rng = np.random.default_rng(1)
    alice = identity(rng)
    memory = open_memory(tmp_path)
    pid, added = memory.enroll(NAME, True, [sample(alice, rng) for _ in range(4)], now=100.0)
    memory.close()
    assert added == 4
    for name in ("memory.key", STORE_FILE, ARCHIVE_FILE):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    memory = open_memory(tmp_path)
    person = memory.people[pid]
    assert person.name == NAME
    assert person.consent
    assert len(person.samples) == 4
    assert _recognise(memory, sample(alice, rng)) == pid
    memory.close()


def test_env_key_wins_and_wrong_key_changes_nothing(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    monkeypatch.setenv("HUMANOID_MEMORY_KEY", new_key_text())
    memory = open_memory(tmp_path)
    memory.enroll(NAME, True, [identity(rng)], now=1.0)
    memory.close()
    assert not (tmp_path / "memory.key").exists()
    before = _digest(tmp_path)
    monkeypatch.setenv("HUMANOID_MEMORY_KEY", new_key_text())
    with pytest.raises(WrongKeyError, match=r"does not open .*people\.sqlite.*not modified"):
        open_memory(tmp_path)
    monkeypatch.delenv("HUMANOID_MEMORY_KEY")
    with pytest.raises(MemoryKeyError, match="no key: the memory store exists"):
        open_memory(tmp_path)  # and no new key is created that could never open it
    assert _digest(tmp_path) == before


def test_key_file_readable_by_others_is_refused(tmp_path):
    open_memory(tmp_path).close()
    (tmp_path / "memory.key").chmod(0o644)
    with pytest.raises(MemoryKeyError, match="chmod 600"):
        open_memory(tmp_path)


def test_names_and_embeddings_are_encrypted_at_rest(tmp_path):
    rng = np.random.default_rng(3)
    embedding = identity(rng)
    memory = open_memory(tmp_path)
    memory.enroll(NAME, True, [embedding], now=1.0)
    memory.close()
    blob = (tmp_path / STORE_FILE).read_bytes()
    assert NAME.encode() not in blob
    assert embedding.tobytes() not in blob
    assert embedding[:4].tobytes() not in blob


def test_forget_leaves_no_trace_in_any_file(tmp_path):
    rng = np.random.default_rng(4)
    alice, bob = identity(rng), identity(rng)
    memory = open_memory(tmp_path)
    alice_samples = [sample(alice, rng) for _ in range(6)]
    pid, _ = memory.enroll(NAME, True, alice_samples, now=1.0)
    memory.enroll("Bob", True, [sample(bob, rng) for _ in range(3)], now=1.0)
    for t in range(4):  # Alice seen on a track: Tier 0/1 hold her too
        memory.refine([([FaceObservation(5, sample(alice, rng))], 2.0 + t)])
    assert pid in memory.hot
    db = sqlite3.connect(tmp_path / STORE_FILE)
    ciphertexts = [r[0] for r in db.execute("SELECT embedding FROM samples WHERE person_id=?", (pid,))]
    ciphertexts += [r[0] for r in db.execute("SELECT name FROM people WHERE id=?", (pid,))]
    db.close()
    centroid = memory.people[pid].centroid.copy()
    memory.forget(pid, now=10.0)
    assert memory.pop_events()[-1].person_id == pid
    assert pid not in memory.hot
    assert pid not in memory.people
    assert memory.recent.get(5) is None
    assert _recognise(memory, sample(alice, rng)) == ""
    memory.close()
    secrets = [NAME.encode(), pid.encode(), centroid.tobytes(), *ciphertexts]
    secrets += [e.tobytes() for e in alice_samples] + [e[:8].tobytes() for e in alice_samples]
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{path.name} still holds forgotten bytes"
    memory = open_memory(tmp_path)
    assert [p.name for p in memory.people.values()] == ["Bob"]
    memory.close()


_ENROL_LOOP = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, "test")
    from memory_helpers import identity, open_memory
    memory = open_memory(sys.argv[1])
    round_ = int(sys.argv[2])
    rng = np.random.default_rng(round_)
    for i in range(100000):
        pid, _ = memory.enroll(f"person {round_}-{i}", True, [identity(rng) for _ in range(5)], now=float(i))
        print(pid, flush=True)
    """
)
KILLS_AFTER_START = 8


@pytest.mark.slow
def test_kill_9_during_enrolment_never_corrupts_nor_loses_committed(tmp_path):
    """Kills at random moments of a running memory, again and again in the same folder: every
    acknowledged (committed) enrolment survives them all and the file stays intact."""
    pace = random.Random(7)
    committed: list[str] = []
    for round_ in range(KILLS_AFTER_START):
        proc = subprocess.Popen(
            [sys.executable, "-c", _ENROL_LOOP, str(tmp_path), str(round_)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout.readline().strip(), "the enrolment loop did not start"
            time.sleep(pace.uniform(0.0, 0.5))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        committed += [line.strip() for line in proc.stdout if line.strip()]
        db = sqlite3.connect(tmp_path / STORE_FILE)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"after kill {round_ + 1}"
        db.close()
        memory = open_memory(tmp_path)
        assert set(committed) <= set(memory.people), f"lost enrolments after kill {round_ + 1}"
        assert all(len(memory.people[pid].samples) == 5 for pid in committed)
        memory.close()
    assert len(committed) > 2 * KILLS_AFTER_START


def test_archive_move_and_restore_when_seen_again(tmp_path):
    rng = np.random.default_rng(5)
    alice = identity(rng)
    memory = open_memory(tmp_path, consolidation={"archive_after_s": 100.0}, voting={"min_votes": 1})
    pid, _ = memory.enroll(NAME, True, [sample(alice, rng) for _ in range(3)], now=0.0)
    assert memory.consolidate(now=500.0)["archived"] == 1
    assert pid not in memory.people
    assert memory.resolve("", NAME) == pid
    assert [p.person_id for p, archived in memory.list_people(False, True) if archived] == [pid]
    assert not (tmp_path / ARCHIVE_FILE).read_bytes().count(NAME.encode())
    match = memory.refine([([FaceObservation(9, sample(alice, rng))], 600.0)])[0][0]
    assert match.person_id == pid
    assert match.band == Band.KNOWN
    assert pid in memory.people
    assert pid not in memory.archive.ids()
    memory.close()


def test_dimension_mismatch_is_a_clear_error(tmp_path):
    memory = open_memory(tmp_path)
    memory.enroll(NAME, True, [identity(np.random.default_rng(6))], now=0.0)
    memory.close()
    with pytest.raises(ValueError, match=f"{DIM}-d embeddings but the face model makes 128-d"):
        FaceMemory.open(make_config(tmp_path), THRESHOLDS, 128)
