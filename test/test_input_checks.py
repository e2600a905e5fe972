"""Checks every node applies to its inputs, in humanoid_common: compressed images' sizes read from
their headers (decompression bombs refused before decoding) and message headers (stamps, frame_id)."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from humanoid_common.images import (
    MAX_COMPRESSED_PIXELS,
    ImageFormatError,
    check_compressed,
    compressed_size,
    compressed_to_numpy,
    numpy_to_compressed,
)
from humanoid_common.validation import InvalidMessageError, header_stamp_ns

NOW_NS = 1_700_000_000 * 1_000_000_000


def encoded(fmt: str, width: int = 64, height: int = 48) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    return bytes(numpy_to_compressed(pixels, "bgr8", fmt).data)


def declaring(data: bytes, width: int, height: int) -> bytes:
    """The same file with another size in its header: a few hundred bytes claiming any size."""
    if data.startswith(b"\x89PNG"):
        return data[:16] + struct.pack(">II", width, height) + data[24:]
    sof = next(data.find(m) for m in (b"\xff\xc0", b"\xff\xc2") if data.find(m) > 0)
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_the_size_comes_from_the_header_and_matches_the_decoded_image(fmt):
    data = encoded(fmt, 64, 48)
    assert compressed_size(data) == (fmt, 64, 48)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
    check_compressed(CompressedImage(format=f"bgr8; {fmt} compressed bgr8", data=data))


def test_a_jpeg_frame_header_after_other_segments_and_fill_bytes_is_found():
    data = encoded("jpeg", 40, 30)
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 5000) + bytes(5000)  # e.g. EXIF with a thumbnail
    assert compressed_size(data[:2] + b"\xff\xff" + app1 + data[2:]) == ("jpeg", 40, 30)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        (65535, 65535, "decompression bomb"),
        (8193, 10, "decompression bomb"),
        (4097, 4096, "bomb"),
        (0, 48, "zero"),
    ],
)
def test_a_declared_size_too_large_or_zero_is_refused_before_decoding(fmt, width, height, message):
    bomb = declaring(encoded(fmt), width, height)
    assert len(bomb) < 20_000
    assert compressed_size(bomb) == (fmt, width, height)
    with pytest.raises(ImageFormatError, match=message):
        check_compressed(CompressedImage(format=fmt, data=bomb))


def test_the_largest_allowed_size_passes():
    allowed = declaring(encoded("png"), 4096, MAX_COMPRESSED_PIXELS // 4096)
    check_compressed(CompressedImage(format="png", data=allowed))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "neither JPEG nor PNG"),
        (bytes(cv2.imencode(".bmp", np.zeros((4, 4, 3), np.uint8))[1]), "neither JPEG nor PNG"),
        (b"\xff\xd8\xff\xd9", "no frame header"),
        (b"\xff\xd8\x00\x00\x00\x00", "does not start with 0xFF"),
        (b"\xff\xd8\xff\xe0\x00\x01", "has length 1"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIEND", "without an IHDR"),
    ],
)
def test_data_that_is_not_a_readable_jpeg_or_png_is_refused(data, message):
    with pytest.raises(ImageFormatError, match=message):
        check_compressed(CompressedImage(format="jpeg", data=data))


def test_a_huge_format_string_is_refused():
    with pytest.raises(InvalidMessageError, match="format has 1000000 characters"):
        check_compressed(CompressedImage(format="x" * 1_000_000, data=encoded("png")))


def header(sec: int, nanosec: int = 0, frame_id: str = "head_camera") -> Header:
    stamp = Time()
    stamp.sec, stamp.nanosec = sec, nanosec  # set unchecked, as they arrive from the wire
    return Header(stamp=stamp, frame_id=frame_id)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (header(-1), "negative"),
        (header(0, 1_000_000_000), "not below 1e9"),
        (header(NOW_NS // 1_000_000_000 + 3600), "ahead of this node's clock"),
        (header(0, 0, "f" * 1_000_000), "frame_id has 1000000 characters"),
        (header(0, 0, "head\0camera"), "NUL"),
    ],
)
def test_headers_with_impossible_stamps_or_huge_frame_ids_are_refused(bad, message):
    with pytest.raises(InvalidMessageError, match=message):
        header_stamp_ns(bad, NOW_NS)


def test_zero_and_current_stamps_pass():
    assert header_stamp_ns(header(0), NOW_NS) == 0
    assert header_stamp_ns(header(1_700_000_000, 5), NOW_NS) == NOW_NS + 5


def test_decoding_itself_refuses_a_bomb_before_decoding():
    """compressed_to_numpy checks the header too, so no caller can forget to."""
    bomb = declaring(encoded("png"), 65_535, 65_535)
    with pytest.raises(ImageFormatError, match="decompression bomb"):
        compressed_to_numpy(CompressedImage(format="png", data=bomb))
