#!/usr/bin/env python
"""Renders matched to a camera (`gazeneg adapt`, `gazeneg train --camera-mean`): does it help gaze on that
camera's real frames, and what does it do on the renders?

    python benchmarks/camera_match.py ~/gazeneg-real/rbrusnicki --seeds 3
    python benchmarks/camera_match.py ~/gazeneg-real/rbrusnicki/mouse_data \\
        --fit ~/gazeneg-real/rbrusnicki/keyboard_data --seeds 3 --arm-name camera-kb   # frames the mean never saw

For each seed the demo's configuration (TrainConfig defaults, the seed changed) is trained twice: plain, and
with --camera-mean of the FIT folder's frames (default: the tested folder itself; the camera's mean uses no
label). Runs are kept under --runs and reused when their best.pt exists, so an interrupted benchmark resumes.
Each model is measured
  * on the renders: the held-out synthetic test people as rendered, and matched to the camera's mean (what a
    camera-matched model is trained for), mean error in cells;
  * on the real frames of FOLDER (named ..._<x>_<y>.jpg, as benchmarks/real_webcam.py reads them), through the
    live pipeline: the share on the screen, the zero-shot mean error, and the mean error after a 9-point
    calibration (real_webcam's draws).
Paired by seed: camera-matched minus plain, the mean difference and a 95% t-interval over the seeds (few seeds:
wide intervals; say so rather than read a difference into them). A missing FOLDER is skipped with a message.

With --test-time the other direction is measured instead (`gazeneg live --camera-mean`): no model is trained
for the camera; each plain model gets the real strips as cut, and brought to its training mean with the FIT
folder's mean strip (data.adapt.CameraNormaliser). The model is the same, so its error on the renders is the
same by construction; the real-frame figures are paired by seed, normalised minus as cut. Runs trained before
checkpoints recorded their training mean get it recomputed (epoch 0's augmented photos, as training records it).

    python benchmarks/camera_match.py ~/gazeneg-real/rbrusnicki --seeds 6 --test-time
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from gazeneg.units import size_arg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="real frames named ..._<x>_<y>.jpg (screen pixels), searched recursively")
    p.add_argument("--fit", default=None, help="the frames whose mean strip the renders are matched to "
                   "(default: FOLDER)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per arm (default 3)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "camexp"), help="where the runs are kept and reused")
    p.add_argument("--arm-name", default="camera", help="run-name prefix of the camera-matched arm")
    p.add_argument("--screen", default=(1920, 1080), type=size_arg("--screen"), metavar="WxH",
                   help="the frames' screen in pixels (default 1920x1080)")
    p.add_argument("--draws", type=int, default=500, help="calibration draws (real_webcam)")
    p.add_argument("--test-time", action="store_true", help="the plain models with the real strips brought to "
                   "their training mean (live --camera-mean) instead of models trained on camera-matched renders")
    p.add_argument("--own-draws", type=int, default=100, help="--test-time: calibration draws with the camera mean "
                   "of each draw's own calibration frames (each draw predicts every frame again)")
    p.add_argument("--margin", type=float, default=0.25, help="--test-time: the equivalence margin in cells "
                   "(two one-sided tests: no difference is claimed unless the 90%% interval lies inside +-margin)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def input_mean(ckpt: Path, seed: int, train) -> tuple[np.ndarray, str]:
    """The checkpoint's recorded training mean strip, or for a run from before it was recorded the same thing
    recomputed: the mean of epoch 0's augmented training photos (the demo configuration: look, jitter, flip)."""
    from gazeneg import seeding
    from gazeneg.data.adapt import CameraMeanError, input_mean_of
    from gazeneg.data.augment import augment_epoch
    from gazeneg.model.checkpoint import read_checkpoint

    try:
        return input_mean_of(read_checkpoint(ckpt), ckpt), "recorded"
    except CameraMeanError:
        imgs = augment_epoch(train.images, train.targets, train.face, seed=seeding.seed_int(seed, "augment", 0),
                             realism=True)[0]
        return imgs.mean(0, dtype=np.float64).astype(np.float32), "recomputed"


def trained(runs: Path, name: str, extra: list[str]) -> Path:
    """best.pt of the run `name` under runs, trained now with `gazeneg train` if there is none."""
    found = sorted(runs.glob(f"*-{name}/best.pt"))
    if found:
        return found[-1]
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "gazeneg", "train", "--name", name, "--out", str(runs), "--progress", "false", *extra]
    print(f"training {name}: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"  {time.perf_counter() - t:.0f} s", flush=True)
    return sorted(runs.glob(f"*-{name}/best.pt"))[-1]


def synthetic_errors(ckpt: Path, test, camera) -> tuple[float, float]:
    """Mean error (cells) of a checkpoint on the held-out test people `test` (the demo split's, loaded once),
    as rendered and matched to the camera's mean."""
    import torch

    from gazeneg.data.adapt import adapt_to_camera
    from gazeneg.model.checkpoint import load_checkpoint
    from gazeneg.training.loop import evaluate, tensors

    model, _ = load_checkpoint(ckpt)
    out = []
    for ds in (test, dataclasses.replace(test, images=adapt_to_camera(test.images, camera))):
        pred = evaluate(model, tensors(ds), torch.device("cpu"))
        out.append(float(np.linalg.norm(pred - test.targets, axis=1).mean()))
    return out[0], out[1]


def t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    m = float(d.mean())
    if len(d) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return m, m - h, m + h


def equivalence(d: np.ndarray, margin: float) -> str:
    """Two one-sided tests at 5% each: equivalent within +-margin when the 90% t-interval lies inside it."""
    _, lo, hi = t_interval(d, 0.90)
    if not np.isfinite(lo):
        return "too few seeds for an equivalence test"
    _, lo95, hi95 = t_interval(d)
    if not (-margin < lo and hi < margin):
        verdict = f"not shown to be within +-{margin:g} cells"
    elif lo95 > 0 or hi95 < 0:
        verdict = f"a difference, and within +-{margin:g} cells"
    else:
        verdict = f"equivalent within +-{margin:g} cells"
    return f"90% interval [{lo:+.3f}, {hi:+.3f}]: {verdict}"


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    import real_webcam as rw

    from gazeneg.cli.adapt import frame_strips
    from gazeneg.data.adapt import fit_camera_mean

    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        print(f"{folder}: no such folder; nothing to measure (skipped)")
        return 0
    fit = Path(args.fit).expanduser() if args.fit else folder
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    strips, n, skipped = frame_strips(fit, progress=False)
    camera = fit_camera_mean(strips, str(fit))
    cam_file = runs / f"{args.arm_name}-mean.npz"
    camera.save(cam_file)
    print(f"camera mean from {len(strips)} eye strips of {n} frames in {fit} -> {cam_file}")
    frames, off, _ = rw.labelled_frames(folder, args.screen)
    labels = np.array([lab for _, lab in frames], float)
    ref, _ = rw.person_reference(frames)
    rw_args = argparse.Namespace(k=9, draws=args.draws, seed=0)
    from gazeneg.config import TrainConfig
    from gazeneg.data.splits import load_splits

    splits = load_splits(TrainConfig())
    test = splits.test
    rows = []
    if args.test_time:
        return test_time(args, runs, camera, folder, fit, frames, off, labels, ref, rw_args, splits)
    for seed in range(args.seeds):
        for arm, name, extra in (("plain", f"base-s{seed}", []),
                                 ("camera", f"{args.arm_name}-s{seed}", ["--camera-mean", str(cam_file)])):
            ckpt = trained(runs, name, ["--seed", str(seed), *extra])
            raw, matched = synthetic_errors(ckpt, test, camera)
            real = rw.evaluate_model(f"{arm}, seed {seed}", ckpt, frames, labels, ref, rw_args)
            rows.append({"seed": seed, "arm": arm, "checkpoint": str(ckpt), "synthetic_test": raw,
                         "synthetic_test_camera_matched": matched, "on_screen": real["on_screen"],
                         "zero_shot": real["zero_shot_error_cells"], "centre": real["centre_guess_error_cells"],
                         "calibrated": real["calibrated"]["calibrated"]["mean"]})
    print(f"\n{folder}: {len(frames)} labelled frames ({off} off the screen, left out); camera mean from {fit}; "
          f"{args.seeds} seeds; mean error in cells")
    keys = ("synthetic_test", "synthetic_test_camera_matched", "on_screen", "zero_shot", "calibrated")
    print(f"  {'arm':<8}{'seed':>5}" + "".join(f"{k:>31}" for k in keys))
    for r in rows:
        print(f"  {r['arm']:<8}{r['seed']:>5}" + "".join(f"{r[k]:>31.3f}" for k in keys))
    summary = {}
    print("  camera-matched minus plain, paired by seed: mean [95% t-interval]")
    for k in keys:
        d = np.array([c[k] - p[k] for p, c in zip(rows[::2], rows[1::2], strict=True)])
        m, lo, hi = t_interval(d)
        summary[k] = {"mean": m, "lo": lo, "hi": hi, "differences": d.tolist()}
        print(f"    {k:<31} {m:+.3f} [{lo:+.3f}, {hi:+.3f}]" + (
            "   (interval excludes 0)" if lo > 0 or hi < 0 else ""))
    print(f"  always the centre on these frames: {rows[0]['centre']:.3f} cells; {time.strftime('%Y-%m-%d %H:%M')}")
    if args.json:
        from gazeneg.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps({"folder": str(folder), "fit": str(fit), "rows": rows,
                                                       "paired": summary}, indent=1, default=float))
    return 0


def calibration_mean_draws(ckpt: Path, frames, labels, ref, mean: np.ndarray, *, k: int, draws: int, seed: int):
    """real_webcam.own_mean_draws on this checkpoint's strips as the live pipeline cuts them."""
    import real_webcam as rw

    from gazeneg.model.checkpoint import load_checkpoint

    model, _ = load_checkpoint(ckpt)
    results, _ = rw.run_pipeline(model, frames, ref)
    ok = np.array([r[0] is not None for r in results])
    strips = np.stack([r[1] for r in results if r[0] is not None])
    feats = np.stack([r[2] for r in results if r[0] is not None])
    return rw.own_mean_draws(model, strips, feats, labels[ok], mean, k=k, draws=draws, seed=seed)


def test_time(args, runs, camera, folder, fit, frames, off, labels, ref, rw_args, splits) -> int:
    """--test-time: each plain model on the real strips as cut and brought to its training mean (the FIT
    folder's mean), and with the mean of each calibration's own frames (live's default)."""
    import real_webcam as rw

    rows = []
    for seed in range(args.seeds):
        ckpt = trained(runs, f"base-s{seed}", ["--seed", str(seed)])
        mean, how = input_mean(ckpt, seed, splits.train)
        raw, _ = synthetic_errors(ckpt, splits.test, camera)
        own = calibration_mean_draws(ckpt, frames, labels, ref, mean, k=9, draws=args.own_draws, seed=seed)
        for arm, cam, own_err in (("as cut", None, own[0]), ("brought", camera, own[1])):
            real = rw.evaluate_model(f"{arm}, seed {seed} (training mean {how})", ckpt, frames, labels, ref, rw_args,
                                     camera=cam, input_mean=mean)
            rows.append({"seed": seed, "arm": arm, "checkpoint": str(ckpt), "training_mean": how,
                         "synthetic_test": raw, "on_screen": real["on_screen"], "zero_shot": real["zero_shot_error_cells"],
                         "centre": real["centre_guess_error_cells"],
                         "calibrated": real["calibrated"]["calibrated"]["mean"], "calibrated_own_mean": own_err})
    print(f"\n{folder}: {len(frames)} labelled frames ({off} off the screen, left out); the strips brought to each "
          f"model's training mean with the mean strip of {fit}; {args.seeds} seeds; mean error in cells")
    keys = ("synthetic_test", "on_screen", "zero_shot", "calibrated", "calibrated_own_mean")
    print(f"  (calibrated_own_mean: the camera's mean fitted on each of {args.own_draws} draws' 9 calibration positions' "
          "frames alone, as gazeneg live does by default)")
    print(f"  {'arm':<8}{'seed':>5}" + "".join(f"{k:>20}" for k in keys))
    for r in rows:
        print(f"  {r['arm']:<8}{r['seed']:>5}" + "".join(f"{r[k]:>20.3f}" for k in keys))
    summary = {}
    print("  brought to the training mean minus as cut, paired by seed: mean [95% t-interval] (the renders' error is "
          "the same model's: no difference by construction)")
    for k in keys[1:]:
        d = np.array([b[k] - a[k] for a, b in zip(rows[::2], rows[1::2], strict=True)])
        m, lo, hi = t_interval(d)
        eq = equivalence(d, args.margin) if k != "on_screen" else ""
        summary[k] = {"mean": m, "lo": lo, "hi": hi, "differences": d.tolist(), "equivalence": eq}
        print(f"    {k:<20} {m:+.3f} [{lo:+.3f}, {hi:+.3f}]" + ("   (interval excludes 0)" if lo > 0 or hi < 0 else "")
              + (f"; better in {int((d < 0).sum())} of {len(d)} seeds; {eq}" if eq else ""))
    print(f"  always the centre on these frames: {rows[0]['centre']:.3f} cells; {time.strftime('%Y-%m-%d %H:%M')}")
    if args.json:
        from gazeneg.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps({"folder": str(folder), "fit": str(fit), "test_time": True,
                                                       "rows": rows, "paired": summary}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
