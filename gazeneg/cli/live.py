"""Live gaze tracking with a trained checkpoint: highlights the predicted cell and a smoothed point.

    gazeneg live runs/20261124-101500-gazecnn/best.pt            # webcam 0
    gazeneg live best.pt --smoother ema --alpha 0.4 --recalibrate
    gazeneg live best.pt --screen-cm 30.9x17.4 --distance-cm 55   # accuracy in cm and degrees
    gazeneg live best.pt --source recording.mp4 --headless        # no window: latency figures

On the first run (or with --recalibrate) it shows 9 calibration targets, fits a per-user affine
correction and saves it as <checkpoint>.calib.<user>.json (--user, default the OS user; an old
<checkpoint>.calib.json, from before calibrations were per user, becomes the running user's); then an
accuracy check on 8 other targets prints the mean error in cells, cm and degrees and the precision.
Keys: c recalibrate, v accuracy check, Esc (or q) quit.
"""

import argparse
import json

from gazeneg.cli.errors import RESUME, as_cli
from gazeneg.units import at_least, parse_size, size_arg
from gazeneg.webcam.filters import DEFAULT_SMOOTHER, SMOOTHERS
from gazeneg.webcam.options import DEFAULT_DISTANCE_CM, DEFAULT_SCREEN_CM, add_face_backend
from gazeneg.webcam.options import add_args as tracker_args


def _weight(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < v <= 1:   # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return v


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a gazeneg checkpoint (best.pt or last.pt of a run)")
    p.add_argument("--source", default="0", help="camera index, video file or image folder (default 0)")
    p.add_argument("--headless", action="store_true", help="no window: run the pipeline over a file source and "
                   "print latency figures (no calibration or accuracy check: nobody looks at targets)")
    p.add_argument("--max-frames", type=at_least(1), default=None, help="stop after this many frames (>= 1)")
    p.add_argument("--smoother", choices=SMOOTHERS, default=DEFAULT_SMOOTHER,
                   help="gaze filter (default %(default)s, chosen by benchmarks/filters.py)")
    p.add_argument("--alpha", type=_weight, default=0.3, help="EMA weight of the newest point, in (0, 1]")
    p.add_argument("--user", default=None, metavar="NAME", help="whose calibration to load or save (default: the "
                   "OS user); each person keeps their own <checkpoint>.calib.<NAME>.json")
    p.add_argument("--kalman-accel", type=float, default=200.0, help="Kalman process noise (cells^2/s^3)")
    p.add_argument("--kalman-noise", type=float, default=0.6, help="Kalman measurement noise (cells)")
    p.add_argument("--calib-targets", type=int, default=9, help="calibration targets (3..25)")
    p.add_argument("--recalibrate", action="store_true", help="calibrate even if a saved calibration exists")
    p.add_argument("--no-calibrate", action="store_true", help="use the model's raw outputs")
    p.add_argument("--no-validate", action="store_true", help="skip the accuracy check")
    p.add_argument("--samples", type=int, default=15, help="samples per calibration/validation target")
    p.add_argument("--fixation", type=float, default=0.8, help="seconds before a target's samples count")
    p.add_argument("--screen", default=None, metavar="WxH", help="window size in pixels (default: detected)")
    p.add_argument("--screen-cm", type=size_arg("--screen-cm", "cm"), default=DEFAULT_SCREEN_CM, metavar="WxH",
                   help=f"visible screen size in cm (default {DEFAULT_SCREEN_CM[0]}x{DEFAULT_SCREEN_CM[1]})")
    p.add_argument("--distance-cm", type=float, default=DEFAULT_DISTANCE_CM, help="eye-screen distance in cm")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    p.add_argument("--camera-mean", default="calibration", metavar="FILE|calibration|none",
                   help="bring each eye strip to the mean the model was trained on before the model sees it (a "
                        "pixel-by-pixel gain from your camera's mean strip; docs/domain-gap.md): 'calibration' "
                        "(default) fits your camera's mean from the calibration's own strips and saves it with the "
                        "calibration; FILE: a camera mean from gazeneg adapt (its calibration is kept apart: user key "
                        "<user>-cam-<file name>); 'none': no new camera mean (a saved calibration keeps the gain it was fitted "
                        "with, if any)")
    add_face_backend(p)
    p.add_argument("--iris", choices=("alternate", "every"), default="alternate",
                   help="landmarks: run the iris model on one eye per tracked frame, in turn (default: about 4 ms "
                        "less per frame; the strip is cut by the eye corners, and a blink is seen up to a frame "
                        "later), or on both eyes every frame")
    tracker_args(p)  # recording, streaming, replay: gazeneg/webcam/tracker.py
    return p


def camera_user(user: str, camera_mean: str) -> str:
    """The calibration key of `user` with a camera mean: its own calibration file (<checkpoint>.calib.<key>.json),
    since the model's outputs differ with and without the strips brought to its training mean."""
    import re
    from pathlib import Path

    return f"{user}-cam-{re.sub(r'[^A-Za-z0-9_-]', '_', Path(camera_mean).stem)}"[:64]


def camera_correction(args, model, ckpt: dict):
    """(normalise, training_mean) for --camera-mean: a CameraNormaliser from a file, or the model's training
    mean for the calibration to fit the camera's mean from its own strips, or neither."""
    normalise = training_mean = None
    if args.camera_mean == "calibration" and not args.headless and not getattr(model, "closed_form", False):
        from gazeneg.data.adapt import CameraMeanError, input_mean_of

        try:
            training_mean = input_mean_of(ckpt, args.checkpoint)
        except CameraMeanError:   # the default: said once, not an error
            print(f"{args.checkpoint} records no training mean strip (trained before gazeneg kept it): the eye strips "
                  "go to the model as cut")
    elif args.camera_mean not in ("calibration", "none"):
        import numpy as np

        from gazeneg.data.adapt import CameraMean, CameraMeanError, CameraNormaliser, input_mean_of

        if getattr(model, "closed_form", False):
            raise CameraMeanError(f"--camera-mean: {args.checkpoint} is the landmark-feature model, which reads "
                                  "no pixels: a camera's mean strip changes nothing it sees; leave the option out")
        camera = CameraMean.load(args.camera_mean)
        normalise = CameraNormaliser(camera, input_mean_of(ckpt, args.checkpoint))
        print(f"eye strips brought to the model's training mean with {args.camera_mean} ({camera.n} strips; "
              f"gain {np.percentile(normalise.gain, 5):.2f}-{np.percentile(normalise.gain, 95):.2f}, 5th-95th pct)")
    return normalise, training_mean


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    if args.screen:   # a string (--monitor may fill it in): checked here, before minutes of loading
        parse_size(args.screen, "--screen")
    # torch and OpenCV only once the options are read: `gazeneg live --help` stays fast
    import cv2
    import torch

    from gazeneg.model.checkpoint import load_checkpoint
    from gazeneg.webcam.detect import make_detector
    from gazeneg.webcam.live import (
        FramePipeline,
        LiveSession,
        LiveWindow,
        adopt_legacy_calibration,
        calibration_path,
        default_user,
        list_calibrations,
        make_smoother,
        poor_fit_threshold,
        run_live,
        summarize_latency,
    )
    from gazeneg.webcam.sources import CaptureError, ProgressSource, frame_count, screen_size
    from gazeneg.webcam.tracker import attach as attach_outputs
    from gazeneg.webcam.tracker import open_input

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model, _ckpt = load_checkpoint(args.checkpoint)
    normalise, training_mean = camera_correction(args, model, _ckpt)
    kw = {"ema": {"alpha": args.alpha}, "kalman": {"accel": args.kalman_accel, "noise": args.kalman_noise},
          "none": {}, "one_euro": {"mincutoff": args.mincutoff, "beta": args.beta}}[args.smoother]
    pipe = FramePipeline(model, detector=make_detector(args.face_backend, alternate_iris=args.iris == "alternate"),
                         smoother=make_smoother(args.smoother, **kw))
    source = open_input(args)  # --replay DIR or --source (tracker.py)
    if args.headless and getattr(source, "live", False):
        source.close()
        raise CaptureError("--headless needs a video file or image folder as --source")
    calibrate = "never" if (args.no_calibrate or args.headless) else ("always" if args.recalibrate else "auto")
    user = args.user or default_user()
    if normalise is not None:   # a calibration fitted on strips as cut does not fit strips brought to the mean
        user = camera_user(user, args.camera_mean)
    calib_path = calibration_path(args.checkpoint, user)
    if not args.headless:   # headless calibrates nothing and loads no saved calibration (--calibration FILE does)
        if normalise is None:
            calib_path, moved = adopt_legacy_calibration(args.checkpoint, user)
            if moved:
                print(moved)
        saved = list_calibrations(args.checkpoint)
        if saved:
            print(f"calibrations saved for {args.checkpoint}: {', '.join(u for u, _ in saved)} (this is {user}; "
                  "--user NAME for another)")
    best = (_ckpt.get("extra") or {}).get("best_err")
    session = LiveSession(pipe, calib_path=calib_path, calibrate=calibrate,
                          validate=not (args.no_validate or args.headless), k=args.calib_targets,
                          samples=args.samples, fixation_s=args.fixation, screen_cm=args.screen_cm,
                          distance_cm=args.distance_cm,
                          poor_fit_cells=poor_fit_threshold(best if isinstance(best, (int, float)) else None),
                          training_mean=training_mean, camera_gain=None if normalise is None else normalise.gain)
    session = attach_outputs(session, args, source)  # the samples to files and streams (tracker.py)
    ui = None
    frames = source
    if args.headless:   # no window: a progress bar says how far through the file it is
        n = frame_count(source)
        frames = ProgressSource(source, desc="live --headless",
                                total=min(n, args.max_frames) if n and args.max_frames else (n or args.max_frames))
    try:
        if not args.headless:
            ui = LiveWindow(screen_size(args.screen))
        results = run_live(session, frames, ui=ui, max_frames=args.max_frames)
    finally:
        if ui is not None:
            ui.close()
        session.close()
        frames.close()
    if args.headless:
        summary = summarize_latency(results, warmup=min(10, len(results) // 10))
        print(json.dumps(summary, indent=1))
    return 0


cli = as_cli(main, resume=RESUME["live"])
