"""The landmark backend's per-frame savings change no output: the pipeline (landmarks, strip, face features,
predictions) through the current code equals, bit for bit, the same pipeline through the straightforward
formulation the savings replaced (written out here: the models read with OpenCV's default layer fusion; each model
input made as an RGB copy, a float copy and a transposed copy; each point set taken back to the frame through its
own inversion of the crop's affine), on the benchmark's moving frames (benchmarks/pipeline_latency.py), on the
astronaut still, its mirror and its gray version, and across a lost face."""

import cv2
import numpy as np
import pytest
import torch

from gazeneg.model.networks import create_model
from gazeneg.testing import astronaut_path, moving_face_frames
from gazeneg.webcam import landmarks as L
from gazeneg.webcam import model_files as mc
from gazeneg.webcam.live import FramePipeline, make_smoother


def _reference_input(crop_bgr, lo, hi):
    """The model input as it was made before: (H, W, 3) float32 RGB in [lo, hi]."""
    if crop_bgr.ndim == 2:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) * ((hi - lo) / 255.0) + lo


def _reference_run(runner, x_hwc):
    runner.net.setInput(np.ascontiguousarray(x_hwc.transpose(2, 0, 1)[None], np.float32))
    return sorted((o.reshape(-1) for o in runner.net.forward(runner.names)), key=len)


def _reference_detector(**kw):
    """A LandmarkDetector running the straightforward formulation: each model read with OpenCV's defaults
    (layer fusion on), its input made the old way."""
    det = L.LandmarkDetector(runtime="cv2.dnn", **kw)
    for runner, name in ((det.detector, L.DETECTOR_FILE), (det.mesh_model, L.MESH_FILE), (det.iris_model, L.IRIS_FILE)):
        runner.net = cv2.dnn.readNet(str(mc.model_path(name)))
        runner.names = runner.net.getUnconnectedOutLayersNames()
        runner.run_crop = lambda crop, lo, hi, r=runner: _reference_run(r, _reference_input(crop, lo, hi))

    def iris(frame, mesh, side):
        A = L.eye_roi(mesh, side).to_crop(L.IRIS_SIZE)
        if side == 1:
            A = np.array([[-1.0, 0.0, L.IRIS_SIZE], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ A
        iris_pts, contour = det.iris_model.run_crop(L.warp(frame, A, L.IRIS_SIZE), 0.0, 1.0)
        return L.to_frame(A, iris_pts.reshape(-1, 3)[:, :2])[0], L.to_frame(A, contour.reshape(-1, 3)[:, :2])

    det.iris = iris
    return det


def _same(a, b):
    """Bit-for-bit equality of floats, arrays and nested tuples (NaN equal to NaN)."""
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _frames():
    photo = cv2.imread(str(astronaut_path()), cv2.IMREAD_COLOR)
    frames = [f for f, _ in moving_face_frames(photo, 24, size=(640, 480))]   # the benchmark's frames
    still = cv2.resize(photo, (640, 480))
    return frames + [np.full((480, 640, 3), 110, np.uint8), still, still[:, ::-1].copy(),
                     cv2.cvtColor(still, cv2.COLOR_BGR2GRAY), *frames[:3]]


def test_rgb_blob_is_the_reference_input_bit_for_bit():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    crop[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 128, 254]]
    for img in (crop, crop[..., 1]):
        for lo, hi in ((0.0, 1.0), (-1.0, 1.0)):
            ref = np.ascontiguousarray(_reference_input(img, lo, hi).transpose(2, 0, 1)[None])
            got = L.rgb_blob(img, lo, hi)
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert _same(got, ref), (img.ndim, lo)


@pytest.mark.parametrize("alternate_iris", [True, False])
def test_pipeline_outputs_are_unchanged(landmark_models, alternate_iris):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = create_model("gazecnn", width=8).eval()
        pipes = [FramePipeline(model, detector=d, smoother=make_smoother("one_euro"))
                 for d in (L.LandmarkDetector(runtime="cv2.dnn", alternate_iris=alternate_iris),
                           _reference_detector(alternate_iris=alternate_iris))]
        found = 0
        for i, frame in enumerate(_frames()):
            new, ref = (p.process(frame, i / 30.0) for p in pipes)
            assert (new.det is None) == (ref.det is None), i
            if ref.det is None:
                continue
            found += 1
            a, b = new.det.landmarks, ref.det.landmarks
            for field in ("mesh", "iris", "eye_centres", "eye_corners", "opening", "blink", "head_pose", "presence"):
                assert _same(getattr(a, field), getattr(b, field)), (i, field)
            assert a.roi == b.roi and new.det == ref.det, i
            for field in ("strip", "feats", "raw", "point", "smoothed"):
                assert _same(getattr(new, field), getattr(ref, field)), (i, field)
        assert found >= 27   # every frame but the empty one
    finally:
        torch.set_num_threads(n)
