#!/usr/bin/env python
"""`make demo`: render the default synthetic data set (once), train the default CNN on it,
evaluate on held-out subjects against the ridge baseline, and say where the results are."""

import sys
from pathlib import Path

from gazeneg.cli.errors import run_cli
from gazeneg.config import TrainConfig
from gazeneg.files import atomic_write_bytes
from gazeneg.training.loop import run
from gazeneg.training.runfiles import summary_lines

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "demo.pt"


def main(argv=None) -> int:
    cfg = TrainConfig(name="demo")
    run_dir = run(cfg, argv=["scripts/demo.py"])
    print()
    for line in summary_lines(run_dir):
        print(line)
    # The model users reach for first (scripts/live.py checkpoints/demo.pt): a copy, written atomically.
    CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(CHECKPOINT, (Path(run_dir) / "best.pt").read_bytes())
    print(f"\nResults are in {run_dir}/ (metrics.json, metrics.csv, predictions.csv, best.pt, last.pt)")
    print(f"The trained model is also at {CHECKPOINT}  (live tracking: python scripts/live.py {CHECKPOINT})")
    print("Next: python scripts/eval_wrong_labels.py --quick   (does a negative learning rate on wrong labels help?)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
