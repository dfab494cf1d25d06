"""Face and eye localisation on a real photograph (scikit-image's astronaut.png, shipped inside its
wheel), tracking, and the crop that must match the synthetic renderer's format exactly."""

import importlib.metadata
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeneg.data.dataset import EYE_LEFT_XY, EYE_RIGHT_XY, IMAGE_H, IMAGE_W, face_features
from gazeneg.testing import ASTRONAUT_EYE_BOXES, astronaut_path, moving_face_frames
from gazeneg.webcam.detect import (
    Detection,
    FaceEyeDetector,
    crop_eyes,
    eyes_closed,
    iris_contrast,
    mirror_box,
)


def closed_eyes(photo):
    """The astronaut with both eyes painted over with cheek skin and a lash line: 'eyes closed'."""
    img = photo.copy()
    cheek = cv2.resize(photo[120:140, 190:220], (32, 18), interpolation=cv2.INTER_AREA)
    for x0, y0 in ((188, 92), (232, 95)):
        img[y0:y0 + 18, x0:x0 + 32] = cheek
        cv2.line(img, (x0 + 3, y0 + 10), (x0 + 29, y0 + 11), (60, 50, 50), 1, cv2.LINE_AA)
    return img


def inside(pt, box):
    x0, y0, x1, y1 = box
    return x0 <= pt[0] <= x1 and y0 <= pt[1] <= y1


def test_photo_ships_inside_the_installed_package():
    # Part of scikit-image's installed files (its wheel RECORD), not a pooch download.
    path = astronaut_path()
    files = importlib.metadata.files("scikit-image")
    assert any(str(f).replace("\\", "/") == "skimage/data/astronaut.png" for f in files)
    assert path.parts[-3:] == ("skimage", "data", "astronaut.png") and path.stat().st_size > 100_000


def test_eye_centres_land_inside_hand_measured_eye_boxes(photo):
    det = FaceEyeDetector().detect(photo)
    assert det is not None
    fx, fy, fw, fh = det.face
    assert inside((fx + fw / 2, fy + fh / 2), (170, 60, 280, 170))  # the face, not the suit
    assert det.eyes_found == 2
    assert inside(det.left_eye, ASTRONAUT_EYE_BOXES[0]), det.left_eye
    assert inside(det.right_eye, ASTRONAUT_EYE_BOXES[1]), det.right_eye
    assert det.left_eye[0] < det.right_eye[0]  # left = smaller x in the image


def test_tracks_a_moving_face_in_640x480_frames(photo):
    det_ = FaceEyeDetector()
    scale = 1.6
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in ASTRONAUT_EYE_BOXES]
    tracked, errs = 0, []
    for i, (frame, (ox, oy)) in enumerate(moving_face_frames(photo, 40, scale=scale)):
        assert frame.shape == (480, 640, 3)
        det = det_.detect(frame)
        assert det is not None, f"frame {i}: face lost"
        tracked += det.tracked
        for eye, (cx, cy) in zip((det.left_eye, det.right_eye), centres, strict=True):
            errs.append(math.hypot(eye[0] - (cx * scale + ox), eye[1] - (cy * scale + oy)))
    assert tracked >= 36  # all but the first frame (and a rare re-acquisition) search near the last face
    assert np.median(errs) < 4.0 and max(errs) < 10.0, (np.median(errs), max(errs))  # px at 640x480


def test_full_search_after_the_face_is_lost(photo):
    det_ = FaceEyeDetector()
    frames = [f for f, _ in moving_face_frames(photo, 3)]
    assert det_.detect(frames[0]) is not None
    assert det_.detect(np.full_like(frames[0], 110)) is None
    assert det_.last is None
    again = det_.detect(frames[2])
    assert again is not None and not again.tracked


def test_a_missing_eye_is_estimated_from_the_face(photo):
    img = photo.copy()
    # Cover the image-right eye with forehead skin: the cascade finds only the other one.
    img[94:112, 232:264] = cv2.resize(photo[70:80, 225:245], (32, 18))
    det = FaceEyeDetector().detect(img)
    assert det is not None and det.eyes_found == 1
    assert inside(det.left_eye, ASTRONAUT_EYE_BOXES[0])
    x0, y0, x1, y1 = ASTRONAUT_EYE_BOXES[1]
    assert math.hypot(det.right_eye[0] - (x0 + x1) / 2, det.right_eye[1] - (y0 + y1) / 2) < 10


def test_no_face_gives_none_and_bad_frames_raise():
    assert FaceEyeDetector().detect(np.full((480, 640, 3), 90, np.uint8)) is None
    with pytest.raises(ValueError, match="non-empty BGR"):
        FaceEyeDetector().detect(np.zeros((0, 0, 3), np.uint8))


def _disc_frame(left, right, radius, size=(640, 480)):
    """Gray frame with a dark red disc at `left` and a dark blue disc at `right` (edge convention)."""
    w, h = size
    frame = np.full((h, w, 3), 200, np.uint8)
    sh = 4  # cv2 drawing with 2**4 subpixel steps; cv2 puts integer coordinates at pixel centres
    for (x, y), colour in ((left, (0, 0, 150)), (right, (150, 0, 0))):
        cv2.circle(frame, (round((x - 0.5) * 2 ** sh), round((y - 0.5) * 2 ** sh)), round(radius * 2 ** sh),
                   colour, -1, cv2.LINE_AA, shift=sh)
    return frame


def _centroid(mask_weights):
    ys, xs = np.mgrid[0:mask_weights.shape[0], 0:mask_weights.shape[1]]
    w = mask_weights.astype(np.float64)
    return (float((w * (xs + 0.5)).sum() / w.sum()), float((w * (ys + 0.5)).sum() / w.sum()))


def _check_discs(left, right, radius):
    frame = _disc_frame(left, right, radius)
    det = Detection(face=(150, 120, 260, 260), left_eye=left, right_eye=right)
    strip, feats = crop_eyes(frame, det)
    assert strip.shape == (IMAGE_H, IMAGE_W, 3) and strip.dtype == np.uint8
    r, b = strip[..., 0].astype(int), strip[..., 2].astype(int)  # strip is RGB
    red = np.clip((r - b) - 20, 0, None)    # the disc at det.left_eye
    blue = np.clip((b - r) - 20, 0, None)   # the disc at det.right_eye
    # Mirrored (selfie) view: the image-left eye of the raw frame lands on the strip's right.
    assert np.allclose(_centroid(blue), EYE_LEFT_XY, atol=0.35), _centroid(blue)
    assert np.allclose(_centroid(red), EYE_RIGHT_XY, atol=0.35), _centroid(red)
    return feats


def test_crop_puts_eye_centres_on_the_nominal_positions():
    # A tilted pair (roll), shrunk by ~2x: the INTER_AREA pre-shrink path.
    _check_discs((250.0, 260.0), (345.0, 231.0), 9)
    # Enlarged (eyes 40 px apart), level, at half-pixel positions.
    _check_discs((300.5, 200.5), (340.5, 200.5), 3)


@settings(max_examples=25, deadline=None)
@given(x=st.floats(120, 440), y=st.floats(120, 360), dist=st.floats(36, 150), angle=st.floats(-25, 25))
def test_crop_alignment_property(x, y, dist, angle):
    a = math.radians(angle)
    left = (x, y)
    right = (x + dist * math.cos(a), y + dist * math.sin(a))
    _check_discs(left, right, max(2.5, dist * 0.1))


def test_face_features_are_those_of_the_mirrored_box():
    det = Detection(face=(400, 100, 120, 130), left_eye=(430.0, 150.0), right_eye=(480.0, 152.0))
    frame = np.full((480, 640, 3), 128, np.uint8)
    _, feats = crop_eyes(frame, det)
    assert mirror_box(det.face, 640) == (120, 100, 120, 130)
    assert np.allclose(feats, face_features(120, 100, 120, 130, 640, 480))
    # A face on the right of the raw frame is on the left of the selfie view: negative x feature.
    assert feats[0] == pytest.approx((120 + 60) / 640 - 0.5) and feats[0] < 0
    assert feats[1] == pytest.approx((100 + 65) / 480 - 0.5)


def test_flipping_the_frame_flips_the_strip():
    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 2)
    det = Detection((200, 150, 200, 200), (250.3, 240.7), (330.8, 236.1))
    flipped = frame[:, ::-1].copy()
    fdet = Detection((640 - 200 - 200, 150, 200, 200), (640 - 330.8, 236.1), (640 - 250.3, 240.7))
    a, fa = crop_eyes(frame, det)
    b, fb = crop_eyes(flipped, fdet)
    assert np.abs(a[:, ::-1].astype(int) - b.astype(int)).max() <= 2
    assert np.allclose(fa[0], -fb[0], atol=1e-6) and np.allclose(fa[1:], fb[1:])


def test_eyes_closed_check(photo):
    det_ = FaceEyeDetector()
    det = det_.detect(photo)
    strip, _ = crop_eyes(photo, det)
    assert not eyes_closed(strip, det)
    assert min(iris_contrast(strip)) > 0.45
    shut = closed_eyes(photo)
    det2 = FaceEyeDetector().detect(shut)
    assert det2 is not None and det2.eyes_found == 0
    strip2, _ = crop_eyes(shut, det2)
    assert max(iris_contrast(strip2)) < 0.4
    assert eyes_closed(strip2, det2)
