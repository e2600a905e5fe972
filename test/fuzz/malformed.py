"""Malformed messages: one generator per message type, each mutating a fresh valid message.

`malformed(valid, rng)` returns `(kind, message)`: the message is either a typed message with
impossible or hostile content, or raw bytes (`bytes`, published with `publisher.publish(bytes)`) that
are CDR garbage for that type. Every type also gets the mutations of every message: raw garbage,
truncated or corrupted serialisations, huge declared lengths and, where there is a header, extreme
stamps and a 1 MB frame_id. Deterministic for a given `random.Random`.
"""

from __future__ import annotations

import functools
import math
import random
import struct
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Empty, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from humanoid_stack.msg import Detection, DetectionArray, Keypoint2D, MemoryEvent, Person, PersonArray

MEGABYTE_TEXT = 1_000_000
NON_FINITE = (math.nan, math.inf, -math.inf)
HUGE_FINITE = (1e308, -1e308, 3.4e38)
HUGE_DIMENSIONS = (65_535, 2**31 - 1, 2**32 - 1)
#: Strings that must not reach a log, a file name or a comparison unchecked.
HOSTILE_TEXTS = (
    "",
    " \t\n",
    "a\0b",
    "\u202eevil",
    "Al\u200bice",
    "\x1b[31mred",
    "%s%n{}",
    "../../etc/passwd",
)

Message = Any
Mutation = Callable[[Message, random.Random], tuple[str, Any]]


def megabyte_text(rng: random.Random) -> str:
    return rng.choice("abxyz") * MEGABYTE_TEXT


# ------------------------------------------------------------------ any message: raw CDR and headers


def _cdr_garbage(msg: Message, rng: random.Random) -> tuple[str, bytes]:
    header = rng.choice((b"\x00\x01\x00\x00", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b""))
    return "raw CDR garbage", header + rng.randbytes(rng.randint(0, 2048))


def _cdr_truncated(msg: Message, rng: random.Random) -> tuple[str, bytes]:
    data = serialize_message(msg)
    return "truncated CDR", data[: rng.randint(0, max(0, len(data) - 1))]


def _cdr_corrupted(msg: Message, rng: random.Random) -> tuple[str, bytes]:
    data = bytearray(serialize_message(msg))
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return "corrupted CDR", bytes(data)


def _cdr_huge_length(msg: Message, rng: random.Random) -> tuple[str, bytes]:
    """A 4-byte word of the serialisation (lengths are such words) set to a huge value."""
    data = bytearray(serialize_message(msg))
    words = (len(data) - 4) // 4
    if words < 1:
        return _cdr_garbage(msg, rng)
    offset = 4 + 4 * rng.randrange(words)
    data[offset : offset + 4] = struct.pack("<I", rng.choice((0x7FFFFFF0, 0xFFFFFFFF, 0x10000000)))
    return "huge declared length (CDR)", bytes(data)


def _stamp(msg: Message, rng: random.Random) -> tuple[str, Message]:
    stamp = msg.header.stamp
    kind = rng.choice(("negative stamp", "stamp nanosec >= 1e9", "far-future stamp"))
    if kind == "negative stamp":
        stamp.sec = rng.choice((-1, -(2**31)))
    elif kind == "stamp nanosec >= 1e9":
        stamp.nanosec = rng.choice((1_000_000_000, 2**32 - 1))
    else:
        stamp.sec = rng.choice((2**31 - 1, stamp.sec + 3600))
    return kind, msg


def _frame_id(msg: Message, rng: random.Random) -> tuple[str, Message]:
    msg.header.frame_id = megabyte_text(rng)
    return "1 MB frame_id", msg


GENERIC: tuple[Mutation, ...] = (_cdr_garbage, _cdr_truncated, _cdr_corrupted, _cdr_huge_length)
HEADER: tuple[Mutation, ...] = (_stamp, _stamp, _frame_id)


# ------------------------------------------------------------------------------------- Image


def _image_encoding(msg: Image, rng: random.Random) -> tuple[str, Image]:
    msg.encoding = rng.choice(("yuv422", "bayer_rggb8", "", "BGR8", "rgb16", "64FC1", "\u00fc" * 8, "8UC2"))
    return "unknown encoding", msg


def _image_huge_encoding(msg: Image, rng: random.Random) -> tuple[str, Image]:
    msg.encoding = megabyte_text(rng)
    return "1 MB encoding", msg


def _image_mismatch(msg: Image, rng: random.Random) -> tuple[str, Image]:
    data = bytes(msg.data)
    kind = rng.choice(("step too small", "data too short", "data too long", "step not a row multiple"))
    if kind == "step too small":
        msg.step = max(0, msg.step - rng.randint(1, 3))
    elif kind == "data too short":
        msg.data = data[: rng.randrange(len(data))]
    elif kind == "data too long":
        msg.data = data + bytes(rng.randint(1, 4096))
    else:
        msg.step += rng.randint(1, 7)
    return f"step/size/data mismatch ({kind})", msg


def _image_zero(msg: Image, rng: random.Random) -> tuple[str, Image]:
    msg.width, msg.height = rng.choice(((0, 0), (0, msg.height), (msg.width, 0)))
    msg.step = msg.step if msg.width else 0
    msg.data = b"" if rng.random() < 0.5 else msg.data
    return "0x0 size", msg


def _image_huge(msg: Image, rng: random.Random) -> tuple[str, Image]:
    msg.width, msg.height = rng.choice(HUGE_DIMENSIONS), rng.choice((1, 2, *HUGE_DIMENSIONS))
    msg.step = rng.choice((msg.width * 3 % 2**32, 2**32 - 1, 3))
    return "huge declared size", msg


def _image_deep(msg: Image, rng: random.Random) -> tuple[str, Image]:
    encoding = rng.choice(("mono16", "16UC1", "32FC1"))
    h, w = msg.height, msg.width
    if encoding == "32FC1":
        pixels = np.full((h, w), rng.choice((*NON_FINITE, 1.5)), np.float32)
    else:
        pixels = np.full((h, w), rng.randrange(65536), np.uint16)
    msg.encoding, msg.step, msg.is_bigendian = encoding, w * pixels.itemsize, 0
    msg.data = pixels.tobytes()
    return "16-bit/float encoding", msg


def _image_endianness(msg: Image, rng: random.Random) -> tuple[str, Image]:
    msg.is_bigendian = rng.randint(2, 255)
    return "is_bigendian not 0/1", msg


IMAGE: tuple[Mutation, ...] = (
    _image_encoding, _image_huge_encoding, _image_mismatch, _image_mismatch, _image_zero, _image_huge,
    _image_deep, _image_endianness,
)  # fmt: skip


# --------------------------------------------------------------------------- CompressedImage


@functools.cache
def _tiny(fmt: str) -> bytes:
    return bytes(cv2.imencode(f".{fmt}", np.zeros((8, 8, 3), np.uint8))[1])


def _declaring(data: bytes, width: int, height: int) -> bytes:
    """The same tiny file with another size in its header (PNG IHDR, JPEG SOF0)."""
    if data.startswith(b"\x89PNG"):
        return data[:16] + struct.pack(">II", width, height) + data[24:]
    sof = data.find(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def _compressed_bomb(msg: CompressedImage, rng: random.Random) -> tuple[str, CompressedImage]:
    fmt = rng.choice(("png", "jpg"))
    side = rng.choice((65_535, 50_000, 8193)) if fmt == "jpg" else rng.choice(HUGE_DIMENSIONS)
    msg.data = _declaring(_tiny(fmt), side, rng.choice((side, 1, 4097)))
    return "decompression bomb (small file, huge declared size)", msg


def _compressed_broken(msg: CompressedImage, rng: random.Random) -> tuple[str, CompressedImage]:
    data = bytes(msg.data)
    kind = rng.choice(("empty", "truncated", "random bytes", "corrupt body", "bmp", "zero size"))
    if kind == "empty":
        msg.data = b""
    elif kind == "truncated":
        msg.data = data[: rng.randrange(len(data))]
    elif kind == "random bytes":
        msg.data = rng.randbytes(rng.randint(1, 4096))
    elif kind == "corrupt body":
        msg.data = data[:300] + rng.randbytes(len(data) - 300)
    elif kind == "bmp":
        msg.data = bytes(cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))[1])
    else:
        msg.data = _declaring(_tiny(rng.choice(("png", "jpg"))), 0, 0)
    return f"broken compressed data ({kind})", msg


def _compressed_format(msg: CompressedImage, rng: random.Random) -> tuple[str, CompressedImage]:
    msg.format = megabyte_text(rng) if rng.random() < 0.5 else rng.choice(HOSTILE_TEXTS)
    return "hostile format string", msg


COMPRESSED: tuple[Mutation, ...] = (
    _compressed_bomb,
    _compressed_bomb,
    _compressed_broken,
    _compressed_format,
)


# -------------------------------------------------------------------------------- CameraInfo


def _info_k(msg: CameraInfo, rng: random.Random) -> tuple[str, CameraInfo]:
    k = list(msg.k)
    index = rng.choice((0, 2, 4, 5))  # fx, cx, fy, cy: what a consumer reads
    kind = rng.choice(("NaN/inf", "zero/negative", "huge/tiny"))
    if kind == "NaN/inf":
        k[index] = rng.choice(NON_FINITE)
    elif kind == "zero/negative":
        k[index] = rng.choice((0.0, -1.0, -500.0))
    else:
        k[index] = rng.choice((*HUGE_FINITE, 1e-300, 5e-324))
    msg.k = k
    return f"intrinsics {kind}", msg


def _info_other(msg: CameraInfo, rng: random.Random) -> tuple[str, CameraInfo]:
    kind = rng.choice(("huge size", "NaN distortion", "long distortion", "1 MB distortion_model", "NaN P"))
    if kind == "huge size":
        msg.width, msg.height = rng.choice(HUGE_DIMENSIONS), rng.choice(HUGE_DIMENSIONS)
    elif kind == "NaN distortion":
        msg.d = [rng.choice(NON_FINITE)] * 5
    elif kind == "long distortion":
        msg.d = np.full(100_000, math.nan).tolist()
    elif kind == "1 MB distortion_model":
        msg.distortion_model = megabyte_text(rng)
    else:
        msg.p = [rng.choice(NON_FINITE)] * 12
    return f"camera_info {kind}", msg


CAMERA_INFO: tuple[Mutation, ...] = (_info_k, _info_k, _info_k, _info_other)


# -------------------------------------------------------------------------------- JointState


def _joints_values(msg: JointState, rng: random.Random) -> tuple[str, JointState]:
    field = rng.choice(("position", "position", "velocity", "effort"))
    values = list(getattr(msg, field)) or [0.0] * len(msg.name)
    kind = rng.choice(("NaN/inf", "huge"))
    values[rng.randrange(len(values))] = rng.choice(NON_FINITE if kind == "NaN/inf" else HUGE_FINITE)
    setattr(msg, field, values)
    return f"{kind} {field}", msg


def _joints_names(msg: JointState, rng: random.Random) -> tuple[str, JointState]:
    names = list(msg.name)
    kind = rng.choice(("wrong-length names", "duplicate names", "unknown names", "1 MB name", "10k joints"))
    if kind == "wrong-length names":
        msg.name = names[:-1] if rng.random() < 0.5 else [*names, "extra_joint"]
    elif kind == "duplicate names":
        msg.name = [names[0]] * len(names)
    elif kind == "unknown names":
        msg.name = [f"joint_{i}" for i in range(len(names))]
    elif kind == "1 MB name":
        msg.name = [megabyte_text(rng), *names[1:]]
    else:
        msg.name = [f"j{i}" for i in range(10_000)]
        msg.position = [0.0] * 10_000
    return kind, msg


def _joints_empty(msg: JointState, rng: random.Random) -> tuple[str, JointState]:
    return "empty joint state", JointState(header=msg.header)


JOINT_STATE: tuple[Mutation, ...] = (
    _joints_values,
    _joints_values,
    _joints_names,
    _joints_names,
    _joints_empty,
)


# --------------------------------------------------------------------------- JointTrajectory


def _trajectory_values(msg: JointTrajectory, rng: random.Random) -> tuple[str, JointTrajectory]:
    point = msg.points[0]
    positions = list(point.positions)
    kind = rng.choice(("NaN/inf positions", "huge positions", "wrong-length positions", "NaN velocities"))
    if kind == "NaN/inf positions":
        positions[rng.randrange(len(positions))] = rng.choice(NON_FINITE)
    elif kind == "huge positions":
        positions = [rng.choice(HUGE_FINITE)] * len(positions)
    elif kind == "wrong-length positions":
        positions = positions[:-1] if rng.random() < 0.5 else [*positions, 0.0]
    else:
        point.velocities = [math.nan] * len(positions)
    point.positions = positions
    return kind, msg


def _trajectory_names(msg: JointTrajectory, rng: random.Random) -> tuple[str, JointTrajectory]:
    names = list(msg.joint_names)
    kind = rng.choice(
        ("duplicate joint names", "unknown joint names", "1 MB joint name", "wrong-length names")
    )
    if kind == "duplicate joint names":
        msg.joint_names = [names[0]] * len(names)
    elif kind == "unknown joint names":
        msg.joint_names = [f"joint_{i}" for i in range(len(names))]
    elif kind == "1 MB joint name":
        msg.joint_names = [megabyte_text(rng), *names[1:]]
    else:
        msg.joint_names = [*names, "wrist_joint"]
    return kind, msg


def _trajectory_points(msg: JointTrajectory, rng: random.Random) -> tuple[str, JointTrajectory]:
    kind = rng.choice(
        ("no points", "10k points", "negative time_from_start", "time_from_start nanosec >= 1e9")
    )
    point = msg.points[0]
    if kind == "no points":
        msg.points = []
    elif kind == "10k points":
        msg.points = [point] * 10_000
    elif kind == "negative time_from_start":
        point.time_from_start = Duration(sec=-rng.randint(1, 2**31))
    else:
        point.time_from_start = Duration(sec=0, nanosec=rng.choice((1_000_000_000, 2**32 - 1)))
    return kind, msg


TRAJECTORY: tuple[Mutation, ...] = (
    _trajectory_values,
    _trajectory_values,
    _trajectory_names,
    _trajectory_points,
)


# ------------------------------------------------------------------------------------ String


def _string(msg: String, rng: random.Random) -> tuple[str, Any]:
    kind = rng.choice(("1 MB string", "hostile characters", "invalid UTF-8"))
    if kind == "1 MB string":
        msg.data = megabyte_text(rng)
    elif kind == "hostile characters":
        msg.data = rng.choice(HOSTILE_TEXTS) + msg.data
    else:  # Python strings cannot hold invalid UTF-8: patch the serialisation
        data = serialize_message(String(data="\x01" * 16))
        return kind, data.replace(b"\x01" * 16, rng.randbytes(8) + b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28")
    return kind, msg


STRING: tuple[Mutation, ...] = (_string,)


# ------------------------------------------------------------------------------- Diagnostics


def _diagnostic_values(msg: DiagnosticArray, rng: random.Random) -> tuple[str, DiagnosticArray]:
    status = msg.status[0]
    counters = [kv for kv in status.values if kv.key.startswith("deadline_misses.")] or status.values
    kind = rng.choice(
        ("inf/nan", "spoofed huge count", "negative count", "1 MB value", "not a number", "jump")
    )
    target = rng.choice(counters)
    if kind == "inf/nan":
        target.value = rng.choice(("inf", "-inf", "nan", "1e400", "Infinity"))
    elif kind == "spoofed huge count":
        target.value = rng.choice(("1e26", str(2**80), "9" * 400))
    elif kind == "negative count":
        target.value = rng.choice(("-1", "-1e9"))
    elif kind == "1 MB value":
        target.value = "1" * MEGABYTE_TEXT
    elif kind == "not a number":
        target.value = rng.choice((*HOSTILE_TEXTS[1:], "lots", "0x10", "1_000"))
    else:  # a count far beyond what a 100 Hz loop can miss since the last report
        target.value = str(int(float(target.value)) + rng.choice((10_000, 1_000_000)))
    return f"deadline count: {kind}", msg


def _diagnostic_shape(msg: DiagnosticArray, rng: random.Random) -> tuple[str, DiagnosticArray]:
    status = msg.status[0]
    kind = rng.choice(("10k statuses", "10k values", "1 MB status name", "duplicate keys"))
    if kind == "10k statuses":
        msg.status = [status] * 10_000
    elif kind == "10k values":
        status.values = [KeyValue(key=f"deadline_misses.k{i}", value="0") for i in range(10_000)]
    elif kind == "1 MB status name":
        msg.status.append(DiagnosticStatus(name=megabyte_text(rng), message=megabyte_text(rng)))
    else:
        status.values = [*status.values, *(KeyValue(key=kv.key, value="1e26") for kv in status.values)]
    return kind, msg


DIAGNOSTICS: tuple[Mutation, ...] = (_diagnostic_values, _diagnostic_values, _diagnostic_shape)


# ---------------------------------------------------------------------------- DetectionArray


def _detections(msg: DetectionArray, rng: random.Random) -> tuple[str, DetectionArray]:
    kind = rng.choice(
        ("NaN/inf box", "negative size", "20k detections", "1 MB class name", "NaN keypoints", "huge values")
    )
    det = msg.detections[0] if msg.detections else Detection(class_name="person", size_x=10.0, size_y=10.0)
    if kind == "NaN/inf box":
        setattr(det, rng.choice(("center_x", "center_y", "size_x", "size_y")), rng.choice(NON_FINITE))
    elif kind == "negative size":
        det.size_x, det.size_y = -rng.uniform(1, 1e6), -1.0
    elif kind == "20k detections":
        msg.detections = [det] * 20_000
        return kind, msg
    elif kind == "1 MB class name":
        det.class_name = megabyte_text(rng)
    elif kind == "NaN keypoints":
        det.keypoints = [Keypoint2D(x=math.nan, y=math.inf, score=math.nan)] * 17
    else:
        det.center_x, det.track_id, det.score = 1e308, rng.choice((2**63 - 1, -(2**63))), math.inf
        msg.image_width = msg.image_height = 2**32 - 1
    msg.detections = [det, *msg.detections[1:]]
    return kind, msg


DETECTIONS: tuple[Mutation, ...] = (_detections,)


# ---------------------------------------------------------------------- PersonArray, MemoryEvent


def _people(msg: PersonArray, rng: random.Random) -> tuple[str, PersonArray]:
    kind = rng.choice(("5000 people", "1 MB name", "hostile name", "NaN position"))
    person = msg.people[0] if msg.people else Person(band=Person.BAND_KNOWN, display_name="Alice")
    if kind == "5000 people":
        msg.people = [person] * 5000
        return kind, msg
    if kind == "1 MB name":
        person.display_name = megabyte_text(rng)
    elif kind == "hostile name":
        person.display_name = rng.choice(HOSTILE_TEXTS) + person.display_name
    else:
        person.center_x, person.similarity = math.nan, math.inf
    msg.people = [person, *msg.people[1:]]
    return kind, msg


def _event(msg: MemoryEvent, rng: random.Random) -> tuple[str, MemoryEvent]:
    kind = rng.choice(("unknown type", "1 MB name", "hostile name"))
    if kind == "unknown type":
        msg.type = rng.choice((5, 99, 255))
    elif kind == "1 MB name":
        msg.display_name = megabyte_text(rng)
    else:
        msg.display_name = rng.choice(HOSTILE_TEXTS) + msg.display_name
    return kind, msg


PEOPLE: tuple[Mutation, ...] = (_people,)
EVENTS: tuple[Mutation, ...] = (_event,)


BY_TYPE: dict[type, tuple[Mutation, ...]] = {
    Image: IMAGE,
    CompressedImage: COMPRESSED,
    CameraInfo: CAMERA_INFO,
    JointState: JOINT_STATE,
    JointTrajectory: TRAJECTORY,
    String: STRING,
    DiagnosticArray: DIAGNOSTICS,
    DetectionArray: DETECTIONS,
    PersonArray: PEOPLE,
    MemoryEvent: EVENTS,
    Empty: (),
}


def refusable(msg_type: type) -> bool:
    """Whether some message of this type that arrives can be wrong (every std_msgs/Empty is valid)."""
    return bool(BY_TYPE[msg_type])


def malformed(valid: Message, rng: random.Random) -> tuple[str, Any]:
    """A malformed variant of `valid` (which it may modify): about a quarter raw CDR, a sixth header
    attacks where the type has a header, the rest content attacks of its type."""
    specific = BY_TYPE[type(valid)]
    roll = rng.random()
    if roll < 0.25 or not specific:
        return rng.choice(GENERIC)(valid, rng)
    if roll < 0.4 and hasattr(valid, "header"):
        return rng.choice(HEADER)(valid, rng)
    return rng.choice(specific)(valid, rng)


def trajectory(names: list[str], positions: list[float]) -> JointTrajectory:
    """A one-point command (the VLA node's form): start now."""
    return JointTrajectory(
        joint_names=names, points=[JointTrajectoryPoint(positions=positions, time_from_start=Duration())]
    )
