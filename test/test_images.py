"""Tests for humanoid_common.images (Image/CompressedImage <-> numpy)."""

from __future__ import annotations

import array
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from humanoid_common.images import (
    MAX_IMAGE_DIM,
    SUPPORTED_ENCODINGS,
    ImageFormatError,
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_compressed,
    numpy_to_image,
    to_bgr8,
)

# encoding -> (dtype, channels), written out independently of the module's table.
EXPECTED = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
    "8UC1": (np.uint8, 1),
    "8UC3": (np.uint8, 3),
    "8UC4": (np.uint8, 4),
}


def random_image(encoding: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    dtype, channels = EXPECTED[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype == np.float32:
        return rng.normal(1.5, 2.0, size=shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


def raw_message(encoding: str, width: int, height: int, step: int, data: bytes, big: int = 0) -> Image:
    msg = Image()
    msg.encoding = encoding
    msg.width = width
    msg.height = height
    msg.step = step
    msg.is_bigendian = big
    msg.data = array.array("B", data)
    return msg


def test_supported_encodings_listed() -> None:
    assert set(SUPPORTED_ENCODINGS) == set(EXPECTED)


@pytest.mark.parametrize("encoding", sorted(EXPECTED))
@pytest.mark.parametrize(("height", "width"), [(4, 7), (31, 33), (1, 1)])
def test_round_trip(encoding: str, height: int, width: int) -> None:
    dtype, channels = EXPECTED[encoding]
    img = random_image(encoding, height, width, seed=height * width)
    msg = numpy_to_image(img, encoding)
    assert (msg.height, msg.width, msg.encoding) == (height, width, encoding)
    assert msg.step == width * channels * np.dtype(dtype).itemsize
    assert len(msg.data) == msg.step * height
    out = image_to_numpy(msg)
    assert out.dtype == dtype
    assert out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_round_trip_accepts_single_channel_with_trailing_axis() -> None:
    img = random_image("mono8", 5, 6)[:, :, np.newaxis]
    out = image_to_numpy(numpy_to_image(img, "mono8"))
    assert out.shape == (5, 6)
    np.testing.assert_array_equal(out, img[:, :, 0])


def test_numpy_to_image_vga_data_is_byte_buffer_and_exact() -> None:
    img = random_image("rgb8", 480, 640)
    header = Header(frame_id="camera_optical")
    header.stamp.sec = 12
    msg = numpy_to_image(img, "rgb8", header=header)
    assert not isinstance(msg.data, list)
    assert bytes(msg.data) == img.tobytes()
    assert msg.header.frame_id == "camera_optical"
    assert msg.header.stamp.sec == 12
    assert msg.is_bigendian == 0


def test_numpy_to_image_non_contiguous_input() -> None:
    img = random_image("bgr8", 10, 20)[:, ::2]  # strided view
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(img, "bgr8")), img)


def test_image_to_numpy_returns_view_without_copy() -> None:
    img = random_image("bgr8", 8, 9)
    msg = numpy_to_image(img, "bgr8")
    out = image_to_numpy(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "16UC1", "32FC1"])
def test_step_padding_is_stripped(encoding: str) -> None:
    dtype, channels = EXPECTED[encoding]
    height, width, pad = 5, 7, 13  # odd padding: rows start at unaligned offsets
    img = random_image(encoding, height, width, seed=3)
    row = width * channels * np.dtype(dtype).itemsize
    step = row + pad
    rows = [img[r].tobytes() + bytes([0xAB]) * pad for r in range(height)]
    msg = raw_message(encoding, width, height, step, b"".join(rows))
    out = image_to_numpy(msg)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_padded_pixels_checked_by_hand() -> None:
    # 2x2 mono8 image with step 4: rows [1, 2 | pad pad], [3, 4 | pad pad]
    msg = raw_message("mono8", 2, 2, 4, bytes([1, 2, 99, 99, 3, 4, 99, 99]))
    np.testing.assert_array_equal(image_to_numpy(msg), [[1, 2], [3, 4]])


def test_big_endian_mono16() -> None:
    values = np.array([[1, 256, 0x1234], [0xFFFF, 0, 0xABCD]], dtype=np.uint16)
    msg = raw_message("mono16", 3, 2, 6, values.astype(">u2").tobytes(), big=1)
    out = image_to_numpy(msg)
    assert out.dtype == np.uint16
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_big_endian_float_with_padding() -> None:
    values = np.array([[1.5, -2.25], [3.0, 1e-3]], dtype=np.float32)
    data = b"".join(values[r].astype(">f4").tobytes() + b"\0\0" for r in range(2))
    out = image_to_numpy(raw_message("32FC1", 2, 2, 10, data, big=1))
    np.testing.assert_array_equal(out, values)


def test_big_endian_flag_ignored_for_8bit() -> None:
    msg = raw_message("mono8", 2, 1, 2, bytes([7, 8]), big=1)
    np.testing.assert_array_equal(image_to_numpy(msg), [[7, 8]])


def test_numpy_to_image_accepts_non_native_byte_order() -> None:
    values = np.array([[1, 2, 300]], dtype=">u2")
    msg = numpy_to_image(values, "16UC1")
    np.testing.assert_array_equal(image_to_numpy(msg), values.astype(np.uint16))


@pytest.mark.parametrize(
    "data_factory",
    [bytes, bytearray, memoryview, lambda b: memoryview(array.array("H", b))],
    ids=["bytes", "bytearray", "memoryview", "memoryview-of-uint16-array"],
)
def test_data_buffer_types(data_factory: Callable[[bytes], Any]) -> None:
    img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    msg = numpy_to_image(img, "rgb8")
    raw = bytes(msg.data)
    fake = type("FakeImage", (), {})()
    for field in ("encoding", "width", "height", "step", "is_bigendian"):
        setattr(fake, field, getattr(msg, field))
    fake.data = data_factory(raw)
    np.testing.assert_array_equal(image_to_numpy(fake), img)


# --- malformed messages ---------------------------------------------------------------------------


def test_unsupported_encoding_lists_supported() -> None:
    msg = raw_message("yuv422", 2, 2, 4, bytes(8))
    with pytest.raises(ImageFormatError, match="yuv422") as info:
        image_to_numpy(msg)
    for enc in ("rgb8", "mono16", "32FC1"):
        assert enc in str(info.value)


@pytest.mark.parametrize(("width", "height"), [(0, 4), (4, 0), (0, 0)])
def test_zero_size(width: int, height: int) -> None:
    with pytest.raises(ImageFormatError, match=rf"zero size: width={width}, height={height}"):
        image_to_numpy(raw_message("mono8", width, height, width, b""))


def test_step_smaller_than_row() -> None:
    msg = raw_message("rgb8", 4, 2, 10, bytes(20))
    with pytest.raises(ImageFormatError, match=r"step 10 is smaller than one row .*\(12 bytes\)"):
        image_to_numpy(msg)


@pytest.mark.parametrize("length", [23, 25, 0])
def test_data_length_mismatch(length: int) -> None:
    msg = raw_message("rgb8", 4, 2, 12, bytes(length))
    with pytest.raises(ImageFormatError, match=rf"data length {length} .* step\*height = 12\*2 = 24"):
        image_to_numpy(msg)


def test_absurd_size_rejected_before_touching_data() -> None:
    msg = raw_message("mono8", MAX_IMAGE_DIM + 1, 1, MAX_IMAGE_DIM + 1, b"")
    with pytest.raises(
        ImageFormatError, match=rf"{MAX_IMAGE_DIM + 1}x1 exceeds the limit of {MAX_IMAGE_DIM}"
    ):
        image_to_numpy(msg)


def test_size_limit_is_a_keyword() -> None:
    msg = numpy_to_image(np.zeros((3, 20), np.uint8), "mono8")
    with pytest.raises(ImageFormatError, match="20x3 exceeds the limit of 16"):
        image_to_numpy(msg, max_dim=16)
    assert image_to_numpy(msg, max_dim=20).shape == (3, 20)


def test_numpy_to_image_rejects_wrong_dtype() -> None:
    with pytest.raises(ImageFormatError, match=r"dtype float64 does not fit rgb8: expected uint8"):
        numpy_to_image(np.zeros((2, 2, 3)), "rgb8")


@pytest.mark.parametrize(
    ("shape", "encoding", "expected"),
    [((2, 2), "rgb8", "(H, W, 3)"), ((2, 2, 3), "mono8", "(H, W) or (H, W, 1)"), ((4,), "mono8", "(H, W)")],
)
def test_numpy_to_image_rejects_wrong_channels(shape: tuple[int, ...], encoding: str, expected: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        numpy_to_image(np.zeros(shape, np.uint8), encoding)
    text = str(info.value)
    assert f"array of shape {shape}" in text
    assert f"does not fit {encoding}: expected {expected}" in text


def test_numpy_to_image_rejects_unknown_encoding_and_empty() -> None:
    with pytest.raises(ImageFormatError, match="unsupported image encoding 'bayer_rggb8'"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "bayer_rggb8")
    with pytest.raises(ImageFormatError, match="zero size"):
        numpy_to_image(np.zeros((0, 5, 3), np.uint8), "bgr8")


def test_image_format_error_is_value_error() -> None:
    assert issubclass(ImageFormatError, ValueError)


# --- to_bgr8 --------------------------------------------------------------------------------------


def test_to_bgr8_conversions() -> None:
    bgr = random_image("bgr8", 6, 5)
    rgb = bgr[:, :, ::-1]
    assert to_bgr8(bgr, "bgr8") is bgr
    np.testing.assert_array_equal(to_bgr8(rgb, "rgb8"), bgr)
    alpha = np.full((6, 5, 1), 200, np.uint8)
    np.testing.assert_array_equal(to_bgr8(np.concatenate([rgb, alpha], axis=2), "rgba8"), bgr)
    np.testing.assert_array_equal(to_bgr8(np.concatenate([bgr, alpha], axis=2), "bgra8"), bgr)
    np.testing.assert_array_equal(to_bgr8(np.concatenate([bgr, alpha], axis=2), "8UC4"), bgr)
    mono = random_image("mono8", 6, 5)
    out = to_bgr8(mono, "mono8")
    assert out.shape == (6, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], mono)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_to_bgr8_rejects_depth_like(encoding: str) -> None:
    with pytest.raises(ImageFormatError, match=f"{encoding} is not a colour image"):
        to_bgr8(random_image(encoding, 2, 2), encoding)


# --- compressed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "rgba8", "8UC3"])
def test_png_round_trip_colour_is_exact(encoding: str) -> None:
    img = random_image(encoding, 17, 23)
    msg = numpy_to_compressed(img, encoding, fmt="png")
    assert msg.format == f"{encoding}; png compressed bgr8"
    expected = to_bgr8(img, encoding)
    np.testing.assert_array_equal(compressed_to_numpy(msg, "bgr8"), expected)
    np.testing.assert_array_equal(compressed_to_numpy(msg, "rgb8"), expected[:, :, ::-1])


def test_png_round_trip_mono8_and_mono16_exact() -> None:
    mono = random_image("mono8", 9, 11)
    msg = numpy_to_compressed(mono, "mono8", fmt="png")
    assert msg.format == "mono8; png compressed mono8"
    np.testing.assert_array_equal(compressed_to_numpy(msg, "mono8"), mono)
    depth = random_image("16UC1", 9, 11)
    msg16 = numpy_to_compressed(depth, "16UC1", fmt="png")
    out = compressed_to_numpy(msg16, "mono16")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, depth)


def test_jpeg_round_trip_is_close() -> None:
    # A smooth image: JPEG error stays small.
    yy, xx = np.mgrid[0:48, 0:64]
    img = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).astype(np.uint8)
    header = Header(frame_id="cam")
    msg = numpy_to_compressed(img, "bgr8", fmt="jpeg", quality=95, header=header)
    assert msg.format == "bgr8; jpeg compressed bgr8"
    assert msg.header.frame_id == "cam"
    assert bytes(msg.data[:2]) == b"\xff\xd8"  # JPEG SOI marker
    out = compressed_to_numpy(msg)
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 3.0
    low = numpy_to_compressed(img, "bgr8", fmt="jpg", quality=10)
    assert len(low.data) < len(msg.data)


def test_compressed_decoding_from_cv2_bytes() -> None:
    img = random_image("bgr8", 8, 8)
    ok, encoded = cv2.imencode(".png", img)
    assert ok
    msg = CompressedImage(format="png", data=array.array("B", encoded.tobytes()))
    np.testing.assert_array_equal(compressed_to_numpy(msg), img)


def test_compressed_errors() -> None:
    garbage = CompressedImage(format="jpeg", data=array.array("B", b"not an image at all"))
    with pytest.raises(ImageFormatError, match="compressed image data of 19 bytes is neither JPEG nor PNG"):
        compressed_to_numpy(garbage)
    truncated = numpy_to_compressed(random_image("bgr8", 16, 16), "bgr8", fmt="png")
    truncated.data = truncated.data[:40]  # a readable header, then nothing
    with pytest.raises(ImageFormatError, match=r"could not decode 40 bytes of compressed image \(format"):
        compressed_to_numpy(truncated)
    with pytest.raises(ImageFormatError, match="has no data"):
        compressed_to_numpy(CompressedImage(format="jpeg"))
    with pytest.raises(ImageFormatError, match="cannot decode to '32FC1'"):
        compressed_to_numpy(garbage, "32FC1")
    with pytest.raises(ImageFormatError, match="cannot jpeg-compress 16UC1"):
        numpy_to_compressed(random_image("16UC1", 2, 2), "16UC1", fmt="jpeg")
    with pytest.raises(ImageFormatError, match="cannot png-compress 32FC1"):
        numpy_to_compressed(random_image("32FC1", 2, 2), "32FC1", fmt="png")
    with pytest.raises(ImageFormatError, match="unsupported compressed format 'webp'"):
        numpy_to_compressed(random_image("bgr8", 2, 2), "bgr8", fmt="webp")
    with pytest.raises(ImageFormatError, match=r"quality must be in 1\.\.100, got 0"):
        numpy_to_compressed(random_image("bgr8", 2, 2), "bgr8", quality=0)


def test_mono16_decode_of_8bit_png_is_rejected() -> None:
    msg = numpy_to_compressed(random_image("bgr8", 4, 4), "bgr8", fmt="png")
    with pytest.raises(ImageFormatError, match="not a 16-bit single-channel image"):
        compressed_to_numpy(msg, "mono16")
