"""Capture a gaze dataset: a fullscreen window shows one target at a time; look at it until it moves.

    gazeneg capture --out data/me --subject me --session s1          # all 144 cells, webcam 0
    gazeneg capture --out data/me --subject me --session s1 --resume # continue after a crash
    gazeneg capture --out data/me --subject me --session s1 --validation   # into data/me-val
    gazeneg capture --out data/me --layout nine --order shuffle --repeats 3
    gazeneg capture --out data/re --source recording.mp4 --headless  # re-process a recording

Keys: arrow keys (or WASD) answer the attention check (which way the small arrow inside the target
pointed), space pauses and resumes, Esc ends (everything captured so far is kept). Each kept frame is
saved as it is taken; --resume skips the targets already complete.
"""

import argparse
import time
from pathlib import Path

from gazeneg.cli.errors import RESUME, as_cli
from gazeneg.units import parse_size
from gazeneg.webcam.capture import ORDERS, CaptureError, CaptureSettings, capture, make_plan
from gazeneg.webcam.options import add_face_backend
from gazeneg.webcam.sources import ProgressSource, open_source


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="dataset folder (created; --resume to add to an existing one)")
    p.add_argument("--subject", default="user", help="who is captured (letters, digits, - and _)")
    p.add_argument("--session", default=None, help="session name (default: the date and time)")
    p.add_argument("--resume", action="store_true", help="continue this session (or add a new one) in --out")
    p.add_argument("--source", default="0", help="camera index, video file or image folder (default 0)")
    p.add_argument("--headless", action="store_true", help="no window (file sources only); answers every "
                   "attention check as right")
    p.add_argument("--screen", default=None, metavar="WxH", help="screen size in pixels (default: detected, "
                   "else 1920x1080)")
    p.add_argument("--keep-raw", action="store_true", help="also keep each kept camera frame in OUT/raw/SESSION/")
    add_face_backend(p)
    g = p.add_argument_group("targets")
    g.add_argument("--layout", choices=("grid", "nine"), default="grid", help="all cell centres, or the "
                   "9-point calibration layout")
    g.add_argument("--order", choices=ORDERS, default="serpentine")
    g.add_argument("--cells", default=None, help="comma-separated cell indices (row * 16 + col) to capture")
    g.add_argument("--n-cells", type=int, default=0, help="a random subset of this many cells")
    g.add_argument("--repeats", type=int, default=1, help="show the whole sequence this many times")
    g.add_argument("--frames", type=int, default=None, help="frames recorded per target (default 10); with "
                   "--resume, a larger number extends the session's targets to that many")
    g.add_argument("--fixation", type=float, default=0.8, help="seconds between a target appearing and "
                   "recording")
    g.add_argument("--attention", type=float, default=None, help="fraction of targets with an attention check "
                   "(default 0.2; 0 with --headless)")
    g.add_argument("--no-face-timeout", type=float, default=10.0, help="seconds without a face before stopping")
    g.add_argument("--seed", type=int, default=0, help="seed for shuffling, subsets and arrows")
    g.add_argument("--validation", action="store_true", help="validation targets: 16 random cells, shuffled, "
                   "into OUT-val with session SESSION-val (never mixed with training data)")
    return p


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    if args.screen:
        parse_size(args.screen, "--screen")   # before the camera opens, not when the window does
    out, session, seed = Path(args.out), args.session, args.seed
    n_cells, order = args.n_cells, args.order
    if args.validation:
        out = out.with_name(out.name + "-val")
        session = f"{session}-val" if session else None
        seed += 1000  # other cells and arrows than the training plan
        n_cells = n_cells or 16
        order = "shuffle"
    if session is None:
        session = time.strftime("s%Y%m%d-%H%M%S") + ("-val" if args.validation else "")
    attention = args.attention if args.attention is not None else (0.0 if args.headless else 0.2)
    cells = [int(c) for c in args.cells.split(",")] if args.cells else None
    try:
        plan = make_plan(layout=args.layout, order=order, cells=cells, n_cells=n_cells, repeats=args.repeats,
                         attention_rate=attention, seed=seed)
    except ValueError as e:
        raise CaptureError(str(e)) from None
    settings = CaptureSettings(frames_per_target=10 if args.frames is None else args.frames, fixation_s=args.fixation,
                               no_face_timeout_s=args.no_face_timeout)
    source = args.source
    if args.headless and not str(source).isdigit():   # a file, no window: a progress bar shows it working
        source = ProgressSource(open_source(source), desc="capture --headless")
    try:
        summary = capture(out, source, subject=args.subject, session=session, plan=plan, settings=settings,
                          resume=args.resume, headless=args.headless, screen=args.screen, keep_raw=args.keep_raw,
                          seed=seed, face_backend=args.face_backend,
                          extend_frames=args.resume and args.frames is not None)
    finally:
        if isinstance(source, ProgressSource):
            source.close()   # capture closes it too, unless it failed before opening anything
    for line in summary.lines():
        print(line)
    return 0


cli = as_cli(main, extra=(CaptureError,), resume=RESUME["capture"])
