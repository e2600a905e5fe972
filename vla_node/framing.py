"""The LeRobot worker's wire format (plain Python; also imported inside .venv-lerobot).

One frame: 4-byte big-endian length of a UTF-8 JSON header, the header, then the raw bytes of each
array the header lists under "arrays" ({"name", "dtype", "shape"}), C order, concatenated. Only plain
numeric dtypes are accepted: no pickle, nothing that executes on load.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

import numpy as np

MAX_HEADER_BYTES = 1 << 20
MAX_ARRAY_BYTES = 1 << 28
DTYPES = frozenset({"uint8", "int32", "int64", "float16", "float32", "float64", "bool"})


class ProtocolError(RuntimeError):
    """The peer sent something that is not a valid frame, or closed the stream."""


def write_frame(
    stream: BinaryIO, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
) -> None:
    arrays = {name: np.ascontiguousarray(a) for name, a in (arrays or {}).items()}
    for name, a in arrays.items():
        if a.dtype.name not in DTYPES:
            raise ProtocolError(f"array {name!r}: dtype {a.dtype} is not sendable (one of {sorted(DTYPES)})")
    header = {
        **header,
        "arrays": [{"name": n, "dtype": a.dtype.name, "shape": list(a.shape)} for n, a in arrays.items()],
    }
    encoded = json.dumps(header).encode()
    stream.write(struct.pack(">I", len(encoded)) + encoded)
    for a in arrays.values():
        stream.write(memoryview(a).cast("B"))
    stream.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = stream.read(size - len(data))
        if not part:
            raise ProtocolError(f"stream closed after {len(data)} of {size} bytes")
        data += part
    return bytes(data)


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    (size,) = struct.unpack(">I", _read_exactly(stream, 4))
    if size > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {size} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(_read_exactly(stream, size))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"header is not JSON: {error}") from error
    if not isinstance(header, dict):
        raise ProtocolError("header must be a JSON object")
    arrays = {}
    for spec in header.pop("arrays", []):
        try:
            name, dtype, shape = (
                str(spec["name"]),
                np.dtype(spec["dtype"]),
                tuple(int(d) for d in spec["shape"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ProtocolError(f"bad array spec {spec!r}: {error}") from error
        if dtype.name not in DTYPES or any(d < 0 for d in shape):
            raise ProtocolError(f"array {name!r}: unsupported dtype {dtype} or shape {shape}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES:
            raise ProtocolError(f"array {name!r} of {nbytes} bytes exceeds {MAX_ARRAY_BYTES}")
        arrays[name] = np.frombuffer(_read_exactly(stream, nbytes), dtype=dtype).reshape(shape)
    return header, arrays
