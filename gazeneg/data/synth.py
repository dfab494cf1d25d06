"""The built-in synthetic eye data set: gazeneg's default data, rendered from a small physical model
with exact labels.

The world (cm): x to the right as the user sees the screen, y down, z from the screen towards the
user; the screen's centre is the origin. A head sits near (0, 0, distance_cm), turned by a small head
pose (strip.head_rotation: yaw, pitch, roll); each eyeball sits at the head position +- half the
interocular distance along the head's own x axis and rotates so that its own line of sight passes through
the point it looks at (vergence). The strip is cut along the eye corners, which turn with the head, so
what it shows is the line of sight in the head's frame (R_head^T x gaze direction): a turned head moves
the irises as a shifted gaze would, and only the pose features tell the two apart. The iris is a disc on the eyeball's sphere: seen from
the front it is an ellipse whose centre moves by sqrt(R^2 - r^2) * sin(angle) and whose minor axis
shrinks by cos(angle). The upper lid follows vertical gaze.

The eye strip is drawn as the webcam crop would deliver it: mirrored like a selfie view, so image x
grows with screen x (looking at a larger col moves the iris right), eye centres near data.EYE_LEFT_XY
and data.EYE_RIGHT_XY, IMAGE_H x IMAGE_W RGB. The face box is the head projected by a 640x480 pinhole
camera at the top centre of the screen (also mirrored), so head motion (parallax) is recoverable from it.
The head pose features are the pose that camera sees (strip.pose_angles of the head's rotation in the
camera's axes, so a head facing the screen reads pitch about -22 deg, nose below the camera), plus
measurement noise, in the selfie convention strip.selfie_pose gives the webcam's landmark pose.

Per person (renderer version 3): where the camera sits (above the screen's top edge, below its bottom edge or
beside it: camera_place_p), the offset a generic solvePnP face model reads on this face (pose_bias), the
neutral posture (a slouch, a head held a little turned: posture), and the angle between each eye's optical
axis (what the iris shows) and its visual axis (what the eye looks along), about 5 deg temporal (kappa). The
model sees the pose relative to the person's median (strip.relative_pose), so the camera's place and the
bias change nothing it keys on; posture and kappa are per-person offsets only a calibration can remove.
Each frame's eye landmark features (strip.eye_features: iris relative to the corners, lid opening) come from
the exact geometry plus Gaussian noise of the size the landmark model shows on real frames (docs/face.md).

Nuisances per frame: head position and pose, crop shift / scale / roll, lighting gradient, gamma, white balance,
blur, sensor noise, blinks (eyes closed, label kept), fixation jitter and rare lapses (the eyes look
elsewhere, the label stays the target cell centre). truth.csv beside labels.csv records where the
eyes really looked.

    path = ensure_default_dataset()                      # renders once, then reuses
    render_dataset("data/mine", n_subjects=24, frames_per_cell=2, seed=0)
    sample = render_sample(sample_subject(rng), 2, 11, rng)
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gazeneg import grid
from gazeneg.data.dataset import (
    EYE_LEFT_XY,
    EYE_RIGHT_XY,
    IMAGE_H,
    IMAGE_W,
    DatasetError,
    DatasetWriter,
    new_meta,
)
from gazeneg.files import atomic_write_bytes, atomic_write_text
from gazeneg.strip import RELATIVE_POSE_LIMIT_DEG, eye_features, head_rotation, pose_angles

RENDERER = "gazeneg.data.synth"
# 2: head pose (rotation of the head, pose features in labels.csv). 3: per-person camera place, pose bias,
# posture and kappa; eye landmark features in labels.csv. 4: webcam-eye geometry (a narrower lid opening, a
# larger iris, grey sclera, the brow above the strip, lid and inner-corner shadow, a bright cheek), the iris
# drawn by its angle to the camera (iris_view "camera").
RENDERER_VERSION = 4
SESSION = "synth"
REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_ENV = "GAZENEG_DATA_DIR"


@dataclass(frozen=True)
class SynthConfig:
    """Everything the renderer does that is not drawn per subject. Lengths in cm, strip sizes in px of
    the IMAGE_W x IMAGE_H strip, ranges are (low, high) of a uniform draw unless said otherwise."""

    # world and screen
    screen_w_cm: float = 60.0
    screen_h_cm: float = 34.0
    distance_cm: float = 50.0                    # nominal eye-to-screen distance
    head_range_cm: tuple = (3.0, 3.0, 5.0)       # per-frame head offset, uniform +- (x, y, z)
    # per-frame head pose (yaw, pitch, roll) in degrees, selfie convention (strip.head_rotation): Gaussian
    # with these sds, clipped at head_rotation_deg. A person at a webcam turns the head by a few degrees;
    # 4 deg of yaw moves the irises about as far as looking one cell further does.
    # about the person's neutral posture; the limits are the model's trained range (strip.RELATIVE_POSE_LIMIT_DEG)
    head_rotation_sd_deg: tuple = (4.0, 3.0, 2.0)
    head_rotation_deg: tuple = RELATIVE_POSE_LIMIT_DEG
    pose_noise_deg: float = 1.0                  # sd of the recorded pose features (a landmark pose's jitter)
    # per person: the neutral posture (Gaussian sds, yaw/pitch/roll deg; the eyes still find the targets, so
    # only the eye-in-head angles change), the bias of the measured pose (a generic solvePnP face model on
    # this face: the astronaut near frontal reads pitch -16 deg, a person at a desk +21), and where the
    # camera sits: above the screen's top edge, below its bottom edge, beside its left or right edge.
    posture_sd_deg: tuple = (2.0, 3.0, 1.5)
    pose_bias_sd_deg: tuple = (3.0, 8.0, 2.0)
    camera_place_p: tuple = (0.6, 0.2, 0.2)     # above, below, beside
    camera_x_sd_cm: float = 3.0                  # above/below: offset from the screen's vertical mid-line
    # angle kappa: each eye's optical axis (which the iris shows) is its visual axis turned temporally by
    # about 5 deg (sd over people), and up or down by a per-person angle; each eye differs a little more
    kappa_deg: float = 5.0
    kappa_sd_deg: float = 1.5
    kappa_v_sd_deg: float = 1.5
    kappa_eye_sd_deg: float = 0.5
    # sds of the eye landmark features' noise (iris x and y in eye widths, lid opening / eye width). The iris
    # model's median error against hand marks on 25 real stills is 1.5% of the eye distance (docs/face.md),
    # about 0.031 eye widths radially, 0.026 per axis; re-imaging a real frame slightly differently scatters
    # the iris by 0.009-0.013 and the lid opening by 0.005-0.008 (benchmarks/real_webcam.py --feature-noise),
    # so the opening's error is taken at the same 2.4x of its scatter as the iris's.
    eye_feature_noise: tuple = (0.025, 0.025, 0.02)
    # camera for the face box (iTracker's face grid): mirrored pinhole at the screen's top centre,
    # aimed at the nominal head
    frame_w: int = 640
    frame_h: int = 480
    camera_hfov_deg: float = 60.0
    camera_above_cm: float = 1.0                 # above the screen's top edge
    face_drop_cm: float = 2.0                    # face box centre below the eye line (the nose)
    face_box_noise_px: float = 1.5               # detector jitter, sd of the box centre
    # eyes in the strip; per-subject draws scale these
    eyeball_radius_px: float = 16.0
    iris_radius_px: float = 8.0
    eye_width_px: float = 40.0
    eye_height_px: float = 11.5
    lid_follow: float = 0.7                      # upper lid moves this fraction of the iris's vertical shift
    # The eyeball's centre sits this far below the line through the eye corners. Measured on real faces
    # (benchmarks/face_landmarks.py, 25 stills of people looking at the camera): in the corner-cut strip the
    # iris of an eye looking at the camera sits 1.9-2.1 px above the corner line. With the camera 18 cm above
    # the screen's centre at 50 cm, the eye turns up 19.8 deg, which lifts the iris 4.8 px above the eyeball's
    # centre: a 2.8 px drop puts it 2.0 px above the corners, as on the real faces (docs/face.md).
    eyeball_drop_px: float = 2.8
    # How the iris sits relative to the eye corners in the image. "head" (renderer version 3): by the eye-in-head
    # angle, eyeballs eyeball_drop_px below the corner line. "camera" (the default): by the angle between the eye's optical
    # axis and its direction to the camera (the eyeball's centre lies near the corners' depth, so a camera below
    # the screen sees the irises of a person looking at the screen above the corner line, and a head turn with
    # the gaze held moves the iris little); an eye looking at the camera shows its iris camera_gaze_iris_px
    # below the corner line (-2.0: 2 px above, as on the 25 real stills above). With the camera's place drawn
    # per person, that place becomes a per-person offset only calibration removes (docs/face.md).
    iris_view: str = "camera"
    camera_gaze_iris_px: float = -2.0
    # crop jitter, like a landmark-aligned crop's misalignment: Gaussian, mostly small, clipped at the
    # limits (shift as a fraction of the strip's width / height, scale as a fraction, roll in degrees).
    # Typical misalignment stays small because the iris moves only ~1.1 px per cell: with uniform
    # +-10% shifts a small CNN trained for minutes cannot reach half a cell on new faces.
    shift_sd_frac: float = 0.02
    shift_frac: float = 0.10
    scale_sd: float = 0.025
    scale_frac: float = 0.10
    roll_sd_deg: float = 1.5
    roll_deg: float = 5.0
    # what the eyes really do; the label stays the target cell centre
    blink_rate: float = 0.02
    fixation_sd_cells: float = 0.2               # Gaussian, per axis
    lapse_rate: float = 0.01                     # look at a uniformly random point of the grid instead
    # photometric
    brightness: tuple = (0.7, 1.15)
    light_gradient: float = 0.35                 # +- multiplicative change from the strip's centre to its edge
    white_balance: float = 0.06                  # +- per channel
    gamma: tuple = (0.75, 1.35)
    blur_sigma: tuple = (0.0, 0.7)               # output px
    noise_sd: tuple = (1.0, 6.0)                 # sensor noise sd, 0..255 units
    supersample: int = 3                         # draw at this many times the strip size, then INTER_AREA

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"SynthConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("screen_w_cm", "screen_h_cm", "distance_cm", "eyeball_radius_px", "iris_radius_px",
                     "eye_width_px", "eye_height_px", "camera_hfov_deg"):
            if not getattr(self, name) > 0:
                bad(name, "must be positive")
        for name in ("blink_rate", "lapse_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "must be a probability in [0, 1]")
        for name in ("fixation_sd_cells", "face_box_noise_px", "shift_frac", "scale_frac", "roll_deg",
                     "shift_sd_frac", "scale_sd", "roll_sd_deg",
                     "light_gradient", "white_balance", "lid_follow", "camera_above_cm", "eyeball_drop_px",
                     "pose_noise_deg", "camera_x_sd_cm", "kappa_sd_deg", "kappa_v_sd_deg", "kappa_eye_sd_deg"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if self.scale_frac >= 0.5 or self.shift_frac >= 0.5:
            bad("scale_frac" if self.scale_frac >= 0.5 else "shift_frac", "must be below 0.5")
        if self.iris_radius_px >= self.eyeball_radius_px:
            bad("iris_radius_px", f"must be smaller than eyeball_radius_px={self.eyeball_radius_px}")
        if len(self.head_range_cm) != 3 or any(v < 0 for v in self.head_range_cm):
            bad("head_range_cm", "must be three non-negative numbers (x, y, z)")
        for name in ("head_rotation_sd_deg", "head_rotation_deg"):
            v = getattr(self, name)
            if len(v) != 3 or any(not 0 <= x < 60 for x in v):
                bad(name, "must be three numbers (yaw, pitch, roll) in [0, 60) degrees")
        for name in ("posture_sd_deg", "pose_bias_sd_deg", "eye_feature_noise"):
            v = getattr(self, name)
            if len(v) != 3 or any(x < 0 for x in v):
                bad(name, "must be three non-negative numbers")
        p = self.camera_place_p
        if len(p) != 3 or any(x < 0 for x in p) or abs(sum(p) - 1.0) > 1e-6:
            bad("camera_place_p", "must be three probabilities (above, below, beside) summing to 1")
        if self.head_range_cm[2] >= self.distance_cm:
            bad("head_range_cm", f"depth range must stay below distance_cm={self.distance_cm}")
        for name in ("brightness", "gamma", "blur_sigma", "noise_sd"):
            lo, hi = getattr(self, name)
            if lo > hi or lo < 0 or (name in ("brightness", "gamma") and lo <= 0):
                bad(name, "must be (low, high) with 0 <= low <= high (brightness and gamma: low > 0)")
        if self.iris_view not in ("camera", "head"):
            bad("iris_view", "must be 'camera' or 'head'")
        if not (isinstance(self.supersample, int) and 1 <= self.supersample <= 8):
            bad("supersample", "must be an int in 1..8")
        if self.frame_w < 16 or self.frame_h < 16:
            bad("frame_w" if self.frame_w < 16 else "frame_h", "must be at least 16 px")

    def noiseless(self) -> SynthConfig:
        """The same geometry with every per-frame nuisance off: head at the nominal position, no crop
        jitter, no lighting change, no noise or blur, no blinks, the eyes look exactly at the target."""
        return dataclasses.replace(
            self, head_range_cm=(0.0, 0.0, 0.0), head_rotation_sd_deg=(0.0, 0.0, 0.0), pose_noise_deg=0.0,
            eye_feature_noise=(0.0, 0.0, 0.0),
            face_box_noise_px=0.0, shift_sd_frac=0.0, scale_sd=0.0,
            roll_sd_deg=0.0, blink_rate=0.0, fixation_sd_cells=0.0, lapse_rate=0.0, brightness=(1.0, 1.0),
            light_gradient=0.0, white_balance=0.0, gamma=(1.0, 1.0), blur_sigma=(0.0, 0.0),
            noise_sd=(0.0, 0.0))

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


DEFAULT_CONFIG = SynthConfig()
# The built-in default set: 24 people x 144 cells x 2 frames. Held-out-subject error falls with the
# number of training people far faster than with frames per person (16 people: 0.75 cells; 24: 0.52).
DEFAULT_SUBJECTS = 24
DEFAULT_FRAMES_PER_CELL = 2


# ----------------------------------------------------------------------------------------------
# Subjects

# Palettes in RGB 0..255.
_SKIN_LIGHT = np.array([236.0, 200.0, 178.0])
_SKIN_DARK = np.array([92.0, 62.0, 48.0])
_IRIS = {"dark brown": (62, 40, 26), "brown": (100, 64, 36), "hazel": (122, 96, 52),
         "green": (84, 112, 70), "blue": (84, 122, 164), "grey": (116, 126, 136)}
_IRIS_P = (0.3, 0.25, 0.15, 0.1, 0.12, 0.08)     # roughly how common each is
_HAIR = {"black": (28, 24, 22), "dark brown": (58, 40, 30), "brown": (98, 68, 44),
         "blond": (168, 138, 94), "red": (132, 62, 36)}


@dataclass(frozen=True)
class SubjectParams:
    """One synthetic person. Strip sizes in px, colours RGB 0..255, world sizes in cm."""

    eyeball_radius: float
    iris_radius: float
    pupil_frac: float           # pupil radius / iris radius
    eye_half_w: float           # half the eye opening's width
    upper_h: float              # upper lid's height above the eye line at its peak
    lower_h: float              # lower lid's depth below the eye line at its lowest
    canthal_tilt: float         # outer corner this much higher than the inner one
    lid_skew: float             # upper lid peaks nasally, lower lid dips temporally
    eye_dx: float               # eyes sit this much further apart than nominal (each side)
    eye_dy: float               # and this much lower
    iod_cm: float               # interocular distance in the world
    face_w_cm: float            # face box width in the world
    skin_rgb: tuple
    sclera_rgb: tuple
    iris_rgb: tuple
    iris_name: str
    limbal_ring: float          # darkening at the iris's rim, 0..1
    iris_texture: float         # strength of the radial striations
    iris_phase: float
    brow_rgb: tuple
    hair_name: str
    brow_alpha: float
    brow_height: float          # of the brow's lower edge, at its peak, above the eye line
    brow_dx: float              # the peak sits this far towards the temple
    brow_thickness: float
    brow_arch: float            # how far the brow's ends drop below its peak
    lash_darkness: float
    lash_width: float
    crease_gap: float           # lid crease this far above the upper lid margin
    crease_strength: float
    socket_depth: float         # darkening of the eye socket
    camera_cm: tuple = (0.0, -18.0, 0.0)   # the webcam's position in the world (screen plane, z = 0)
    pose_bias: tuple = (0.0, 0.0, 0.0)     # the measured pose's offset, a turn in the head's axes (deg)
    posture: tuple = (0.0, 0.0, 0.0)       # neutral head pose in the world (yaw, pitch, roll deg)
    kappa: tuple = ((0.0, 0.0), (0.0, 0.0))  # per eye (image-left, image-right): (temporal, up) deg

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def sample_subject(rng: np.random.Generator, config: SynthConfig = DEFAULT_CONFIG) -> SubjectParams:
    """Draw one person. Sizes share a common scale (bigger eyes have bigger irises and eyeballs, so a
    model can read the gain from the image) plus a few percent of independent variation."""
    u = rng.uniform
    k = u(0.97, 1.03)
    iod = float(np.clip(rng.normal(6.3, 0.15), 5.9, 6.7))
    skin_t = u(0.0, 1.0)
    skin = (1 - skin_t) * _SKIN_LIGHT + skin_t * _SKIN_DARK
    skin = skin * (1 + rng.uniform(-0.04, 0.04, 3))
    iris_name = list(_IRIS)[int(rng.choice(len(_IRIS), p=_IRIS_P))]
    iris = np.array(_IRIS[iris_name], float) * (1 + rng.uniform(-0.12, 0.12, 3))
    hair_name = list(_HAIR)[int(rng.integers(len(_HAIR)))]
    brow = np.array(_HAIR[hair_name], float) * (1 + rng.uniform(-0.1, 0.1, 3))
    sclera = np.array([236.0, 230.0, 222.0]) * u(0.55, 0.8) * np.array([1.0, u(0.9, 1.0), u(0.86, 1.0)])

    def rgb(a):
        return tuple(round(float(v), 2) for v in np.clip(a, 0, 255))

    return SubjectParams(
        eyeball_radius=config.eyeball_radius_px * k * u(0.985, 1.015),
        iris_radius=config.iris_radius_px * k * u(0.98, 1.02),
        pupil_frac=u(0.34, 0.48),
        eye_half_w=config.eye_width_px / 2 * k * u(0.94, 1.06),
        upper_h=config.eye_height_px * 0.55 * k * u(0.94, 1.06),
        lower_h=config.eye_height_px * 0.45 * k * u(0.94, 1.06),
        canthal_tilt=u(0.0, 1.5),
        lid_skew=u(0.05, 0.25),
        eye_dx=u(-1.5, 1.5),
        eye_dy=u(-0.3, 0.3),
        iod_cm=iod,
        face_w_cm=14.5 * u(0.985, 1.015),
        skin_rgb=rgb(skin),
        sclera_rgb=rgb(sclera),
        iris_rgb=rgb(iris),
        iris_name=iris_name,
        limbal_ring=u(0.2, 0.55),
        iris_texture=u(0.05, 0.18),
        iris_phase=u(0, 2 * math.pi),
        brow_rgb=rgb(brow),
        hair_name=hair_name,
        brow_alpha=u(0.6, 0.95),
        # Brow height varies little: a CNN happily uses the brow as its vertical reference, so brow
        # height that varies a lot per person turns into a per-person vertical bias on new faces.
        brow_height=u(17.0, 20.0),
        brow_dx=u(-1.0, 3.0),
        brow_thickness=u(2.0, 4.5),
        brow_arch=u(0.5, 2.0),
        lash_darkness=u(0.6, 0.95),
        lash_width=u(1.0, 2.0),
        crease_gap=u(3.0, 5.0),
        crease_strength=u(0.15, 0.4),
        socket_depth=u(0.15, 0.35),
        **_person_geometry(rng, config),
    )


def _person_geometry(rng: np.random.Generator, config: SynthConfig) -> dict:
    """The per-person draws of renderer version 3 (drawn after every earlier one, so the appearance of
    subject i is what version 2 drew): camera place, pose bias, posture, kappa."""
    place = int(rng.choice(3, p=np.asarray(config.camera_place_p, float) / sum(config.camera_place_p)))
    side = 1.0 if rng.random() < 0.5 else -1.0
    xoff = float(np.clip(rng.normal(0.0, 1.0), -2.5, 2.5)) * config.camera_x_sd_cm
    yb = rng.uniform(-0.4, 0.4) * config.screen_h_cm
    h2, w2 = config.screen_h_cm / 2, config.screen_w_cm / 2
    cam = [(xoff, -h2 - config.camera_above_cm, 0.0), (xoff, h2 + config.camera_above_cm + 1.0, 0.0),
           (side * (w2 + 2.0), yb, 0.0)][place]
    bias = rng.standard_normal(3) * np.asarray(config.pose_bias_sd_deg, float)
    posture = np.clip(rng.standard_normal(3) * np.asarray(config.posture_sd_deg, float), -10.0, 10.0)
    k = rng.standard_normal(6)
    kh = config.kappa_deg + config.kappa_sd_deg * k[0]
    kv = config.kappa_v_sd_deg * k[1]
    e = config.kappa_eye_sd_deg * k[2:]
    kappa = ((kh + e[0], kv + e[1]), (kh + e[2], kv + e[3]))

    def r(v):
        return tuple(round(float(x), 4) for x in v)

    return dict(camera_cm=r(cam), pose_bias=r(bias), posture=r(posture),
                kappa=tuple(r(x) for x in kappa))


# ----------------------------------------------------------------------------------------------
# Geometry


def screen_point_cm(row, col, config: SynthConfig = DEFAULT_CONFIG) -> np.ndarray:
    """World (x, y, 0) in cm of continuous grid point (row, col); the screen's centre is the origin."""
    ch, cw = grid.cell_size_cm(config.screen_w_cm, config.screen_h_cm)
    return np.array([(col - grid.CENTRE[1]) * cw, (row - grid.CENTRE[0]) * ch, 0.0])


def eye_directions(head_cm, iod_cm: float, target_cm, rotation=None) -> np.ndarray:
    """(2, 3) unit lines of sight, in world axes, of the image-left and image-right eye (-/+ iod/2 from the
    head along the head's own x axis: column 0 of `rotation`, world x when None) towards target_cm. They
    point at the screen, so z < 0."""
    head = np.asarray(head_cm, float)
    x_axis = np.array([1.0, 0.0, 0.0]) if rotation is None else np.asarray(rotation, float)[:, 0]
    eyes = head + np.outer([-iod_cm / 2, iod_cm / 2], x_axis)
    v = np.asarray(target_cm, float) - eyes
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def camera_axes(config: SynthConfig = DEFAULT_CONFIG, camera_cm=None) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), axes (3, 3)) of the mirrored pinhole camera at camera_cm (default: the screen's top
    centre, camera_above_cm above its edge), aimed at the nominal head: the rows of axes are its x (frame
    right, mirrored: world x when the camera is straight ahead), y (frame down) and z (forward, towards the
    person) in world coordinates; a proper rotation with no roll (x stays in the world's horizontal plane)."""
    cam = (np.array([0.0, -config.screen_h_cm / 2 - config.camera_above_cm, 0.0]) if camera_cm is None
           else np.asarray(camera_cm, float))
    aim = np.array([0.0, config.face_drop_cm, config.distance_cm]) - cam
    zc = aim / np.linalg.norm(aim)
    xc = np.array([zc[2], 0.0, -zc[0]])      # horizontal, perpendicular to zc; world x for a centred camera
    xc /= np.linalg.norm(xc)
    yc = np.cross(zc, xc)                    # frame y points (mostly) down
    return cam, np.stack([xc, yc, zc])


def camera_pose(rotation, config: SynthConfig = DEFAULT_CONFIG, camera_cm=None) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees, selfie convention, of a head with world rotation `rotation` as the
    camera sees it: the pose of the head's axes in the camera's axes, which a landmark model's head pose
    (after strip.selfie_pose) measures. A head facing the screen reads pitch < 0 when the camera is above it,
    > 0 when below, and yaw != 0 when it is beside the screen."""
    _, axes = camera_axes(config, camera_cm)
    return pose_angles(axes @ np.asarray(rotation, float))


def face_box(head_cm, face_w_cm: float, config: SynthConfig = DEFAULT_CONFIG, camera_cm=None):
    """(x, y, w, h) in frame pixels of the face box a mirrored pinhole camera at camera_cm (default the
    screen's top centre), aimed at the nominal head, sees for a head (eye-line midpoint) at head_cm. Square box."""
    cam, (xc, yc, zc) = camera_axes(config, camera_cm)
    f = config.frame_w / (2 * math.tan(math.radians(config.camera_hfov_deg) / 2))
    d = np.asarray(head_cm, float) + np.array([0.0, config.face_drop_cm, 0.0]) - cam
    depth = float(d @ zc)
    u = config.frame_w / 2 + f * float(d @ xc) / depth
    v = config.frame_h / 2 + f * float(d @ yc) / depth
    w = f * face_w_cm / depth
    return u - w / 2, v - w / 2, w, w


# ----------------------------------------------------------------------------------------------
# Rendering one frame


@dataclass
class Sample:
    """One rendered frame. image: (IMAGE_H, IMAGE_W, 3) uint8 RGB. face: (x, y, w, h) and frame:
    (W, H) in source-frame pixels. gaze: the (row, col) the eyes really looked at (the label is the
    target). iris_xy: (2, 2) iris centres (x, y) of the image-left and image-right eye in strip
    coordinates where pixel j spans [j, j + 1). head_cm: (3,) world head position. head_pose: the head's
    true (yaw, pitch, roll) in the world, degrees; pose: what the camera measures of it (camera_pose from the person's
    camera, plus the person's pose bias and noise), the features written to labels.csv. eye_feats: the eye
    landmark features (strip.eye_features) of the exact geometry plus the landmark noise."""

    image: np.ndarray
    face: tuple
    frame: tuple
    gaze: tuple
    iris_xy: np.ndarray
    head_cm: np.ndarray
    head_pose: tuple
    pose: tuple
    blink: bool
    lapse: bool
    eye_feats: np.ndarray = None


_GRID_CACHE: dict = {}


def _pixel_centres(s: int):
    """Strip coordinates of the supersampled pixel centres: x (1, W*s) and y (H*s, 1), float32."""
    if s not in _GRID_CACHE:
        x = ((np.arange(IMAGE_W * s) + 0.5) / s).astype(np.float32)[None, :]
        y = ((np.arange(IMAGE_H * s) + 0.5) / s).astype(np.float32)[:, None]
        _GRID_CACHE[s] = (x, y)
    return _GRID_CACHE[s]


def _ramp(d, s):
    """Soft inside-mask from a signed distance d (strip px, positive inside): a one-supersample-pixel
    linear edge, so shapes move smoothly by sub-pixel amounts after the INTER_AREA downscale."""
    return np.clip(d * s + 0.5, 0.0, 1.0)


@dataclass
class _Draw:
    """Everything random about one frame, drawn from the rng in one fixed order (render_sample's contract:
    whatever the config, the same draws happen in the same order)."""
    gaze: np.ndarray
    lapse: bool
    blink: bool
    closure: float
    head: np.ndarray               # head centre, cm
    head_pose: np.ndarray          # (yaw, pitch, roll) degrees
    rot: np.ndarray                # the head's rotation matrix
    pose: np.ndarray               # the pose as the generic face model measures it, with its noise
    face: tuple                    # face box in the camera frame, with detector jitter
    shift: np.ndarray              # crop jitter: strip px
    scale: float
    roll: float                    # radians
    pupil: float
    glint_off: np.ndarray
    glint_gain: float
    brightness: float
    grad: np.ndarray
    wb: np.ndarray
    gamma: float
    blur: float
    noise_sd: float
    noise: np.ndarray
    feat_noise: np.ndarray


def _draw_frame(sp: SubjectParams, target_row: float, target_col: float, rng: np.random.Generator,
                cfg: SynthConfig, head_pose) -> _Draw:
    # what the eyes really do
    fix = rng.normal(0.0, 1.0, 2) * cfg.fixation_sd_cells
    lapse = bool(rng.random() < cfg.lapse_rate)
    elsewhere = rng.random(2) * (grid.ROW_MAX, grid.COL_MAX)
    gaze = elsewhere if lapse else np.array([target_row, target_col], float) + fix
    blink = bool(rng.random() < cfg.blink_rate)
    closure = rng.uniform(0.85, 1.0)
    head = np.array([0.0, 0.0, cfg.distance_cm]) + rng.uniform(-1, 1, 3) * np.asarray(cfg.head_range_cm)
    lim = np.asarray(cfg.head_rotation_deg, float)
    drawn_pose = np.clip(rng.standard_normal(3) * np.asarray(cfg.head_rotation_sd_deg, float), -lim, lim)
    head_pose = np.asarray(sp.posture, float) + drawn_pose if head_pose is None else np.asarray(head_pose, float)
    rot = head_rotation(*head_pose)
    # the generic face model's bias is a fixed turn in the head's own axes: measured = camera @ head @ bias
    pose = (np.asarray(camera_pose(rot @ head_rotation(*sp.pose_bias), cfg, sp.camera_cm))
            + rng.standard_normal(3) * cfg.pose_noise_deg)
    # face box in the camera frame, with detector jitter
    fx, fy, fw, fh = face_box(head, sp.face_w_cm, cfg, sp.camera_cm)
    box_noise = rng.normal(0.0, 1.0, 3)
    fx += box_noise[0] * cfg.face_box_noise_px
    fy += box_noise[1] * cfg.face_box_noise_px
    dw = fw * box_noise[2] * cfg.face_box_noise_px / 100.0   # ~1.5% size jitter at the default
    face = (fx - dw / 2, fy - dw / 2, fw + dw, fh + dw)
    # crop jitter: canonical coords q -> strip coords p = S R (q - c0) + c0 + t
    jit = rng.standard_normal(4)
    shift = np.clip(jit[:2] * cfg.shift_sd_frac, -cfg.shift_frac, cfg.shift_frac) * np.array([IMAGE_W, IMAGE_H])
    scale = 1.0 + float(np.clip(jit[2] * cfg.scale_sd, -cfg.scale_frac, cfg.scale_frac))
    roll = math.radians(float(np.clip(jit[3] * cfg.roll_sd_deg, -cfg.roll_deg, cfg.roll_deg)))
    # per-frame appearance
    return _Draw(gaze=gaze, lapse=lapse, blink=blink, closure=closure, head=head, head_pose=head_pose, rot=rot,
                 pose=pose, face=face, shift=shift, scale=scale, roll=roll,
                 pupil=sp.pupil_frac * rng.uniform(0.9, 1.1) * sp.iris_radius,
                 glint_off=np.array([rng.uniform(-3, 3), rng.uniform(-4, -1)]), glint_gain=rng.uniform(0.3, 0.9),
                 brightness=rng.uniform(*cfg.brightness), grad=rng.uniform(-1, 1, 2) * cfg.light_gradient,
                 wb=1 + rng.uniform(-1, 1, 3) * cfg.white_balance, gamma=rng.uniform(*cfg.gamma),
                 blur=rng.uniform(*cfg.blur_sigma), noise_sd=rng.uniform(*cfg.noise_sd),
                 noise=rng.standard_normal((IMAGE_H, IMAGE_W, 3), dtype=np.float32),
                 feat_noise=rng.standard_normal(6) * np.tile(np.asarray(cfg.eye_feature_noise, float), 2))


@dataclass
class _EyeView:
    """Where each eye looks and how the camera sees its iris, in the head's axes (no randomness)."""
    lid_y: np.ndarray              # (2,) the lids follow the eye's rotation in the head
    iris_off: np.ndarray           # (2, 2) iris centre offset, canonical strip px
    axis: np.ndarray               # (2, 2) unit direction of the iris disc's foreshortening
    cos_t: np.ndarray              # (2,) foreshortening of the iris disc


def _eye_view(sp: SubjectParams, d: _Draw, cfg: SynthConfig) -> _EyeView:
    # each eye's own line of sight (vergence), in the head's axes (the strip follows the eye corners, which
    # turn with the head)
    dirs = eye_directions(d.head, sp.iod_cm, screen_point_cm(d.gaze[0], d.gaze[1], cfg), d.rot) @ d.rot
    dirs = optical_axes(dirs, sp.kappa)
    limbus = math.sqrt(sp.eyeball_radius ** 2 - sp.iris_radius ** 2)   # iris plane's distance from the centre
    if cfg.iris_view == "camera":
        eyes_w = d.head + np.outer([-sp.iod_cm / 2, sp.iod_cm / 2], d.rot[:, 0])
        to_cam = np.asarray(sp.camera_cm, float) - eyes_w
        view = (to_cam / np.linalg.norm(to_cam, axis=1, keepdims=True)) @ d.rot   # eye -> camera, head axes
        seen = dirs - view
        cos_t = np.clip(np.sum(dirs * view, axis=1), 1e-3, 1.0)
    else:
        seen = dirs - np.array([0.0, 0.0, -1.0])
        cos_t = np.clip(-dirs[:, 2], 1e-3, 1.0)
    proj = np.hypot(seen[:, 0], seen[:, 1])
    axis = np.where(proj[:, None] > 1e-9, seen[:, :2] / np.maximum(proj, 1e-9)[:, None], [[1.0, 0.0]])
    return _EyeView(lid_y=limbus * dirs[:, 1], iris_off=limbus * seen[:, :2], axis=axis, cos_t=cos_t)


class _Canvas:
    """The supersampled canvas in canonical coordinates (qx, qy), each pixel assigned to one eye, with the
    eye-local coordinates (lx towards the temple, ly down) and the lids of this frame."""

    def __init__(self, sp: SubjectParams, d: _Draw, view: _EyeView, cfg: SynthConfig):
        s = self.s = cfg.supersample
        self.c0 = np.array([IMAGE_W / 2, IMAGE_H / 2])
        self.fwd = d.scale * np.array([[math.cos(d.roll), -math.sin(d.roll)], [math.sin(d.roll), math.cos(d.roll)]])
        inv = np.linalg.inv(self.fwd)
        px, py = _pixel_centres(s)
        ox, oy = px - self.c0[0] - d.shift[0], py - self.c0[1] - d.shift[1]
        self.qx = (inv[0, 0] * ox + inv[0, 1] * oy + self.c0[0]).astype(np.float32)
        self.qy = (inv[1, 0] * ox + inv[1, 1] * oy + self.c0[1]).astype(np.float32)
        self.eye_c = np.array([[EYE_LEFT_XY[0] - sp.eye_dx, EYE_LEFT_XY[1] + sp.eye_dy],
                               [EYE_RIGHT_XY[0] + sp.eye_dx, EYE_RIGHT_XY[1] + sp.eye_dy]])
        drop = cfg.camera_gaze_iris_px if cfg.iris_view == "camera" else cfg.eyeball_drop_px
        # eyeball centres (as the camera sees them), relative to the corner line
        self.ball_c = self.eye_c + np.array([0.0, drop])
        mid = float(self.eye_c[:, 0].mean())
        self.side = (self.qx >= mid).astype(np.float32)   # which eye a pixel belongs to: 0 image-left, 1 image-right
        self.lx = (self.qx - self.per_eye(self.eye_c[:, 0])) * self.per_eye([-1.0, 1.0])   # > 0 towards the temple
        self.ly = self.qy - self.per_eye(self.eye_c[:, 1])
        # eyelids: almond curves between the corners at lx = -+eye_half_w
        t = self.t = self.lx / sp.eye_half_w
        self.base = np.clip(1.0 - t * t, 0.0, None)
        self.root = np.sqrt(self.base)
        self.y0 = -0.5 * sp.canthal_tilt * t
        self.lid_shift = self.per_eye(cfg.lid_follow * view.lid_y)
        self.f_up = (0.35 * self.base + 0.65 * self.root) * (1.0 - sp.lid_skew * t)
        y_up_open = self.y0 - sp.upper_h * self.f_up + self.lid_shift
        self.y_lo = (self.y0 + sp.lower_h * self.base * (0.6 + 0.4 * self.root) * (1.0 + 0.5 * sp.lid_skew * t)
                     + 0.25 * self.lid_shift)
        self.y_up = y_up_open + d.closure * (self.y_lo - y_up_open) if d.blink else y_up_open
        self.open_a = _ramp(np.minimum(np.minimum(self.ly - self.y_up, self.y_lo - self.ly),
                                       (1.0 - np.abs(t)) * sp.eye_half_w), s)

    def per_eye(self, values):
        a, b = (float(v) for v in values)
        return a + (b - a) * self.side

    def to_strip(self, q):
        """Canonical coordinates -> strip coordinates of this frame's crop."""
        return (np.asarray(q, float) - self.c0) @ self.fwd.T + self.c0


def _skin_layers(sp: SubjectParams, cv: _Canvas):
    """(shade, brow alpha): socket shading, the inner corner's shade, the bright cheek, lid crease, brow."""
    lx, ly, s = cv.lx, cv.ly, cv.s
    skin_shade = (1.0 - sp.socket_depth * np.exp(-((lx / 18.0) ** 2 + ((ly + 1.0) / 9.0) ** 2))
                  - 0.2 * np.exp(-(((lx + sp.eye_half_w) / 5.0) ** 2 + ((ly + 2.0) / 7.0) ** 2))   # inner corner, by the nose
                  + 0.3 * np.clip((ly - 5.0) / 8.0, 0.0, 1.0))   # the cheek below the eye catches the light
    crease_y = cv.y0 - (sp.upper_h + sp.crease_gap) * cv.f_up + 0.5 * cv.lid_shift
    skin_shade -= sp.crease_strength * np.exp(-(((ly - crease_y) / 0.9) ** 2)) * cv.base
    bx = lx - sp.brow_dx
    brow_half = sp.eye_half_w * 1.15
    thick = sp.brow_thickness * (1.0 - 0.4 * np.clip((bx + brow_half) / (2 * brow_half), 0.0, 1.0))
    yb = -sp.brow_height - thick / 2 + sp.brow_arch * np.minimum((bx / brow_half) ** 2, 1.0)   # brow's mid-line
    brow_a = (_ramp(thick / 2 - np.abs(ly - yb), s) * np.clip((brow_half - np.abs(bx)) * 0.5, 0.0, 1.0)
              * sp.brow_alpha * (0.85 + 0.15 * np.sin(lx * 2.1 + ly * 0.7)))
    return skin_shade, brow_a


def _eyeball_layers(sp: SubjectParams, d: _Draw, view: _EyeView, cv: _Canvas) -> dict:
    """Sclera, iris ellipse, pupil, glint, the upper lid's shade and the lashes, as alpha and shade maps."""
    qx, qy, t, ly, pe, s = cv.qx, cv.qy, cv.t, cv.ly, cv.per_eye, cv.s
    cx = pe(cv.ball_c[:, 0] + view.iris_off[:, 0])
    cy = pe(cv.ball_c[:, 1] + view.iris_off[:, 1])
    ux, uy, ct = pe(view.axis[:, 0]), pe(view.axis[:, 1]), pe(view.cos_t)
    dx, dy = qx - cx, qy - cy
    along = (dx * ux + dy * uy) / ct             # undo the foreshortening: circle coordinates
    across = dy * ux - dx * uy
    rho = np.sqrt(along * along + across * across)
    r = rho / sp.iris_radius
    gx = qx - pe(cv.ball_c[:, 0] + d.glint_off[0] + 0.5 * view.iris_off[:, 0])
    gy = qy - pe(cv.ball_c[:, 1] + d.glint_off[1] + 0.5 * view.iris_off[:, 1])
    # lashes along the upper margin, a faint line along the lower one
    taper = np.clip((1.0 - np.abs(t)) * 4.0, 0.0, 1.0) * np.clip(t + 1.3, 0.0, 1.0)
    lash = sp.lash_darkness * np.exp(-(((ly - cv.y_up + 0.4) / sp.lash_width) ** 2)) * taper
    return dict(
        iris_a=_ramp(sp.iris_radius - rho, s), pupil_a=_ramp(d.pupil - rho, s),
        iris_shade=(0.85 + 0.3 * np.clip(1.0 - r, 0.0, 1.0)
                    - sp.limbal_ring * np.clip((r - 0.75) * 4.0, 0.0, 1.0)
                    + sp.iris_texture * np.sin(9.0 * np.arctan2(across, along) + sp.iris_phase)),
        sclera_shade=1.0 - 0.3 * (t * t) ** 2,      # not t ** 4: numpy has a fast path for squares only
        caruncle=np.clip((-t - 0.84) / 0.1, 0.0, 1.0),
        glint=d.glint_gain * np.exp(-(gx * gx + gy * gy) / 0.5),
        # the upper lid shades the eyeball just below it
        lid_shade=1.0 - 0.5 * np.exp(-np.clip(ly - cv.y_up, 0.0, None) * 0.35),
        lash=np.clip(lash + 0.3 * np.exp(-(((ly - cv.y_lo - 0.3) / 0.6) ** 2)) * taper, 0.0, 1.0))


def _composite(sp: SubjectParams, cv: _Canvas, skin_shade, brow_a, e: dict) -> np.ndarray:
    """Every layer is a flat colour times a shading map, so back-to-front "over" reduces to one weight map
    per colour and a single (3, k) @ (k, pixels) product. Far cheaper than blending (3, H, W) images layer
    by layer (each blend allocates large temporaries). Returns the supersampled (H, W, 3) float image."""
    keep = 1.0 - e["lash"]
    skin_w = (1.0 - cv.open_a) * keep
    eye_w = cv.open_a * keep * e["lid_shade"]
    not_pupil = 1.0 - e["pupil_a"]
    iris_w = e["iris_a"] * not_pupil
    sclera_w = eye_w * (1.0 - e["iris_a"]) * not_pupil
    weights = np.stack([
        skin_w * skin_shade * (1.0 - brow_a),    # skin
        skin_w * brow_a,                         # brow
        sclera_w * e["sclera_shade"] * (1.0 - e["caruncle"]),
        sclera_w * e["caruncle"],                # pink inner corner
        eye_w * iris_w * e["iris_shade"],        # iris
        eye_w * e["pupil_a"],                    # pupil
        eye_w * e["glint"],                      # corneal reflection, white
        e["lash"],                               # lashes
    ]).reshape(8, -1)
    colours = np.array([sp.skin_rgb, sp.brow_rgb, sp.sclera_rgb, (205.0, 120.0, 118.0), sp.iris_rgb,
                        (18.0, 16.0, 16.0), (255.0, 255.0, 255.0), (25.0, 20.0, 20.0)], np.float32)
    return cv2.merge(list((colours.T @ weights).reshape(3, *cv.qx.shape)))


def _camera(img: np.ndarray, d: _Draw, cv: _Canvas) -> np.ndarray:
    """Supersampled canvas -> the strip as the camera gives it: light falloff, white balance, gamma, blur,
    sensor noise, 8 bits."""
    small = cv2.resize(img, (IMAGE_W, IMAGE_H), interpolation=cv2.INTER_AREA) if cv.s > 1 else img
    px1, py1 = _pixel_centres(1)
    light = d.brightness * (1.0 + d.grad[0] * (px1 / cv.c0[0] - 1.0) + d.grad[1] * (py1 / cv.c0[1] - 1.0))
    small = small * light[..., None] * d.wb.astype(np.float32)
    small = 255.0 * (np.clip(small, 0.0, 255.0) / 255.0) ** (1.0 / d.gamma)
    if d.blur > 0.05:
        small = cv2.GaussianBlur(small, (0, 0), d.blur)
    small = small + d.noise * d.noise_sd
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _exact_eye_features(sp: SubjectParams, d: _Draw, view: _EyeView, cv: _Canvas, cfg: SynthConfig):
    """(iris centres in the strip, eye landmark features of the exact geometry plus the landmark noise):
    corners where the lids meet (lx = -+eye_half_w, at the canthal tilt's heights), the lid-to-lid
    distance in the eye's middle (t = 0)."""
    def to_strip(q):
        return cv.to_strip(q) + d.shift

    iris_xy = to_strip(cv.ball_c + view.iris_off)
    eye_c, hw, tilt = cv.eye_c, sp.eye_half_w, 0.5 * sp.canthal_tilt
    corners = [to_strip([[eye_c[0, 0] - hw, eye_c[0, 1] - tilt], [eye_c[0, 0] + hw, eye_c[0, 1] + tilt]]),
               to_strip([[eye_c[1, 0] - hw, eye_c[1, 1] + tilt], [eye_c[1, 0] + hw, eye_c[1, 1] - tilt]])]
    shifts = cfg.lid_follow * view.lid_y
    up, lo = -sp.upper_h + shifts, sp.lower_h + 0.25 * shifts
    opening = (lo - up) * ((1.0 - d.closure) if d.blink else 1.0) / (2 * hw)
    return iris_xy, eye_features(iris_xy, corners, opening) + d.feat_noise


def render_sample(subject: SubjectParams, target_row: float, target_col: float, rng: np.random.Generator,
                  *, config: SynthConfig = DEFAULT_CONFIG, head_pose=None) -> Sample:
    """Render one frame of `subject` asked to look at (target_row, target_col). Every random number is
    drawn from rng in a fixed order whatever the config (_draw_frame), so turning a nuisance off changes
    nothing else. head_pose: (yaw, pitch, roll) degrees to use instead of the person's posture plus the
    drawn variation (the draw still happens).
    The phases: draw the frame's randomness; each eye's view; the canvas and its lids; skin, eyeball and
    lash layers; one composite; the camera; the exact landmark features."""
    cfg, sp = config, subject
    if not (grid.in_grid(target_row, target_col)):
        raise ValueError(f"target ({target_row}, {target_col}) is outside the {grid.ROWS}x{grid.COLS} grid")
    d = _draw_frame(sp, target_row, target_col, rng, cfg, head_pose)
    view = _eye_view(sp, d, cfg)
    cv = _Canvas(sp, d, view, cfg)
    skin_shade, brow_a = _skin_layers(sp, cv)
    image = _camera(_composite(sp, cv, skin_shade, brow_a, _eyeball_layers(sp, d, view, cv)), d, cv)
    iris_xy, eye_feats = _exact_eye_features(sp, d, view, cv, cfg)
    return Sample(image=image, face=d.face, frame=(cfg.frame_w, cfg.frame_h),
                  gaze=(float(d.gaze[0]), float(d.gaze[1])), iris_xy=iris_xy, head_cm=d.head,
                  head_pose=tuple(float(v) for v in d.head_pose), pose=tuple(float(v) for v in d.pose),
                  blink=d.blink, lapse=d.lapse, eye_feats=eye_feats)


def optical_axes(dirs, kappa) -> np.ndarray:
    """(2, 3) unit optical axes (what the iris shows) from the two eyes' visual axes `dirs` (head axes, z < 0
    towards the screen; image-left eye first) and kappa ((temporal, up) deg per eye): each turned away from
    the nose (-x for the image-left eye, +x for the image-right one) and up (-y) by its angles."""
    dirs = np.asarray(dirs, float)
    k = np.radians(np.asarray(kappa, float))
    ax = np.arctan2(dirs[:, 0], -dirs[:, 2]) + k[:, 0] * np.array([-1.0, 1.0])
    ay = np.arctan2(dirs[:, 1], -dirs[:, 2]) - k[:, 1]
    out = np.stack([np.tan(ax), np.tan(ay), -np.ones(2)], axis=1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# Whole data sets


def _check_counts(n_subjects, frames_per_cell, workers):
    for name, v, low in (("n_subjects", n_subjects, 1), ("frames_per_cell", frames_per_cell, 1)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ValueError(f"workers must be None (one per CPU) or an integer >= 1, got {workers!r}")


def _subject_seed(seed: int, subject: int, stream: int) -> np.random.SeedSequence:
    # stream 0: the subject's own parameters; 1 + k: frame k. Independent of worker count and order.
    return np.random.SeedSequence(seed, spawn_key=(subject, stream))


def subject_name(i: int) -> str:
    return f"s{i:02d}"


def _worker_init():
    """Pool worker set-up: one OpenCV thread per worker, and keep freed memory in the process.
    glibc otherwise hands every large numpy temporary back to the OS and page-faults it in again on
    the next one, which makes rendering ~2.5x slower. Only done in our own worker processes."""
    cv2.setNumThreads(1)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 256 << 20)   # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 << 20)    # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass                          # not glibc: slower, same output


def _render_subject(job):
    """Every frame of one subject. Returns (params dict, images (n, H, W, 3), records)."""
    i, frames_per_cell, seed, config = job
    sp = sample_subject(np.random.default_rng(_subject_seed(seed, i, 0)), config)
    n = grid.N_CELLS * frames_per_cell
    images = np.empty((n, IMAGE_H, IMAGE_W, 3), np.uint8)
    records = []
    for k in range(n):
        cell, rep = divmod(k, frames_per_cell)
        row, col = grid.index_to_cell(cell)
        smp = render_sample(sp, row, col, np.random.default_rng(_subject_seed(seed, i, 1 + k)), config=config)
        images[k] = smp.image
        records.append(dict(name=f"{subject_name(i)}_{SESSION}_{cell:03d}_{rep}.png", row=row, col=col,
                            face=smp.face, frame=smp.frame, gaze=smp.gaze, blink=smp.blink,
                            lapse=smp.lapse, head=smp.head_cm, head_pose=smp.head_pose, pose=smp.pose,
                            eyes=smp.eye_feats))
    return sp.to_dict(), images, records


def _default_workers(n_subjects: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_subjects))


def _params(n_subjects, frames_per_cell, seed, config: SynthConfig) -> dict:
    return {"renderer_version": RENDERER_VERSION, "n_subjects": int(n_subjects),
            "frames_per_cell": int(frames_per_cell), "seed": int(seed), "config": config.to_dict()}


def render_dataset(out_dir, *, n_subjects: int = DEFAULT_SUBJECTS, frames_per_cell: int = DEFAULT_FRAMES_PER_CELL, seed: int = 0,
                   config: SynthConfig | None = None, workers: int | None = None, progress: bool = True,
                   contact_sheet: bool = True) -> Path:
    """Render n_subjects x 144 cells x frames_per_cell frames into out_dir in the standard format, plus
    truth.csv (where the eyes really looked) and contact_sheet.png. Renders into a temp folder beside
    out_dir and renames it at the end, so an interrupted render never looks like a data set. out_dir
    must not exist or be empty. Same seed and config => byte-identical files for any number of workers."""
    _check_counts(n_subjects, frames_per_cell, workers)
    config = DEFAULT_CONFIG if config is None else config
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetError(f"{out_dir}: already exists and is not an empty folder; choose another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".rendering"))
    try:
        _render_into(tmp, n_subjects, frames_per_cell, seed, config, workers, progress, contact_sheet)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _render_into(root: Path, n_subjects, frames_per_cell, seed, config, workers, progress, contact_sheet):
    from tqdm import tqdm

    params = _params(n_subjects, frames_per_cell, seed, config)
    meta = new_meta("synthetic", renderer=RENDERER, params=params, session=SESSION,
                    screen_w_cm=config.screen_w_cm, screen_h_cm=config.screen_h_cm,
                    distance_cm=config.distance_cm, subjects={})
    workers = _default_workers(n_subjects) if workers is None else min(workers, n_subjects)
    jobs = [(i, frames_per_cell, seed, config) for i in range(n_subjects)]
    truth, sheet_parts = [], []
    bar = tqdm(total=n_subjects * grid.N_CELLS * frames_per_cell, desc="render synthetic", unit="img",
               disable=not progress)
    pool = None
    try:
        if workers > 1:
            # spawn, not fork: the caller may already run torch / OpenMP threads
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init)
            results = pool.imap(_render_subject, jobs)
        else:
            results = map(_render_subject, jobs)
        with DatasetWriter(root, meta, fsync=False) as wr:
            for i, (sp, images, records) in enumerate(results):
                name = subject_name(i)
                meta["subjects"][name] = sp
                for img, rec in zip(images, records, strict=True):
                    rel = wr.add(img, rec["row"], rec["col"], subject=name, session=SESSION,
                                 name=rec["name"], face=rec["face"], frame=rec["frame"], pose=rec["pose"],
                                 eyes=rec["eyes"])
                    truth.append((rel, *rec["gaze"], int(rec["blink"]), int(rec["lapse"]), *rec["head"],
                                  *rec["head_pose"]))
                sheet_parts.append((images, records))
                bar.update(len(records))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    atomic_write_text(root / "meta.json", json.dumps(meta, indent=2))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "gaze_row", "gaze_col", "blink", "lapse", "head_x_cm", "head_y_cm", "head_z_cm",
                "head_yaw", "head_pitch", "head_roll"])
    for rel, gr, gc, b, la, hx, hy, hz, ya, pi, ro in truth:
        w.writerow([rel, f"{gr:.4f}", f"{gc:.4f}", b, la, f"{hx:.3f}", f"{hy:.3f}", f"{hz:.3f}",
                    f"{ya:.2f}", f"{pi:.2f}", f"{ro:.2f}"])
    atomic_write_text(root / "truth.csv", buf.getvalue())
    if contact_sheet:
        write_contact_sheet(root / "contact_sheet.png", sheet_parts, frames_per_cell)


def write_contact_sheet(path: Path, parts, frames_per_cell: int, *, max_other: int = 6) -> Path:
    """PNG: the first subject's first frame of every cell at its grid position (9 x 16 tiles), then one
    row per further subject (up to max_other) with the middle screen row (row 4, cols 0..15)."""
    gap, band = 2, 14
    tile_w, tile_h = IMAGE_W + gap, IMAGE_H + gap
    n_other = min(max_other, len(parts) - 1)
    h = band + grid.ROWS * tile_h + (band + n_other * tile_h if n_other else 0)
    sheet = np.full((h, grid.COLS * tile_w, 3), 255, np.uint8)

    def put(img, y, col):
        sheet[y:y + IMAGE_H, col * tile_w:col * tile_w + IMAGE_W] = img

    images, _ = parts[0]
    cv2.putText(sheet, f"{subject_name(0)}: every cell at its grid position (row 0 top, col 0 left), frame 0",
                (2, 11), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1, cv2.LINE_AA)
    for cell in range(grid.N_CELLS):
        r, c = grid.index_to_cell(cell)
        put(images[cell * frames_per_cell], band + r * tile_h, c)
    y = band + grid.ROWS * tile_h
    if n_other:
        cv2.putText(sheet, f"{subject_name(1)}..{subject_name(n_other)}: row 4, cols 0..15, frame 0",
                    (2, y + 11), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1, cv2.LINE_AA)
        y += band
        for j in range(1, n_other + 1):
            images, _ = parts[j]
            for c in range(grid.COLS):
                put(images[grid.cell_index(4, c) * frames_per_cell], y, c)
            y += tile_h
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DatasetError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())
    return path


# ----------------------------------------------------------------------------------------------
# The default data set, rendered on first use


def default_dataset_path(*, n_subjects: int = DEFAULT_SUBJECTS, frames_per_cell: int = DEFAULT_FRAMES_PER_CELL, seed: int = 0,
                         config: SynthConfig | None = None) -> Path:
    """<data>/synthetic/default-<hash of the render parameters>, <data> as data_root() says. Changing any
    parameter (or the renderer version) changes the folder, so a stale render is never reused."""
    config = DEFAULT_CONFIG if config is None else config
    params = _params(n_subjects, frames_per_cell, seed, config)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return data_root() / "synthetic" / f"default-{digest}"


def data_root() -> Path:
    """Where the synthetic default set is cached: $GAZENEG_DATA_DIR if set; else the repository's data/
    folder in a checkout; else, for an installed package (library use included, not only the `gazeneg`
    command), the user's cache folder <cache>/gazeneg/data (the face models' cache), never a folder
    beside site-packages."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "data"
    from gazeneg.files import cache_root

    return cache_root() / "data"


def is_complete(path, *, n_subjects: int = 16, frames_per_cell: int = DEFAULT_FRAMES_PER_CELL, seed: int = 0,
                config: SynthConfig | None = None) -> bool:
    """True when path holds a finished render with exactly these parameters."""
    config = DEFAULT_CONFIG if config is None else config
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        with open(path / "labels.csv", newline="") as f:
            n_rows = sum(1 for _ in f) - 1
    except (OSError, json.JSONDecodeError):
        return False
    return (meta.get("params") == _params(n_subjects, frames_per_cell, seed, config)
            and n_rows == n_subjects * grid.N_CELLS * frames_per_cell and (path / "truth.csv").is_file())


def ensure_default_dataset(*, n_subjects: int = DEFAULT_SUBJECTS, frames_per_cell: int = DEFAULT_FRAMES_PER_CELL, seed: int = 0,
                           config: SynthConfig | None = None, workers: int | None = None,
                           progress: bool = True) -> Path:
    """The default synthetic data set's folder, rendering it first if it is missing or incomplete."""
    _check_counts(n_subjects, frames_per_cell, workers)
    kw = dict(n_subjects=n_subjects, frames_per_cell=frames_per_cell, seed=seed, config=config)
    path = default_dataset_path(**kw)
    if is_complete(path, **kw):
        return path
    if path.exists():
        # Not a finished render with these parameters (renders land by rename, so this is a leftover
        # from an older gazeneg or a hand edit): render afresh.
        shutil.rmtree(path)
    if progress:
        print(f"rendering the synthetic data set into {path} (once; later runs reuse it)")
    try:
        render_dataset(path, workers=workers, progress=progress, **kw)
    except DatasetError:
        # Another process finished the same render first: use theirs if it is complete.
        if not is_complete(path, **kw):
            raise
    except OSError:
        if not is_complete(path, **kw):
            raise
    return path
