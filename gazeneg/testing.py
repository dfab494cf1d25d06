"""Test and benchmark fixtures that need no download: a real face photograph that ships inside the
scikit-image wheel (a dev dependency) and frames of it moving like a person in front of a webcam."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

# scikit-image's astronaut.png (Eileen Collins, NASA, public domain), 512x512. Eye boxes measured by
# hand on the photo, (x0, y0, x1, y1) in its pixels: the eye with the smaller x first.
ASTRONAUT_EYE_BOXES = ((192, 95, 215, 106), (235, 98, 259, 108))
ASTRONAUT_HEAD = (90, 20, 360, 260)  # (x0, y0, x1, y1): the head and shoulders, pasted into test frames


def astronaut_path() -> Path:
    """Path of skimage/data/astronaut.png inside the installed scikit-image package (a dev dependency).
    Found without importing skimage, so nothing can try to fetch it."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed (pip install -e '.[dev]'): the test photo "
                                "skimage/data/astronaut.png ships inside its wheel")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "astronaut.png"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed scikit-image")
    return path


def moving_face_frames(photo_bgr: np.ndarray, n: int, *, size=(640, 480), head=ASTRONAUT_HEAD, scale: float = 1.6,
                       amplitude: float = 5.0, seed: int = 0):
    """n frames of size (w, h) with the `head` region of photo_bgr, scaled, pasted on a gray background
    and moving a few pixels (slow sinusoids plus 1 px jitter), like a person sitting still in front of
    a webcam. Yields (frame_bgr, (ox, oy)): photo pixel (x, y) lands near (x * scale + ox, y * scale + oy)."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = head
    patch = cv2.resize(photo_bgr[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    W, H = size
    ph, pw = min(patch.shape[0], H - 12), min(patch.shape[1], W - 12)
    patch = patch[:ph, :pw]
    bx, by = (W - pw) // 2, (H - ph) // 2
    for i in range(n):
        dx = int(round(amplitude * math.sin(i / 7.0) + rng.integers(-1, 2)))
        dy = int(round(0.6 * amplitude * math.cos(i / 11.0) + rng.integers(-1, 2)))
        dx, dy = int(np.clip(dx, -bx, W - pw - bx)), int(np.clip(dy, -by, H - ph - by))
        frame = np.full((H, W, 3), 110, np.uint8)
        frame[by + dy:by + dy + ph, bx + dx:bx + dx + pw] = patch
        yield frame, (bx + dx - x0 * scale, by + dy - y0 * scale)
