"""Training augmentation: albumentations for photometric and small geometric jitter, and a
label-aware horizontal flip (the image mirrors, the two eyes swap sides, col -> 15 - col, and the face
box's horizontal offset, the head's yaw and its roll change sign: strip.mirror_face_features).
Before them, on request, the per-frame webcam look (data.realism): on by default for synthetic data."""

from __future__ import annotations

import math

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from gazeneg import grid
from gazeneg.data.dataset import PIXEL_MEAN, PIXEL_STD
from gazeneg.data.realism import apply_webcam_look
from gazeneg.strip import mirror_face_features


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


REALISM_SETTINGS = ("auto", "on", "off")
# The webcam look's seed comes from the epoch's augmentation seed through its own SeedSequence key, so
# turning the look on or off leaves the jitter and the flip of every frame as they were (a paired comparison).
REALISM_KEY = 0x7EA1


def realism_enabled(setting: str, source: str) -> bool:
    """Whether the webcam look applies: "on", "off", or "auto" = on for a data set whose meta.json
    source is "synthetic" (the renders: real photos already look like webcam photos)."""
    if setting not in REALISM_SETTINGS:
        raise ValueError(f"realism {setting!r}: expected one of {', '.join(REALISM_SETTINGS)}")
    return setting == "on" or (setting == "auto" and source == "synthetic")


def realism_seed(seed: int) -> int:
    """The webcam look's seed for an epoch whose augmentation seed is `seed`."""
    return int(np.random.SeedSequence(int(seed), spawn_key=(REALISM_KEY,)).generate_state(1)[0])


def augment_epoch(images: np.ndarray, targets: np.ndarray, face: np.ndarray, *, seed: int,
                  photometric: bool = True, flip: bool = True, realism: bool = False):
    """Augment a whole epoch's training set once (uint8 (N, H, W, 3)); returns new arrays.
    realism: first the webcam look (data.realism), each frame its own draw. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)  # seed: already one stream of seeding.py (train.fit passes it)
    out = apply_webcam_look(images, realism_seed(seed)) if realism else images
    if photometric:
        tf = build_transform(int(rng.integers(2**31)))
        out = np.stack([tf(image=img)["image"] for img in out])
    targets = targets.copy()
    face = face.copy()
    if flip:
        m = rng.random(len(images)) < 0.5
        out = out.copy() if out is images else out
        out[m] = out[m][:, :, ::-1]
        targets[m, 1] = grid.COL_MAX - targets[m, 1]
        face[m] = mirror_face_features(face[m])
    return out, targets, face


class DeviceAugment:
    """The same augmentation as build_transform + the label-aware flip, in torch on whatever device
    holds the batch: on a GPU the images never leave it (no per-epoch CPU pass, no host copy). Used
    where the training device is CUDA (config augment_backend "auto"), or on request ("torch").

    Per sample, with albumentations' probabilities and ranges: affine (translate x +-3%, y +-5%, scale
    0.95-1.05, rotate +-3 degrees, border replicated) p 0.7; brightness and contrast +-0.2 p 0.7;
    gamma 0.8-1.25 p 0.3; Gaussian noise sd 0.01-0.04 p 0.3; then the flip p 0.5. Deterministic for a
    seed on a given device (CUDA and CPU random streams differ, so the two backends agree in
    distribution, not sample by sample)."""

    def __init__(self, seed: int, device, *, photometric: bool = True, flip: bool = True):
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(int(seed) % (2**63))
        self.photometric, self.flip = photometric, flip

    def _u(self, n, lo, hi):
        """(n,) uniform in [lo, hi)."""
        return torch.rand(n, generator=self.gen, device=self.device) * (hi - lo) + lo

    def _p(self, n, p):
        """(n,) booleans, each True with probability p."""
        return torch.rand(n, generator=self.gen, device=self.device) < p

    def __call__(self, x_u8, targets, face):
        """(B, H, W, 3) uint8, (B, 2), (B, F) on the augmenter's device -> normalised (B, 3, H, W) float32
        images (as data.normalize_images), targets and face features with the flip applied."""
        n, h, w = x_u8.shape[:3]
        x = x_u8.permute(0, 3, 1, 2).float().div_(255.0)
        targets, face = targets.clone(), face.clone()

        def per_image(v):  # (n,) -> (n, 1, 1, 1), to broadcast over an image
            return v[:, None, None, None]

        if self.photometric:
            on = self._p(n, 0.7)
            ang = self._u(n, -3.0, 3.0) * (math.pi / 180)
            s = self._u(n, 0.95, 1.05)
            tx, ty = self._u(n, -0.03, 0.03) * 2, self._u(n, -0.05, 0.05) * 2   # normalised coords span 2
            # affine_grid maps output to input coordinates: the inverse of "scale, rotate, then shift".
            # Rotation in pixel units (aspect-corrected), like cv2's warpAffine on a non-square crop.
            a = h / w
            cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
            theta = torch.stack([torch.stack([cos, -sin * a, -tx], 1), torch.stack([sin / a, cos, -ty], 1)], 1)
            eye = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], device=self.device).expand(n, 2, 3)
            theta = torch.where(on[:, None, None], theta, eye)
            grid_ = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid_, mode="bilinear", padding_mode="border", align_corners=False)
            on, alpha, beta = (per_image(v) for v in (self._p(n, 0.7), self._u(n, 0.8, 1.2), self._u(n, -0.2, 0.2)))
            x = torch.where(on, x * alpha + beta, x).clamp_(0, 1)
            on, gamma = per_image(self._p(n, 0.3)), per_image(self._u(n, 0.8, 1.25))
            x = torch.where(on, x.clamp(min=1e-6) ** gamma, x)
            on, sd = per_image(self._p(n, 0.3)), per_image(self._u(n, 0.01, 0.04))
            noise = torch.randn(x.shape, generator=self.gen, device=self.device)
            x = torch.where(on, x + noise * sd, x).clamp_(0, 1)
        if self.flip:
            m = self._p(n, 0.5)
            x = torch.where(per_image(m), x.flip(3), x)
            targets[m, 1] = grid.COL_MAX - targets[m, 1]
            face[m] = mirror_face_features(face[m])
        return x.sub_(PIXEL_MEAN).div_(PIXEL_STD), targets, face
