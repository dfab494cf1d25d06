"""A training run's folder: a fresh folder per run, metrics.csv (one row per epoch, appended and flushed),
predictions.csv, and the summary lines a script prints. Checkpoints are in checkpoint.py."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from gazeneg.data.dataset import GazeDataset
from gazeneg.files import append_csv_rows, atomic_write_text

METRICS_FIELDS = ["epoch", "lr", "lambda", "train_loss", "val_mean_error_cells", "samples_per_second",
                  "seconds", "guard_counts", "event", "val_logit_absmax"]


def new_run_dir(out: str, name: str) -> Path:
    """A fresh folder under out; never reuses an existing one."""
    base = Path(out)
    base.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("%Y%m%d-%H%M%S") + (f"-{name}" if name else "")
    for i in range(1000):
        p = base / (stem if i == 0 else f"{stem}-{i}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {base}")


def append_metrics(path: Path, row: dict) -> None:
    append_csv_rows(path, METRICS_FIELDS, [row])


def truncate_metrics(path: Path, last_epoch: int) -> None:
    """Drop the rows past the checkpoint a run resumes from (they are trained again)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= last_epoch]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRICS_FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def write_predictions(path: Path, ds: GazeDataset, pred: np.ndarray) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "subject", "session", "true_row", "true_col", "pred_row", "pred_col", "error_cells"])
    for p, s, se, t, q in zip(ds.paths, ds.subjects, ds.sessions, ds.targets, pred, strict=True):
        w.writerow([p, s, se, f"{t[0]:.4f}", f"{t[1]:.4f}", f"{q[0]:.4f}", f"{q[1]:.4f}",
                    f"{float(np.linalg.norm(q - t)):.4f}"])
    atomic_write_text(path, buf.getvalue())


def summary_lines(run_dir: Path) -> list[str]:
    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    lines = [
        f"held-out test subjects {m['split_groups']['test']} ({m['n_test']} images):",
        f"  mean error {m['test_mean_error_cells']:.3f} cells, median {m['test_median_error_cells']:.3f}, "
        f"cell accuracy {m['test_cell_accuracy']:.1%}, within one cell {m['test_within1_accuracy']:.1%}",
        f"  ridge baseline (WebGazer-style) {m['ridge_mean_error_cells']:.3f} cells; centre guess "
        f"{m['centre_guess_error_cells']:.3f} cells",
        f"  trained {m['train_seconds']:.1f} s at {m['samples_per_second']:.0f} samples/s",
    ]
    if "test_mean_error_cm" in m:
        lines.append(f"  {m['test_mean_error_cm']:.2f} cm" + (f", {m['test_mean_error_degrees']:.2f} degrees"
                                                             if "test_mean_error_degrees" in m else ""))
    return lines
