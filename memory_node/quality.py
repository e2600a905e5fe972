"""Face quality measures: sharpness of the aligned crop and a head-pose proxy from five landmarks.

The pose angles are a geometric proxy, not a head-pose estimate: the face is modelled as eyes and mouth
corners on one plane with the nose tip in front of it (depth `NOSE_DEPTH` × half the eye distance).
After removing roll, the nose's sideways offset from the eye midpoint gives yaw, and where the nose
sits between the eye line and the mouth line gives pitch. Good enough to reject profile and strongly
tilted views, which embed poorly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from memory_node.align import TEMPLATE_112

NOSE_DEPTH = 0.7  # nose-tip depth in front of the eye/mouth plane, in half inter-ocular distances
# Where the nose sits between the eye line (0) and the mouth line (1) on a frontal face, from the template.
_EYE_Y = TEMPLATE_112[:2, 1].mean()
_MOUTH_Y = TEMPLATE_112[3:, 1].mean()
_FRONTAL_NOSE_RATIO = float((TEMPLATE_112[2, 1] - _EYE_Y) / (_MOUTH_Y - _EYE_Y))
# Mouth-to-eye distance over half the eye distance on a frontal face, from the template.
_MOUTH_OVER_HALF_EYES = float((_MOUTH_Y - _EYE_Y) / (abs(TEMPLATE_112[0, 0] - TEMPLATE_112[1, 0]) / 2))


def sharpness(crop_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (higher is sharper; meaningful on aligned 112×112 crops)."""
    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def pose_angles(landmarks: np.ndarray) -> tuple[float, float]:
    """(|yaw|, |pitch|) in degrees estimated from five landmarks in person's-viewpoint order."""
    left_eye, right_eye, nose, left_mouth, right_mouth = np.asarray(landmarks, dtype=np.float64)
    eye_vector = left_eye - right_eye  # points to the image's right on an upright frontal face
    half_eyes = np.linalg.norm(eye_vector) / 2
    if half_eyes < 1e-6:
        return 90.0, 90.0
    x_axis = eye_vector / (2 * half_eyes)
    y_axis = np.array([-x_axis[1], x_axis[0]])  # downwards in the image, perpendicular to the eye line
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (left_mouth + right_mouth) / 2
    nose_x, nose_y = (nose - eye_mid) @ x_axis, (nose - eye_mid) @ y_axis
    mouth_y = (mouth_mid - eye_mid) @ y_axis
    yaw = math.degrees(math.atan(abs(nose_x) / (half_eyes * NOSE_DEPTH)))
    if mouth_y <= 1e-6:
        return yaw, 90.0
    nose_shift = (_FRONTAL_NOSE_RATIO - nose_y / mouth_y) * _MOUTH_OVER_HALF_EYES
    pitch = math.degrees(math.atan(abs(nose_shift) / NOSE_DEPTH))
    return yaw, pitch
