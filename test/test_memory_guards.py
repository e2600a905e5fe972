"""Guards of the face memory that hold without DDS security (issue 10), on the core (no ROS graph).

Names (normalised, invisible and bidi characters refused, look-alikes are one name), who may feed
whose memory (ConfirmIdentity only for a track voted at least TENTATIVE, only samples at least
TENTATIVE), bounded requests (rate limits, pixels, allowed folders) and checked topic inputs.
"""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from memory_helpers import identity, open_memory, sample

from humanoid_common.assets import asset_path
from humanoid_common.validation import InvalidMessageError
from humanoid_stack.msg import Detection, DetectionArray
from memory_node.bands import Band
from memory_node.errors import MemoryRequestError
from memory_node.inputs import MAX_DETECTIONS, person_boxes
from memory_node.memory import FaceObservation
from memory_node.names import normalise_name, same_name
from memory_node.recent import TrackSample
from memory_node.requests import ImageFiles, RateLimit, check_pixels


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(21)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Alice \u00a0 Smith ", "Alice Smith"),
        ("\uff21\uff4c\uff49\uff43\uff45", "Alice"),
        ("Zoe\u0308", "Zoë"),
    ],
)
def test_names_are_nfkc_with_single_spaces(text, expected):
    assert normalise_name(text, 64) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Ali\0ce", r"U\+0000 \(a control character\)"),
        ("Al\u200bice", r"U\+200B \(ZERO WIDTH SPACE\)"),
        ("\u202eecilA", r"U\+202E \(RIGHT-TO-LEFT OVERRIDE\)"),
        ("Al\u2066ice", r"U\+2066 \(LEFT-TO-RIGHT ISOLATE\)"),
        ("Bob\n", r"U\+000A"),
        ("Al\u3164ice", r"U\+1160 \(HANGUL JUNGSEONG FILLER\)"),  # NFKC of the Hangul filler
        ("   ", "empty or only white space"),
        ("", "empty or only white space"),
        ("A" * 65, "65 characters; at most 64"),
        ("A" * 10_000, "10000 characters; at most 64"),
    ],
)
def test_names_with_invisible_or_control_characters_are_refused(text, reason):
    with pytest.raises(MemoryRequestError, match=reason):
        normalise_name(text, 64)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Alice", "\u0410lice", True),  # Cyrillic capital A
        ("Alice", "\u0430lice", True),  # Cyrillic small a, case folded
        ("Alice", "ALICE", True),
        ("Alice", "\uff21\uff4c\uff49\uff43\uff45", True),
        ("Bob", "B\u043eb", True),  # Cyrillic o
        ("Alice", "Alicia", False),
        ("Chloé", "Chloe", False),
        ("Alice", "Alice Smith", False),
    ],
)
def test_look_alike_names_are_one_name(a, b, same):
    assert same_name(normalise_name(a, 64), normalise_name(b, 64)) is same


def test_a_look_alike_name_is_the_same_person_never_a_twin(tmp_path, rng):
    memory = open_memory(tmp_path)
    alice, stranger = identity(rng), identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(3)], now=0.0)
    again, added = memory.enroll("\u0410lice", True, [sample(alice, rng)], now=1.0)  # Cyrillic А
    assert (again, added) == (pid, 1)
    assert memory.enroll("ALICE", True, [sample(alice, rng)], now=2.0)[0] == pid
    with pytest.raises(MemoryRequestError, match="none of these 2 faces is recognised as them"):
        memory.enroll("\u0410lice", True, [sample(stranger, rng) for _ in range(2)], now=3.0)
    with pytest.raises(MemoryRequestError, match="ZERO WIDTH SPACE"):
        memory.enroll("Al\u200bice", True, [sample(stranger, rng)], now=4.0)
    with pytest.raises(MemoryRequestError, match="U\\+0000"):
        memory.enroll("Ali\0ce", True, [sample(stranger, rng)], now=5.0)
    assert [p.name for p in memory.people.values()] == ["Alice"]
    assert len(memory.people[pid].samples) == 5  # 3 + 1 + 1: nothing of the stranger
    assert memory.resolve("", "alice") == pid
    memory.close()


def test_a_known_face_is_never_enrolled_under_a_second_name(tmp_path, rng):
    memory = open_memory(tmp_path)
    alice, bob = identity(rng), identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(3)], now=0.0)
    with pytest.raises(MemoryRequestError, match=r"these faces are 'Alice'.s"):
        memory.enroll("Carol", True, [sample(bob, rng), sample(alice, rng)], now=1.0)
    assert [p.name for p in memory.people.values()] == ["Alice"]
    bob_id, added = memory.enroll("Bob", True, [sample(bob, rng) for _ in range(2)], now=2.0)
    assert added == 2
    assert sorted(p.name for p in memory.people.values()) == ["Alice", "Bob"]
    assert bob_id != pid
    memory.close()


def test_a_look_alike_name_of_an_archived_person_brings_them_back(tmp_path, rng):
    memory = open_memory(tmp_path, consolidation={"archive_after_s": 100.0})
    alice = identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng)], now=0.0)
    assert memory.consolidate(now=500.0)["archived"] == 1
    assert memory.enroll("alice", True, [sample(alice, rng)], now=600.0) == (pid, 1)
    assert pid in memory.people
    assert not memory.archive.ids()
    memory.close()


# --- who may feed whose memory ------------------------------------------------------------------


def test_a_strangers_track_confirmed_as_alice_adds_nothing(tmp_path, rng):
    memory = open_memory(tmp_path)
    alice, stranger = identity(rng), identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(3)], now=0.0)
    for t in range(20):  # the stranger stays in view: 20 good samples on track 7
        memory.refine([([FaceObservation(7, sample(stranger, rng))], 1.0 + 0.1 * t)])
    assert memory.recent.get(7).identity.person_id != pid
    with pytest.raises(MemoryRequestError, match="track 7 is not at least TENTATIVE for Alice"):
        memory.confirm(7, pid, confirmed=True, now=5.0)
    assert len(memory.people[pid].samples) == 3
    with pytest.raises(MemoryRequestError, match=r"none of these .* faces is recognised as them"):
        memory.enroll_track(7, "Alice", True, now=6.0)  # nor through an Enroll under her name
    assert len(memory.people[pid].samples) == 3
    memory.close()


def test_a_track_known_as_alice_only_adds_faces_that_look_like_her(tmp_path, rng):
    memory = open_memory(tmp_path, events={"left_after_s": 1.0})
    alice, stranger = identity(rng), identity(rng)
    pid, _ = memory.enroll("Alice", True, [sample(alice, rng) for _ in range(3)], now=0.0)
    for t in range(6):
        memory.refine([([FaceObservation(3, sample(alice, rng))], 1.0 + 0.1 * t)])
    assert memory.recent.get(3).identity.band == Band.KNOWN
    known_frames = sum(s.known_for == pid for s in memory.recent.get(3).samples)
    memory.recent.get(3).samples.append(TrackSample(2.0, sample(stranger, rng)))  # a tracker's id swap
    memory.tick(now=10.0)  # the track left: its KNOWN frames join Alice's learned samples, not the stranger
    assert len(memory.people[pid].learned) == known_frames >= 3
    assert len(memory.people[pid].samples) == 3
    memory.close()


# --- bounded requests ---------------------------------------------------------------------------


def test_rate_limit_allows_a_burst_then_one_per_interval():
    now = [0.0]
    limit = RateLimit("Forget", burst=3, interval_s=20.0, clock=lambda: now[0])
    for _ in range(3):
        limit.take()
    with pytest.raises(
        MemoryRequestError, match=r"too many Forget requests: 3 in a row.*try again in 20\.0 s"
    ):
        limit.take()
    now[0] = 19.0
    with pytest.raises(MemoryRequestError, match=r"try again in 1\.0 s"):
        limit.take()
    now[0] = 20.0
    limit.take()
    assert limit.refused == 2
    for minute in range(1, 20):  # legitimate single calls, spaced out, never fail
        now[0] = 100.0 * minute
        limit.take()
    RateLimit("Enroll", 1, 0.0).take()  # 0: no limit
    for _ in range(100):
        RateLimit("Enroll", 1, 0.0).take()


def test_pixels_are_checked_from_the_declared_size():
    check_pixels(4000, 4000, 16_000_000, "images[0]")
    with pytest.raises(MemoryRequestError, match=r"images\[1\] has 8192x8192 = 67108864 pixels"):
        check_pixels(8192, 8192, 16_000_000, "images[1]")
    with pytest.raises(MemoryRequestError, match="is empty"):
        check_pixels(0, 10, 16_000_000, "images[2]")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG of about 70 bytes whose header declares width x height (its pixel data is a stub)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    stub = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stub) + _chunk(b"IEND", b"")


def test_image_files_only_from_allowed_folders(tmp_path):
    allowed, outside = tmp_path / "photos", tmp_path / "elsewhere"
    allowed.mkdir()
    outside.mkdir()
    photo = allowed / "alice.jpg"
    photo.write_bytes(asset_path("face_obama.jpg").read_bytes())
    secret = outside / "secret.jpg"
    secret.write_bytes(photo.read_bytes())
    (allowed / "link.jpg").symlink_to(secret)
    with pytest.raises(MemoryRequestError, match=r"no folder is allowed.*memory\.requests\.image_dirs"):
        ImageFiles([], 16_000_000).read(str(photo))
    files = ImageFiles([str(allowed)], 16_000_000)
    assert files.read(str(photo)).shape == cv2.imread(str(photo)).shape
    for refused in (secret, allowed / "link.jpg", allowed / ".." / "elsewhere" / "secret.jpg"):
        with pytest.raises(MemoryRequestError, match="outside the allowed folders"):
            files.read(str(refused))
    with pytest.raises(MemoryRequestError, match="does not exist"):
        files.read(str(allowed / "nobody.jpg"))
    os.mkfifo(allowed / "pipe.jpg")  # would block a reader that opened it
    with pytest.raises(MemoryRequestError, match="not a regular file"):
        files.read(str(allowed / "pipe.jpg"))
    (allowed / "notes.jpg").write_text("not a picture")
    with pytest.raises(MemoryRequestError, match="not a picture in a known format"):
        files.read(str(allowed / "notes.jpg"))


def test_an_image_file_too_large_is_refused_from_its_header(tmp_path):
    files = ImageFiles([str(tmp_path)], 16_000_000)
    (tmp_path / "big.png").write_bytes(_png_declaring(5000, 4000))
    with pytest.raises(MemoryRequestError, match=r"5000x4000 = 20000000 pixels, more than the 16000000"):
        files.read(str(tmp_path / "big.png"))
    (tmp_path / "bomb.png").write_bytes(_png_declaring(60_000, 60_000))
    with pytest.raises(MemoryRequestError, match="declares too many pixels"):
        files.read(str(tmp_path / "bomb.png"))


# --- topic inputs -------------------------------------------------------------------------------


def _detections(*boxes: tuple[str, float, float, float, float]) -> DetectionArray:
    msg = DetectionArray()
    msg.detections = [
        Detection(class_name=name, center_x=cx, center_y=cy, size_x=sx, size_y=sy, track_id=i)
        for i, (name, cx, cy, sx, sy) in enumerate(boxes)
    ]
    return msg


def test_detections_are_checked_before_use():
    boxes = person_boxes(_detections(("person", 100.0, 200.0, 50.0, 80.0), ("cup", 10.0, 10.0, 4.0, 4.0)))
    assert [(b.track_id, b.box) for b in boxes] == [(0, (75.0, 160.0, 125.0, 240.0))]
    bad = {
        "center_x is nan": _detections(("person", float("nan"), 1.0, 1.0, 1.0)),
        "size_y is inf": _detections(("person", 1.0, 1.0, 1.0, float("inf"))),
        "size_x is -5.0": _detections(("person", 1.0, 1.0, -5.0, 1.0)),
        r"center_y is 1e\+30": _detections(("person", 1.0, 1e30, 1.0, 1.0)),
        "class_name has 1000000 characters": _detections(("p" * 1_000_000, 1.0, 1.0, 1.0, 1.0)),
        f"more than {MAX_DETECTIONS}": _detections(*[("person", 1.0, 1.0, 1.0, 1.0)] * (MAX_DETECTIONS + 1)),
    }
    for reason, msg in bad.items():
        with pytest.raises(InvalidMessageError, match=reason):
            person_boxes(msg)
