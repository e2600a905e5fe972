"""perception_node's input checks (plain Python): compressed sizes read from the header, decompression
bombs, camera_info that could not place a marker, headers copied into the outputs."""

from __future__ import annotations

import math
import struct

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, CompressedImage
from std_msgs.msg import Header

from humanoid_common.images import ImageFormatError, numpy_to_compressed
from humanoid_common.validation import InvalidMessageError
from perception_node.inputs import (
    MAX_COMPRESSED_PIXELS,
    check_camera_info,
    check_compressed,
    compressed_size,
    header_stamp_ns,
)
from perception_node.markers import Intrinsics, camera_intrinsics

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


def info(k: list[float], width: int = 640, height: int = 480) -> CameraInfo:
    return CameraInfo(width=width, height=height, k=k)


@pytest.mark.parametrize(
    ("k", "message"),
    [
        ([math.nan, 0, 320, 0, 500, 240, 0, 0, 1], r"k\[0\] is nan"),
        ([500, 0, math.inf, 0, 500, 240, 0, 0, 1], r"k\[2\] is inf"),
        ([-500, 0, 320, 0, 500, 240, 0, 0, 1], r"fx\) is -500"),
        ([500, 0, 320, 0, 1e-300, 240, 0, 0, 1], r"fy\) is 1e-300"),
        ([1e308, 0, 320, 0, 500, 240, 0, 0, 1], r"fx\) is 1e\+308"),
        ([500, 0, 320, 0, 500, -1e12, 0, 0, 1], r"cy\) is -1000000000000.0"),
    ],
)
def test_camera_info_that_could_not_place_a_marker_is_refused(k, message):
    with pytest.raises(InvalidMessageError, match=message):
        check_camera_info(info(k))


def test_camera_info_of_an_uncalibrated_or_real_camera_passes():
    check_camera_info(info([0.0] * 9))
    check_camera_info(info([500, 0, 320, 0, 500, 240, 0, 0, 1]))
    with pytest.raises(InvalidMessageError, match="width is 100000"):
        check_camera_info(info([500, 0, 320, 0, 500, 240, 0, 0, 1], width=100_000))


def test_intrinsics_never_take_nan_even_unchecked():
    nan_k = info([math.nan, 0, 320, 0, math.nan, 240, 0, 0, 1])
    assert camera_intrinsics(nan_k, 640, 480) == Intrinsics.fallback(640, 480)


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
