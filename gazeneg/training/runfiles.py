"""A training run's folder: a fresh folder per run, metrics.csv (one row per epoch, appended and flushed),
predictions.csv, and the summary lines a script prints. Checkpoints are in checkpoint.py."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np

from gazeneg.config import ConfigError, TrainConfig, from_dict
from gazeneg.data.dataset import GazeDataset
from gazeneg.files import append_csv_rows, atomic_write_text, lock_folder

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


def lock_run(run_dir: Path):
    """Hold run_dir/.train.lock: one process trains in a run folder at a time (two `train --resume RUN` at
    once appended every epoch twice to metrics.csv). Raises ConfigError naming the folder."""
    def busy(_msg):
        return ConfigError(f"{run_dir} is in use by another training process (it holds {run_dir / '.train.lock'}); "
                           "wait for it to finish, or resume another run")
    return lock_folder(run_dir, "train", busy)


def read_run_config(run_dir: Path) -> TrainConfig:
    """A run folder's config.json as a TrainConfig; every fault (not JSON, not an object, a bad key or value)
    is one ConfigError naming the file."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a readable run config ({e}); the run cannot be resumed, start a new one") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object of settings, not a {type(data).__name__}; the run cannot "
                          "be resumed, start a new one")
    try:
        return from_dict(data)
    except (ConfigError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: {e}; the run cannot be resumed, start a new one") from None


def check_resume(path: Path, ckpt: dict, cfg: TrainConfig, resume_epochs: int | None) -> None:
    """Refuse, naming last.pt (or the option), a resume that could not continue the run it names: another
    model than config.json's, an epoch outside the run, a training state with the wrong types or NaN, or
    --epochs that would shorten the run."""
    if ckpt["model_name"] != cfg.model:
        raise ConfigError(f"{path}: holds a {ckpt['model_name']!r} model, the run's config.json says {cfg.model!r}: "
                          "not this run's checkpoint; start a new run")
    epoch = ckpt["epoch"]
    if not 0 <= epoch < cfg.epochs:
        raise ConfigError(f"{path}: epoch {epoch} is not an epoch of this {cfg.epochs}-epoch run (0..{cfg.epochs - 1}); "
                          "the checkpoint is damaged, start a new run")
    if resume_epochs is not None and resume_epochs < cfg.epochs:
        raise ConfigError(f"--epochs {resume_epochs} would shorten the {cfg.epochs}-epoch run {path.parent}: with "
                          "--resume, --epochs may only extend a run")
    ex = ckpt.get("extra")
    if not isinstance(ex, dict):
        raise ConfigError(f"{path}: no training state (extra is {type(ex).__name__}); start a new run")
    want = {"history": list, "lam": (int, float), "best_err": (int, float, str), "best_epoch": int, "step": int}
    for key, typ in want.items():
        if key in ex and (not isinstance(ex[key], typ) or isinstance(ex[key], bool)):
            raise ConfigError(f"{path}: training state {key!r} is {ex[key]!r}, not a {getattr(typ, '__name__', 'number')}; "
                              "the checkpoint is damaged, start a new run")
    best = float(ex["best_err"]) if isinstance(ex.get("best_err"), (int, float)) or ex.get("best_err") == "inf" else None
    if "best_err" in ex and (best is None or math.isnan(best)):
        raise ConfigError(f"{path}: training state 'best_err' is {ex['best_err']!r}; the checkpoint is damaged, start a "
                          "new run")
    if "lam" in ex and not math.isfinite(ex["lam"]):
        raise ConfigError(f"{path}: training state 'lam' is {ex['lam']!r}; the checkpoint is damaged, start a new run")
    if ex.get("step", 0) < 0 or ex.get("best_epoch", -1) > epoch:
        raise ConfigError(f"{path}: training state step {ex.get('step')} / best epoch {ex.get('best_epoch')} do not fit "
                          f"epoch {epoch}; the checkpoint is damaged, start a new run")


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
    """What `train` prints: the outcome first when the model failed (collapsed: worse than the centre guess;
    diverged), how the held-out groups were chosen, the test errors beside the references, and warnings
    about the data (few cells, one target holding most photos)."""
    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    kind = m.get("split_kind", "subjects")
    what = {"subjects": "subjects", "subject/session groups": "sessions", "cells": "target cells"}.get(kind, kind)
    lines = []
    if m.get("outcome", "ok") != "ok":
        lines.append(f"OUTCOME: {m['outcome'].upper()}: {m.get('stop_reason') or m['outcome']}; this model is not "
                     "usable as it is (more or more varied data, fewer epochs or a lower --lr may help)")
    lines += [
        f"held-out test {what} {m['split_groups']['test']} ({m['n_test']} images):",
        f"  mean error {m['test_mean_error_cells']:.3f} cells, median {m['test_median_error_cells']:.3f}, "
        f"cell accuracy {m['test_cell_accuracy']:.1%}, within one cell {m['test_within1_accuracy']:.1%}",
        f"  ridge baseline (WebGazer-style) {m['ridge_mean_error_cells']:.3f} cells; centre guess "
        f"{m['centre_guess_error_cells']:.3f} cells",
        f"  trained {m['train_seconds']:.1f} s at {m['samples_per_second']:.0f} samples/s",
    ]
    if "test_mean_error_cm" in m:
        lines.append(f"  mean error on the screen {m['test_mean_error_cm']:.2f} cm" + (
            f", {m['test_mean_error_degrees']:.2f} degrees of visual angle" if "test_mean_error_degrees" in m else ""))
    if kind == "cells":
        lines.append(f"split: too few sessions to hold whole ones out, so the sessions were split by target cell "
                     f"({len(m['split_groups']['val'])} cells validate, {len(m['split_groups']['test'])} test, the "
                     "rest train): no test target was seen in training, but the same sitting was")
    lines += [f"warning: {w}" for w in m.get("data_warnings", [])]
    return lines
