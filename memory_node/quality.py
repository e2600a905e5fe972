"""Face quality measures: sharpness of the aligned crop and a head-pose proxy from five landmarks.

The pose angles are a geometric proxy, not a head-pose estimate: the face is modelled as eyes and mouth
corners on one plane with the nose tip in front of it (depth `NOSE_DEPTH` × half the eye distance),
seen without perspective. After removing roll, the nose's sideways offset from the face's midline (eye
midpoint to mouth midpoint) gives yaw, and where the nose sits between the eye line and the mouth line
gives pitch, both measured from where the detector puts the nose on a frontal face (`PoseReference`).
Good enough to reject profile and strongly tilted views, which embed poorly.

Detectors place "nose tip" and "mouth corner" differently, so each has its own reference
(`POSE_REFERENCES`, measured by tools/calibrate_pose.py): with the ArcFace template's frontal nose
position, SCRFD and YuNet read the median ORL portrait as pitched by 21° and 17° before any real tilt,
and SCRFD's nose moves about three times as far as YuNet's for the same faces, so SCRFD alone pushed
frontal portraits past the 35° pitch gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from memory_node.align import TEMPLATE_112

# Nose-tip depth in front of the eye/mouth plane, in half inter-ocular distances. The generic 3D
# five-point face used with solvePnP in MTCNN pose code (eyes ±165, nose 0, mouth ±150, depths −115
# eyes / −125 mouth) gives 115/165 = 0.70 to 125/165 = 0.76.
NOSE_DEPTH = 0.7


@dataclass(frozen=True)
class PoseReference:
    """Where one detector puts the nose on a frontal face, and how far it moves it with pitch.

    Coordinates are in the proxy's face frame: x along the eye line in half eye distances (towards the
    person's left eye), y perpendicular to it (downwards).
    """

    nose_x: float  # nose offset from the eye midpoint along the eye line, in half eye distances
    nose_ratio: float  # nose between the eye line (0) and the mouth line (1)
    mouth_over_half_eyes: float  # eye line to mouth line over half the eye distance
    # Scales this detector's nose_ratio deviations to the common pitch scale (1: taken as geometric).
    pitch_gain: float = 1.0


def _template_reference() -> PoseReference:
    left_eye, right_eye, nose, left_mouth, right_mouth = TEMPLATE_112.astype(np.float64)
    half_eyes = abs(left_eye[0] - right_eye[0]) / 2
    eye_y, mouth_y = (left_eye[1] + right_eye[1]) / 2, (left_mouth[1] + right_mouth[1]) / 2
    return PoseReference(
        nose_x=float((nose[0] - (left_eye[0] + right_eye[0]) / 2) / half_eyes),
        nose_ratio=float((nose[1] - eye_y) / (mouth_y - eye_y)),
        mouth_over_half_eyes=float((mouth_y - eye_y) / half_eyes),
    )


# The ArcFace 112×112 alignment template read as a frontal face (nose_ratio 0.49). No detector's
# frontal face looks like it: use the detector's own reference below.
TEMPLATE_REFERENCE = _template_reference()

# Per detector, from tools/calibrate_pose.py on the ORL calibration split only (memory_node.face_sets:
# odd-numbered people, 199 photos, each padded by half its width on every side with replicated edge
# pixels, as SCRFD finds 2 of 199 faces that fill the whole 92×112 photo), the median portrait
# taken as frontal:
# - nose_x, nose_ratio, mouth_over_half_eyes: medians of the detector's landmark geometry.
# - pitch_gain: (common spread) / (this detector's spread of nose_ratio), spread = median absolute
#   deviation. The common spread is the geometric mean of both detectors' (0.047); the 106-point
#   landmark model 2d106det, a third opinion, spreads its nose ratio by 0.049 on the same photos.
#   Nose sideways offsets spread alike in both detectors (MAD 0.095 / 0.087), so yaw needs no gain.
# A different detector model file for a backend should be measured again (same tool).
POSE_REFERENCES: dict[str, PoseReference] = {
    "scrfd": PoseReference(nose_x=-0.007, nose_ratio=0.592, mouth_over_half_eyes=1.986, pitch_gain=0.58),
    "yunet": PoseReference(nose_x=-0.016, nose_ratio=0.590, mouth_over_half_eyes=1.923, pitch_gain=1.73),
}


def sharpness(crop_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (higher is sharper; meaningful on aligned 112×112 crops)."""
    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def face_geometry(landmarks: np.ndarray) -> tuple[float, float, float] | None:
    """(nose_x, nose_ratio, mouth_over_half_eyes) of five landmarks in person's-viewpoint order, in the
    face frame of `PoseReference`; None when the eyes coincide or the mouth is not below the eyes."""
    left_eye, right_eye, nose, left_mouth, right_mouth = np.asarray(landmarks, dtype=np.float64)
    eye_vector = left_eye - right_eye  # points to the image's right on an upright frontal face
    half_eyes = np.linalg.norm(eye_vector) / 2
    if half_eyes < 1e-6:
        return None
    x_axis = eye_vector / (2 * half_eyes)
    y_axis = np.array([-x_axis[1], x_axis[0]])  # downwards in the image, perpendicular to the eye line
    eye_mid = (left_eye + right_eye) / 2
    mouth_y = ((left_mouth + right_mouth) / 2 - eye_mid) @ y_axis
    if mouth_y <= 1e-6 * half_eyes:
        return None
    nose_y = (nose - eye_mid) @ y_axis
    # Sideways from the face's midline (eye midpoint to mouth midpoint) at the nose's height: on a face
    # both turned and tilted, the midline itself shifts sideways, and the eye midpoint alone would
    # read that shift as less or more yaw.
    midline_x = (nose_y / mouth_y) * (((left_mouth + right_mouth) / 2 - eye_mid) @ x_axis)
    nose_x = (nose - eye_mid) @ x_axis - midline_x
    return float(nose_x / half_eyes), float(nose_y / mouth_y), float(mouth_y / half_eyes)


def head_pose(landmarks: np.ndarray, reference: PoseReference = TEMPLATE_REFERENCE) -> tuple[float, float]:
    """Signed (yaw, pitch) in degrees from five landmarks in person's-viewpoint order.

    yaw > 0: the face turns towards the person's left (the nose moves to the image's right);
    pitch > 0: the face tilts up (the nose moves towards the eye line). (±90, ±90) when degenerate.
    """
    geometry = face_geometry(landmarks)
    if geometry is None:
        return 90.0, 90.0
    nose_x, nose_ratio, _ = geometry
    yaw = math.degrees(math.atan((nose_x - reference.nose_x) / NOSE_DEPTH))
    # Orthographic pitch θ moves the nose to ratio r0 − (depth / mouth distance)·tan θ.
    shift = (reference.nose_ratio - nose_ratio) * reference.pitch_gain * reference.mouth_over_half_eyes
    pitch = math.degrees(math.atan(shift / NOSE_DEPTH))
    return yaw, pitch


def pose_angles(landmarks: np.ndarray, reference: PoseReference = TEMPLATE_REFERENCE) -> tuple[float, float]:
    """(|yaw|, |pitch|) in degrees estimated from five landmarks in person's-viewpoint order."""
    yaw, pitch = head_pose(landmarks, reference)
    return abs(yaw), abs(pitch)
