#!/usr/bin/env python
"""Wall time of `gazeneg eval --quick` on a one-person capture shaped like the real one (issue 22: "--quick
<= 2 min on 2 cores"), and its verdicts checked (no "invalid", no "hurts" with a better mean, no "helps"
with a worse one).

The capture is tests/test_one_person.py's make_capture (one person, three sessions: 28 targets; 4 near the
centre; 22 recorded separately under other lighting; 24 frames a target: 648 photos), rendered into a
temporary folder unless --capture names one. Run 1 starts from an empty base-model cache (cold: it
pretrains the --quick base on the built-in synthetic set, rendering that set first if this machine has
none); runs 2..N reuse the cache (warm: what every later --quick run on this machine costs). Each run is
the command a user types, in a fresh process, so the figures include Python's and torch's start-up.

    python benchmarks/one_person_quick.py                     # 3 runs (1 cold, 2 warm)
    python benchmarks/one_person_quick.py --runs 1 --capture /tmp/cap
    python benchmarks/one_person_quick.py --runs 1 --train-reference   # also gazeneg train on fold r0f0

--train-reference trains `gazeneg train`'s recipe (TrainConfig's defaults: gazecnn, 18 epochs) on the
first fold's training photos, selected on its validation photos, and tests it on its held-out photos (the
regime's own split, one_person.fold_rows), then prints the fine-tuned baseline's error on the same fold and
the ratio (issue 22: within 1.5x).

Exits 1 if a verdict is unsound.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_capture(root: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.test_one_person import make_capture as render

    return render(root, frames_per_cell=24, seed=7)


def unsound(summary: dict) -> list[str]:
    """The verdicts issue 22 forbids on this capture."""
    es = {e["arm"]: e for e in summary["entries"]}
    base = es["ft:baseline"]["mean_error_cells"]
    bad = []
    for e in summary["entries"]:
        if e["verdict"] == "invalid":
            bad.append(f"{e['arm']}: invalid")
        if e["verdict"] == "hurts" and e["mean_error_cells"] <= base:
            bad.append(f"{e['arm']}: hurts with a mean {e['mean_error_cells']:.3f} <= the baseline's {base:.3f}")
        if e["verdict"] == "helps" and e["mean_error_cells"] >= base:
            bad.append(f"{e['arm']}: helps with a mean {e['mean_error_cells']:.3f} >= the baseline's {base:.3f}")
    return bad


def train_reference(capture: Path, run: Path) -> None:
    """gazeneg train's recipe on the run's first fold, against the run's fine-tuned baseline there."""
    import torch

    from gazeneg.config import from_dict
    from gazeneg.data.dataset import load_dataset
    from gazeneg.data.splits import Splits
    from gazeneg.model.metrics import error_metrics
    from gazeneg.study.one_person import fold_rows, groups_of, make_folds, read_rows
    from gazeneg.training.loop import evaluate, fit, tensors

    meta = json.loads((run / "one_person.json").read_text())["config"]
    ds = load_dataset(capture)
    _, groups = groups_of(ds)
    fold = make_folds(groups, meta["folds"], meta["repeats"], meta["seed"])[0]
    tr, va, te = fold_rows(groups, fold["test_groups"], meta["val_share"], meta["seed"], 0)
    cfg = from_dict({"model": "gazecnn", "progress": False, "save_checkpoints": False, "device": "cpu"})
    t = time.perf_counter()
    res = fit(cfg, Splits(ds.subset(tr), ds.subset(va), ds.subset(te)), log=lambda *_: None)
    test = ds.subset(te)
    err = error_metrics(evaluate(res.model, tensors(test), torch.device("cpu")), test.targets)["mean_error_cells"]
    ft = next(r["final_test_error"] for r in read_rows(run)
              if r["selected"] and r["arm"] == "ft:baseline" and r["person"] == "r0f0")
    print(f"gazeneg train ({cfg.epochs} epochs) on fold r0f0 ({len(tr)} training, {len(va)} validation, {len(te)} test "
          f"photos): {err:.3f} cells in {time.perf_counter() - t:.0f} s; the fine-tuned baseline on the same test "
          f"photos {ft:.3f} cells: {ft / err:.2f}x")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capture", default=None, help="a one-person capture folder (default: render one)")
    p.add_argument("--runs", type=int, default=3, help="runs: the first cold, the rest warm (default 3)")
    p.add_argument("--train-reference", action="store_true", help="also train gazeneg train's recipe on fold r0f0")
    p.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    args = p.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="gazeneg-one-person-bench-") if args.out is None else None
    root = Path(args.out or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    capture = Path(args.capture) if args.capture else make_capture(root / "capture")
    cache = root / "base-cache"
    print(f"capture {capture}; {os.cpu_count()} cores (nproc); load average {os.getloadavg()[0]:.2f} at start",
          flush=True)
    cold = not (cache.is_dir() and any(cache.iterdir()))    # a kept --out folder may hold a base already
    times, bad = [], []
    for i in range(args.runs):
        out = root / f"run{i}"
        cmd = [sys.executable, "-m", "gazeneg", "eval", "--data", str(capture), "--quick", "--out", str(out),
               "--cache", str(cache)]
        t = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            print(done.stdout[-3000:] + done.stderr[-3000:])
            return 1
        meta = json.loads((out / "one_person.json").read_text())
        summary = json.loads((out / "summary.json").read_text())
        bad += unsound(summary)
        print(f"run {i + 1} ({'cold' if i == 0 and cold else 'warm'}): {times[-1]:.1f} s wall (base {meta['base_seconds']:.1f} s, "
              f"folds {meta['fold_seconds']:.1f} s); load average {os.getloadavg()[0]:.2f}", flush=True)
    print("verdicts of the last run:")
    for e in summary["entries"]:
        print(f"  {e['arm']:<30} {e['verdict']:<12} {e['mean_error_cells']:.3f} cells")
    if cold:
        print(f"cold (base pretrained): {times[0]:.1f} s")
    warm = times[1:] if cold else times
    if warm:
        print(f"warm (base cached): median {statistics.median(warm):.1f} s over {len(warm)} run(s)")
    if args.train_reference:
        train_reference(capture, root / f"run{args.runs - 1}")
    print("verdicts: " + ("; ".join(bad) if bad else "sound (no invalid, no hurts/helps against its mean)"))
    if tmp is not None:
        tmp.cleanup()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
