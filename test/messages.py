"""Every interface of the package, and messages filled with reproducible random values."""

from __future__ import annotations

import array
import importlib
import random
from pathlib import Path
from typing import Any

from rclpy.qos import DurabilityPolicy, QoSProfile
from rosidl_parser import definition as d

REPO = Path(__file__).resolve().parents[1]
MESSAGE_NAMES = sorted(p.stem for p in (REPO / "msg").glob("*.msg"))
SERVICE_NAMES = sorted(p.stem for p in (REPO / "srv").glob("*.srv"))

# The relay's echoes are kept for late subscribers: it may publish before its writer has matched
# the test's reader (discovery is slow on a loaded machine), and a volatile echo would be lost.
ECHO_QOS = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)

_INTEGER_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_ARRAY_CODES = {"float": "f", "double": "d", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H",
                "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q"}  # fmt: skip


def interface(kind: str, name: str) -> Any:
    """The Python class of humanoid_stack/<kind>/<name> (kind: msg or srv)."""
    return getattr(importlib.import_module(f"humanoid_stack.{kind}"), name)


def _scalar(kind: d.AbstractType, rng: random.Random) -> Any:
    if isinstance(kind, (d.AbstractString, d.AbstractWString)):
        limit = getattr(kind, "maximum_size", None) or 12
        return "".join(rng.choice("abcdXYZ_ ünï") for _ in range(rng.randint(1, limit)))
    if isinstance(kind, d.NamespacedType):
        return populated(getattr(importlib.import_module(".".join(kind.namespaces)), kind.name), rng)
    name = kind.typename
    if name == "boolean":
        return rng.random() < 0.5
    if name in ("float", "double"):
        return rng.randint(-4000, 4000) / 8  # exact in float32 too
    if name == "octet":
        return bytes([rng.randint(0, 255)])
    if name == "char":
        return chr(rng.randint(32, 126))
    if name.startswith("uint"):
        return rng.randint(0, 2 ** int(name[4:]) - 1)
    bits = _INTEGER_BITS[name]
    return rng.randint(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _value(kind: d.AbstractType, rng: random.Random) -> Any:
    if isinstance(kind, d.AbstractNestedType):
        longest = getattr(kind, "maximum_size", 0) or 4
        size = kind.size if isinstance(kind, d.Array) else rng.randint(1, longest)
        items = [_scalar(kind.value_type, rng) for _ in range(size)]
        code = getattr(kind.value_type, "typename", None)
        if code in _ARRAY_CODES and not isinstance(kind, d.Array):
            return array.array(_ARRAY_CODES[code], items)
        if code == "octet":
            return [bytes(item) for item in items]
        return items
    return _scalar(kind, rng)


def populated(msg_class: Any, rng: random.Random) -> Any:
    """An instance with every field (nested ones too) set to a random non-default value."""
    msg = msg_class()
    for field, kind in zip(msg_class.get_fields_and_field_types(), msg_class.SLOT_TYPES, strict=True):
        setattr(msg, field, _value(kind, rng))
    return msg
