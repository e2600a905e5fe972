"""sensor_msgs/Image and CompressedImage <-> numpy, without cv_bridge.

Decoding a raw ``Image`` returns a view on ``msg.data`` whenever no byte swap is needed (row padding is
stripped by slicing, not copying), so the array aliases the message buffer: copy it before keeping it
beyond the message's lifetime or writing to it. Encoding builds ``Image.data`` from bytes, never from a
Python list (hundreds of times slower for camera-sized images).

Supported raw encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1, 32FC1, and the generic
aliases 8UC1, 8UC3, 8UC4 (one, three and four uint8 channels; 8UC3/8UC4 are treated as BGR/BGRA).
"""

from __future__ import annotations

import array as pyarray
import math
import sys
from typing import Any, NamedTuple

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from humanoid_common.validation import InvalidMessageError, bounded_text, quoted

__all__ = [
    "MAX_IMAGE_DIM",
    "SUPPORTED_ENCODINGS",
    "ImageFormatError",
    "check_compressed",
    "compressed_size",
    "compressed_to_numpy",
    "image_to_numpy",
    "numpy_to_compressed",
    "numpy_to_image",
    "to_bgr8",
]

#: Largest accepted width or height in pixels; anything bigger is treated as a corrupt message.
MAX_IMAGE_DIM = 8192
#: Most pixels a compressed image may declare: a 4096x4096 frame decodes to 48 MiB of BGR. A JPEG or
#: PNG of a few hundred bytes can declare 65535x65535 (a decompression bomb), so the size is read
#: from the file's own header before anything is decoded.
MAX_COMPRESSED_PIXELS = 4096 * 4096
#: Longest CompressedImage.format accepted (image_transport writes e.g. "rgb8; jpeg compressed bgr8").
MAX_FORMAT_CHARS = 256


class ImageFormatError(InvalidMessageError):
    """An image message or array does not match its declared encoding, or is malformed."""


class _Layout(NamedTuple):
    dtype: np.dtype[Any]
    channels: int


_U8 = np.dtype(np.uint8)
_U16 = np.dtype(np.uint16)
_F32 = np.dtype(np.float32)

_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(_U8, 3),
    "bgr8": _Layout(_U8, 3),
    "rgba8": _Layout(_U8, 4),
    "bgra8": _Layout(_U8, 4),
    "mono8": _Layout(_U8, 1),
    "mono16": _Layout(_U16, 1),
    "16UC1": _Layout(_U16, 1),
    "32FC1": _Layout(_F32, 1),
    "8UC1": _Layout(_U8, 1),
    "8UC3": _Layout(_U8, 3),
    "8UC4": _Layout(_U8, 4),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

# cv2.cvtColor codes turning each 8-bit encoding into BGR; None means "already BGR".
_TO_BGR: dict[str, int | None] = {
    "bgr8": None,
    "8UC3": None,
    "rgb8": cv2.COLOR_RGB2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR,
    "8UC4": cv2.COLOR_BGRA2BGR,
    "mono8": cv2.COLOR_GRAY2BGR,
    "8UC1": cv2.COLOR_GRAY2BGR,
}

_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


def _layout(encoding: str) -> _Layout:
    try:
        return _LAYOUTS[encoding]
    except KeyError:
        raise ImageFormatError(
            f"unsupported image encoding {quoted(encoding)}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None


def _check_dims(width: int, height: int, max_dim: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageFormatError(f"image has zero size: width={width}, height={height}")
    if width > max_dim or height > max_dim:
        raise ImageFormatError(
            f"image size {width}x{height} exceeds the limit of {max_dim} pixels per side "
            "(corrupt message? raise max_dim if this is intended)"
        )


def _byte_view(data: Any) -> memoryview:
    """A flat, contiguous byte view of ``data`` (array.array, bytes, bytearray, memoryview, ndarray)."""
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _to_byte_array(arr: np.ndarray) -> pyarray.array[int]:
    """Copy ``arr``'s bytes once into the ``array.array('B')`` that message ``data`` fields hold.

    The message stores an ``array.array('B')`` as is; bytes or lists would be converted (and, with
    field checks on, validated element by element).
    """
    buf = pyarray.array("B")
    buf.frombytes(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    return buf


def image_to_numpy(msg: Image, *, max_dim: int = MAX_IMAGE_DIM) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into an array of shape (H, W) or (H, W, C), native byte order.

    Row padding (``step`` larger than a row) is stripped and big-endian data is byte-swapped. Without a
    byte swap the result is a view on ``msg.data`` (no copy). Raises ``ImageFormatError`` on an
    unsupported encoding, zero or oversized dimensions, a ``step`` shorter than a row, or a data length
    different from ``step * height``.
    """
    layout = _layout(msg.encoding)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    _check_dims(width, height, max_dim)
    row_bytes = width * layout.channels * layout.dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(
            f"step {step} is smaller than one row of {msg.encoding} image of width {width} "
            f"({row_bytes} bytes)"
        )
    data = _byte_view(msg.data)
    if data.nbytes != step * height:
        raise ImageFormatError(
            f"data length {data.nbytes} does not match step*height = {step}*{height} = {step * height}"
        )

    big_endian = bool(msg.is_bigendian) and layout.dtype.itemsize > 1
    wire_dtype = layout.dtype.newbyteorder(">" if big_endian else "<") if layout.dtype.itemsize > 1 else _U8
    rows = np.frombuffer(data, dtype=np.uint8).reshape(height, step)[:, :row_bytes]
    pixels = rows.view(wire_dtype)
    if not wire_dtype.isnative:
        pixels = pixels.astype(layout.dtype)
    if layout.channels == 1:
        return pixels
    return pixels.reshape(height, width, layout.channels)


def _check_array(arr: np.ndarray, encoding: str, max_dim: int) -> tuple[np.ndarray, _Layout]:
    """Check ``arr`` against ``encoding``; return it as (H, W, C) in native byte order."""
    layout = _layout(encoding)
    if arr.ndim == 2 and layout.channels == 1:
        arr = arr[:, :, np.newaxis]
    if arr.ndim != 3 or arr.shape[2] != layout.channels:
        expected = "(H, W) or (H, W, 1)" if layout.channels == 1 else f"(H, W, {layout.channels})"
        raise ImageFormatError(f"array of shape {arr.shape} does not fit {encoding}: expected {expected}")
    if arr.dtype.newbyteorder("=") != layout.dtype:
        raise ImageFormatError(f"array dtype {arr.dtype} does not fit {encoding}: expected {layout.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(layout.dtype)
    _check_dims(arr.shape[1], arr.shape[0], max_dim)
    return arr, layout


def numpy_to_image(
    array: np.ndarray, encoding: str, header: Header | None = None, *, max_dim: int = MAX_IMAGE_DIM
) -> Image:
    """Build a ``sensor_msgs/Image`` from an array matching ``encoding`` (dtype and channel count).

    ``step`` is ``width * channels * itemsize`` (no padding); data is native byte order.
    ``header`` (a ``std_msgs/Header``) is attached as given when not None.
    """
    arr, layout = _check_array(np.asarray(array), encoding, max_dim)
    height, width = arr.shape[:2]
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(_NATIVE_BIG_ENDIAN)
    msg.step = width * layout.channels * layout.dtype.itemsize
    msg.data = _to_byte_array(arr)
    return msg


def to_bgr8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Return an 8-bit colour/mono image as (H, W, 3) uint8 BGR, for models and drawing.

    bgr8/8UC3 input is returned as is (no copy). 16-bit and float encodings (mono16, 16UC1, 32FC1) are
    depth-like data, not colour: they raise ``ImageFormatError`` rather than being silently rescaled.
    """
    _layout(encoding)
    if encoding not in _TO_BGR:
        raise ImageFormatError(
            f"{encoding} is not a colour image; to_bgr8 accepts {', '.join(_TO_BGR)} "
            "(normalise depth/16-bit data explicitly before drawing)"
        )
    arr, _ = _check_array(np.asarray(array), encoding, sys.maxsize)
    code = _TO_BGR[encoding]
    if code is None:
        return arr
    return cv2.cvtColor(arr, code)


_COMPRESSED_FORMATS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}
_DECODE_ENCODINGS = ("bgr8", "rgb8", "mono8", "mono16")


def numpy_to_compressed(
    array: np.ndarray,
    encoding: str,
    fmt: str = "jpeg",
    quality: int = 90,
    header: Header | None = None,
) -> CompressedImage:
    """Encode an array as a ``sensor_msgs/CompressedImage`` (``fmt`` "jpeg" or "png").

    Colour input is stored as BGR, mono8 as grayscale. PNG also takes mono16/16UC1 losslessly; JPEG
    accepts 8-bit only. ``quality`` (1-100) applies to JPEG; PNG uses OpenCV's default compression.
    ``format`` follows image_transport's convention, e.g. "rgb8; jpeg compressed bgr8".
    """
    key = fmt.lower()
    if key not in _COMPRESSED_FORMATS:
        raise ImageFormatError(f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    if not 1 <= quality <= 100:
        raise ImageFormatError(f"JPEG quality must be in 1..100, got {quality}")
    arr, layout = _check_array(np.asarray(array), encoding, MAX_IMAGE_DIM)
    if layout.channels == 1 and layout.dtype == _U8:
        payload, stored = arr[:, :, 0], "mono8"
    elif layout.channels == 1 and layout.dtype == _U16 and key == "png":
        payload, stored = arr[:, :, 0], "mono16"
    elif encoding in _TO_BGR:
        payload, stored = to_bgr8(arr, encoding), "bgr8"
    else:
        raise ImageFormatError(f"cannot {key}-compress {encoding} images (PNG takes mono16/16UC1)")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if key != "png" else []
    ok, encoded = cv2.imencode(_COMPRESSED_FORMATS[key], np.ascontiguousarray(payload), params)
    if not ok:
        raise ImageFormatError(f"OpenCV failed to {key}-encode a {arr.shape} {encoding} image")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"{encoding}; {'jpeg' if key == 'jpg' else key} compressed {stored}"
    msg.data = _to_byte_array(encoded)
    return msg


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_JPEG_FRAME_MARKERS = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC})  # not DHT, JPG, DAC
# Markers without a length field: TEM and the restart markers.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_size(data: memoryview) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment, walking the segments before it."""
    pos = len(_JPEG_START)
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageFormatError(f"JPEG segment at byte {pos} does not start with 0xFF")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or image data, before any frame header
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            raise ImageFormatError(f"JPEG segment at byte {pos} has length {length}")
        if marker in _JPEG_FRAME_MARKERS and pos + 9 <= len(data):
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        pos += 2 + length
    raise ImageFormatError("JPEG data has no frame header (SOF) giving its size")


def compressed_size(data: Any) -> tuple[str, int, int]:
    """(format, width, height) that a JPEG or PNG declares in its header, read without decoding.

    Anything else raises ImageFormatError: OpenCV would decode other formats (TIFF, BMP, WebP, ...)
    whatever CompressedImage.format says, so only these two get through.
    """
    view = _byte_view(data)
    if bytes(view[:8]) == _PNG_SIGNATURE:
        if len(view) < 24 or bytes(view[12:16]) != b"IHDR":
            raise ImageFormatError("PNG data without an IHDR chunk giving its size")
        return "png", int.from_bytes(view[16:20], "big"), int.from_bytes(view[20:24], "big")
    if bytes(view[:2]) == _JPEG_START:
        return ("jpeg", *_jpeg_size(view))
    raise ImageFormatError(f"compressed image data of {len(view)} bytes is neither JPEG nor PNG")


def check_compressed(msg: CompressedImage) -> None:
    """Refuse a CompressedImage that is not a JPEG or PNG of a size a node can decode, reading the
    size from the file's header before anything is decoded (compressed_to_numpy calls this too)."""
    bounded_text(msg.format, "format", MAX_FORMAT_CHARS)
    kind, width, height = compressed_size(msg.data)
    if width <= 0 or height <= 0:
        raise ImageFormatError(f"{kind} declares zero size: {width}x{height}")
    if width > MAX_IMAGE_DIM or height > MAX_IMAGE_DIM or width * height > MAX_COMPRESSED_PIXELS:
        raise ImageFormatError(
            f"{kind} declares {width}x{height} pixels, more than {MAX_IMAGE_DIM} per side or "
            f"{MAX_COMPRESSED_PIXELS} in all (a decompression bomb?)"
        )


def compressed_to_numpy(msg: CompressedImage, encoding: str = "bgr8") -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` to bgr8/rgb8 (H, W, 3), mono8 or mono16 (H, W).

    mono16 requires a 16-bit single-channel PNG. Raises ``ImageFormatError`` when the data is empty, not
    a JPEG or PNG, declares more pixels than a node should decode (``check_compressed``, before
    decoding), or cannot be decoded.
    """
    if encoding not in _DECODE_ENCODINGS:
        raise ImageFormatError(
            f"cannot decode to {quoted(encoding)}; supported: {', '.join(_DECODE_ENCODINGS)}"
        )
    data = np.frombuffer(_byte_view(msg.data), dtype=np.uint8)
    if data.size == 0:
        raise ImageFormatError(f"compressed image (format {quoted(msg.format)}) has no data")
    check_compressed(msg)
    if encoding == "mono16":
        flags = cv2.IMREAD_UNCHANGED
    elif encoding == "mono8":
        flags = cv2.IMREAD_GRAYSCALE
    else:
        flags = cv2.IMREAD_COLOR
    decoded = cv2.imdecode(data, flags)
    if decoded is None:
        raise ImageFormatError(
            f"could not decode {data.size} bytes of compressed image (format {quoted(msg.format)})"
        )
    if encoding == "mono16" and (decoded.ndim != 2 or decoded.dtype != _U16):
        raise ImageFormatError(
            f"compressed image (format {quoted(msg.format)}) decodes to {decoded.dtype} with shape "
            f"{decoded.shape}, not a 16-bit single-channel image"
        )
    if encoding == "rgb8":
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return decoded


def pinhole_matrix(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """3x3 K of an ideal pinhole camera with this horizontal field of view, square pixels and the
    principal point at the image centre (pixel centres at integer coordinates). Not a calibration."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def camera_info(header: Header, width: int, height: int, k: np.ndarray) -> Any:
    """sensor_msgs/CameraInfo of a distortion-free camera with intrinsics `k` (3x3)."""
    info = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
    info.k = np.asarray(k, np.float64).reshape(-1).tolist()
    info.p = np.hstack([np.asarray(k, np.float64), np.zeros((3, 1))]).reshape(-1).tolist()
    info.r = np.eye(3).reshape(-1).tolist()
    info.d = [0.0] * 5
    return info
