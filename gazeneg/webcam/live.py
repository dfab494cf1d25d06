"""Real-time gaze: the per-frame pipeline, smoothing, the per-user calibration and the accuracy check.

    model, ckpt = load_checkpoint("runs/.../best.pt")
    pipe = FramePipeline(model, smoother=make_smoother("kalman"),
                         calibration=Calibration.load_or_identity(calibration_path(ckpt_path)))
    res = pipe.process(frame_bgr, now)       # res.raw, res.point (calibrated), res.smoothed: (row, col)

Everything here is plain classes driven by frames, timestamps and key names, so the calibration and
validation state machines run headless in tests; scripts/live.py adds the window.

Calibration: k targets (default 9); for each, the median of the model's raw outputs after a fixation
delay; an affine map (2x3, least squares) from raw to true (row, col) corrects this user's offsets,
scales and shears. It is saved beside the checkpoint as <checkpoint>.calib.<user>.json (atomically;
one per person) and loaded next time; an old <checkpoint>.calib.json is moved there. Validation: other targets than the calibration ones; accuracy is the mean distance from
the calibrated (unsmoothed) samples to the target, in cells, cm and degrees; precision is the RMS
distance between successive samples (RMS-S2S).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gazeneg import grid
from gazeneg.errors import GazenegError
from gazeneg.files import atomic_write_text
from gazeneg.strip import PoseReference
from gazeneg.webcam.accuracy import report_paths
from gazeneg.webcam.detect import (
    Detection,
    FaceEyeDetector,
    crop_eyes,
    detection_pose,
    eyes_closed,
    make_detector,
)
from gazeneg.webcam.filters import (  # noqa: F401  (re-exported: the smoothers moved to filters.py)
    SMOOTHERS,
    EmaSmoother,
    KalmanSmoother,
    NoSmoother,
    OneEuroFilter,
    make_smoother,
)
from gazeneg.webcam.options import DEFAULT_DISTANCE_CM, DEFAULT_SCREEN_CM  # noqa: F401  (re-exported)
from gazeneg.webcam.sources import Window, frame_loop

CALIB_VERSION = 2   # 2: with strip_gain (files without one are still written as 1)
ABSURD_CELLS = 100.0   # a prediction further than this from the screen's centre is no gaze point (checkpoint.py)
# Calibration points in a spread-out order: the first k are used for k targets. The first 9 are the
# usual 9-point layout (corners, centre, edge midpoints), then 4 inner points, then the rest of a 5x5 lattice.
_R, _C = (0.0, 2.0, 4.0, 6.0, 8.0), (0.0, 3.75, 7.5, 11.25, 15.0)
_SPREAD = [(0.0, 0.0), (0.0, 15.0), (8.0, 0.0), (8.0, 15.0), (4.0, 7.5), (0.0, 7.5), (8.0, 7.5), (4.0, 0.0),
           (4.0, 15.0), (2.0, 3.75), (2.0, 11.25), (6.0, 3.75), (6.0, 11.25)]
SPREAD_POINTS = tuple(_SPREAD + [(r, c) for r in _R for c in _C if (r, c) not in _SPREAD])
# Validation targets: none of them is a calibration point of the default 9.
VALIDATION_POINTS = tuple((r, c) for r in (2.0, 6.0) for c in (2.0, 6.0, 9.0, 13.0))


class CalibrationError(GazenegError, ValueError):
    """A calibration cannot be fitted or a calibration file is invalid; the message names the cause."""


def calibration_targets(k: int = 9) -> list[tuple[float, float]]:
    if not 3 <= k <= len(SPREAD_POINTS):
        raise CalibrationError(f"calibration needs 3..{len(SPREAD_POINTS)} targets, not {k}")
    return list(SPREAD_POINTS[:k])


# A calibration whose fit error is above POOR_FIT_FACTOR times the model's validation error (and at least
# POOR_FIT_MIN_CELLS) is a poor fit: the person is warned, offered to redo the worst targets, and it is not
# reused automatically next time.
POOR_FIT_FACTOR = 2.0
POOR_FIT_MIN_CELLS = 1.0
POOR_FIT_UNKNOWN_CELLS = 2.0   # the threshold when the checkpoint records no validation error
USER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def default_user() -> str:
    """The OS user's name, as a calibration key (letters, digits, - and _)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError, ImportError):   # no user name in the environment or the password database
        name = "user"
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "user"


def calibration_path(checkpoint, user: str | None = None) -> Path:
    """Where a person's calibration for a checkpoint lives: <checkpoint>.calib.<user>.json beside it (user:
    --user, default the OS user), so two people sharing a checkpoint keep their own."""
    user = default_user() if user is None else user
    if not USER_RE.match(user):
        raise CalibrationError(f"--user {user!r}: use letters, digits, - and _ only (at most 64)")
    return Path(f"{checkpoint}.calib.{user}.json")


def list_calibrations(checkpoint) -> list[tuple[str, Path]]:
    """(user, path) of every calibration saved for a checkpoint, by user name."""
    ckpt = Path(checkpoint)
    prefix = f"{ckpt.name}.calib."
    found = []
    for p in sorted(ckpt.parent.glob(f"{glob_escape(ckpt.name)}.calib.*.json")):
        user = p.name[len(prefix):-len(".json")]
        if USER_RE.match(user):
            found.append((user, p))
    return found


def legacy_calibration_path(checkpoint) -> Path:
    """Where calibrations were saved before they were kept per user: one <checkpoint>.calib.json."""
    return Path(f"{checkpoint}.calib.json")


def adopt_legacy_calibration(checkpoint, user: str | None = None) -> tuple[Path, str | None]:
    """The calibration file to use for `user` (calibration_path), after moving an old per-checkpoint
    <checkpoint>.calib.json (and its accuracy report) there when the user has none yet: the person who
    calibrated before calibrations were per user is, almost always, the one running it now. Returns (path,
    what was done, one line, or None when nothing was). An old file beside an existing per-user one is left
    alone; one that cannot be moved (a read-only folder) is used where it is."""
    user = default_user() if user is None else user
    new, old = calibration_path(checkpoint, user), legacy_calibration_path(checkpoint)
    if not old.is_file() or new.exists():
        return new, None
    try:
        os.replace(old, new)   # same folder: atomic, the content unchanged
    except OSError as e:
        return old, (f"{old}: a calibration saved before calibrations were kept per user; it cannot be moved to "
                     f"{new} ({e.strerror or e}), so it is used where it is")
    for a, b in zip(report_paths(old), report_paths(new), strict=True):
        if a.is_file() and not b.exists():
            try:
                os.replace(a, b)
            except OSError:
                pass   # the report is only a record; the calibration moved
    return new, (f"{old} was saved before calibrations were kept per user: it is now {new}, the calibration of "
                 f"user {user} (--user NAME keeps another person's apart)")


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def poor_fit_threshold(val_error_cells: float | None) -> float:
    """The fit error (cells) above which a calibration is poor, from the model's validation error."""
    if val_error_cells is None or not np.isfinite(val_error_cells) or val_error_cells <= 0:
        return POOR_FIT_UNKNOWN_CELLS
    return max(POOR_FIT_MIN_CELLS, POOR_FIT_FACTOR * float(val_error_cells))


# ----------------------------------------------------------------------------------------------
# Calibration


@dataclass
class Calibration:
    """corrected (row, col) = matrix @ (row, col, 1) of the model's raw output."""

    matrix: np.ndarray = field(default_factory=lambda: np.hstack([np.eye(2), np.zeros((2, 1))]))
    n_points: int = 0
    fit_error_cells: float = float("nan")   # mean distance to the targets after correction
    poor: bool = False                      # the fit error was above the session's poor-fit threshold
    residuals: np.ndarray | None = None     # (N,) distance per target after correction (not saved)
    # The camera's strips brought to the model's training mean (data.adapt.CameraNormaliser's gain image, fitted
    # on the calibration's own strips): the affine map above was fitted on the model's outputs for strips with
    # this gain, so the two go together. None: the strips as cut.
    gain: np.ndarray | None = None

    def normalise(self, strips: np.ndarray) -> np.ndarray:
        """strips (N, H, W, 3) uint8 with the gain (as they are without one)."""
        if self.gain is None:
            return strips
        from gazeneg.data.adapt import apply_gain

        return apply_gain(strips, self.gain)

    @property
    def is_identity(self) -> bool:
        return self.n_points == 0

    @classmethod
    def fit(cls, raw, true) -> Calibration:
        """Least-squares affine map from raw (N, 2) to true (N, 2); needs 3 or more points not on one line."""
        raw, true = np.asarray(raw, np.float64), np.asarray(true, np.float64)
        if raw.shape != true.shape or raw.ndim != 2 or raw.shape[1] != 2:
            raise CalibrationError(f"raw {raw.shape} and true {true.shape} must both be (N, 2)")
        ok = np.isfinite(raw).all(1) & np.isfinite(true).all(1)
        raw, true = raw[ok], true[ok]
        if len(raw) < 3:
            raise CalibrationError(f"calibration needs at least 3 targets with samples, got {len(raw)} "
                                   "(was the face visible?)")
        X = np.hstack([raw, np.ones((len(raw), 1))])
        # Collinear raw points (the model answering along one line) make the map undetermined.
        if np.linalg.matrix_rank(X, tol=1e-6 * max(1.0, np.abs(X).max())) < 3:
            raise CalibrationError("the model's outputs for the calibration targets lie on one line: cannot fit "
                                   "an affine correction (is the model trained? was the face tracked?)")
        A, *_ = np.linalg.lstsq(X, true, rcond=None)
        matrix = A.T  # (2, 3)
        dist = np.linalg.norm(X @ A - true, axis=1)
        return cls(matrix, len(raw), float(dist.mean()), residuals=dist)

    def apply(self, points) -> np.ndarray:
        p = np.asarray(points, np.float64)
        return p @ self.matrix[:, :2].T + self.matrix[:, 2]

    def save(self, path) -> None:
        """Atomically, as JSON; with a gain as format 2 (a gazeneg that cannot apply the gain refuses the file
        rather than apply the map without it)."""
        extra = {} if self.gain is None else {
            "strip_gain": np.round(self.gain.astype(np.float64), 5).tolist(),
            "strip_gain_convention": "each eye strip (rows, cols, RGB) multiplied by this before the model"}
        atomic_write_text(Path(path), json.dumps({
            "format_version": 1 if self.gain is None else CALIB_VERSION, "matrix": self.matrix.tolist(),
            "n_points": self.n_points, "fit_error_cells": self.fit_error_cells, "poor_fit": self.poor,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "convention": "corrected (row, col) = matrix @ (row, col, 1) of the model output", **extra}, indent=1))

    @classmethod
    def load(cls, path) -> Calibration:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            m = np.asarray(d["matrix"], np.float64)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CalibrationError(f"{path}: not a gazeneg calibration file ({type(e).__name__}: {e}); delete "
                                   "it or recalibrate") from None
        if m.shape != (2, 3) or not np.isfinite(m).all():
            raise CalibrationError(f"{path}: matrix must be 2x3 finite numbers, got {m.tolist()}")
        version, n, fit = d.get("format_version", 0), d.get("n_points", 0), d.get("fit_error_cells", float("nan"))
        if not isinstance(version, int) or isinstance(version, bool):
            raise CalibrationError(f"{path}: format_version must be an integer, not {version!r}; delete it or recalibrate")
        if version > CALIB_VERSION:
            raise CalibrationError(f"{path}: calibration format {d['format_version']} is newer than this gazeneg")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise CalibrationError(f"{path}: n_points must be a whole number, not {n!r}; delete it or recalibrate")
        if fit is not None and not isinstance(fit, (int, float, str)):
            raise CalibrationError(f"{path}: fit_error_cells must be a number, not {fit!r}; delete it or recalibrate")
        try:
            fit = float("nan") if fit is None else float(fit)
        except ValueError:
            raise CalibrationError(f"{path}: fit_error_cells must be a number, not {fit!r}; delete it or "
                                   "recalibrate") from None
        gain = d.get("strip_gain")
        if gain is not None:
            from gazeneg.strip import CHANNELS, IMAGE_H, IMAGE_W

            try:
                gain = np.asarray(gain, np.float32)
            except (ValueError, TypeError):
                gain = np.zeros(0, np.float32)
            if gain.shape != (IMAGE_H, IMAGE_W, CHANNELS) or not np.isfinite(gain).all() or (gain <= 0).any():
                raise CalibrationError(f"{path}: strip_gain must be {IMAGE_H}x{IMAGE_W}x{CHANNELS} positive numbers, "
                                       f"got shape {gain.shape}; delete it or recalibrate")
        return cls(m, n, fit, poor=bool(d.get("poor_fit", False)), gain=gain)

    @classmethod
    def load_or_identity(cls, path) -> Calibration:
        return cls.load(path) if Path(path).is_file() else cls()


# ----------------------------------------------------------------------------------------------
# The per-frame pipeline


@dataclass
class LiveResult:
    det: Detection | None
    raw: np.ndarray | None = None        # model output (row, col)
    point: np.ndarray | None = None      # calibrated
    smoothed: np.ndarray | None = None   # calibrated and smoothed
    closed: bool = False                 # eyes looked closed: no prediction
    pose_clipped: bool = False           # the head pose, relative to the person's, was beyond the trained range
    strip: np.ndarray | None = None
    feats: np.ndarray | None = None      # crop_eyes' face features (before the pose reference): what a session keeps
    model_feats: np.ndarray | None = None   # the face features the model got (relative to the person's pose)
    ms: dict = field(default_factory=dict)  # wall ms: detect, crop (+ closed-eye check), model, smooth, total

    @property
    def cell(self) -> int | None:
        return None if self.smoothed is None else int(grid.nearest_cell(*self.smoothed))


def frame_predictor(model):
    """predict_fn(strips, feats) -> (N, 2) for the live pipeline: model.networks.predict's numbers, bit for bit
    (the same normalisation, forward and points, on the CPU), without its per-call costs: the model is put in
    eval mode once (and again only if something switched it to training), the forward runs under
    torch.inference_mode (no autograd records: ~0.7 ms of a 3-4 ms forward on one core), and through the model
    traced once by torch.jit when that gives the model's own numbers bit for bit (traced_forward: ~1 ms less)."""
    import torch

    from gazeneg.data.dataset import normalize_images

    model.eval()
    forward = traced_forward(model) or model

    def predict_fn(strips, feats):
        if model.training:
            model.eval()
        with torch.inference_mode():
            x = normalize_images(strips)
            f = torch.as_tensor(np.asarray(feats, np.float32))
            return model.points(forward(x, f)).float().cpu().numpy().astype(np.float64)

    predict_fn.traced = forward is not model
    return predict_fn


def traced_forward(model):
    """The eval-mode model traced by torch.jit.trace: the same aten operations (no freezing, no folding of the
    batch norms, no fusion on the CPU), without Python's per-module overhead, about 1 ms of a frame's 3 ms on
    one core. Used only when the tracer saw no data-dependent step (it warns, torch.jit.TracerWarning, when a
    tensor's value decides the path, the one thing a trace cannot follow; none of the registered models does)
    and it gives exactly the model's own output (torch.equal) on probe inputs (black, white and random strips),
    run twice each (the JIT optimises its graph after the first runs); else None, and the plain model runs."""
    import warnings

    import torch

    from gazeneg.data.dataset import FACE_FEATURES, IMAGE_H, IMAGE_W, normalize_images

    rng = np.random.default_rng(0)
    probes = [(np.zeros((1, IMAGE_H, IMAGE_W, 3), np.uint8), np.zeros((1, FACE_FEATURES), np.float32)),
              (np.full((1, IMAGE_H, IMAGE_W, 3), 255, np.uint8), np.ones((1, FACE_FEATURES), np.float32)),
              (rng.integers(0, 256, (1, IMAGE_H, IMAGE_W, 3), dtype=np.uint8),
               rng.normal(0.0, 0.3, (1, FACE_FEATURES)).astype(np.float32))]
    try:
        with warnings.catch_warnings(record=True) as seen, torch.inference_mode():
            warnings.simplefilter("always")   # recorded, not shown: torch.jit's deprecation notice among them
            example = (normalize_images(probes[2][0]), torch.from_numpy(probes[2][1]))
            traced = torch.jit.trace(model, example, check_trace=False)
            if any(issubclass(w.category, torch.jit.TracerWarning) for w in seen):
                return None
            for strip, feats in probes * 2:
                x, f = normalize_images(strip), torch.from_numpy(feats)
                if not torch.equal(traced(x, f), model(x, f)):
                    return None
    except Exception:   # any model or torch version the tracer cannot handle: the plain model runs
        return None
    return traced


class FramePipeline:
    """Frame -> face/eyes (tracked) -> eye strip -> model -> calibration -> smoothing.

    predict_fn(strip (1, H, W, 3) uint8, feats (1, FACE_FEATURES) float32) -> (1, 2) (row, col) replaces
    the model call (tests, or another runtime). The model gets the head pose relative to the person's median
    pose (pose_reference: strip.PoseReference, a running window by default), clipped to the trained range;
    clipped frames are flagged (LiveResult.pose_clipped) and counted (pose_reference.n_clipped).
    A calibration with a gain (Calibration.gain: the camera's strips brought to the model's training mean,
    data.adapt) applies it to the strip the model gets, not to LiveResult.strip."""

    def __init__(self, model=None, *, detector: FaceEyeDetector | None = None, smoother=None,
                 calibration: Calibration | None = None, predict_fn=None, skip_closed: bool = True,
                 pose_reference: PoseReference | None = None):
        if model is None and predict_fn is None:
            raise ValueError("FramePipeline needs a model or a predict_fn")
        if predict_fn is None:
            predict_fn = frame_predictor(model)
        self.predict_fn = predict_fn
        # Landmarks when the models are cached, else Haar. The iris model on one eye per frame in turn:
        # the strip is cut by the corners, so only the blink flag can lag, by a frame (~4 ms saved).
        self.detector = detector or make_detector(alternate_iris=True)
        self.smoother = smoother or make_smoother("kalman")
        self.calibration = calibration or Calibration()
        self.skip_closed = skip_closed
        self.pose_reference = pose_reference or PoseReference()

    def model_strip(self, strip: np.ndarray) -> np.ndarray:
        """The strip as the model gets it, (1, H, W, 3): with the calibration's gain, or as cut."""
        return self.calibration.normalise(strip[None])

    def process(self, frame_bgr: np.ndarray, now: float) -> LiveResult:
        t0 = time.perf_counter()
        det = self.detector.detect(frame_bgr)
        t1 = time.perf_counter()
        res = LiveResult(det)
        if det is None:
            res.ms = {"detect": (t1 - t0) * 1e3, "total": (t1 - t0) * 1e3}
            return res
        strip, res.feats = crop_eyes(frame_bgr, det)
        feats = self.pose_reference.apply(res.feats)
        res.pose_clipped = self.pose_reference.last_clipped
        res.strip = strip
        res.closed = self.skip_closed and eyes_closed(strip, det)
        t2 = time.perf_counter()
        if res.closed:
            res.ms = {"detect": (t1 - t0) * 1e3, "crop": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3}
            return res
        res.model_feats = feats
        raw = np.asarray(self.predict_fn(self.model_strip(strip), feats[None]), np.float64).reshape(2)
        t3 = time.perf_counter()
        if not np.isfinite(raw).all() or np.abs(raw - np.asarray(grid.CENTRE)).max() > ABSURD_CELLS:
            # A non-finite or absurd prediction (damaged weights gave 1e35 cells) is never drawn, logged or fed
            # to the smoother (which it would poison for every later frame): the frame counts as one without
            # a point.
            res.ms = {"detect": (t1 - t0) * 1e3, "crop": (t2 - t1) * 1e3, "model": (t3 - t2) * 1e3,
                      "total": (t3 - t0) * 1e3}
            return res
        res.raw = raw
        res.point = self.calibration.apply(raw)
        res.smoothed = self.smoother.update(res.point, now)
        t4 = time.perf_counter()
        res.ms = {"detect": (t1 - t0) * 1e3, "crop": (t2 - t1) * 1e3, "model": (t3 - t2) * 1e3,
                  "smooth": (t4 - t3) * 1e3, "total": (t4 - t0) * 1e3}
        return res


class RateMeter:
    """Frames per second and latency, exponentially averaged over about the last second."""

    def __init__(self, beta: float = 0.9):
        self.beta = beta
        self.fps = 0.0
        self.latency_ms = 0.0
        self._t = None

    def tick(self, now: float, latency_ms: float) -> None:
        if self._t is not None and now > self._t:
            inst = 1.0 / (now - self._t)
            self.fps = inst if self.fps == 0 else self.beta * self.fps + (1 - self.beta) * inst
        self.latency_ms = latency_ms if self.latency_ms == 0 else self.beta * self.latency_ms + (1 - self.beta) * latency_ms
        self._t = now


# ----------------------------------------------------------------------------------------------
# Showing targets and collecting samples (calibration and validation)


class TargetCollector:
    """Shows targets one at a time: after `fixation_s` it keeps the next `samples` points fed to it
    (None = no prediction this frame, a blink or no face: skipped), then moves on; a target that gets fewer
    than `min_samples` within `timeout_s` is shown again at the end, up to `retries` times (`redone` lists
    them), then left with what it has. results: [(target (row, col), (k, 2) samples)], one per target;
    payloads: beside each result, what was fed with each of its samples (feed's payload)."""

    def __init__(self, targets, *, samples: int = 15, fixation_s: float = 0.8, timeout_s: float = 5.0,
                 min_samples: int = 0, retries: int = 2):
        self.targets = [tuple(float(v) for v in t) for t in targets]
        if not self.targets:
            raise ValueError("TargetCollector needs at least one target")
        self.samples, self.fixation_s, self.timeout_s = samples, fixation_s, timeout_s
        self.min_samples, self.retries, self.redone = min(min_samples, samples), retries, []
        self.i = 0
        self.t_shown: float | None = None
        self._cur: list = []
        self._cur_payload: list = []
        self.results: list[tuple[tuple[float, float], np.ndarray]] = []
        self.payloads: list[list] = []

    @property
    def done(self) -> bool:
        return self.i >= len(self.targets)

    @property
    def current(self) -> tuple[float, float] | None:
        return None if self.done else self.targets[self.i]

    def recording(self, now: float) -> bool:
        return self.t_shown is not None and now - self.t_shown >= self.fixation_s

    def feed(self, point, now: float, payload=None) -> None:
        if self.done:
            return
        if self.t_shown is None:
            self.t_shown = now
        if not self.recording(now):
            return
        if point is not None:
            self._cur.append(np.asarray(point, np.float64).reshape(2))
            self._cur_payload.append(payload)
        if len(self._cur) >= self.samples or now - self.t_shown >= self.fixation_s + self.timeout_s:
            if len(self._cur) < self.min_samples and self.redone.count(self.current) < self.retries:
                self.redone.append(self.current)   # too few good samples: shown again, never fitted as is
                self.targets.append(self.current)
            else:
                self.results.append((self.current, np.array(self._cur).reshape(-1, 2)))
                self.payloads.append(self._cur_payload)
            self._cur, self._cur_payload = [], []
            self.i += 1
            self.t_shown = now


@dataclass
class Accuracy:
    mean_error_cells: float
    mean_error_cm: float
    mean_error_deg: float
    precision_cells: float   # RMS distance between successive samples
    precision_cm: float
    precision_deg: float
    n_targets: int
    n_samples: int
    screen_cm: tuple
    distance_cm: float

    def lines(self) -> list[str]:
        w, h = self.screen_cm
        return [f"accuracy on {self.n_targets} validation targets ({self.n_samples} samples): mean error "
                f"{self.mean_error_cells:.2f} cells = {self.mean_error_cm:.2f} cm = {self.mean_error_deg:.2f} deg",
                f"precision (RMS between successive samples): {self.precision_cells:.3f} cells = "
                f"{self.precision_cm:.3f} cm = {self.precision_deg:.3f} deg",
                f"(screen {w:g} x {h:g} cm at {self.distance_cm:g} cm; set --screen-cm and --distance-cm)"]


def accuracy(results, *, screen_cm=DEFAULT_SCREEN_CM, distance_cm: float = DEFAULT_DISTANCE_CM) -> Accuracy:
    """Accuracy and precision of samples collected on known targets (TargetCollector.results)."""
    w_cm, h_cm = screen_cm
    errs_cells, errs_cm, errs_deg, s2s_cells, s2s_cm, s2s_deg = [], [], [], [], [], []
    n_t = 0
    for (tr, tc), pts in results:
        if len(pts) == 0:
            continue
        n_t += 1
        d = pts - np.array([tr, tc])
        errs_cells.append(np.hypot(d[:, 0], d[:, 1]))
        errs_cm.append(grid.error_cm(d[:, 0], d[:, 1], w_cm, h_cm))
        errs_deg.append(grid.error_degrees(pts[:, 0], pts[:, 1], tr, tc, w_cm, h_cm, distance_cm))
        if len(pts) > 1:
            s = np.diff(pts, axis=0)
            s2s_cells.append(np.hypot(s[:, 0], s[:, 1]))
            s2s_cm.append(grid.error_cm(s[:, 0], s[:, 1], w_cm, h_cm))
            s2s_deg.append(grid.error_degrees(pts[1:, 0], pts[1:, 1], pts[:-1, 0], pts[:-1, 1], w_cm, h_cm,
                                              distance_cm))
    empty = [t for t, pts in results if len(pts) == 0]
    if empty and n_t:   # a summary that quietly leaves targets out is not the screen's accuracy
        raise CalibrationError(f"no validation samples for {len(empty)} of {len(results)} targets "
                               f"({', '.join(f'({r:g}, {c:g})' for r, c in empty)}): no summary")
    if n_t == 0:
        raise CalibrationError("no validation samples: the face was not tracked during the accuracy check")

    def mean(xs):
        return float(np.mean(np.concatenate(xs))) if xs else float("nan")

    def rms(xs):
        return float(np.sqrt(np.mean(np.concatenate(xs) ** 2))) if xs else float("nan")

    return Accuracy(mean(errs_cells), mean(errs_cm), mean(errs_deg), rms(s2s_cells), rms(s2s_cm), rms(s2s_deg),
                    n_t, int(sum(len(e) for e in errs_cells)), (w_cm, h_cm), distance_cm)


# ----------------------------------------------------------------------------------------------
# The live session: calibrate -> validate -> track, with keys


CALIBRATE, VALIDATE, TRACK, DONE = "calibrate", "validate", "track", "done"


class LiveSession:
    """Drives a FramePipeline through calibration (unless a saved one is loaded), the accuracy check
    and free tracking. feed(frame, now) -> LiveResult; press("c") recalibrates, "v" re-validates,
    "esc" ends. The calibration is saved to calib_path (atomically) when it is fitted."""

    def __init__(self, pipeline: FramePipeline, *, calib_path=None, calibrate: str = "auto", validate: bool = True,
                 k: int = 9, validation_targets=VALIDATION_POINTS, samples: int = 15, fixation_s: float = 0.8,
                 screen_cm=DEFAULT_SCREEN_CM, distance_cm: float = DEFAULT_DISTANCE_CM, log=print,
                 poor_fit_cells: float | None = None, training_mean: np.ndarray | None = None,
                 camera_gain: np.ndarray | None = None):
        # poor_fit_cells: a fit error above this (poor_fit_threshold of the model's validation error) is
        # warned about, offers `t` (redo the worst targets), and is not reused automatically next time.
        # training_mean: the mean strip the model was trained on (data.adapt.input_mean_of). A full calibration
        # then also fits the camera's mean strip from its own samples' strips and brings every strip to the
        # training mean from then on (Calibration.gain, saved with the map); None: the strips as cut.
        # camera_gain: a fixed gain instead (from a camera-mean file, data.adapt.CameraNormaliser): every
        # calibration of this session carries it, and until one is made or loaded the strips get it too.
        if calibrate not in ("auto", "always", "never"):
            raise ValueError(f"calibrate must be auto, always or never, not {calibrate!r}")
        self.pipe = pipeline
        self.calib_path = Path(calib_path) if calib_path is not None else None
        self.k, self.val_targets = k, list(validation_targets)
        self.samples, self.fixation_s = samples, fixation_s
        self.screen_cm, self.distance_cm = screen_cm, distance_cm
        self.validate_after = validate
        self.log = log
        self.rate = RateMeter()
        self.report: Accuracy | None = None
        self.error: str | None = None
        self.collector: TargetCollector | None = None
        self.mode = TRACK
        self.poor_fit_cells = poor_fit_cells
        self.worst: list = []          # after a poor fit: the targets to redo with `t`
        self._fitted: dict = {}        # target -> median raw output of the last calibration
        self._redo = False
        self.training_mean = training_mean
        self.camera_gain = camera_gain
        if camera_gain is not None:
            self.pipe.calibration = Calibration(gain=camera_gain)
        loaded = False
        if calibrate == "auto" and self.calib_path is not None and self.calib_path.is_file():
            cal = Calibration.load(self.calib_path)
            if cal.poor:
                log(f"the calibration in {self.calib_path} was a poor fit ({cal.fit_error_cells:.2f} cells): "
                    "calibrating again")
            else:
                self.pipe.calibration = cal
                log(f"calibration loaded from {self.calib_path} ({cal.n_points} points, fit error "
                    f"{cal.fit_error_cells:.2f} cells)")
                loaded = True
        if calibrate == "always" or (calibrate == "auto" and not loaded):
            self.start_calibration()
        elif validate:
            self.start_validation()

    def start_calibration(self) -> None:
        self.mode = CALIBRATE
        self.pipe.calibration = Calibration(gain=self.camera_gain)  # collect the model's raw outputs
        self.collector = TargetCollector(calibration_targets(self.k), samples=self.samples,
                                         fixation_s=self.fixation_s, min_samples=self.samples // 2)

    def start_validation(self) -> None:
        self.mode = VALIDATE
        self.collector = TargetCollector(self.val_targets, samples=self.samples, fixation_s=self.fixation_s,
                                         min_samples=self.samples // 2)

    def _finish_calibration(self) -> None:
        short = [t for t, p in self.collector.results if len(p) < max(1, self.collector.min_samples)]
        if short:   # redone and still short: refused, never fitted on what little there is
            self.error = (f"calibration failed: {len(short)} target(s) got too few good samples even when shown "
                          f"again ({', '.join(f'({r:g}, {c:g})' for r, c in short)}); press c to try again")
            self.log(self.error)
            self.mode, self.collector = TRACK, None
            return
        res = [(t, p) for t, p in self.collector.results if len(p)]
        gain = self.pipe.calibration.gain   # a redo keeps the gain its other targets' outputs were made with
        if not self._redo and self.training_mean is not None and self.camera_gain is None:
            gain, res = self._camera_gain(res)
        fitted = dict(self._fitted) if self._redo else {}   # `t`: the redone targets replace their old samples
        fitted.update({tuple(t): np.median(p, axis=0) for t, p in res})
        self._redo = False
        true = np.array(list(fitted)).reshape(-1, 2)
        raw = np.array(list(fitted.values())).reshape(-1, 2)
        try:
            cal = Calibration.fit(raw, true)
        except CalibrationError as e:
            # Keep tracking uncalibrated rather than end the session; the person can press c again.
            self.error = f"calibration failed: {e}; press c to try again"
            self.log(self.error)
            self.mode, self.collector = TRACK, None
            return
        cal.gain = gain
        self.error = None
        self._fitted = fitted
        self.worst = []
        if self.poor_fit_cells is not None and cal.fit_error_cells > self.poor_fit_cells:
            cal.poor = True
            order = np.argsort(cal.residuals)[::-1]
            self.worst = [tuple(true[i]) for i in order[:max(1, len(order) // 3)]]
            self.error = (f"calibration fit {cal.fit_error_cells:.2f} cells is poor (more than {self.poor_fit_cells:.2f} cells, "
                          f"the threshold from the model's validation error): press t to redo the {len(self.worst)} worst "
                          f"target(s) ({', '.join(f'({r:g}, {c:g})' for r, c in self.worst)}) or c to redo all; "
                          "it will not be reused automatically")
            self.log(self.error)
        self.pipe.calibration = cal
        self.pipe.smoother.reset()
        if self.calib_path is not None:
            cal.save(self.calib_path)
            self.log(f"calibration saved to {self.calib_path}: {cal.n_points} targets, fit error "
                     f"{cal.fit_error_cells:.2f} cells")
        if self.validate_after:
            self.start_validation()
        else:
            self.mode, self.collector = TRACK, None

    def _camera_gain(self, res):
        """The camera's mean strip from the calibration samples' strips (data.adapt), the gain that brings it to
        the model's training mean, and the samples predicted again with it: (gain or None, res)."""
        from gazeneg.data.adapt import MIN_STRIPS, CameraNormaliser, fit_camera_mean

        inputs = [p for p, (_, pts) in zip(self.collector.payloads, self.collector.results, strict=True) if len(pts)]
        strips = [strip for per_target in inputs for strip, _ in per_target]
        if len(strips) < MIN_STRIPS:
            self.log(f"only {len(strips)} calibration strips: a camera's mean needs {MIN_STRIPS}; the strips stay as cut")
            return None, res
        norm = CameraNormaliser(fit_camera_mean(np.stack(strips), "calibration"), self.training_mean)
        again = []
        for (t, _), per_target in zip(res, inputs, strict=True):   # one at a time: the live pipeline's numbers
            again.append((t, np.array([np.asarray(self.pipe.predict_fn(norm(strip[None]), feats[None]),
                                                  np.float64).reshape(2) for strip, feats in per_target])))
        self.log(f"camera mean from {len(strips)} calibration strips: each strip is brought to the model's training "
                 f"mean (gain {np.percentile(norm.gain, 5):.2f}-{np.percentile(norm.gain, 95):.2f}, 5th-95th pct)")
        return norm.gain, again

    def feed(self, frame_bgr: np.ndarray, now: float) -> LiveResult:
        res = self.pipe.process(frame_bgr, now)
        self.rate.tick(now, res.ms.get("total", 0.0))
        if self.mode == CALIBRATE:
            self.collector.feed(res.raw, now, payload=None if res.raw is None else (res.strip, res.model_feats))
            if self.collector.done:
                self._finish_calibration()
        elif self.mode == VALIDATE:
            self.collector.feed(res.point, now)
            if self.collector.done:
                try:
                    self.report = accuracy(self.collector.results, screen_cm=self.screen_cm,
                                           distance_cm=self.distance_cm)
                    for line in self.report.lines():
                        self.log(line)
                except CalibrationError as e:
                    self.error = f"accuracy check failed: {e}; press v to try again"
                    self.log(self.error)
                self.mode, self.collector = TRACK, None
        return res

    def redo_targets(self, targets) -> None:
        """Show these calibration targets again; their new samples replace their old ones and the calibration is
        fitted again with every other target's samples kept."""
        self.mode, self._redo = CALIBRATE, True
        self.collector = TargetCollector([tuple(t) for t in targets], samples=self.samples,
                                         fixation_s=self.fixation_s, min_samples=self.samples // 2)

    def redo_target(self, number: int) -> bool:
        """Re-run one calibration target, numbered 1..k in the order they are shown (keys 1-9 in the window).
        Needs a calibration made in this session; says why not (self.error) and returns False otherwise."""
        targets = calibration_targets(self.k)
        if not self._fitted:
            self.error = f"no calibration in this session to redo target {number} of: press c to calibrate"
        elif not 1 <= number <= len(targets):
            self.error = f"there is no calibration target {number}: the {len(targets)} targets are numbered 1-{len(targets)}"
        else:
            self.redo_targets([targets[number - 1]])
            return True
        self.log(self.error)
        return False

    def press(self, key: str, now: float) -> None:
        if key == "esc":
            self.mode = DONE
        elif key == "c":
            self.start_calibration()
        elif key == "t" and self.worst:   # redo the worst targets of a poor fit, keep the others' samples
            self.redo_targets(self.worst)
        elif len(key) == 1 and key in "123456789":
            self.redo_target(int(key))
        elif key == "v":
            self.start_validation()


# ----------------------------------------------------------------------------------------------
# Drawing (pure numpy/cv2: testable without a screen)


def render_live(session: LiveSession, res: LiveResult, frame_bgr: np.ndarray, screen_w: int, screen_h: int,
                now: float) -> np.ndarray:
    """The live screen: the grid with the predicted cell highlighted, the smoothed point, the current
    calibration/validation target, a camera thumbnail with the face, and an FPS/latency overlay."""
    canvas = np.full((screen_h, screen_w, 3), 30, np.uint8)
    cw, ch = screen_w / grid.COLS, screen_h / grid.ROWS
    font = cv2.FONT_HERSHEY_SIMPLEX
    if res.smoothed is not None and session.mode in (TRACK, DONE):
        r, c = grid.index_to_cell(res.cell)
        cv2.rectangle(canvas, (round(c * cw), round(r * ch)), (round((c + 1) * cw), round((r + 1) * ch)),
                      (90, 60, 20), -1)
    for i in range(1, grid.COLS):
        cv2.line(canvas, (round(i * cw), 0), (round(i * cw), screen_h), (70, 70, 70), 1)
    for i in range(1, grid.ROWS):
        cv2.line(canvas, (0, round(i * ch)), (screen_w, round(i * ch)), (70, 70, 70), 1)
    unit = min(cw, ch)
    if session.collector is not None and session.collector.current is not None:
        x, y = grid.to_pixels(*session.collector.current, screen_w, screen_h)
        colour = (0, 200, 0) if session.collector.recording(now) else (230, 230, 230)
        cv2.circle(canvas, (round(float(x)), round(float(y))), round(unit * 0.3), colour, 3, cv2.LINE_AA)
        cv2.circle(canvas, (round(float(x)), round(float(y))), max(2, round(unit * 0.05)), (0, 0, 230), -1, cv2.LINE_AA)
    elif res.smoothed is not None:
        x, y = grid.to_pixels(*grid.clamp(*res.smoothed), screen_w, screen_h)
        cv2.circle(canvas, (round(float(x)), round(float(y))), max(6, round(unit * 0.15)), (0, 200, 255), 3,
                   cv2.LINE_AA)
    # camera thumbnail, bottom right
    tw = max(80, screen_w // 8)
    th = round(tw * frame_bgr.shape[0] / frame_bgr.shape[1])
    k = tw / frame_bgr.shape[1]
    thumb = cv2.flip(cv2.resize(frame_bgr, (tw, th), interpolation=cv2.INTER_AREA), 1)  # a mirror, like the model's view
    if res.det is not None:
        fx, fy, fw, fh = res.det.face
        cv2.rectangle(thumb, (round(tw - (fx + fw) * k), round(fy * k)), (round(tw - fx * k), round((fy + fh) * k)),
                      (0, 255, 0), 1)
        for ex, ey in (res.det.left_eye, res.det.right_eye):
            cv2.circle(thumb, (round(tw - ex * k), round(ey * k)), 2, (0, 0, 255), -1)
    if th < screen_h and tw < screen_w:
        canvas[screen_h - th:, screen_w - tw:] = thumb
    mode = {CALIBRATE: "CALIBRATING: look at each dot", VALIDATE: "ACCURACY CHECK: look at each dot",
            TRACK: "tracking", DONE: "done"}[session.mode]
    if res.det is None:
        face = "no face"
    elif res.det.landmarks is not None:  # the landmark backend measures the lids: show the blink state
        lm = res.det.landmarks
        yaw, pitch, roll = detection_pose(res.det)   # what the model gets: the selfie view's pose
        face = (f"{'BLINK' if lm.blink else 'eyes open'} (lids {sum(lm.opening) / 2:.2f})   "
                f"head yaw {yaw:+.0f} pitch {pitch:+.0f} roll {roll:+.0f}")
    else:
        face = "eyes closed" if res.closed else "face ok"
    face += f"   [{res.det.backend}]" if res.det is not None else ""
    pr = session.pipe.pose_reference
    if pr.n_clipped:
        face += f"   pose beyond trained range: {pr.n_clipped}/{pr.n_seen} frames{' (now)' if res.pose_clipped else ''}"
    text = f"{mode}   {session.rate.fps:5.1f} fps   {session.rate.latency_ms:5.1f} ms   {face}   c recalibrate, v check, r recentre, Esc quit"
    cv2.putText(canvas, text, (15, 28), font, 0.6, (200, 200, 200), 1, cv2.LINE_AA)
    if session.error is not None:
        cv2.putText(canvas, session.error[:110], (15, 54), font, 0.5, (80, 80, 230), 1, cv2.LINE_AA)
    elif session.report is not None:
        cv2.putText(canvas, session.report.lines()[0][:110], (15, 54), font, 0.5, (160, 200, 160), 1, cv2.LINE_AA)
    return canvas


class LiveWindow:
    """render_live in a fullscreen window; keys: c, v, t, r, 1-9 (redo that calibration target), Esc (or q)."""

    def __init__(self, screen: tuple[int, int], name: str = "gazeneg live"):
        self.screen = screen
        self.window = Window(name, extra_keys={ord("c"): "c", ord("v"): "v", ord("r"): "r", ord("t"): "t",  # r: recentre
                                               **{ord(d): d for d in "123456789"}})   # redo calibration target d

    def show(self, session: LiveSession, res: LiveResult, frame_bgr, now: float) -> list[str]:
        return self.window.show(render_live(session, res, frame_bgr, *self.screen, now))

    def close(self) -> None:
        self.window.close()


def run_live(session: LiveSession, source, *, clock=time.perf_counter, ui=None, keys=None,
             max_frames: int | None = None) -> list[LiveResult]:
    """Feed frames into session until Esc, the source ends or max_frames. ui: show(session, res, frame,
    now) -> key names; keys: (session, now) -> key names. Returns the results (kept only without a ui)."""
    out = []

    def step(frame, now):
        res = session.feed(frame, now)
        pressed = []
        if ui is not None:
            pressed += ui.show(session, res, frame, now)
        else:
            res.strip = None  # keep memory flat on long headless runs
            out.append(res)
        return pressed + (keys(session, now) if keys is not None else [])

    frame_loop(source, step, session.press, clock=clock, done=lambda: session.mode == DONE, max_frames=max_frames)
    return out


def summarize_latency(results: list[LiveResult], warmup: int = 0) -> dict:
    """Median and p95 of the per-frame total and per-stage milliseconds after `warmup` frames."""
    rs = results[warmup:]
    out = {"frames": len(rs), "with_face": sum(r.det is not None for r in rs),
           "tracked": sum(r.det is not None and r.det.tracked for r in rs)}
    for stage in ("total", "detect", "crop", "model", "smooth"):
        v = np.array([r.ms[stage] for r in rs if stage in r.ms])
        if len(v):
            out[stage] = {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95))}
    return out
