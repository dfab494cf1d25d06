"""Training augmentation: albumentations for photometric and small geometric jitter, and a
label-aware horizontal flip (the image mirrors, the two eyes swap sides, col -> 15 - col and the face
box's horizontal offset changes sign)."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from . import grid


def build_transform(seed: int) -> A.Compose:
    # Geometric jitter stays small: the crop already aligns the eyes; the iris moving ~1 px per cell
    # is the signal, so shifts much larger than the crop's own jitter would only add noise.
    return A.Compose(
        [
            A.Affine(translate_percent={"x": (-0.03, 0.03), "y": (-0.05, 0.05)}, scale=(0.95, 1.05),
                     rotate=(-3, 3), border_mode=cv2.BORDER_REPLICATE, p=0.7),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.7),
            A.RandomGamma(gamma_limit=(80, 125), p=0.3),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.3),
        ],
        seed=seed,
    )


def augment_epoch(images: np.ndarray, targets: np.ndarray, face: np.ndarray, *, seed: int,
                  photometric: bool = True, flip: bool = True):
    """Augment a whole epoch's training set once (uint8 (N, H, W, 3)); returns new arrays.
    Deterministic for a given seed."""
    rng = np.random.default_rng([seed, 104729])
    out = images
    if photometric:
        tf = build_transform(int(rng.integers(2**31)))
        out = np.stack([tf(image=img)["image"] for img in images])
    targets = targets.copy()
    face = face.copy()
    if flip:
        m = rng.random(len(images)) < 0.5
        out = out.copy() if out is images else out
        out[m] = out[m][:, :, ::-1]
        targets[m, 1] = grid.COL_MAX - targets[m, 1]
        face[m, 0] = -face[m, 0]
    return out, targets, face
