#!/usr/bin/env python
"""Does a trained model use the head-pose features? Evaluate a checkpoint on the held-out test people of
its own training run three ways: with each frame's pose as recorded, with the pose replaced by the
training set's mean pose (the model told nothing about how the head is turned), and with the poses
shuffled among the test frames (a plausible pose, but another frame's). The face-box features and the
images stay as they are.

This is a test-time ablation, not a retrain without pose: it shows how much the trained model leans on
the pose, which is an upper bound on what a model trained without pose would lose. The differences are
paired per frame, with 95% t-intervals over the test people's frames (stats.mean_ci).

    python scripts/pose_ablation.py                         # checkpoints/demo.pt (make demo)
    python scripts/pose_ablation.py --checkpoint runs/.../best.pt --seed 1
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from gazeneg.cli.errors import as_cli
from gazeneg.config import from_dict
from gazeneg.data.splits import load_splits
from gazeneg.model.checkpoint import load_checkpoint
from gazeneg.model.networks import predict
from gazeneg.strip import BOX_FEATURES, POSE_SCALE_DEG
from gazeneg.study.stats import mean_ci

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "demo.pt"


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="a gazeneg checkpoint")
    p.add_argument("--data", default=None, help="data set (default: the one the checkpoint was trained on)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle")
    return p


def _ci(d: np.ndarray) -> str:
    m, lo, hi = mean_ci(d)
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    model, ckpt = load_checkpoint(args.checkpoint)
    cfg = from_dict(ckpt["config"])   # the run's own TrainConfig (train.fit saves cfg.to_dict())
    if args.data is not None:
        cfg = from_dict({"data": args.data}, cfg)
    sp = load_splits(cfg)
    test, train = sp.test, sp.train
    pose = test.face[:, BOX_FEATURES:] * POSE_SCALE_DEG
    print(f"{args.checkpoint}: {len(test)} test frames of {len(set(test.subjects))} held-out people "
          f"({', '.join(sorted(set(test.subjects)))}); pose sd yaw / pitch / roll "
          f"{' / '.join(f'{v:.1f}' for v in pose.std(0))} deg")
    if not np.any(pose.std(0) > 0):
        print("the test frames carry no head pose (all zero): nothing to ablate")
        return 1
    mean_face = test.face.copy()
    mean_face[:, BOX_FEATURES:] = train.face[:, BOX_FEATURES:].mean(0)
    shuffled = test.face.copy()
    shuffled[:, BOX_FEATURES:] = test.face[np.random.default_rng(args.seed).permutation(len(test)), BOX_FEATURES:]
    errs = {}
    for name, face in (("pose as recorded", test.face), ("pose = training mean", mean_face),
                       ("pose shuffled", shuffled)):
        errs[name] = np.linalg.norm(predict(model, test.images, face) - test.targets, axis=1)
    base = errs["pose as recorded"]
    print(f"{'test-time pose':22s}  mean error (cells)  difference to as recorded, 95% CI")
    for name, e in errs.items():
        print(f"{name:22s}  {e.mean():.3f}{'' if e is base else '               ' + _ci(e - base)}")
    # worse: the 95% interval of the paired difference lies above zero (a paired t-test at 5%, one direction)
    worse = [n for n, e in errs.items() if e is not base and mean_ci(e - base)[1] > 0]
    print(("the model uses the pose: its error grows without it (" + ", ".join(worse) + ")") if worse else
          "no significant change without the pose at this sample size: the model may not rely on it")
    return 0


cli = as_cli(main)

if __name__ == "__main__":
    sys.exit(cli())
