#!/usr/bin/env python
"""`make demo`: render the default synthetic data set (once), train the default CNN on it, fit the
landmark-feature model (ridge regression on the eye landmark features and the head pose: the baseline that does
not depend on how the renderer draws an eye), evaluate both on held-out subjects against the ridge baseline on
eye patches, and say where the results are."""

import argparse
import sys
from pathlib import Path

from gazeneg.cli.errors import as_cli
from gazeneg.config import TrainConfig
from gazeneg.files import atomic_write_bytes
from gazeneg.training.loop import run
from gazeneg.training.runfiles import summary_lines

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
CHECKPOINT = CHECKPOINTS / "demo.pt"
LANDMARK_CHECKPOINT = CHECKPOINTS / "landmarks.pt"


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=__doc__)   # no options: --help says what it does


def main(argv=None, prog: str | None = None) -> int:
    get_args_parser(prog).parse_args(argv)
    cfg = TrainConfig(name="demo")
    run_dir = run(cfg, argv=["scripts/demo.py"])
    print()
    for line in summary_lines(run_dir):
        print(line)
    lm_dir = run(TrainConfig(name="demo-landmarks", model="landmarks"), argv=["scripts/demo.py"])
    print()
    for line in summary_lines(lm_dir):
        print(line)
    # The models users reach for first (scripts/live.py checkpoints/demo.pt): copies, written atomically.
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(CHECKPOINT, (Path(run_dir) / "best.pt").read_bytes())
    atomic_write_bytes(LANDMARK_CHECKPOINT, (Path(lm_dir) / "best.pt").read_bytes())
    print(f"\nResults are in {run_dir}/ (metrics.json, metrics.csv, predictions.csv, best.pt, last.pt)")
    print(f"and, for the landmark-feature model, in {lm_dir}/")
    print(f"The trained models are also at {CHECKPOINT} and {LANDMARK_CHECKPOINT}  "
          f"(live tracking: gazeneg live {CHECKPOINT})")
    print("Real frames: python benchmarks/real_webcam.py FOLDER   (frames named ..._<x>_<y>.jpg)")
    print("Next: gazeneg eval --quick   (does a negative learning rate on wrong labels help?)")
    return 0


cli = as_cli(main)

if __name__ == "__main__":
    sys.exit(cli())
