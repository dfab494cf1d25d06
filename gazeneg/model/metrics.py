"""Error metrics in grid cells (and cm / degrees when the screen is known), the know-nothing reference
(always answering the screen centre), and the one definition of a diverged or collapsed run that the
trainer, the watchdog, the sweep and the statistics all use."""

from __future__ import annotations

import math

import numpy as np

from gazeneg import grid

# A run's outcome. See docs/science.md section 8.
OK, DIVERGED, COLLAPSED = "ok", "diverged", "collapsed"


def centre_guess_error(targets: np.ndarray) -> float:
    """Mean error (cells) of always answering the screen centre: the know-nothing reference."""
    return float(np.linalg.norm(np.asarray(targets, np.float64) - np.array(grid.CENTRE), axis=1).mean())


def outcome(mean_error: float, centre_error: float, nonfinite: bool = False) -> str:
    """DIVERGED: non-finite loss, weights or error, or a mean error beyond the screen's diagonal (the
    predictions left the screen: under Adam a run-away grows linearly and can stay finite for a long
    time). COLLAPSED: on the screen but worse than always guessing its centre. OK otherwise."""
    if nonfinite or not math.isfinite(mean_error) or mean_error > grid.DIAGONAL:
        return DIVERGED
    if mean_error > centre_error:
        return COLLAPSED
    return OK


def error_metrics(pred: np.ndarray, true: np.ndarray, cfg=None, prefix: str = "") -> dict:
    """Mean/median Euclidean error in cells, cell accuracy (nearest predicted cell is the labelled
    cell), within-1 accuracy (predicted cell within one cell, diagonals included), signed errors per
    axis, and cm/degrees when cfg (a TrainConfig) gives the screen geometry."""
    finite = np.isfinite(pred).all(axis=1)
    err = np.where(finite, np.linalg.norm(np.nan_to_num(pred - true, nan=0, posinf=0, neginf=0), axis=1), np.inf)
    pc = grid.nearest_cell(np.nan_to_num(pred[:, 0]), np.nan_to_num(pred[:, 1]))
    tc = grid.nearest_cell(true[:, 0], true[:, 1])
    pr, pcc = grid.index_to_cell(np.atleast_1d(pc))
    tr, tcc = grid.index_to_cell(np.atleast_1d(tc))
    cheb = np.maximum(np.abs(pr - tr), np.abs(pcc - tcc))
    with np.errstate(invalid="ignore", over="ignore"):
        signed = np.mean(pred - true, axis=0)
    m = {
        f"{prefix}mean_error_cells": float(np.mean(err)),
        f"{prefix}median_error_cells": float(np.median(err)),
        f"{prefix}cell_accuracy": float(np.mean((cheb == 0) & finite)),
        f"{prefix}within1_accuracy": float(np.mean((cheb <= 1) & finite)),
        f"{prefix}mean_signed_error_row": float(signed[0]),
        f"{prefix}mean_signed_error_col": float(signed[1]),
        f"{prefix}n": int(len(true)),
    }
    if cfg is not None and cfg.screen_w_cm > 0 and cfg.screen_h_cm > 0:
        d = pred - true
        m[f"{prefix}mean_error_cm"] = float(np.mean(grid.error_cm(d[:, 0], d[:, 1], cfg.screen_w_cm, cfg.screen_h_cm)))
        if cfg.distance_cm > 0:
            m[f"{prefix}mean_error_degrees"] = float(np.mean(grid.error_degrees(
                pred[:, 0], pred[:, 1], true[:, 0], true[:, 1], cfg.screen_w_cm, cfg.screen_h_cm, cfg.distance_cm)))
    return m
