"""The model's input geometry, in one place: the aligned eye strip's size, where the two eyes sit in
it, and the face-box features. face.py (the webcam crop) reads it from here and data.py re-exports it
(synth.py and the rest read it from data), so face.py and data.py need not import each other."""

from __future__ import annotations

import numpy as np

IMAGE_H = 32
IMAGE_W = 96
CHANNELS = 3
# Where the two eye centres sit in the aligned strip, in (x, y) pixels of the IMAGE_W x IMAGE_H image.
EYE_LEFT_XY = (24.0, 16.0)
EYE_RIGHT_XY = (72.0, 16.0)
FACE_FEATURES = 4
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


def face_features(face_x, face_y, face_w, face_h, frame_w, frame_h) -> np.ndarray:
    """Four numbers for where the face sits in its source frame: centre x and y relative to the frame
    centre (in frame widths/heights, so -0.5..0.5) and the face box's width and height as fractions
    of the frame. Works on scalars or arrays; returns (..., 4) float32."""
    fx, fy, fw, fh, w, h = (np.asarray(v, dtype=np.float64) for v in
                            (face_x, face_y, face_w, face_h, frame_w, frame_h))
    feats = np.stack([(fx + fw / 2) / w - 0.5, (fy + fh / 2) / h - 0.5, fw / w, fh / h], axis=-1)
    return feats.astype(np.float32)


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
