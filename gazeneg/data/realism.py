"""The "webcam look": a per-frame randomisation that makes a rendered eye strip look like one a real
webcam gives, applied to training photos (data.augment) before the usual jitter.

Real strips cut by gazeneg's own pipeline from webcam frames (benchmarks/domain_gap.py measures them) are
dim (mean grey about a third), low in contrast, soft (defocus, motion, a small face upscaled), noisy and
JPEG-blocky, colour-cast by the room's light, often darker on one side, with a greyish sclera and
eyelashes and glasses glare the renderer may not draw. Each effect below has a probability, and its
strength is drawn per frame, so the training set covers the clean render and a range of webcams around
it. albumentations supplies every effect it has; five scene effects it lacks are written here as
albumentations transforms (so one Compose, one seed, one random stream drives them all):

  ScleraTint     the bright, colourless pixels (the sclera) pulled towards a greyish, yellowish or pinkish
                 tone a shade darker: a render's sclera is near white, a webcam's is grey
  IrisTint       the saturated pixels (the iris) shifted in hue and their saturation scaled: iris colour
  Eyelashes      dark thin strokes along each eye's upper lid, where the strip puts the eyes (strip.EYE_*)
  SideShadow     one side of the strip darker by up to 60% (albumentations' Illumination, used too for
                 gentle gradients, caps its effect at a 1.5 side-to-side ratio)
  GlassesGlare   a soft bright elongated streak across part of the strip: a lens reflection

Iris size is a renderer parameter per person (synth.SubjectParams.iris_radius); at strip level it cannot
be changed without moving the pupil, which is the label's signal, so it is not randomised here.
Geometry (where the eyes sit, the pose) stays as rendered: every effect here is photometric or a
local overlay, and none moves the iris."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from gazeneg.strip import EYE_LEFT_XY, EYE_RIGHT_XY, EYE_WIDTH_PX, IMAGE_H, IMAGE_W

# The order follows the light's path: the scene (eye colours, lashes, glare, shading), the lens (blur),
# the sensor (exposure, white balance, noise), then the pipeline (low resolution upscaled, JPEG).


def _smooth(x, lo, hi):
    """0 below lo, 1 above hi, linear between (a soft mask)."""
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


class ScleraTint(A.ImageOnlyTransform):
    """Pull the bright, low-saturation pixels (the sclera, and any white glint) towards a tint: a grey
    of value `value_range` (fraction of 255) tinted by up to `tint` per channel, mixed in by `amount_range`."""

    def __init__(self, value_range=(0.45, 0.8), tint=0.1, amount_range=(0.5, 1.0), p=0.5):
        super().__init__(p=p)
        self.value_range, self.tint, self.amount_range = value_range, tint, amount_range

    def get_params(self):
        g = self.random_generator
        v = g.uniform(*self.value_range)
        # a greyish tone, leaning warm (a webcam's sclera takes the skin's and the room's colour)
        colour = np.clip(v * (1.0 + g.uniform(-self.tint, self.tint, 3) + np.array([self.tint, 0, -self.tint])),
                         0, 1) * 255.0
        return {"colour": colour.astype(np.float32), "amount": float(g.uniform(*self.amount_range))}

    def apply(self, img, colour=None, amount=1.0, **params):
        f = img.astype(np.float32)
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        s, v = hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
        m = (_smooth(v, 0.55, 0.75) * _smooth(-s, -0.35, -0.15) * amount)[..., None]
        # Only ever darker: a pixel already below the tint keeps its value.
        target = np.minimum(f, colour)
        return np.clip(f * (1 - m) + target * m + 0.5, 0, 255).astype(np.uint8)


class IrisTint(A.ImageOnlyTransform):
    """Shift the hue of the saturated pixels (the iris, and some of the skin) by up to `hue_shift`
    (OpenCV hue units, 0..180), scale their saturation by `sat_range` and their value by `value_range`
    (a webcam's iris is darker and duller than a render's)."""

    def __init__(self, hue_shift=25, sat_range=(0.3, 1.1), value_range=(0.5, 1.0), p=0.5):
        super().__init__(p=p)
        self.hue_shift, self.sat_range, self.value_range = hue_shift, sat_range, value_range

    def get_params(self):
        g = self.random_generator
        return {"dh": float(g.uniform(-self.hue_shift, self.hue_shift)), "ks": float(g.uniform(*self.sat_range)),
                "kv": float(g.uniform(*self.value_range))}

    def apply(self, img, dh=0.0, ks=1.0, kv=1.0, **params):
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
        m = _smooth(hsv[..., 1] / 255.0, 0.25, 0.45)
        h = np.mod(hsv[..., 0] + dh * m, 180.0)
        s = np.clip(hsv[..., 1] * (1 + (ks - 1) * m), 0, 255)
        v = hsv[..., 2] * (1 + (kv - 1) * m)
        out = np.stack([h, s, v], -1).astype(np.uint8)
        return cv2.cvtColor(out, cv2.COLOR_HSV2RGB)


class Eyelashes(A.ImageOnlyTransform):
    """`count_range` dark thin strokes along each eye's upper lid: an arc over the eye's corners
    (strip.EYE_*_XY -+ EYE_WIDTH_PX / 2) peaking `lid_px` above the eye centre, each stroke 1-4 px long,
    leaning outwards, drawn with opacity `alpha_range`."""

    def __init__(self, count_range=(6, 16), lid_px=(4.0, 8.0), alpha_range=(0.3, 0.8), p=0.3):
        super().__init__(p=p)
        self.count_range, self.lid_px, self.alpha_range = count_range, lid_px, alpha_range

    def get_params(self):
        g = self.random_generator
        eyes = []
        for cx, cy in (EYE_LEFT_XY, EYE_RIGHT_XY):
            n = int(g.integers(self.count_range[0], self.count_range[1] + 1))
            t = g.uniform(-0.85, 0.85, n)                       # along the lid, -1..1 corner to corner
            lid = g.uniform(*self.lid_px)
            x0 = cx + t * EYE_WIDTH_PX / 2
            y0 = cy - lid * (1 - t ** 2)
            length = g.uniform(1.0, 4.0, n)
            ang = np.deg2rad(-90 + 40 * t + g.uniform(-15, 15, n))  # upwards, leaning outwards
            eyes.append(np.stack([x0, y0, x0 + length * np.cos(ang), y0 + length * np.sin(ang)], 1))
        return {"lines": np.concatenate(eyes), "alpha": float(g.uniform(*self.alpha_range)),
                "shade": float(g.uniform(0.05, 0.3))}

    def apply(self, img, lines=None, alpha=0.5, shade=0.1, **params):
        sy, sx = img.shape[0] / IMAGE_H, img.shape[1] / IMAGE_W
        mask = np.zeros(img.shape[:2], np.uint8)
        pts = np.rint(lines.reshape(-1, 2, 2) * np.array([sx, sy]) * 16).astype(np.int32)  # 4 fractional bits
        cv2.polylines(mask, list(pts), False, 255, 1, cv2.LINE_AA, shift=4)
        m = (mask.astype(np.float32) / 255.0 * alpha)[..., None]
        f = img.astype(np.float32)
        return np.clip(f * (1 - m) + f * shade * m + 0.5, 0, 255).astype(np.uint8)


class SideShadow(A.ImageOnlyTransform):
    """One side of the strip darker: the light from one side of the face, the other eye in shadow. A soft
    horizontal step (a logistic of width `soft_range` strip widths, centred at `centre_range` of the width)
    multiplies the left or the right side by 1 - depth, depth in `depth_range`. albumentations'
    Illumination (used too, for gentle gradients at any angle) caps its intensity at 0.2, a side-to-side
    ratio of 1.5 at most; real strips show deeper shadows."""

    def __init__(self, depth_range=(0.2, 0.5), centre_range=(0.3, 0.7), soft_range=(0.04, 0.2), p=0.3):
        super().__init__(p=p)
        self.depth_range, self.centre_range, self.soft_range = depth_range, centre_range, soft_range

    def get_params(self):
        g = self.random_generator
        return {"left": bool(g.random() < 0.5), "depth": float(g.uniform(*self.depth_range)),
                "centre": float(g.uniform(*self.centre_range)), "soft": float(g.uniform(*self.soft_range))}

    def apply(self, img, left=True, depth=0.4, centre=0.5, soft=0.1, **params):
        w = img.shape[1]
        x = (np.arange(w, dtype=np.float32) + 0.5) / w
        z = (centre - x) / soft if left else (x - centre) / soft
        mult = 1.0 - depth / (1.0 + np.exp(-z))
        f = img.astype(np.float32) * mult[None, :, None]
        return np.clip(f + 0.5, 0, 255).astype(np.uint8)


class GlassesGlare(A.ImageOnlyTransform):
    """A soft, bright, elongated streak (a Gaussian ellipse, `length_px` long, `width_px` wide, any
    angle) at a random place on the strip, added towards white with opacity `alpha_range`: the
    reflection of a window or screen in a pair of glasses."""

    def __init__(self, length_px=(12.0, 60.0), width_px=(2.0, 8.0), alpha_range=(0.15, 0.6), p=0.15):
        super().__init__(p=p)
        self.length_px, self.width_px, self.alpha_range = length_px, width_px, alpha_range

    def get_params(self):
        g = self.random_generator
        return {"cx": float(g.uniform(0, IMAGE_W)), "cy": float(g.uniform(0, IMAGE_H)),
                "L": float(g.uniform(*self.length_px)), "Wd": float(g.uniform(*self.width_px)),
                "ang": float(g.uniform(0, np.pi)), "alpha": float(g.uniform(*self.alpha_range))}

    def apply(self, img, cx=0.0, cy=0.0, L=20.0, Wd=4.0, ang=0.0, alpha=0.3, **params):
        h, w = img.shape[:2]
        sy, sx = h / IMAGE_H, w / IMAGE_W
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dx, dy = (xx + 0.5) / sx - cx, (yy + 0.5) / sy - cy
        u = dx * np.cos(ang) + dy * np.sin(ang)
        v = -dx * np.sin(ang) + dy * np.cos(ang)
        m = (alpha * np.exp(-0.5 * ((u / (L / 2)) ** 2 + (v / (Wd / 2)) ** 2)))[..., None]
        f = img.astype(np.float32)
        return np.clip(f * (1 - m) + 255.0 * m + 0.5, 0, 255).astype(np.uint8)


def webcam_look(seed: int | None = None) -> A.Compose:
    """The per-frame webcam look as one albumentations Compose on uint8 RGB strips (any size; the
    overlays scale with it). Deterministic for a seed: the same seed and images give the same output."""
    return A.Compose(
        [
            # the scene
            IrisTint(p=0.5),
            ScleraTint(p=0.8),
            Eyelashes(p=0.3),
            GlassesGlare(p=0.12),
            # shading: gentle gradients at any angle, and deep one-sided shadows
            A.Illumination(mode="linear", effect_type="darken", intensity_range=(0.05, 0.2), p=0.25),
            SideShadow(p=0.25),
            # the lens and the motion
            A.OneOf([A.Defocus(radius=(1, 2), alias_blur=(0.1, 0.3)),
                     A.GaussianBlur(sigma_limit=(0.4, 1.2), blur_limit=0),
                     A.MotionBlur(blur_limit=(3, 5))], p=0.75),
            # the sensor: exposure (dim frames are common: the range leans darker), contrast, tone
            A.RandomBrightnessContrast(brightness_limit=(-0.3, 0.05), contrast_limit=(-0.4, 0.05), p=0.8),
            A.RandomGamma(gamma_limit=(90, 150), p=0.4),
            # white balance and colour cast, and the washed-out colour of a cheap sensor
            A.PlanckianJitter(mode="blackbody", p=0.4),
            A.RGBShift(r_shift_limit=(-12, 12), g_shift_limit=(-16, 6), b_shift_limit=(-12, 12), p=0.5),
            A.HueSaturationValue(hue_shift_limit=0, sat_shift_limit=(-45, 5), val_shift_limit=0, p=0.5),
            A.OneOf([A.ISONoise(color_shift=(0.01, 0.03), intensity=(0.05, 0.25)),
                     A.GaussNoise(std_range=(0.01, 0.04))], p=0.5),
            # the pipeline: a small face upscaled, then the camera's or the stream's JPEG
            A.Downscale(scale_range=(0.4, 0.8), interpolation_pair={"downscale": cv2.INTER_AREA,
                                                                    "upscale": cv2.INTER_LINEAR}, p=0.4),
            A.ImageCompression(quality_range=(30, 90), p=0.5),
        ],
        seed=seed,
    )


def apply_webcam_look(images: np.ndarray, seed: int) -> np.ndarray:
    """The webcam look on every image of (N, H, W, 3) uint8 RGB (each frame its own draw); a new array.
    Deterministic for a seed."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"apply_webcam_look expects (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    if len(images) == 0:
        return images.copy()
    tf = webcam_look(seed)
    return np.stack([tf(image=img)["image"] for img in images])
