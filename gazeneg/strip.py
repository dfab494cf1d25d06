"""The model's input geometry, in one place: the aligned eye strip's size, where the two eyes sit in
it, and the face features (face box and head pose). face.py (the webcam crop) reads it from here and data.py re-exports it
(synth.py and the rest read it from data), so face.py and data.py need not import each other."""

from __future__ import annotations

import math

import numpy as np

IMAGE_H = 32
IMAGE_W = 96
CHANNELS = 3
# Where the two eye centres sit in the aligned strip, in (x, y) pixels of the IMAGE_W x IMAGE_H image.
EYE_LEFT_XY = (24.0, 16.0)
EYE_RIGHT_XY = (72.0, 16.0)
# The face features: the face box's four numbers, then head yaw, pitch and roll (face_features), then the
# two eyes' landmark features (eye_features: iris x, iris y, lid opening of the strip-left eye, then of the
# strip-right eye).
BOX_FEATURES = 4
POSE_FEATURES = 3
EYE_FEATURES = 6
FACE_FEATURES = BOX_FEATURES + POSE_FEATURES + EYE_FEATURES
POSE_SLICE = slice(BOX_FEATURES, BOX_FEATURES + POSE_FEATURES)
EYE_SLICE = slice(BOX_FEATURES + POSE_FEATURES, FACE_FEATURES)
# Head-pose angles enter the model divided by this many degrees (a typical pose is then a fraction of one).
POSE_SCALE_DEG = 30.0
# The model sees the head pose relative to the person's own median pose (relative_pose): the camera's place
# (above, below or beside the screen), the generic solvePnP face model's offset for this face and a slouch all
# move the median, not what the model keys on. The renderer draws each frame's pose about the person's
# neutral pose within these limits (yaw, pitch, roll degrees; synth.SynthConfig.head_rotation_deg), so a
# relative pose beyond them is outside the trained range: it is clipped to them, never extrapolated, and
# counted (relative_pose's mask, PoseReference.n_clipped).
RELATIVE_POSE_LIMIT_DEG = (15.0, 12.0, 10.0)
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


def face_features(face_x, face_y, face_w, face_h, frame_w, frame_h, yaw=0.0, pitch=0.0, roll=0.0,
                  eyes=None) -> np.ndarray:
    """FACE_FEATURES numbers for the face: where its box sits in its (mirrored) source frame, centre x and
    y relative to the frame centre (in frame widths/heights, so -0.5..0.5) and the box's width and height
    as fractions of the frame; then the head pose in the selfie convention (selfie_pose, degrees) divided
    by POSE_SCALE_DEG; then the EYE_FEATURES landmark features (eye_features; (..., 6), zeros when None).
    A face without a pose (Haar, imported crops, old data sets) has zeros there, and one without eye
    landmarks zeros in the last six. Works on scalars or arrays; returns (..., FACE_FEATURES) float32."""
    fx, fy, fw, fh, w, h, *pose = np.broadcast_arrays(
        *(np.asarray(v, np.float64) for v in (face_x, face_y, face_w, face_h, frame_w, frame_h, yaw, pitch, roll)))
    feats = np.stack([(fx + fw / 2) / w - 0.5, (fy + fh / 2) / h - 0.5, fw / w, fh / h,
                      *(p / POSE_SCALE_DEG for p in pose)], axis=-1)
    eyes = np.zeros(EYE_FEATURES) if eyes is None else np.asarray(eyes, np.float64)
    eyes = np.broadcast_to(eyes, (*feats.shape[:-1], EYE_FEATURES))
    return np.concatenate([feats, eyes], axis=-1).astype(np.float32)


# A horizontal mirror (x -> -x) changes the sign of yaw and roll, not of pitch (selfie_pose says why), and
# of the face box's horizontal offset: what the training flip and the camera-to-selfie mapping both apply.
# The eyes swap places (the strip-left eye becomes the strip-right one) and their iris x changes sign.
POSE_MIRROR_SIGNS = (-1.0, 1.0, -1.0)
MIRROR_SIGNS = np.array([-1.0, 1.0, 1.0, 1.0, *POSE_MIRROR_SIGNS, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0], np.float32)
_E = BOX_FEATURES + POSE_FEATURES
MIRROR_ORDER = np.array([*range(_E), _E + 3, _E + 4, _E + 5, _E, _E + 1, _E + 2])


def mirror_face_features(face):
    """The face features of the mirrored view ((..., FACE_FEATURES) numpy array or torch tensor, a new one):
    what the training flip must hand the model along with the mirrored strip and col -> COL_MAX - col."""
    if hasattr(face, "new_tensor"):
        return face[..., face.new_tensor(MIRROR_ORDER).long()] * face.new_tensor(MIRROR_SIGNS)
    return np.asarray(face)[..., MIRROR_ORDER] * MIRROR_SIGNS


# ----------------------------------------------------------------------------------------------
# Eye landmark features: what a landmark model measures of each eye, defined so that the renderer's exact
# geometry and a real face's landmarks give the same numbers (the WebGazer / EyeTrax kind of input).


def eye_features(iris, corners, opening) -> np.ndarray:
    """(EYE_FEATURES,) float64: for the strip-left eye, then the strip-right eye, in the mirrored (selfie)
    view the strip is cut in: the iris centre relative to the midpoint of the eye's two corners, along the
    corner line (x, > 0 towards mirrored-image right, i.e. towards screen right) and across it (y, > 0
    down), both divided by the corner-to-corner width; then the lid opening (lid-to-lid distance at the
    middle of the eye / corner-to-corner width). iris: ((x, y), (x, y)); corners: (((x, y) left corner,
    (x, y) right corner), ...) per eye, left and right in the mirrored view; opening: (a, b). Any
    consistent pixel units."""
    out = []
    for (ix, iy), (c1, c2), op in zip(iris, corners, opening, strict=True):
        ux, uy = c2[0] - c1[0], c2[1] - c1[1]
        w2 = ux * ux + uy * uy
        if w2 < 1e-12:
            raise ValueError(f"eye corners {c1} and {c2} coincide: no eye features")
        dx, dy = ix - (c1[0] + c2[0]) / 2, iy - (c1[1] + c2[1]) / 2
        out += [(dx * ux + dy * uy) / w2, (dy * ux - dx * uy) / w2, float(op)]
    return np.asarray(out, np.float64)


# ----------------------------------------------------------------------------------------------
# Head pose relative to the person


def pose_limits() -> np.ndarray:
    """RELATIVE_POSE_LIMIT_DEG in the face features' units (degrees / POSE_SCALE_DEG), (3,)."""
    return np.asarray(RELATIVE_POSE_LIMIT_DEG, np.float64) / POSE_SCALE_DEG


def _rotations(pose_deg) -> np.ndarray:
    """head_rotation of (..., 3) poses in degrees, vectorised: (..., 3, 3)."""
    y, p, r = (np.radians(np.asarray(pose_deg, np.float64)[..., i]) for i in range(3))
    one, zero = np.ones_like(y), np.zeros_like(y)

    def mat(rows):
        return np.stack([np.stack(row, -1) for row in rows], -2)

    rz = mat([[np.cos(r), -np.sin(r), zero], [np.sin(r), np.cos(r), zero], [zero, zero, one]])
    ry = mat([[np.cos(-y), zero, np.sin(-y)], [zero, one, zero], [-np.sin(-y), zero, np.cos(-y)]])
    rx = mat([[one, zero, zero], [zero, np.cos(-p), -np.sin(-p)], [zero, np.sin(-p), np.cos(-p)]])
    return rz @ ry @ rx


def _angles(R) -> np.ndarray:
    """pose_angles of (..., 3, 3) rotations, vectorised: (..., 3) degrees."""
    yaw = np.degrees(np.arcsin(np.clip(R[..., 2, 0], -1.0, 1.0)))
    pitch = -np.degrees(np.arctan2(R[..., 2, 1], R[..., 2, 2]))
    roll = np.degrees(np.arctan2(R[..., 1, 0], R[..., 0, 0]))
    return np.stack([yaw, pitch, roll], -1)


def relative_pose(face, reference) -> tuple[np.ndarray, np.ndarray]:
    """(face features with the pose replaced by the pose relative to `reference`, clipped to
    RELATIVE_POSE_LIMIT_DEG; (N,) bool: which rows were clipped). face: (N, FACE_FEATURES) or
    (FACE_FEATURES,); reference: (3,) the person's median pose in the features' units (pose_reference).
    The relative pose is the angles of R_ref^T R (head_rotation of each): the head's turn away from its
    reference in the reference head's own axes, which does not depend on where the camera sits (a camera
    C: (C R_ref)^T (C R) = R_ref^T R), unlike a difference of angles once the reference is tens of degrees
    off. Never extrapolates: a pose beyond the trained range reaches the model as the range's edge."""
    face = np.array(face, np.float32, copy=True)
    lim = pose_limits()
    R = _rotations(face[..., POSE_SLICE].astype(np.float64) * POSE_SCALE_DEG)
    R_ref = _rotations(np.asarray(reference, np.float64) * POSE_SCALE_DEG)
    rel = _angles(np.swapaxes(R_ref, -1, -2) @ R) / POSE_SCALE_DEG
    clipped = (np.abs(rel) > lim + 1e-9).any(axis=-1)
    face[..., POSE_SLICE] = np.clip(rel, -lim, lim)
    return face, clipped


def mean_rotation(R, *, trim_deg: float = 25.0) -> np.ndarray:
    """The rotation nearest the element-wise mean of rotations R (N, 3, 3) (the chordal mean, by SVD), then
    again without those more than trim_deg from it (a look away, a failed pose). Equivariant: the mean of
    C R_i is C times the mean of R_i, which is what makes relative_pose blind to where the camera sits."""
    R = np.asarray(R, np.float64).reshape(-1, 3, 3)

    def project(M):
        u, _, vt = np.linalg.svd(M)
        d = np.sign(np.linalg.det(u @ vt))
        return u @ np.diag([1.0, 1.0, d]) @ vt

    m = project(R.mean(0))
    cos = (np.einsum("ij,nij->n", m, R) - 1.0) / 2.0           # cos of each rotation's angle from m
    keep = cos >= math.cos(math.radians(trim_deg))
    return project(R[keep].mean(0)) if keep.any() else m


def pose_reference(face) -> np.ndarray:
    """A person's neutral pose (3,) from their rows (N, FACE_FEATURES), in the features' units: the angles of
    mean_rotation of their head poses (a robust, camera-equivariant centre, about the median pose)."""
    face = np.asarray(face, np.float64).reshape(-1, FACE_FEATURES)
    if not len(face):
        return np.zeros(POSE_FEATURES)
    R = _rotations(face[:, POSE_SLICE] * POSE_SCALE_DEG)
    return _angles(mean_rotation(R)) / POSE_SCALE_DEG


def relative_pose_by_group(face, groups) -> tuple[np.ndarray, np.ndarray]:
    """relative_pose for every group of rows (a person, or a person's session) about its own median pose.
    Returns (new face array, (N,) bool clipped)."""
    face = np.asarray(face, np.float32)
    groups = np.asarray(groups)
    out, clipped = face.copy(), np.zeros(len(face), bool)
    for g in np.unique(groups):
        m = groups == g
        out[m], clipped[m] = relative_pose(face[m], pose_reference(face[m]))
    return out, clipped


class PoseReference:
    """The live pipeline's pose reference: pose_reference over the last `window` tracked frames (a running
    window, so a camera moved or a person who sat back is followed within seconds), or a fixed one after
    fix() (over a calibration, or over a recorded person's data set: pose_reference). apply(feats) returns the
    features with the relative, clipped pose, and counts frames and clipped frames (n_seen, n_clipped). The
    running reference is recomputed every `every` frames (0.9 ms over a full window; a 30 s window moves
    little in half a second), and on each of the first `every` frames."""

    def __init__(self, window: int = 900, fixed=None, every: int = 15):
        from collections import deque

        if window < 1:
            raise ValueError(f"pose reference window must be >= 1 frame, not {window}")
        self.poses = deque(maxlen=window)
        self.fixed = None if fixed is None else np.asarray(fixed, np.float64)
        self.n_seen = 0
        self.n_clipped = 0
        self.last_clipped = False
        self.every = max(1, int(every))
        self._cached = None

    def fix(self, reference=None) -> None:
        """Freeze the reference: to `reference` (features' units), or to the window's median now."""
        self.fixed = self.reference() if reference is None else np.asarray(reference, np.float64)

    def unfix(self) -> None:
        self.fixed = None
        self._cached = None

    def reference(self) -> np.ndarray:
        if self.fixed is not None:
            return self.fixed
        if not self.poses:
            return np.zeros(POSE_FEATURES)
        if self._cached is None or len(self.poses) <= self.every or self.n_seen % self.every == 0:
            self._cached = _angles(mean_rotation(np.asarray(self.poses))) / POSE_SCALE_DEG
        return self._cached

    def apply(self, feats) -> np.ndarray:
        """One frame's (FACE_FEATURES,) features with its pose made relative (relative_pose, on scalars: the
        vectorised path costs ~0.3 ms a frame here)."""
        out = np.array(feats, np.float32, copy=True).reshape(FACE_FEATURES)
        R = head_rotation(*(float(v) * POSE_SCALE_DEG for v in out[POSE_SLICE]))
        self.poses.append(R)
        ref = self.reference()
        if getattr(self, "_ref_key", None) is not ref:
            self._ref_key, self._ref_R = ref, head_rotation(*(float(v) * POSE_SCALE_DEG for v in ref))
        rel = np.asarray(pose_angles(self._ref_R.T @ R)) / POSE_SCALE_DEG
        lim = pose_limits()
        self.last_clipped = bool((np.abs(rel) > lim + 1e-9).any())
        out[POSE_SLICE] = np.clip(rel, -lim, lim)
        self.n_seen += 1
        self.n_clipped += int(self.last_clipped)
        return out


# ----------------------------------------------------------------------------------------------
# Head pose. One convention for the model's pose features, shared by the renderer and the webcam crop:
# the selfie view, in which x grows to the person's right (screen right, the mirrored camera image's right),
# y grows down and z points from the screen towards the person. A head at rest looks along -z.
#   yaw > 0:   the nose turns to the person's right (towards screen right / mirrored-image right);
#   pitch > 0: the nose turns up;
#   roll > 0:  the eye line turns clockwise in the mirrored image (the person's right eye lower).
# head_rotation builds R = Rz(roll) Ry(-yaw) Rx(-pitch) (textbook right-handed Rx, Ry, Rz): pitch first,
# then yaw, then roll, the order landmarks.head_pose decomposes in. pose_angles inverts it.


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation of a head with this pose (degrees, selfie convention above): its columns are the
    head's own x (towards its right eye), y (down its face) and z (backwards out of its skull) axes."""
    return _rz(math.radians(roll)) @ _ry(-math.radians(yaw)) @ _rx(-math.radians(pitch))


def pose_angles(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a rotation built as head_rotation builds it (|yaw| < 90)."""
    R = np.asarray(R, np.float64)
    yaw = math.degrees(math.asin(float(np.clip(R[2, 0], -1.0, 1.0))))
    pitch = -math.degrees(math.atan2(R[2, 1], R[2, 2]))
    roll = math.degrees(math.atan2(R[1, 0], R[0, 0]))
    return yaw, pitch, roll


def selfie_pose(camera_pose) -> tuple[float, float, float]:
    """The model's pose features (degrees, selfie convention) from landmarks.head_pose's (yaw, pitch, roll),
    which is measured in the raw, unmirrored camera image with the same decomposition. Mirroring the image
    (x -> -x) turns a rotation R into M R M with M = diag(-1, 1, 1): Rz(a) -> Rz(-a), Ry(a) -> Ry(-a),
    Rx(a) -> Rx(a). So yaw and roll change sign and pitch does not: a nose turned towards raw image-right
    is turned to the person's left. A pose that is missing or not finite (solvePnP failed) gives zeros."""
    if camera_pose is None:
        return 0.0, 0.0, 0.0
    yaw, pitch, roll = (float(v) for v in camera_pose)
    if not all(math.isfinite(v) for v in (yaw, pitch, roll)):
        return 0.0, 0.0, 0.0
    return tuple(s * v for s, v in zip(POSE_MIRROR_SIGNS, (yaw, pitch, roll), strict=True))


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
