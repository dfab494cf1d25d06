#!/usr/bin/env python
"""A trained run's held-out error on renders before and after a per-person k-point calibration.

    python benchmarks/calibrated_renders.py runs/<run>            # a run folder of gazeneg train (or make demo)
    python benchmarks/calibrated_renders.py runs/<run> --k 9 --draws 200

Renderer version 4 draws where each person's camera sits (above, below or beside the screen) and shows the iris
by its angle to the camera, as a real face does: nothing in one frame tells where the camera is, so the
zero-shot error on new people includes a per-person offset that only a calibration removes (docs/face.md).
This prints both, per held-out person, from the run's predictions.csv: for each draw, k distinct target cells
of the person, an affine map (least squares) from the median prediction at each to the cell, tested on the
person's photos at every other cell. The same affine map live's calibration fits.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def calibrated_errors(pred: np.ndarray, true: np.ndarray, *, k: int, draws: int, seed: int) -> np.ndarray:
    """(draws,) mean test error (cells) after an affine calibration on k random cells of one person."""
    rng = np.random.default_rng(seed)
    cells = np.unique(true, axis=0)
    if len(cells) <= k:
        raise SystemExit(f"only {len(cells)} target cells for this person: a {k}-point calibration leaves none to test")
    out = np.empty(draws)
    for d in range(draws):
        pick = cells[rng.choice(len(cells), k, replace=False)]
        at = (true[:, None, :] == pick[None]).all(-1)                      # (N, k)
        med = np.array([np.median(pred[at[:, j]], 0) for j in range(k)])
        w = np.linalg.lstsq(np.c_[med, np.ones(k)], pick, rcond=None)[0]
        test = ~at.any(1)
        out[d] = np.linalg.norm(np.c_[pred[test], np.ones(test.sum())] @ w - true[test], axis=1).mean()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run folder holding predictions.csv")
    p.add_argument("--k", type=int, default=9, help="calibration cells per draw (default 9)")
    p.add_argument("--draws", type=int, default=200, help="random draws per person (default 200)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    path = Path(args.run) / "predictions.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (pass a run folder of gazeneg train)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"{path}: held-out error in cells, zero-shot and after a {args.k}-point affine calibration "
          f"(mean over {args.draws} draws of the calibration cells)")
    zs, cs = [], []
    for s in sorted({r["subject"] for r in rows}):
        mine = [r for r in rows if r["subject"] == s]
        true = np.array([[float(r["true_row"]), float(r["true_col"])] for r in mine])
        pred = np.array([[float(r["pred_row"]), float(r["pred_col"])] for r in mine])
        z = float(np.linalg.norm(pred - true, axis=1).mean())
        c = calibrated_errors(pred, true, k=args.k, draws=args.draws, seed=args.seed)
        zs.append(z)
        cs.append(float(c.mean()))
        print(f"  {s}: zero-shot {z:.3f}, calibrated {c.mean():.3f} (2.5-97.5%: {np.percentile(c, 2.5):.3f}-"
              f"{np.percentile(c, 97.5):.3f})")
    print(f"  mean over {len(zs)} people: zero-shot {np.mean(zs):.3f}, calibrated {np.mean(cs):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
