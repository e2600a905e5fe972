"""perception_node's camera_info checks (plain Python): camera_info that could not place a marker is
refused, and the markers never take NaN intrinsics."""

from __future__ import annotations

import math

import pytest
from sensor_msgs.msg import CameraInfo

from humanoid_common.validation import InvalidMessageError
from perception_node.inputs import check_camera_info
from perception_node.markers import Intrinsics, camera_intrinsics


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
