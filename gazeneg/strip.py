"""The model's input geometry, in one place: the aligned eye strip's size and where the two eye
centres sit in it, and the four face-box features. data.py (the dataset format), face.py (the webcam
crop) and synth.py (the renderer) all read these from here, so none of them imports another for it."""

from __future__ import annotations

import numpy as np

IMAGE_H = 32
IMAGE_W = 96
CHANNELS = 3
# Where the two eye centres sit in the aligned strip, in (x, y) pixels of the IMAGE_W x IMAGE_H image.
EYE_LEFT_XY = (24.0, 16.0)
EYE_RIGHT_XY = (72.0, 16.0)
FACE_FEATURES = 4


def face_features(face_x, face_y, face_w, face_h, frame_w, frame_h) -> np.ndarray:
    """Four numbers for where the face sits in its source frame: centre x and y relative to the frame
    centre (in frame widths/heights, so -0.5..0.5) and the face box's width and height as fractions
    of the frame. Works on scalars or arrays; returns (..., 4) float32."""
    fx, fy, fw, fh, w, h = (np.asarray(v, dtype=np.float64) for v in
                            (face_x, face_y, face_w, face_h, frame_w, frame_h))
    feats = np.stack([(fx + fw / 2) / w - 0.5, (fy + fh / 2) / h - 0.5, fw / w, fh / h], axis=-1)
    return feats.astype(np.float32)
