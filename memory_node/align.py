"""Face alignment: similarity transform from five landmarks to the 112×112 ArcFace template.

Landmark order everywhere in memory_node is the person's viewpoint (as in msg/Person.msg): left eye,
right eye, nose tip, left mouth corner, right mouth corner. On a frontal face the person's left eye is
on the image's right. Both detectors (SCRFD, YuNet) emit image-left first; `from_image_order` converts.
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 112

# The standard ArcFace 112×112 reference points (the same ones cv2.FaceRecognizerSF aligns to), listed
# in the person's-viewpoint order: the person's left eye sits at the crop's right (x ≈ 73.5).
TEMPLATE_112 = np.array(
    [
        [73.5318, 51.5014],  # left eye (person's)
        [38.2946, 51.6963],  # right eye
        [56.0252, 71.7366],  # nose tip
        [70.7299, 92.2041],  # left mouth corner
        [41.5493, 92.3655],  # right mouth corner
    ],
    dtype=np.float32,
)

# Swapping left/right twice is the identity, so the same permutation converts in both directions.
_SWAP_SIDES = [1, 0, 2, 4, 3]


def from_image_order(points: np.ndarray) -> np.ndarray:
    """(5, 2) points listed image-left first (detector output) → person's-viewpoint order."""
    return np.ascontiguousarray(points[_SWAP_SIDES], dtype=np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src → dst, as 2×3.

    Umeyama's closed form; no reflection allowed.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    src_var = (src_c**2).sum() / len(src)
    scale = float(np.trace(np.diag(singular) @ sign) / src_var) if src_var > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float32)


def align_face(bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112×112 BGR crop of the face whose five landmarks (person's-viewpoint order) are given."""
    matrix = similarity_transform(landmarks, TEMPLATE_112)
    return cv2.warpAffine(bgr, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
