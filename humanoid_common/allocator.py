"""Keep camera-sized message buffers in the heap instead of fresh memory maps (glibc only).

glibc's malloc serves a block above its mmap threshold (128 KiB at start, raised as blocks are freed)
with a fresh memory map and unmaps it on free. A 640x480 rgb8 frame passes through several such
buffers per message (serialisation, the DDS history, the Python message), so each frame costs
hundreds of page faults, each a trap into the kernel and, on a virtual machine, into the hypervisor.
bench/transport.py measures the difference (its `profile` and `profile+heap` scenarios). This is the
usual real-time advice for ROS 2 (no mmap for large blocks, no trimming of the heap top on every
free) in its mildest form: memory is not locked, and free memory above ``TRIM_THRESHOLD`` at the
heap top is still returned to the system.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum: blocks up to a 4K rgb8 frame (25 MB) stay in the heap
TRIM_THRESHOLD = 64 * 2**20  # free memory above the heap top kept for reuse, at most
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def _user_tuned() -> bool:
    """True when the user tuned glibc's malloc through the environment: their settings win."""
    return any(os.environ.get(v) for v in USER_SETTINGS) or "glibc.malloc." in os.environ.get(
        "GLIBC_TUNABLES", ""
    )


def keep_large_buffers() -> bool:
    """Apply the thresholds above to this process (call before rclpy.init). False where it does not
    apply: not glibc (musl, macOS), or the user set their own malloc tunables."""
    if not sys.platform.startswith("linux") or _user_tuned():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a libc without mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
