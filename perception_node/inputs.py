"""What perception_node checks in camera_info before the markers use it (plain Python, no rclpy).

Each check raises `InvalidMessageError`, which the node's subscriptions count as a drop on
/diagnostics (`humanoid_common.watch`). Headers (`humanoid_common.validation.header_stamp_ns`), raw
image layout (`humanoid_common.images.image_to_numpy`) and compressed images before they are decoded
(`humanoid_common.images.check_compressed`) are checked where every node shares them.
"""

from __future__ import annotations

from typing import Any

from humanoid_common.images import MAX_IMAGE_DIM
from humanoid_common.validation import InvalidMessageError, finite_number, finite_values

#: Focal lengths (pixels) outside this range are not a camera: a lens of 1 pixel or of 10^7 pixels.
FOCAL_RANGE_PX = (1.0, 1e7)
#: A principal point further than this (pixels) from the image origin is not a camera either.
MAX_PRINCIPAL_POINT_PX = 1e7


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
