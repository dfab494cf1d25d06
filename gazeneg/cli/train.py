"""Train a gaze model on the built-in synthetic data or a dataset folder.

    gazeneg train                                    # default CNN on the synthetic default
    gazeneg train --data my_capture --epochs 40 --model resnet18
    gazeneg train --config cfg.json --lr 1e-3        # file, then command line
    gazeneg train --resume runs/20261124-101500-gazecnn
    gazeneg train --init checkpoints/demo.pt --data my_capture --lr 3e-4 --freeze-backbone
                                                     # fine-tune a saved model (architecture checked)
    torchrun --standalone --nproc_per_node 2 scripts/train.py ...  # data parallel over 2 processes
"""

import argparse
import sys
import time
from pathlib import Path

from gazeneg.cli.errors import RESUME, as_cli
from gazeneg.config import ConfigError, add_config_args, config_from_args


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--freeze-backbone", action="store_true",
                   help="with --init: train only the face MLP and the head (same as --backbone-lr-scale 0)")
    return p


def newest_run(out: str, *, since: float) -> Path | None:
    """The run folder this command made under `out` (the newest with a config.json, made after `since`)."""
    found = [d for d in Path(out).glob("*/config.json") if d.stat().st_mtime >= since]
    return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def interrupted_hint(run_dir, prog: str | None) -> str:
    """What Ctrl-C says: the run folder and the command that continues it, or that nothing was started."""
    if run_dir is None:
        return "interrupted before a run folder was made: nothing to resume; run the command again"
    return (f"interrupted: the finished epochs are kept in {run_dir}; continue with "
            f"`{prog or 'gazeneg train'} --resume {run_dir}`")


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    # torch only once the options are read: `gazeneg train --help` stays fast
    from gazeneg.training import distributed
    from gazeneg.training.loop import run
    from gazeneg.training.runfiles import summary_lines

    resume_epochs = None
    if args.resume:
        # A resumed run keeps its own config.json; only --epochs (to extend it) may change. Any other flag
        # would be silently ignored, so it is refused by name.
        given = {k[4:] for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
        other = sorted(given - {"epochs"}) + (["config"] if args.config else []) + \
            (["freeze-backbone"] if args.freeze_backbone else [])
        if other:
            raise ConfigError(f"--resume continues the run with its own config.json; these options would be "
                              f"ignored: {', '.join('--' + o.replace('_', '-') for o in other)} (only --epochs "
                              "may change, to extend the run)")
        if "epochs" in given:
            resume_epochs = config_from_args(args).epochs
    cfg = config_from_args(args)
    if args.freeze_backbone:
        cfg = cfg.replace(backbone_lr_scale=0.0)
    started = time.time()
    try:
        # argv.json: the command as typed (`gazeneg train ...` from the console, the script's argv otherwise).
        typed = sys.argv if argv is None else [*(prog.split() if prog else []), *argv]
        run_dir = run(cfg, resume=args.resume, argv=typed, resume_epochs=resume_epochs)
    except KeyboardInterrupt:
        if distributed.env_info().is_main:
            print("\n" + interrupted_hint(args.resume or newest_run(cfg.out, since=started), prog), file=sys.stderr)
        return 130
    finally:
        distributed.cleanup()
    if distributed.env_info().is_main:
        for line in summary_lines(run_dir):
            print(line)
        print(f"run folder: {run_dir}")
    return 0


cli = as_cli(main, resume=RESUME["train"])
