"""Tier 3: the long-term person store, SQLite (WAL) with names and embeddings encrypted (AES-GCM).

Every write is one transaction. A schema version in `meta` drives migrations. A new file is built
complete (schema, key check, WAL mode) under a temporary name and renamed into place, so a process
killed during its very first start leaves no file or a whole one (memory_node.files). The key is checked
before anything is written: a wrong key raises WrongKeyError and leaves the file untouched. Deletion
runs with `secure_delete` on, then `scrub()` (VACUUM + WAL checkpoint TRUNCATE) removes the freed pages
so the bytes are gone from the file, its WAL and free lists. The cold archive is a second file of the
same schema.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memory_node.crypto import Cipher, WrongKeyError
from memory_node.files import publish, remove, temporary

SCHEMA_VERSION = 3
KEY_CHECK = b"humanoid_stack face memory key check"


class StoreError(RuntimeError):
    """The store file cannot be used (newer schema, not a memory store, ...)."""


@dataclass
class PersonRecord:
    person_id: str
    name: str = ""
    consent: bool = False
    provisional: bool = False
    first_seen: float = 0.0
    last_seen: float | None = None  # None: enrolled but never seen by the camera
    interactions: int = 0
    tags: list[str] = field(default_factory=list)
    centroid: np.ndarray | None = None
    samples: list[tuple[float, np.ndarray]] = field(default_factory=list)  # anchors: (time taken, embedding)
    learned: list[tuple[float, np.ndarray]] = field(default_factory=list)  # learned from the camera later


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: executescript() would COMMIT the migration's transaction half-way."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_v1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE people (
            id TEXT PRIMARY KEY,
            name BLOB,                -- AES-GCM, only with consent
            consent INTEGER NOT NULL,
            provisional INTEGER NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL,
            interactions INTEGER NOT NULL DEFAULT 0,
            tags BLOB,                -- AES-GCM JSON list
            centroid BLOB             -- AES-GCM float32
        );
        CREATE TABLE samples (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
            taken REAL NOT NULL,
            embedding BLOB NOT NULL   -- AES-GCM float32
        );
        CREATE INDEX samples_person ON samples(person_id);
        """,
    )


def _migrate_v2(db: sqlite3.Connection) -> None:
    # Optional face crops (storage.store_images, off by default), encrypted like everything else.
    _run_script(
        db,
        """
        CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
            taken REAL NOT NULL,
            jpeg BLOB NOT NULL        -- AES-GCM JPEG bytes
        );
        """,
    )


def _migrate_v3(db: sqlite3.Connection) -> None:
    # Anchors (enrolled, consented samples) apart from samples learned from the camera (issue 12).
    # Older files did not record it: samples taken at or before the person's first sighting (the
    # enrolment, or a provisional identity's first track) become anchors, later ones learned.
    _run_script(
        db,
        """
        ALTER TABLE samples ADD COLUMN anchor INTEGER NOT NULL DEFAULT 1;
        UPDATE samples SET anchor = (taken <= (SELECT first_seen FROM people WHERE people.id = person_id))
        """,
    )


_UPSERT_PERSON = (
    "INSERT INTO people VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET name=excluded.name, "
    "consent=excluded.consent, provisional=excluded.provisional, first_seen=excluded.first_seen, "
    "last_seen=excluded.last_seen, interactions=excluded.interactions, tags=excluded.tags, "
    "centroid=excluded.centroid"
)  # not INSERT OR REPLACE: its implicit delete would cascade to the person's samples

MIGRATIONS: Sequence[Callable[[sqlite3.Connection], None]] = (_migrate_v1, _migrate_v2, _migrate_v3)
assert len(MIGRATIONS) == SCHEMA_VERSION
#: SQLite's files beside a database (WAL, its index, a rollback journal).
SIDECARS = ("-wal", "-shm", "-journal")


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection, cipher: Cipher) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction; a new file also gets the key check."""
    with _transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB)")
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        for step in MIGRATIONS[version:]:
            step(db)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        if version == 0:
            db.execute(
                "INSERT INTO meta VALUES ('key_check', ?)", (cipher.encrypt(KEY_CHECK, "meta:key_check"),)
            )


def _create(path: Path, cipher: Cipher) -> None:
    """Build a complete, empty store at `path`: under a temporary name, then renamed into place.

    Owner-only (0600; SQLite gives its -wal/-shm files the same mode). The WAL is checkpointed into
    the file and removed by the close, so the renamed file alone holds everything.
    """
    built = temporary(path)
    leftovers = [built, *(built.with_name(built.name + s) for s in SIDECARS)]
    remove(*leftovers)  # an earlier build that was interrupted
    os.close(os.open(built, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(built, isolation_level=None)
    try:
        # 8 KiB pages hold three encrypted 512-d samples (2 KiB each) where 4 KiB pages hold one.
        db.execute("PRAGMA page_size=8192")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        _migrate(db, cipher)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    publish(built, path)
    remove(*leftovers[1:])


def _read_meta(path: Path) -> tuple[int, bytes | None]:
    """Schema version and key-check blob of an existing file, read-only (nothing is written).

    A read-only connection to a WAL database creates empty -wal/-shm files when none exist; those are
    removed again so that a refused open leaves the folder exactly as it was.
    """
    sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    created = [p for p in sidecars if not p.exists()]
    try:
        return _read_meta_rows(path)
    finally:
        for sidecar in created:
            if sidecar.exists() and (sidecar.name.endswith("-shm") or sidecar.stat().st_size == 0):
                sidecar.unlink()


def _read_meta_rows(path: Path) -> tuple[int, bytes | None]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open memory store {path}: {exc}") from exc
    try:
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is not a face memory store ({exc}); move it away or choose another data_dir"
        ) from exc
    finally:
        db.close()
    return int(rows.get("schema_version", 0)), rows.get("key_check")


class PersonStore:
    """One SQLite file of people and their samples. Thread-safe (one connection, one lock)."""

    def __init__(self, path: Path, cipher: Cipher) -> None:
        self.path = Path(path)
        self._cipher = cipher
        if self.path.exists():
            version, check = _read_meta(self.path)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, this software knows up to {SCHEMA_VERSION}; "
                    f"upgrade humanoid_stack (the file was not modified)"
                )
            if check is None:
                raise StoreError(
                    f"{self.path} has no key check; not a face memory store (the file was not modified)"
                )
            try:
                ok = cipher.decrypt(check, "meta:key_check") == KEY_CHECK
            except WrongKeyError:
                ok = False
            if not ok:
                raise WrongKeyError(
                    f"the encryption key does not open {self.path}: it was written with another key. "
                    f"Set the original key (file or environment variable); the store was not modified."
                )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _create(self.path, cipher)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "secure_delete=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        _migrate(self._db, cipher)

    # -- plumbing ---------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _transaction(self._db) as db:
            yield db

    def _enc_vec(self, vec: np.ndarray, context: str) -> bytes:
        return self._cipher.encrypt(np.asarray(vec, "<f4").tobytes(), context)

    def _dec_vec(self, blob: bytes, context: str) -> np.ndarray:
        return np.frombuffer(self._cipher.decrypt(blob, context), "<f4").copy()

    def _person_row(self, p: PersonRecord) -> tuple:
        pid = p.person_id
        return (
            pid,
            self._cipher.encrypt(p.name.encode(), f"{pid}:name") if p.name and p.consent else None,
            int(p.consent),
            int(p.provisional),
            p.first_seen,
            p.last_seen,
            p.interactions,
            self._cipher.encrypt(json.dumps(p.tags).encode(), f"{pid}:tags"),
            self._enc_vec(p.centroid, f"{pid}:centroid") if p.centroid is not None else None,
        )

    def _insert_samples(self, db: sqlite3.Connection, person: PersonRecord) -> None:
        pid = person.person_id
        db.executemany(
            "INSERT INTO samples (person_id, taken, embedding, anchor) VALUES (?, ?, ?, ?)",
            [
                (pid, t, self._enc_vec(e, f"{pid}:sample"), anchor)
                for anchor, samples in ((1, person.samples), (0, person.learned))
                for t, e in samples
            ],
        )

    # -- writes (each one transaction) ------------------------------------------------------------
    def put_person(self, person: PersonRecord, *, replace_samples: bool = False) -> None:
        """Insert or update a person; with `replace_samples` their stored samples become person.samples
        (anchors) and person.learned."""
        with self._transaction() as db:
            db.execute(_UPSERT_PERSON, self._person_row(person))
            if replace_samples:
                db.execute("DELETE FROM samples WHERE person_id=?", (person.person_id,))
                self._insert_samples(db, person)

    def touch(self, person_id: str, last_seen: float, interactions: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE people SET last_seen=?, interactions=? WHERE id=?",
                (last_seen, interactions, person_id),
            )

    def add_image(self, person_id: str, taken: float, jpeg: bytes) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO images (person_id, taken, jpeg) VALUES (?,?,?)",
                (person_id, taken, self._cipher.encrypt(jpeg, f"{person_id}:image")),
            )

    def delete_person(self, person_id: str) -> bool:
        """Delete the person with samples and images (secure_delete zeroes the freed cells)."""
        with self._transaction() as db:
            return db.execute("DELETE FROM people WHERE id=?", (person_id,)).rowcount > 0

    def scrub(self) -> None:
        """Rewrite the file without free pages and truncate the WAL: deleted bytes leave the disk files."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reads ------------------------------------------------------------------------------------
    def load(self, person_ids: Sequence[str] | None = None) -> list[PersonRecord]:
        """Every person (or the given ones) with centroid and samples decrypted."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM people ORDER BY first_seen").fetchall()
            samples: dict[tuple[str, int], list[tuple[float, np.ndarray]]] = {}
            for pid, taken, blob, anchor in self._db.execute(
                "SELECT person_id, taken, embedding, anchor FROM samples ORDER BY id"
            ):
                if person_ids is None or pid in person_ids:
                    vector = self._dec_vec(blob, f"{pid}:sample")
                    samples.setdefault((pid, anchor), []).append((taken, vector))
        people = []
        for pid, name, consent, provisional, first, last, interactions, tags, centroid in rows:
            if person_ids is not None and pid not in person_ids:
                continue
            people.append(
                PersonRecord(
                    pid,
                    self._cipher.decrypt(name, f"{pid}:name").decode() if name else "",
                    bool(consent),
                    bool(provisional),
                    first,
                    last,
                    interactions,
                    json.loads(self._cipher.decrypt(tags, f"{pid}:tags")) if tags else [],
                    self._dec_vec(centroid, f"{pid}:centroid") if centroid else None,
                    samples.get((pid, 1), []),
                    samples.get((pid, 0), []),
                )
            )
        return people

    def ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM people")]

    def integrity_check(self) -> str:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
