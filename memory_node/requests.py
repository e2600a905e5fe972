"""Bounds on the memory's service requests (no rclpy; issue 10): they hold without DDS security.

- `RateLimit`: a token bucket per service (Enroll, Forget): `burst` calls in a row, then one more every
  `interval_s`; a single call after a quiet spell always passes.
- `check_pixels`: an image's declared width × height against the limit, before anything is decoded.
- `ImageFiles`: image files only from the configured folders (symbolic links and `..` resolved first),
  only regular files, their size read from the file's header before decoding; the bytes are read once
  and decoded from memory, so the file checked is the file decoded.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PilImage

from humanoid_common.validation import quoted
from memory_node.errors import MemoryRequestError

#: A file bigger than this many bytes per allowed pixel is not an image of an allowed size (raw 16-bit
#: RGBA is 8 bytes a pixel; compressed photos far less).
MAX_FILE_BYTES_PER_PIXEL = 8


class RateLimit:
    """`burst` calls at once, then one more every `interval_s` seconds (0: no limit)."""

    def __init__(
        self, what: str, burst: int, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.burst = burst
        self.interval_s = interval_s
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self.refused = 0

    def take(self) -> None:
        """Count one call, or MemoryRequestError when there were too many lately (not counted)."""
        if self.interval_s <= 0:
            return
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) / self.interval_s)
        self._updated = now
        if self._tokens < 1.0:
            self.refused += 1
            wait = (1.0 - self._tokens) * self.interval_s
            raise MemoryRequestError(
                f"too many {self.what} requests: {self.burst} in a row, then one every "
                f"{self.interval_s:g} s; try again in {wait:.1f} s"
            )
        self._tokens -= 1.0


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """MemoryRequestError when `what` declares more than `max_pixels` pixels (or none)."""
    if width <= 0 or height <= 0:
        raise MemoryRequestError(f"{what} is empty ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise MemoryRequestError(
            f"{what} has {width}x{height} = {width * height} pixels, more than the {max_pixels} allowed "
            f"(memory.requests.max_image_pixels); send a smaller picture of the face"
        )


class ImageFiles:
    """Reads enrolment images from the allowed folders only."""

    def __init__(self, folders: Sequence[str], max_pixels: int) -> None:
        self.folders = [Path(folder).resolve() for folder in folders]
        self.max_pixels = max_pixels

    def resolve(self, path: str) -> Path:
        """The real path of an allowed, existing regular file, or MemoryRequestError saying why not."""
        if not self.folders:
            raise MemoryRequestError(
                "image_paths are refused: no folder is allowed. List the folders the memory may read "
                "enrolment photos from in memory.requests.image_dirs (config/memory.yaml), or send "
                "the pictures in `images`"
            )
        try:
            real = Path(path).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            raise MemoryRequestError(f"image file {quoted(path)} does not exist") from None
        if not any(real.is_relative_to(folder) for folder in self.folders):
            allowed = ", ".join(str(folder) for folder in self.folders)
            raise MemoryRequestError(
                f"image file {quoted(path)} is outside the allowed folders ({allowed}; "
                f"memory.requests.image_dirs)"
            )
        if not real.is_file():
            raise MemoryRequestError(f"image file {quoted(path)} is not a regular file")
        return real

    def read(self, path: str) -> np.ndarray:
        """The BGR pixels of an allowed image file whose header declares at most max_pixels."""
        real = self.resolve(path)
        try:  # O_NOFOLLOW: not a link put in its place since; O_NONBLOCK: never wait on a FIFO
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as error:
            raise MemoryRequestError(f"cannot open image file {quoted(path)}: {error.strerror}") from None
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise MemoryRequestError(f"image file {quoted(path)} is not a regular file")
            if info.st_size > MAX_FILE_BYTES_PER_PIXEL * self.max_pixels:
                raise MemoryRequestError(f"image file {quoted(path)} is too large ({info.st_size} bytes)")
            data = file.read()
        try:  # Pillow reads the header only: the size before anything is decoded
            width, height = PilImage.open(io.BytesIO(data)).size
        except PilImage.DecompressionBombError as error:
            raise MemoryRequestError(f"image file {quoted(path)} declares too many pixels: {error}") from None
        except Exception:  # Pillow's own errors, or a wrapper's (Ultralytics replaces Image.open)
            raise MemoryRequestError(
                f"image file {quoted(path)} is not a picture in a known format (JPEG, PNG, ...)"
            ) from None
        check_pixels(width, height, self.max_pixels, f"image file {quoted(path)}")
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MemoryRequestError(f"image file {quoted(path)} cannot be decoded")
        return bgr
