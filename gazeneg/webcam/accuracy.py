"""Where on the screen the gaze is good or bad: error tables per screen region and per calibration/validation
target, their figures, and the one-target recentre.

    rows = region_table(pred, true)                  # "all", then per true row and per true column
    error_heatmap(pred, true, "heatmap.png")         # mean error per true cell of the 9x16 grid
    report = target_report(collector.results, screen_px=(1920, 1080))   # per target + per region
    draw_target_report(report, "best.pt.calib.accuracy.png")

Errors are Euclidean distances from each sample (row, col) to its target, in cells; cm and pixels follow
the screen's size, degrees the viewing distance (grid.error_degrees). Precision is the RMS distance between
successive samples of one target (RMS-S2S). A region groups the samples by their target's nearest row or
column. A summary is refused (AccuracyError) when a target got no samples: a mean that quietly leaves a
corner out is not the screen's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gazeneg import grid
from gazeneg.files import save_figure

TABLE_FIELDS = ("region", "n", "mean_cells", "median_cells", "p95_cells", "cell_accuracy", "within1_accuracy",
                "mean_cm", "mean_deg", "mean_px")


class AccuracyError(ValueError):
    """An accuracy summary cannot be made honestly; the message names the target(s)."""


def _errors(pred: np.ndarray, true: np.ndarray, screen_cm, distance_cm, screen_px) -> dict:
    d = pred - true
    w_cm, h_cm = screen_cm
    w_px, h_px = screen_px
    return {"cells": np.hypot(d[:, 0], d[:, 1]),
            "cm": grid.error_cm(d[:, 0], d[:, 1], w_cm, h_cm),
            "deg": grid.error_degrees(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1], w_cm, h_cm, distance_cm),
            "px": np.hypot(d[:, 0] * h_px / grid.ROWS, d[:, 1] * w_px / grid.COLS)}


def region_table(pred, true, *, screen_cm=(34.4, 19.3), distance_cm: float = 60.0,
                 screen_px=(1920, 1080)) -> list[dict]:
    """TABLE_FIELDS rows: "all", then "row R" for each grid row and "col C" for each column that has samples
    (grouped by the true point's nearest cell). Non-finite predictions count as misses with infinite error."""
    pred, true = np.asarray(pred, np.float64).reshape(-1, 2), np.asarray(true, np.float64).reshape(-1, 2)
    if len(pred) != len(true) or len(true) == 0:
        raise AccuracyError(f"need as many predictions as targets, and some: {len(pred)} vs {len(true)}")
    finite = np.isfinite(pred).all(1)
    safe = np.where(finite[:, None], pred, true)
    e = _errors(safe, true, screen_cm, distance_cm, screen_px)
    for k in e:
        e[k] = np.where(finite, e[k], np.inf)
    pr, pc = grid.index_to_cell(np.atleast_1d(grid.nearest_cell(safe[:, 0], safe[:, 1])))
    tr, tc = grid.index_to_cell(np.atleast_1d(grid.nearest_cell(true[:, 0], true[:, 1])))
    cheb = np.maximum(np.abs(pr - tr), np.abs(pc - tc))

    def row(name, m):
        with np.errstate(invalid="ignore"):   # a percentile over infinite errors (misses) is inf, not a warning
            p95 = float(np.percentile(e["cells"][m], 95))
        return {"region": name, "n": int(m.sum()), "mean_cells": float(e["cells"][m].mean()),
                "median_cells": float(np.median(e["cells"][m])), "p95_cells": p95,
                "cell_accuracy": float(((cheb == 0) & finite)[m].mean()),
                "within1_accuracy": float(((cheb <= 1) & finite)[m].mean()),
                "mean_cm": float(e["cm"][m].mean()), "mean_deg": float(e["deg"][m].mean()),
                "mean_px": float(e["px"][m].mean())}

    out = [row("all", np.ones(len(true), bool))]
    out += [row(f"row {r}", tr == r) for r in range(grid.ROWS) if (tr == r).any()]
    out += [row(f"col {c}", tc == c) for c in range(grid.COLS) if (tc == c).any()]
    return out


def format_table(rows: list[dict]) -> list[str]:
    """A markdown table of region_table rows."""
    lines = ["| region | n | mean (cells) | median | p95 | cell acc. | within 1 | mean cm | mean deg | mean px |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['region']} | {r['n']} | {r['mean_cells']:.3f} | {r['median_cells']:.3f} | "
                     f"{r['p95_cells']:.3f} | {r['cell_accuracy']:.1%} | {r['within1_accuracy']:.1%} | "
                     f"{r['mean_cm']:.2f} | {r['mean_deg']:.2f} | {r['mean_px']:.0f} |")
    return lines


def cell_error_grid(pred, true) -> tuple[np.ndarray, np.ndarray]:
    """(mean error in cells, sample count) per true cell, each (ROWS, COLS); NaN where a cell has none."""
    pred, true = np.asarray(pred, np.float64).reshape(-1, 2), np.asarray(true, np.float64).reshape(-1, 2)
    err = np.linalg.norm(pred - true, axis=1)
    idx = np.atleast_1d(grid.nearest_cell(true[:, 0], true[:, 1]))
    total = np.bincount(idx, weights=err, minlength=grid.N_CELLS)
    count = np.bincount(idx, minlength=grid.N_CELLS)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean.reshape(grid.ROWS, grid.COLS), count.reshape(grid.ROWS, grid.COLS)


def error_heatmap(pred, true, path, *, title: str = "mean gaze error per cell (cells)") -> str:
    """A PNG of the 9x16 grid, each cell coloured and labelled with the mean error of the samples whose true
    point is nearest to it (blank: no samples)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean, count = cell_error_grid(pred, true)
    fig, ax = plt.subplots(figsize=(11, 5.6))
    im = ax.imshow(mean, cmap="magma_r", vmin=0, origin="upper")
    for r in range(grid.ROWS):
        for c in range(grid.COLS):
            if count[r, c]:
                ax.text(c, r, f"{mean[r, c]:.2f}\nn={count[r, c]}", ha="center", va="center", fontsize=6.5,
                        color="white" if mean[r, c] > np.nanmax(mean) * 0.6 else "black")
    ax.set_xticks(range(grid.COLS))
    ax.set_yticks(range(grid.ROWS))
    ax.set_xlabel("column (left to right)")
    ax.set_ylabel("row (top to bottom)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.025, label="cells")
    return save_figure(fig, Path(path))


@dataclass
class TargetAccuracy:
    target: tuple[float, float]
    n: int
    mean_offset: tuple[float, float]    # mean (row, col) error vector, cells
    mean_cells: float
    precision_cells: float              # RMS-S2S
    mean_cm: float
    mean_deg: float
    mean_px: float
    precision_cm: float
    precision_deg: float
    precision_px: float
    spread_cells: float                 # RMS distance of the samples from their own mean


@dataclass
class TargetReport:
    targets: list[TargetAccuracy]
    regions: list[dict]                 # region_table rows over all samples
    screen_cm: tuple
    distance_cm: float
    screen_px: tuple
    samples: list                       # [(target, (k, 2))] as given

    def lines(self) -> list[str]:
        out = ["| target (row, col) | n | mean error cells | mean error cm | mean error deg | mean error px | "
               "precision cells | precision cm | precision deg | precision px |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for t in self.targets:
            out.append(f"| ({t.target[0]:g}, {t.target[1]:g}) | {t.n} | {t.mean_cells:.3f} | {t.mean_cm:.2f} | "
                       f"{t.mean_deg:.2f} | {t.mean_px:.0f} | {t.precision_cells:.3f} | {t.precision_cm:.3f} | "
                       f"{t.precision_deg:.3f} | {t.precision_px:.1f} |")
        return out + [""] + format_table(self.regions)


def target_report(results, *, screen_cm=(34.4, 19.3), distance_cm: float = 60.0, screen_px=(1920, 1080),
                  min_samples: int = 1) -> TargetReport:
    """Per target and per region accuracy of TargetCollector.results [(target, (k, 2) samples)]. Refused
    (AccuracyError naming them) when a target has fewer than min_samples samples."""
    results = [(tuple(float(v) for v in t), np.asarray(p, np.float64).reshape(-1, 2)) for t, p in results]
    if not results:
        raise AccuracyError("no targets were shown")
    short = [t for t, p in results if len(p) < max(1, min_samples)]
    if short:
        raise AccuracyError(f"no summary: {len(short)} target(s) got fewer than {max(1, min_samples)} good samples "
                            f"({', '.join(f'({r:g}, {c:g})' for r, c in short)}); redo them (was the face "
                            "tracked, the eyes open?)")
    w_px, h_px = screen_px
    rows = []
    for t, p in results:
        true = np.broadcast_to(np.array(t), p.shape)
        e = _errors(p, true, screen_cm, distance_cm, screen_px)
        if len(p) > 1:
            s2s = _errors(p[1:], p[:-1], screen_cm, distance_cm, screen_px)
            prec = {k: float(np.sqrt(np.mean(v ** 2))) for k, v in s2s.items()}
        else:
            prec = dict.fromkeys(e, float("nan"))
        d = p - np.array(t)
        rows.append(TargetAccuracy(t, len(p), (float(d[:, 0].mean()), float(d[:, 1].mean())),
                                   float(e["cells"].mean()), prec["cells"], float(e["cm"].mean()),
                                   float(e["deg"].mean()), float(e["px"].mean()), prec["cm"], prec["deg"],
                                   prec["px"], float(np.sqrt(np.mean(np.sum((p - p.mean(0)) ** 2, 1))))))
    allp = np.concatenate([p for _, p in results])
    allt = np.concatenate([np.broadcast_to(np.array(t), p.shape) for t, p in results])
    regions = region_table(allp, allt, screen_cm=screen_cm, distance_cm=distance_cm, screen_px=(w_px, h_px))
    return TargetReport(rows, regions, tuple(screen_cm), distance_cm, tuple(screen_px), results)


def draw_target_report(report: TargetReport, path, *, title: str = "accuracy check") -> str:
    """A PNG of the screen (its pixel size, the 9x16 grid): each target, the arrow to its samples' mean (the
    error vector), a circle of their spread (RMS from their mean), and the error in cells and degrees."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w, h = report.screen_px
    fig, ax = plt.subplots(figsize=(10, 10 * h / w + 0.6))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    for c in range(1, grid.COLS):
        ax.axvline(c * w / grid.COLS, color="0.9", lw=0.6)
    for r in range(1, grid.ROWS):
        ax.axhline(r * h / grid.ROWS, color="0.9", lw=0.6)
    px_per_cell = (w / grid.COLS + h / grid.ROWS) / 2
    for t, (_, pts) in zip(report.targets, report.samples, strict=True):
        tx, ty = grid.to_pixels(*t.target, w, h)
        sx, sy = grid.to_pixels(pts[:, 0], pts[:, 1], w, h)
        mx, my = float(np.mean(sx)), float(np.mean(sy))
        ax.scatter(sx, sy, s=4, color="tab:blue", alpha=0.35)
        ax.plot([tx], [ty], "k+", ms=12, mew=2)
        ax.annotate("", (mx, my), (tx, ty), arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.5})
        ax.add_patch(plt.Circle((mx, my), t.spread_cells * px_per_cell, fill=False, color="tab:red", lw=1))
        ax.text(tx, ty - 0.28 * h / grid.ROWS, f"{t.mean_cells:.2f} c / {t.mean_deg:.1f}°  n={t.n}",
                ha="center", fontsize=7)
    allr = report.regions[0]
    ax.set_title(f"{title}: mean error {allr['mean_cells']:.2f} cells = {allr['mean_cm']:.2f} cm = "
                 f"{allr['mean_deg']:.2f}° = {allr['mean_px']:.0f} px over {len(report.targets)} targets")
    ax.set_xlabel("screen x (px)")
    ax.set_ylabel("screen y (px)")
    return save_figure(fig, Path(path))


def report_paths(calib_path) -> tuple[Path, Path]:
    """Where the accuracy check's figure and table go: beside the calibration (<...>.calib.accuracy.png/.md)."""
    base = str(calib_path)
    base = base[:-5] if base.endswith(".json") else base
    return Path(base + ".accuracy.png"), Path(base + ".accuracy.md")


def write_target_report(report: TargetReport, calib_path, *, title: str = "accuracy check") -> tuple[Path, Path]:
    """The figure and the markdown tables of a TargetReport, beside the calibration, atomically."""
    from gazeneg.files import atomic_write_text

    png, md = report_paths(calib_path)
    draw_target_report(report, png, title=title)
    w, h = report.screen_cm
    atomic_write_text(md, "\n".join([f"# {title}", "",
                                     f"screen {report.screen_px[0]}x{report.screen_px[1]} px, {w:g} x {h:g} cm, "
                                     f"viewing distance {report.distance_cm:g} cm; precision = RMS sample-to-sample",
                                     "", *report.lines(), ""]))
    return png, md


def recentre_offset(samples, target) -> np.ndarray:
    """(d_row, d_col) to add to every calibrated point so that the median of `samples` (the gaze while the
    person looked at `target`) lands on it. Needs at least one finite sample."""
    p = np.asarray(samples, np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(1)]
    if len(p) == 0:
        raise AccuracyError(f"recentre: no samples while the target ({target[0]:g}, {target[1]:g}) was shown "
                            "(was the face tracked, the eyes open?)")
    return np.asarray(target, np.float64) - np.median(p, axis=0)
