"""Renders matched to one camera: the camera's mean eye strip, and training photos brought to it.

benchmarks/domain_gap.py measures how well a classifier tells rendered strips from real ones, and
docs/domain-gap.md what it separates on: the two classes' mean strips (a logistic regression on pixels can
use nothing else), in directions the renders hardly vary in, and the real sources differ from each other
as much as from the renders (one camera's mean corrects the renders for that camera and not for another).
What every user has is their own camera: the frames of a calibration or a capture, unlabelled if need be.
`gazeneg adapt FRAMES --out camera.npz` cuts their eye strips with the live pipeline and keeps their mean
(a CameraMean, 32x96x3 numbers: no face can be read back from it, and it stays on the user's machine);
`gazeneg train --camera-mean camera.npz` then multiplies each epoch's augmented training photos, pixel by
pixel, by one gain image so that their mean strip is the camera's (adapt_to_camera): every photo gets the
same gain, so what varies from photo to photo (the pupil, the label's signal) stays where it was, and what
the renderer gets wrong on average for this camera (the seam between the two eyes' crops, where lids,
lashes and cheek sit, the light) is gone from the training set's mean. This is first-moment matching, the
simplest of the domain-adaptation corrections (CORAL matches the second moment too; docs/domain-gap.md
says why the mean is what matters here, and why a gain rather than an added image)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gazeneg.errors import GazenegError
from gazeneg.files import atomic_write_bytes
from gazeneg.strip import CHANNELS, IMAGE_H, IMAGE_W

FORMAT = "gazeneg-camera-mean-1"
# Fewer strips than this give a mean whose frame-to-frame noise is comparable to the correction itself
# (a strip's pixels vary by about 0.1 of the range from frame to frame; the mean over n by 0.1 / sqrt(n)).
MIN_STRIPS = 20


class CameraMeanError(GazenegError, ValueError):
    """A camera-mean file that cannot be used, or too few strips to make one."""


@dataclass(frozen=True)
class CameraMean:
    """The mean eye strip of one camera's frames: (IMAGE_H, IMAGE_W, 3) float32 in 0..255 (RGB), from n
    strips; source says where they came from (a folder's path, for the user's own record)."""

    mean: np.ndarray
    n: int
    source: str

    def save(self, path) -> Path:
        """Written atomically as .npz (numbers only: np.load reads it without pickle)."""
        path = Path(path)
        buf = io.BytesIO()
        np.savez_compressed(buf, mean=self.mean.astype(np.float32),
                            info=np.array(json.dumps({"format": FORMAT, "n": self.n, "source": self.source})))
        atomic_write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, path) -> CameraMean:
        path = Path(path)
        if not path.is_file():
            raise CameraMeanError(f"{path}: no such camera-mean file (make one with `gazeneg adapt FRAMES --out {path}`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                mean, info = z["mean"], json.loads(str(z["info"]))
        except Exception as e:  # not an npz, or not ours: one line naming the file
            raise CameraMeanError(f"{path}: not a camera-mean file written by `gazeneg adapt` ({e})") from None
        if info.get("format") != FORMAT:
            raise CameraMeanError(f"{path}: format {info.get('format')!r}, expected {FORMAT!r}")
        if mean.shape != (IMAGE_H, IMAGE_W, CHANNELS) or not np.isfinite(mean).all():
            raise CameraMeanError(f"{path}: the mean strip is {mean.shape}, expected ({IMAGE_H}, {IMAGE_W}, "
                                  f"{CHANNELS}) finite numbers")
        return cls(mean.astype(np.float32), int(info.get("n", 0)), str(info.get("source", "")))


def fit_camera_mean(strips: np.ndarray, source: str = "", *, min_strips: int = MIN_STRIPS) -> CameraMean:
    """The CameraMean of uint8 RGB strips (N, IMAGE_H, IMAGE_W, 3), cut by the live pipeline."""
    strips = np.asarray(strips)
    if strips.ndim != 4 or strips.shape[1:] != (IMAGE_H, IMAGE_W, CHANNELS):
        raise CameraMeanError(f"{source or 'strips'}: expected eye strips of shape (N, {IMAGE_H}, {IMAGE_W}, "
                              f"{CHANNELS}), got {strips.shape}")
    if len(strips) < min_strips:
        raise CameraMeanError(f"{source or 'strips'}: {len(strips)} eye strips with both eyes open; a camera's "
                              f"mean needs at least {min_strips} (more frames, or frames where the face is found)")
    return CameraMean(strips.astype(np.float64).mean(0).astype(np.float32), len(strips), source)


# The largest gain a pixel may get: where the photos' mean is near black, the camera's mean over it would
# otherwise ask for an unbounded one.
MAX_GAIN = 16.0


def adapt_to_camera(images: np.ndarray, camera: CameraMean, *, rounds: int = 4) -> np.ndarray:
    """uint8 strips (N, H, W, 3), each multiplied pixel by pixel by the same gain image, so their mean strip
    becomes the camera's: light falls on a face multiplicatively (the room's light and shadows, the lens's
    vignetting), and a gain keeps a dark frame's dark pupil distinct where adding one image would clip it to
    black. The gain starts at camera.mean / images.mean(0); where a multiplied pixel would pass 255 and is
    clipped, the gain is raised by what the clip took from the mean (`rounds` times), so the pixels that can
    still move carry it. What remains is the rounding to whole grey levels (at most half a level) and pixels
    clipped in every photo."""
    f = images.astype(np.float32)
    gain = camera.mean / np.maximum(f.mean(0), 1.0)
    for _ in range(rounds):
        gain *= camera.mean / np.maximum(np.clip(f * np.minimum(gain, MAX_GAIN), 0, 255).mean(0), 1.0)
    return np.clip(np.rint(f * np.minimum(gain, MAX_GAIN)), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------------
# The other direction, at test time: a camera's strips brought to the model's training mean

# Where a checkpoint keeps the mean strip of the photos its model was trained on (TrainState.input_mean).
INPUT_MEAN_KEY = "input_mean"


def input_mean_of(ckpt: dict, path) -> np.ndarray:
    """The mean training strip a checkpoint's model saw, (IMAGE_H, IMAGE_W, 3) float32 in 0..255 (the first
    epoch's photos after the look, jitter, flip and any --camera-mean, as gazeneg train records it)."""
    mean = (ckpt.get("extra") or {}).get(INPUT_MEAN_KEY)
    if mean is None:
        raise CameraMeanError(f"{path}: the checkpoint does not record the mean strip its model was trained on "
                              "(written before gazeneg kept it, or a model that reads no pixels); retrain it "
                              "(gazeneg train, or make demo) to use --camera-mean with it")
    mean = np.asarray(mean.numpy() if hasattr(mean, "numpy") else mean, np.float32)
    if mean.shape != (IMAGE_H, IMAGE_W, CHANNELS) or not np.isfinite(mean).all():
        raise CameraMeanError(f"{path}: its recorded training mean strip is {mean.shape}, expected ({IMAGE_H}, "
                              f"{IMAGE_W}, {CHANNELS}) finite numbers")
    return mean


class CameraNormaliser:
    """A camera's eye strips brought to the model's training mean at test time: each strip multiplied pixel by
    pixel by one gain image, input_mean / camera.mean (bounded to [1/MAX_GAIN, MAX_GAIN]), so that the
    camera's mean strip becomes the mean strip the model was trained on. The inverse of adapt_to_camera: the
    same first-moment correction, applied to the camera's strips instead of to the renders, so the model and
    its accuracy on the renders are untouched and no retraining is needed; what varies from frame to frame
    (the pupil) is scaled, never moved. `gazeneg live --camera-mean FILE` and the benchmarks use it."""

    def __init__(self, camera: CameraMean, input_mean: np.ndarray):
        self.camera = camera
        self.gain = np.clip(np.asarray(input_mean, np.float32) / np.maximum(camera.mean, 1.0),
                            1.0 / MAX_GAIN, MAX_GAIN).astype(np.float32)

    def __call__(self, strips: np.ndarray) -> np.ndarray:
        """uint8 strips (N, IMAGE_H, IMAGE_W, 3) or one (IMAGE_H, IMAGE_W, 3) -> the same shape, uint8."""
        return apply_gain(strips, self.gain)


def apply_gain(strips: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """uint8 strips multiplied pixel by pixel by one gain image (IMAGE_H, IMAGE_W, 3), rounded and clipped."""
    return np.clip(np.rint(np.asarray(strips, np.float32) * gain), 0, 255).astype(np.uint8)
