"""A small generated "your own data" folder: one person, three sessions, 2:1 one-eye photos whose iris
moves with the target, labelled in screen pixels of a 1440x900 screen, the four corners included."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

SCREEN = (1440, 900)
SESSIONS = ("s1", "s2", "s3")


def eye_photo(x: float, y: float, rng: np.random.Generator, size=(64, 32)) -> np.ndarray:
    """BGR one-eye photo: skin, sclera, and an iris displaced towards screen pixel (x, y)."""
    w, h = size
    img = np.full((h, w, 3), (120, 150, 190), np.uint8)
    cv2.ellipse(img, (w // 2, h // 2), (w * 2 // 5, h * 2 // 5), 0, 0, 360, (235, 235, 235), -1)
    u, v = x / SCREEN[0] - 0.5, y / SCREEN[1] - 0.5
    centre = (round(w / 2 + u * w * 0.45), round(h / 2 + v * h * 0.35))
    cv2.circle(img, centre, h // 4, (60, 40, 20), -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def make_photo_folder(root, *, per_session: int = 20, seed: int = 0) -> tuple[Path, Path]:
    """root/photos/*.png and root/labels.csv (filename,x,y,subject,session); returns both paths."""
    root = Path(root)
    photos = root / "photos"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    W, H = SCREEN
    corners = [(0, 0), (W, 0), (0, H), (W, H)]
    with open(root / "labels.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["filename", "x", "y", "subject", "session"])
        for s in SESSIONS:
            points = corners + [(float(rng.uniform(0, W)), float(rng.uniform(0, H)))
                                for _ in range(per_session - len(corners))]
            for i, (x, y) in enumerate(points):
                name = f"{s}_{i:03d}.png"
                cv2.imwrite(str(photos / name), eye_photo(x, y, rng))
                wr.writerow([name, f"{x:.1f}", f"{y:.1f}", "me", s])
    return photos, root / "labels.csv"


def write_face_frames(folder, n: int, *, name: str = "{i:04d}.png", seed: int = 0) -> list[str]:
    """folder/<name> for n webcam-like frames of a real face (scikit-image's astronaut pasted into 640x480
    and moving a few pixels, face.moving_face_frames); returns the file names. Skips the test when the
    astronaut photo is not installed."""
    import pytest

    from gazeneg.testing import astronaut_path, moving_face_frames

    try:
        photo = cv2.imread(str(astronaut_path()), cv2.IMREAD_COLOR)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, (f, _) in enumerate(moving_face_frames(photo, n, seed=seed)):
        names.append(name.format(i=i))
        cv2.imwrite(str(folder / names[-1]), f)
    return names
