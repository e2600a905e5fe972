"""What perception_node checks in its inputs before using them (plain Python, no rclpy).

Each check raises `InvalidMessageError` (an `ImageFormatError` for image data), which the node's
subscriptions count as a drop on /diagnostics (`humanoid_common.watch`). Raw image layout (encoding,
size, step, data length) is checked by `humanoid_common.images.image_to_numpy`; here are the rest:
the header the node copies into its outputs, compressed images before they are decoded, and
camera_info before the markers use it.
"""

from __future__ import annotations

from typing import Any

from humanoid_common.images import MAX_IMAGE_DIM, ImageFormatError
from humanoid_common.validation import (
    InvalidMessageError,
    bounded_text,
    finite_number,
    finite_values,
    stamp_ns,
)

#: Longest frame_id accepted; it is copied into every detection and marker.
MAX_FRAME_ID_CHARS = 256
#: Longest CompressedImage.format accepted (image_transport writes e.g. "rgb8; jpeg compressed bgr8").
MAX_FORMAT_CHARS = 256
#: Most pixels a compressed image may declare: a 4096x4096 frame decodes to 48 MiB of BGR. A JPEG or
#: PNG of a few hundred bytes can declare 65535x65535 (a decompression bomb), so the size is read
#: from the file's own header before anything is decoded.
MAX_COMPRESSED_PIXELS = 4096 * 4096
#: Focal lengths (pixels) outside this range are not a camera: a lens of 1 pixel or of 10^7 pixels.
FOCAL_RANGE_PX = (1.0, 1e7)
#: A principal point further than this (pixels) from the image origin is not a camera either.
MAX_PRINCIPAL_POINT_PX = 1e7

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_JPEG_FRAME_MARKERS = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC})  # not DHT, JPG, DAC
# Markers without a length field: TEM and the restart markers.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def header_stamp_ns(header: Any, now_ns: int) -> int:
    """The header's stamp in nanoseconds after checking it and its frame_id (copied into outputs)."""
    bounded_text(header.frame_id, "header.frame_id", MAX_FRAME_ID_CHARS)
    return stamp_ns(header.stamp, now_ns)


def _byte_view(data: Any) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


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


def check_compressed(msg: Any) -> None:
    """Refuse a CompressedImage that is not a JPEG or PNG of a size the node can decode."""
    bounded_text(msg.format, "format", MAX_FORMAT_CHARS)
    kind, width, height = compressed_size(msg.data)
    if width <= 0 or height <= 0:
        raise ImageFormatError(f"{kind} declares zero size: {width}x{height}")
    if width > MAX_IMAGE_DIM or height > MAX_IMAGE_DIM or width * height > MAX_COMPRESSED_PIXELS:
        raise ImageFormatError(
            f"{kind} declares {width}x{height} pixels, more than {MAX_IMAGE_DIM} per side or "
            f"{MAX_COMPRESSED_PIXELS} in all (a decompression bomb?)"
        )


def check_camera_info(msg: Any) -> None:
    """Refuse a CameraInfo whose size or intrinsics could not place a marker: K with NaN or inf, a
    focal length outside FOCAL_RANGE_PX, a far-off principal point. K all zeros is allowed (an
    uncalibrated camera: the markers use their fallback)."""
    for name in ("width", "height"):
        if getattr(msg, name) > MAX_IMAGE_DIM:
            raise InvalidMessageError(f"camera_info.{name} is {getattr(msg, name)}, above {MAX_IMAGE_DIM}")
    k = finite_values(msg.k, "camera_info.k")
    if not k.any():
        return
    low, high = FOCAL_RANGE_PX
    finite_number(k[0], "camera_info.k[0] (fx)", low=low, high=high)
    finite_number(k[4], "camera_info.k[4] (fy)", low=low, high=high)
    limit = MAX_PRINCIPAL_POINT_PX
    finite_number(k[2], "camera_info.k[2] (cx)", low=-limit, high=limit)
    finite_number(k[5], "camera_info.k[5] (cy)", low=-limit, high=limit)
