"""The model's input geometry, in one place: the aligned eye strip's size, where the two eyes sit in
it, and the face features (face box and head pose). face.py (the webcam crop) reads it from here and data.py re-exports it
(synth.py and the rest read it from data), so face.py and data.py need not import each other."""

from __future__ import annotations

import math

import numpy as np

IMAGE_H = 32
IMAGE_W = 96
CHANNELS = 3
# Where the two eye centres sit in the aligned strip, in (x, y) pixels of the IMAGE_W x IMAGE_H image.
EYE_LEFT_XY = (24.0, 16.0)
EYE_RIGHT_XY = (72.0, 16.0)
# The face features: the face box's four numbers, then head yaw, pitch and roll (face_features).
BOX_FEATURES = 4
POSE_FEATURES = 3
FACE_FEATURES = BOX_FEATURES + POSE_FEATURES
# Head-pose angles enter the model divided by this many degrees (a typical pose is then a fraction of one).
POSE_SCALE_DEG = 30.0
# The corner-to-corner width of each eye in the strip, pixels: a landmark crop puts each eye's two
# corners at EYE_*_XY -+ EYE_WIDTH_PX / 2 (the synthetic renderer's eye_width_px, whose eyes sit at
# EYE_*_XY with their corners there too). The nasal gap between the eyes is then 8 px, which no real face
# has at this scale: the strip is two eyes each normalised on its own, not one picture of a face.
EYE_WIDTH_PX = 40.0
# The face box from the two eye centres (landmark backend), the renderer's mapping in its mean numbers:
# a square of side FACE_W_PER_IOD x the eye-centre distance, centred FACE_DROP_PER_IOD x that distance
# below the eye line's midpoint (synth: face_w_cm 14.5 and face_drop_cm 2.0 over a mean iod_cm of 6.3).
FACE_W_PER_IOD = 14.5 / 6.3
FACE_DROP_PER_IOD = 2.0 / 6.3


def face_features(face_x, face_y, face_w, face_h, frame_w, frame_h, yaw=0.0, pitch=0.0, roll=0.0) -> np.ndarray:
    """FACE_FEATURES numbers for the face: where its box sits in its (mirrored) source frame, centre x and
    y relative to the frame centre (in frame widths/heights, so -0.5..0.5) and the box's width and height
    as fractions of the frame; then the head pose in the selfie convention (selfie_pose, degrees) divided
    by POSE_SCALE_DEG. A face without a pose (Haar, imported crops, old data sets) has zeros there.
    Works on scalars or arrays; returns (..., FACE_FEATURES) float32."""
    fx, fy, fw, fh, w, h, *pose = np.broadcast_arrays(
        *(np.asarray(v, np.float64) for v in (face_x, face_y, face_w, face_h, frame_w, frame_h, yaw, pitch, roll)))
    feats = np.stack([(fx + fw / 2) / w - 0.5, (fy + fh / 2) / h - 0.5, fw / w, fh / h,
                      *(p / POSE_SCALE_DEG for p in pose)], axis=-1)
    return feats.astype(np.float32)


# A horizontal mirror (x -> -x) changes the sign of yaw and roll, not of pitch (selfie_pose says why), and
# of the face box's horizontal offset: what the training flip and the camera-to-selfie mapping both apply.
POSE_MIRROR_SIGNS = (-1.0, 1.0, -1.0)
MIRROR_SIGNS = np.array([-1.0, 1.0, 1.0, 1.0, *POSE_MIRROR_SIGNS], np.float32)


def mirror_face_features(face):
    """The face features of the mirrored view ((..., FACE_FEATURES) numpy array or torch tensor, a new one):
    what the training flip must hand the model along with the mirrored strip and col -> COL_MAX - col."""
    if hasattr(face, "new_tensor"):
        return face * face.new_tensor(MIRROR_SIGNS)
    return np.asarray(face) * MIRROR_SIGNS


# ----------------------------------------------------------------------------------------------
# Head pose. One convention for the model's pose features, shared by the renderer and the webcam crop:
# the selfie view, in which x grows to the person's right (screen right, the mirrored camera image's right),
# y grows down and z points from the screen towards the person. A head at rest looks along -z.
#   yaw > 0:   the nose turns to the person's right (towards screen right / mirrored-image right);
#   pitch > 0: the nose turns up;
#   roll > 0:  the eye line turns clockwise in the mirrored image (the person's right eye lower).
# head_rotation builds R = Rz(roll) Ry(-yaw) Rx(-pitch) (textbook right-handed Rx, Ry, Rz): pitch first,
# then yaw, then roll, the order landmarks.head_pose decomposes in. pose_angles inverts it.


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation of a head with this pose (degrees, selfie convention above): its columns are the
    head's own x (towards its right eye), y (down its face) and z (backwards out of its skull) axes."""
    return _rz(math.radians(roll)) @ _ry(-math.radians(yaw)) @ _rx(-math.radians(pitch))


def pose_angles(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a rotation built as head_rotation builds it (|yaw| < 90)."""
    R = np.asarray(R, np.float64)
    yaw = math.degrees(math.asin(float(np.clip(R[2, 0], -1.0, 1.0))))
    pitch = -math.degrees(math.atan2(R[2, 1], R[2, 2]))
    roll = math.degrees(math.atan2(R[1, 0], R[0, 0]))
    return yaw, pitch, roll


def selfie_pose(camera_pose) -> tuple[float, float, float]:
    """The model's pose features (degrees, selfie convention) from landmarks.head_pose's (yaw, pitch, roll),
    which is measured in the raw, unmirrored camera image with the same decomposition. Mirroring the image
    (x -> -x) turns a rotation R into M R M with M = diag(-1, 1, 1): Rz(a) -> Rz(-a), Ry(a) -> Ry(-a),
    Rx(a) -> Rx(a). So yaw and roll change sign and pitch does not: a nose turned towards raw image-right
    is turned to the person's left. A pose that is missing or not finite (solvePnP failed) gives zeros."""
    if camera_pose is None:
        return 0.0, 0.0, 0.0
    yaw, pitch, roll = (float(v) for v in camera_pose)
    if not all(math.isfinite(v) for v in (yaw, pitch, roll)):
        return 0.0, 0.0, 0.0
    return tuple(s * v for s, v in zip(POSE_MIRROR_SIGNS, (yaw, pitch, roll), strict=True))


def face_box_from_eyes(left_eye, right_eye) -> tuple[float, float, float, float]:
    """(x, y, w, h) square face box, frame pixels, from the image-left and image-right eye centres by
    the fixed mapping above ("down" = perpendicular to the eye line, towards the mouth)."""
    (x0, y0), (x1, y1) = left_eye, right_eye
    dx, dy = x1 - x0, y1 - y0
    iod = float(np.hypot(dx, dy))
    if iod < 1e-6:
        raise ValueError(f"eye centres {left_eye} and {right_eye} coincide: no face box")
    cx = (x0 + x1) / 2 - dy / iod * FACE_DROP_PER_IOD * iod
    cy = (y0 + y1) / 2 + dx / iod * FACE_DROP_PER_IOD * iod
    side = FACE_W_PER_IOD * iod
    return (cx - side / 2, cy - side / 2, side, side)
