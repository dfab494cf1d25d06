"""Render the built-in synthetic eye data set (standard format, plus truth.csv and contact_sheet.png).

    gazeneg render --out data/synth24            # 24 subjects x 144 cells x 2
    gazeneg render --out /tmp/s --subjects 4 --frames-per-cell 1 --seed 3
    gazeneg render --default                     # the cached default set
"""

import argparse
import dataclasses
import sys

from gazeneg.cli.errors import RESUME, as_cli
from gazeneg.data.synth import (
    DEFAULT_CONFIG,
    DEFAULT_SUBJECTS,
    default_dataset_path,
    ensure_default_dataset,
    render_dataset,
)
from gazeneg.units import at_least


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="new (or empty) folder to render into")
    where.add_argument("--default", action="store_true",
                       help="render the default set into its cache folder if missing (what training uses)")
    p.add_argument("--subjects", type=at_least(1), default=DEFAULT_SUBJECTS,
                   help=f"number of subjects (default {DEFAULT_SUBJECTS})")
    p.add_argument("--frames-per-cell", type=at_least(1), default=2,
                   help="frames per cell per subject (default 2)")
    p.add_argument("--seed", type=at_least(0), default=0, help="seed; same seed, same bytes (default 0)")
    p.add_argument("--workers", type=at_least(1), default=None,
                   help="worker processes (default: one per CPU, at most one per subject)")
    p.add_argument("--no-contact-sheet", action="store_true", help="skip contact_sheet.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--iris-view", choices=("head", "camera"), default=DEFAULT_CONFIG.iris_view,
                   help="place the iris by its angle to the camera (default, as a real face shows it) or by its "
                        "eye-in-head angle (renderer version 3) (SynthConfig.iris_view)")
    return p


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    kw = dict(n_subjects=args.subjects, frames_per_cell=args.frames_per_cell, seed=args.seed)
    if args.iris_view != DEFAULT_CONFIG.iris_view:
        kw["config"] = dataclasses.replace(DEFAULT_CONFIG, iris_view=args.iris_view)
    if args.default:
        if args.no_contact_sheet:
            print(f"note: --no-contact-sheet is ignored with --default ({default_dataset_path(**kw)})",
                  file=sys.stderr)
        out = ensure_default_dataset(workers=args.workers, progress=not args.quiet, **kw)
    else:
        out = render_dataset(args.out, workers=args.workers, progress=not args.quiet,
                             contact_sheet=not args.no_contact_sheet, **kw)
    print(f"synthetic data set: {out}")
    return 0


cli = as_cli(main, resume=RESUME["render"])
