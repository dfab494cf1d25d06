"""Face and eye localisation, and the crop that turns a webcam frame into exactly the model's input
(the aligned eye strip plus the face-box features of gazeneg.strip, the same numbers the synthetic
renderer writes). Two backends share one contract, detect(frame_bgr) -> Detection | None:
"landmarks" (gazeneg.webcam.landmarks: MediaPipe's face mesh and iris models, from the local model cache) and
"haar" (the cascades that ship inside opencv-python, below), the fallback when the model files are
absent. Each Detection says which backend made it.

    detector = make_detector()                # landmarks if the models are cached, else Haar
    det = detector.detect(frame_bgr)          # None, or a Detection in frame pixels
    if det is not None:
        strip_rgb, feats = crop_eyes(frame_bgr, det)   # (32, 96, 3) uint8, (13,) float32
        if not eyes_closed(strip_rgb, det): ...

The strip: with landmarks each eye is cut along its own corners and scaled by its own width, so its
corners sit at EYE_*_XY -+ EYE_WIDTH_PX / 2, where the renderer puts them (corner_alignments); with
Haar (no corners) one similarity puts the two eye centres on EYE_LEFT_XY / EYE_RIGHT_XY.

Coordinates are continuous frame pixels, x to the right and y down, pixel j spanning [j, j + 1) (so
its centre is j + 0.5): the convention of data.EYE_LEFT_XY and of the synthetic renderer. A face box
(x, y, w, h) is given by its edges. A Detection is in the camera's raw (unmirrored) frame, and "left
eye" is the eye with the smaller x in that image (the person's right eye).

Mirroring: the model's input is a selfie (mirrored) view, as the synthetic renderer draws it, so that
looking further right on the screen moves the iris right in the strip and the face box moves the way
the head does. crop_eyes mirrors while it warps, so the strip's left eye (EYE_LEFT_XY) is the
Detection's right_eye, and its face features are those of the mirrored box (mirror_box). Anything
that writes a face box to labels.csv must write mirror_box(det.face, frame_w) so that
data.face_features of the row equals the features crop_eyes returned.

Haar speed: the first frame (and any frame after the face is lost) searches the whole frame downscaled to
`detect_width` pixels wide. Later frames search only a margin around the last face, downscaled so the
face is about `track_face_px` wide, and look for each eye only near where it was, at a scale where the
face is `eye_face_px` wide. That keeps the Haar work to about 1-2 ms a frame on one core at 640x480.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from gazeneg.errors import GazenegError
from gazeneg.strip import (
    EYE_LEFT_XY,
    EYE_RIGHT_XY,
    EYE_WIDTH_PX,
    IMAGE_H,
    IMAGE_W,
    eye_features,
    face_features,
    selfie_pose,
)
from gazeneg.webcam.detection import Detection  # noqa: F401  (re-exported: detect.Detection)
from gazeneg.webcam.landmarks import LandmarkDetector
from gazeneg.webcam.model_files import FETCH_COMMAND, ModelFileError, missing_models
from gazeneg.webcam.options import FACE_BACKENDS

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
# Where the eye centres sit inside a frontalface_default box, as fractions (x, y) of its width and
# height: measured on the cascade's boxes for real faces (the scikit-image astronaut gives 0.27/0.36 and
# 0.75/0.39). Used until an eye has been measured, and to fill in an eye the cascade misses.
NOMINAL_EYES = ((0.30, 0.38), (0.70, 0.38))
# The eye band searched when (re)acquiring the eyes: fractions of the face height.
EYE_BAND = (0.15, 0.62)
# Plausible eye pair, in face widths: centre distance and vertical offset.
EYE_DISTANCE_RANGE = (0.28, 0.62)
EYE_MAX_DY = 0.22
# Iris contrast (see iris_contrast) below which an eye with no cascade hit counts as closed.
CLOSED_CONTRAST = 0.40


class CascadeError(GazenegError, RuntimeError):
    """A Haar cascade file is missing from the installed OpenCV."""


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise CascadeError(f"{path}: Haar cascade missing or unreadable; reinstall opencv-python "
                           "(it ships the cascades in cv2/data)")
    return cascade


def _gray(img_bgr: np.ndarray) -> np.ndarray:
    return img_bgr if img_bgr.ndim == 2 else cv2.cvtColor(img_bgr, cv2.COLOR_BGR2GRAY)


def _to_frame(v_small: float, k: float, offset: float) -> float:
    """A coordinate in an ROI resized by factor k back to the frame (edge convention: exact)."""
    return v_small / k + offset


def _scaled_roi(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, k: float) -> np.ndarray:
    """Gray, histogram-equalised ROI of frame resized by factor k (k <= 1 uses INTER_AREA)."""
    roi = _gray(frame[y0:y1, x0:x1])
    if abs(k - 1.0) > 1e-3:
        size = (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k)))
        roi = cv2.resize(roi, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    return cv2.equalizeHist(roi)


class FaceEyeDetector:
    """Haar face + eye detector that tracks across frames. Call detect() on consecutive frames of one
    video; call reset() (or make a new detector) before unrelated images if you want no tracking.

    detect_width: width the frame is shrunk to for a full search (frames narrower are not enlarged).
    min_face_frac: smallest face searched for, as a fraction of the frame width.
    track_face_px / eye_face_px: face width, in pixels, at which the tracking face search and the eye
    search run. smooth: weight of the previous position when the face barely moved (0 = none); damps
    the cascade's frame-to-frame jitter of a few pixels without lagging real motion.
    """

    def __init__(self, *, track: bool = True, detect_width: int = 320, min_face_frac: float = 0.12,
                 track_face_px: int = 40, eye_face_px: int = 80, smooth: float = 0.5,
                 min_neighbors: int = 5):
        self.face_cascade = _load_cascade(FACE_CASCADE)
        self.eye_cascade = _load_cascade(EYE_CASCADE)
        self.track = track
        self.detect_width = detect_width
        self.min_face_frac = min_face_frac
        self.track_face_px = track_face_px
        self.eye_face_px = eye_face_px
        self.smooth = smooth
        self.min_neighbors = min_neighbors
        self.reset()

    def reset(self) -> None:
        self.last: Detection | None = None
        self._size_bias = 1.0  # full-search box width / tracking-search box width for this face
        # Last measured eye centres relative to the face box, in face widths/heights: (fx, fy) or None.
        self._eye_rel: list[tuple[float, float] | None] = [None, None]

    # -- face ------------------------------------------------------------------------------------

    def _search_full(self, frame: np.ndarray) -> tuple[int, int, int, int] | None:
        h, w = frame.shape[:2]
        k = min(1.0, self.detect_width / w)
        small = _scaled_roi(frame, 0, 0, w, h, k)
        min_px = max(24, int(self.min_face_frac * w * k))
        faces, votes = self.face_cascade.detectMultiScale2(small, 1.1, self.min_neighbors,
                                                           minSize=(min_px, min_px))
        if len(faces) == 0:
            return None
        # The most-voted box (overlapping raw hits merged into it): on the astronaut photo a shadow on
        # the suit gives a larger box with 5 votes against the face's 45.
        x, y, fw, fh = faces[int(np.argmax(votes))]
        return (round(x / k), round(y / k), round(fw / k), round(fh / k))

    def _search_near(self, frame: np.ndarray, last: tuple[int, int, int, int], *,
                     smooth: bool = True) -> tuple[int, int, int, int] | None:
        h, w = frame.shape[:2]
        lx, ly, lw, lh = last
        m = 0.35 * lw  # how far the face may move between two frames
        x0, y0 = max(0, int(lx - m)), max(0, int(ly - m))
        x1, y1 = min(w, int(lx + lw + m)), min(h, int(ly + lh + m))
        if x1 - x0 < lw * 0.6 or y1 - y0 < lh * 0.6:
            return None
        k = min(1.0, self.track_face_px / lw)
        small = _scaled_roi(frame, x0, y0, x1, y1, k)
        target = lw * k
        # Faces change size by a few % a frame: searching only 0.85-1.2x the last size is several
        # times cheaper than an open range (the cascade's cost grows with the number of scales).
        faces = self.face_cascade.detectMultiScale(
            small, 1.1, max(2, self.min_neighbors - 2),
            minSize=(int(target * 0.85),) * 2, maxSize=(int(target * 1.2) + 1,) * 2)
        if len(faces) == 0:
            return None
        cx, cy = (lx + lw / 2 - x0) * k, (ly + lh / 2 - y0) * k
        x, y, fw, fh = min(faces, key=lambda f: (f[0] + f[2] / 2 - cx) ** 2 + (f[1] + f[3] / 2 - cy) ** 2)
        # The cascade's box size depends on the resolution it runs at; _size_bias (measured when the
        # face was acquired) maps this search's sizes onto the full search's, so boxes do not creep.
        cxf, cyf = (x + fw / 2) / k + x0, (y + fh / 2) / k + y0
        fw, fh = fw / k * self._size_bias, fh / k * self._size_bias
        face = (cxf - fw / 2, cyf - fh / 2, fw, fh)
        moved = math.hypot(cxf - lx - lw / 2, cyf - ly - lh / 2)
        if smooth and self.smooth > 0 and moved < 0.08 * lw:
            face = tuple(self.smooth * a + (1 - self.smooth) * b for a, b in zip(last, face, strict=True))
        return tuple(round(v) for v in face)

    # -- eyes ------------------------------------------------------------------------------------

    def _expected_eye(self, face, i: int) -> tuple[float, float]:
        fx, fy, fw, fh = face
        rx, ry = self._eye_rel[i] if self._eye_rel[i] is not None else NOMINAL_EYES[i]
        return fx + rx * fw, fy + ry * fh

    def _eye_candidates(self, frame, face, x0, y0, x1, y1, size=(0.17, 0.45)) -> list[tuple[float, float]]:
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return []
        fw = face[2]
        k = min(1.0, self.eye_face_px / fw)
        small = _scaled_roi(frame, x0, y0, x1, y1, k)
        lo, hi = int(size[0] * fw * k), int(size[1] * fw * k) + 1
        boxes = self.eye_cascade.detectMultiScale(small, 1.1, 3, minSize=(max(lo, 12),) * 2,
                                                  maxSize=(max(hi, 14),) * 2)
        return [(_to_frame(bx + bw / 2, k, x0), _to_frame(by + bh / 2, k, y0))
                for bx, by, bw, bh in boxes]

    def _find_eyes(self, frame, face, tracked: bool):
        fx, fy, fw, fh = face
        expected = [self._expected_eye(face, i) for i in (0, 1)]
        found: list[tuple[float, float] | None] = [None, None]
        if tracked and all(r is not None for r in self._eye_rel):
            # Each eye only near where it was: two small searches instead of the whole band.
            # An eye box is ~0.3 face widths; the ROI leaves ~0.07 for motion relative to the face.
            half = 0.22 * fw
            for i, (ex, ey) in enumerate(expected):
                cands = self._eye_candidates(frame, face, ex - half, ey - half, ex + half, ey + half,
                                             size=(0.22, 0.38))
                if cands:
                    found[i] = min(cands, key=lambda c, e=(ex, ey): (c[0] - e[0]) ** 2 + (c[1] - e[1]) ** 2)
        else:
            cands = self._eye_candidates(frame, face, fx, fy + EYE_BAND[0] * fh, fx + fw, fy + EYE_BAND[1] * fh)
            mid = fx + fw / 2
            for i, side in enumerate((lambda c: c[0] < mid, lambda c: c[0] >= mid)):
                mine = [c for c in cands if side(c)]
                if mine:
                    e = expected[i]
                    found[i] = min(mine, key=lambda c, e=e: (c[0] - e[0]) ** 2 + (c[1] - e[1]) ** 2)
        found = self._check_pair(found, expected, fw)
        eyes = []
        for i in (0, 1):
            if found[i] is not None:
                eyes.append(found[i])
            elif found[1 - i] is not None and self._eye_rel[i] is None:
                # Never measured this eye: mirror the found one across the nominal eye spacing.
                ox, oy = found[1 - i]
                dx = (NOMINAL_EYES[1][0] - NOMINAL_EYES[0][0]) * fw
                eyes.append((ox + dx if i == 1 else ox - dx, oy))
            else:
                eyes.append(expected[i])
        if self.smooth > 0 and tracked and self.last is not None:
            prev = (self.last.left_eye, self.last.right_eye)
            eyes = [_blend(e, p, self.smooth, 0.06 * fw) for e, p in zip(eyes, prev, strict=True)]
        for i in (0, 1):
            if found[i] is not None:
                self._eye_rel[i] = ((eyes[i][0] - fx) / fw, (eyes[i][1] - fy) / fh)
        return eyes[0], eyes[1], sum(f is not None for f in found)

    @staticmethod
    def _check_pair(found, expected, fw):
        """Drop an implausible eye pair's worse member (e.g. an eyebrow or a nostril hit)."""
        if found[0] is None or found[1] is None:
            return found
        dx, dy = found[1][0] - found[0][0], found[1][1] - found[0][1]
        if EYE_DISTANCE_RANGE[0] * fw <= dx <= EYE_DISTANCE_RANGE[1] * fw and abs(dy) <= EYE_MAX_DY * fw:
            return found
        err = [math.dist(found[i], expected[i]) for i in (0, 1)]
        out = list(found)
        out[int(np.argmax(err))] = None
        return out

    # -- public ----------------------------------------------------------------------------------

    def detect(self, frame_bgr: np.ndarray) -> Detection | None:
        """The face in this frame (the cascade's most-voted box on a full search, the one nearest the
        last face when tracking) with both eye centres, or None when there is no face."""
        if frame_bgr is None or frame_bgr.ndim not in (2, 3) or frame_bgr.size == 0:
            raise ValueError("detect() needs a non-empty BGR (H, W, 3) or gray (H, W) uint8 frame")
        face, tracked = None, False
        if self.track and self.last is not None:
            face = self._search_near(frame_bgr, self.last.face)
            tracked = face is not None
        if face is None:
            if self.last is not None:
                self._eye_rel = [None, None]  # a new acquisition: re-measure both eyes
            face = self._search_full(frame_bgr)
            if face is not None and self.track:
                self._size_bias = 1.0
                near = self._search_near(frame_bgr, face, smooth=False)
                if near is not None:
                    self._size_bias = float(np.clip(face[2] / near[2], 0.75, 1.33))
        if face is None:
            self.last = None
            return None
        left, right, n = self._find_eyes(frame_bgr, face, tracked)
        det = Detection(tuple(int(v) for v in face), (float(left[0]), float(left[1])),
                        (float(right[0]), float(right[1])), n, tracked)
        self.last = det if self.track else None
        return det


BACKENDS = FACE_BACKENDS   # defined with live's --face-backend option (webcam/options.py)


def make_detector(backend: str = "auto", *, track: bool = True, warn=None, alternate_iris: bool = False):
    """A face detector with the detect(frame_bgr) -> Detection | None contract. "landmarks": MediaPipe
    mesh + iris (gazeneg.webcam.landmarks; raises models_cache.ModelFileError naming the fetch command when a
    model file is missing or bad); "haar": the cascades above; "auto": landmarks when the model files
    are in the cache, else Haar, after calling warn(message) (default: print to stderr) once.
    alternate_iris: landmarks only, see landmarks.LandmarkDetector."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown face backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend in ("auto", "landmarks"):
        if backend == "landmarks" or not missing_models():
            return LandmarkDetector(track=track, alternate_iris=alternate_iris)
        try:
            return LandmarkDetector(track=track, alternate_iris=alternate_iris)
        except ModelFileError as e:
            msg = (f"face backend: landmark models unavailable ({e}); using the Haar cascades. "
                   f"`{FETCH_COMMAND}` fetches the models")
            if warn is None:
                import sys
                print(msg, file=sys.stderr)
            else:
                warn(msg)
    return FaceEyeDetector(track=track)


def _blend(new, old, w_old: float, radius: float):
    if math.dist(new, old) > radius:
        return new
    return (w_old * old[0] + (1 - w_old) * new[0], w_old * old[1] + (1 - w_old) * new[1])


# ----------------------------------------------------------------------------------------------
# The model's input


def mirror_box(face, frame_w: float) -> tuple[float, float, float, float]:
    """The face box (x, y, w, h) as seen in the mirrored (selfie) view of a frame frame_w wide."""
    x, y, w, h = face
    return (frame_w - x - w, y, w, h)


def _similarity(p0, p1, q0, q1) -> np.ndarray:
    """3x3 rotation + uniform scale + translation taking points p0, p1 onto q0, q1."""
    a0, a1, b0, b1 = (complex(*v) for v in (p0, p1, q0, q1))
    if abs(a1 - a0) < 1e-6:
        raise ValueError(f"eye centres {p0} and {p1} coincide: cannot align")
    c = (b1 - b0) / (a1 - a0)  # z -> c z + t: |c| is the scale, arg c the rotation
    t = b0 - c * a0
    return np.array([[c.real, -c.imag, t.real], [c.imag, c.real, t.imag], [0.0, 0.0, 1.0]])


def eye_alignment(left_eye, right_eye, frame_w: float) -> np.ndarray:
    """3x3 affine from raw-frame to strip coordinates (both edge convention): mirror the frame, then a
    similarity taking the mirrored eyes onto EYE_LEFT_XY (the Detection's right_eye, which is on the
    left once mirrored) and EYE_RIGHT_XY (its left_eye)."""
    mirror = np.array([[-1.0, 0.0, frame_w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    m_left = (frame_w - right_eye[0], right_eye[1])
    m_right = (frame_w - left_eye[0], left_eye[1])
    return _similarity(m_left, m_right, EYE_LEFT_XY, EYE_RIGHT_XY) @ mirror


# warpAffine samples at pixel centres (integer coordinates); ours put pixel centres at j + 0.5.
_TO_CENTRES = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
_FROM_CENTRES = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])


def _warp_to(frame_bgr: np.ndarray, E: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """frame resampled through the 3x3 affine E (frame edge pixels -> output edge pixels) into out_w x
    out_h pixels, replicating the border."""
    H, W = frame_bgr.shape[:2]
    scale = math.hypot(E[0, 0], E[1, 0])
    src = frame_bgr
    if scale < 0.8:
        # Shrinking by more than ~1.25x with warpAffine's bilinear sampling aliases (eyelashes turn to
        # moire): shrink the region around the eyes with INTER_AREA first, then warp at scale ~1.
        corners = np.array([[0, 0, 1], [out_w, 0, 1], [0, out_h, 1], [out_w, out_h, 1]], np.float64)
        pts = corners @ np.linalg.inv(E).T
        x0, y0 = (max(0, int(math.floor(v)) - 2) for v in pts[:, :2].min(0))
        x1, y1 = min(W, int(math.ceil(pts[:, 0].max())) + 2), min(H, int(math.ceil(pts[:, 1].max())) + 2)
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            nw, nh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
            src = cv2.resize(frame_bgr[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
            # resized (edge convention) = k (p - origin), exactly
            E = E @ np.array([[(x1 - x0) / nw, 0.0, x0], [0.0, (y1 - y0) / nh, y0], [0.0, 0.0, 1.0]])
    M = (_TO_CENTRES @ E @ _FROM_CENTRES)[:2]
    return cv2.warpAffine(src, M, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def corner_alignments(eye_corners, frame_w: float) -> tuple[np.ndarray, np.ndarray]:
    """The two 3x3 affines (raw frame -> strip pixels, edge convention) of the corner crop: mirror the
    frame, then for each eye the similarity that puts its outer and inner corner on the strip's line
    y = EYE_*_XY[1] at EYE_*_XY[0] -+ EYE_WIDTH_PX / 2, so each eye is turned level along its own
    corners and scaled by its own width. eye_corners: ((outer, inner) of the image-left eye, (inner,
    outer) of the image-right eye) in raw-frame pixels, as landmarks.FaceLandmarks.eye_corners. The
    strip's left half shows the image-right eye (the person's left eye, on the left in a selfie view)."""
    mirror = np.array([[-1.0, 0.0, frame_w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

    def m(p):
        return (frame_w - p[0], p[1])

    (l_outer, l_inner), (r_inner, r_outer) = eye_corners
    half = EYE_WIDTH_PX / 2
    # Mirrored, the image-right eye's outer corner is on the left, and the image-left eye's inner one.
    A = _similarity(m(r_outer), m(r_inner), (EYE_LEFT_XY[0] - half, EYE_LEFT_XY[1]),
                    (EYE_LEFT_XY[0] + half, EYE_LEFT_XY[1])) @ mirror
    B = _similarity(m(l_inner), m(l_outer), (EYE_RIGHT_XY[0] - half, EYE_RIGHT_XY[1]),
                    (EYE_RIGHT_XY[0] + half, EYE_RIGHT_XY[1])) @ mirror
    return A, B


def crop_eyes(frame_bgr: np.ndarray, det: Detection) -> tuple[np.ndarray, np.ndarray]:
    """(strip, face_feats): the IMAGE_H x IMAGE_W RGB uint8 eye strip of the mirrored frame and
    data.face_features of the mirrored face box and the head pose (detection_pose) ((FACE_FEATURES,)
    float32): what the synthetic renderer writes.

    With landmarks (eye corners known) the strip is the corner crop: each eye warped on its own so its
    corners land at EYE_*_XY -+ EYE_WIDTH_PX / 2 (corner_alignments), which is where the renderer puts
    them. Without (Haar), one similarity for the whole strip puts the two eye centres on EYE_LEFT_XY
    (the Detection's right_eye, on the left once mirrored) and EYE_RIGHT_XY."""
    H, W = frame_bgr.shape[:2]
    if det.landmarks is not None:
        A, B = corner_alignments(det.landmarks.eye_corners, W)
        half = IMAGE_W // 2
        shift = np.array([[1.0, 0.0, -half], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        strip = np.concatenate([_warp_to(frame_bgr, A, half, IMAGE_H),
                                _warp_to(frame_bgr, shift @ B, IMAGE_W - half, IMAGE_H)], axis=1)
    else:
        strip = _warp_to(frame_bgr, eye_alignment(det.left_eye, det.right_eye, W), IMAGE_W, IMAGE_H)
    strip = cv2.cvtColor(strip, cv2.COLOR_BGR2RGB) if strip.ndim == 3 else cv2.cvtColor(strip, cv2.COLOR_GRAY2RGB)
    box, frame_wh, pose = face_columns(det, W, H)
    return strip, face_features(*box, *frame_wh, *pose, eyes=landmark_features(det, W))


def face_columns(det: Detection, frame_w: int, frame_h: int) -> tuple[tuple, tuple, tuple]:
    """What a labels.csv row records of a detection, in the mirrored view the strip is cut in: the face box
    (x, y, w, h), the frame (W, H) and the head pose (detection_pose). data.face_features of these is what
    crop_eyes hands the model, so capture and import write them."""
    return mirror_box(det.face, frame_w), (frame_w, frame_h), detection_pose(det)


def landmark_features(det: Detection, frame_w: float) -> np.ndarray | None:
    """The eye landmark features (strip.eye_features, (6,) float64: iris x, iris y, lid opening of the
    strip-left eye, then of the strip-right eye) of a landmark detection, measured in the mirrored view the
    strip is cut in, as the renderer computes them from its exact geometry; None for Haar (no landmarks).
    These are the eye_lx..eye_ropen columns capture and import write (DatasetWriter.add(eyes=...))."""
    lm = det.landmarks
    if lm is None:
        return None

    def m(p):
        return (frame_w - float(p[0]), float(p[1]))

    (l_outer, l_inner), (r_inner, r_outer) = lm.eye_corners
    # Mirrored, the raw image-right eye (the person's left) is the strip's left eye; each eye's corners are
    # given left to right in the mirrored view.
    return eye_features((m(lm.iris[1]), m(lm.iris[0])),
                        ((m(r_outer), m(r_inner)), (m(l_inner), m(l_outer))),
                        (lm.opening[1], lm.opening[0]))


def detection_pose(det: Detection) -> tuple[float, float, float]:
    """The head pose features (yaw, pitch, roll degrees, selfie convention: strip.selfie_pose) of a
    detection: the landmark model's solvePnP pose mirrored, or zeros from Haar (no pose) or a failed
    solvePnP. These are the yaw,pitch,roll columns capture writes."""
    return selfie_pose(det.landmarks.head_pose if det.landmarks is not None else None)


def iris_contrast(strip_rgb: np.ndarray) -> tuple[float, float]:
    """How strongly a dark iris-sized blob stands out around each nominal eye centre of an aligned
    strip, for the left and the right eye (0..1): (median - darkest 7x7 mean) / median of the gray
    patch. The iris is ~9 px across at the strip's 48 px eye spacing, so it survives the 7x7 mean; a
    closed lid's 1-2 px lash line and skin texture do not."""
    gray = cv2.cvtColor(strip_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    out = []
    for ex, ey in (EYE_LEFT_XY, EYE_RIGHT_XY):
        patch = gray[int(ey) - 8:int(ey) + 9, int(ex) - 13:int(ex) + 14]
        med = float(np.median(patch))
        darkest = float(cv2.blur(patch, (7, 7))[3:-3, 3:-3].min())
        out.append(max(0.0, med - darkest) / max(med, 1.0))
    return out[0], out[1]


def eyes_closed(strip_rgb: np.ndarray, det: Detection, *, min_contrast: float = CLOSED_CONTRAST) -> bool:
    """True when the eyes look closed. Landmark backend: the blink flag (both eyelid openings below
    landmarks.BLINK_OPENING). Haar: the eye cascade (trained on open eyes) found neither eye in this
    frame and neither eye region shows iris contrast, a heuristic that errs towards keeping frames."""
    if det.landmarks is not None:
        return bool(det.landmarks.blink)
    if det.eyes_found > 0:
        return False
    return max(iris_contrast(strip_rgb)) < min_contrast


# Why open_eye_strip found no strip in a frame (the counts `gazeneg adapt` prints).
NO_FACE, CLOSED = "no face with both eyes", "eyes closed"


def open_eye_strip(detector, frame_bgr: np.ndarray) -> tuple[np.ndarray | None, str]:
    """(strip, "") of a frame as the live pipeline cuts it (crop_eyes), or (None, NO_FACE) when no face with
    both eyes is found, (None, CLOSED) when the eyes are closed (eyes_closed): a frame's open-eye strip."""
    det = detector.detect(frame_bgr)
    if det is None or det.eyes_found != 2:
        return None, NO_FACE
    strip, _feats = crop_eyes(frame_bgr, det)
    return (None, CLOSED) if eyes_closed(strip, det) else (strip, "")
