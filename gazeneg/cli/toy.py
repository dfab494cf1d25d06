"""Check the gradient-ascent logistic toy's claims with numbers; write report.md and figures.

    gazeneg toy [--out DIR] [--steps 3000] [--lr 0.5] [--seed 0]

The study is gazeneg/study/toy.py (docs/science.md section 7): a two-input logistic classifier trained by
gradient ascent, each claim about it judged from the numbers of the run. Prints each verdict and the report.
"""

from __future__ import annotations

import argparse
import sys

from gazeneg.cli.errors import as_cli


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="run folder (new or empty); default runs/toy/<timestamp>")
    p.add_argument("--steps", type=int, default=3000, help="full-batch steps per run")
    p.add_argument("--lr", type=float, default=0.5, help="constant step size")
    p.add_argument("--seed", type=int, default=0, help="data and init seed")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args_parser(prog).parse_args(argv)
    from gazeneg.study import toy  # numpy, scipy and matplotlib only once the options are read

    try:
        out_dir = toy.fresh_dir(args.out)  # before the work, so a reused folder fails at once
    except FileExistsError as e:
        raise ValueError(str(e)) from None
    result = toy.run_experiment(steps=args.steps, lr=args.lr, seed=args.seed)
    report = toy.write_run(result, out_dir, argv=argv)
    for key, verdict in toy.judge(result.summary).items():
        print(f"claim {key}: {verdict.label}")
    print(report)
    return 0


cli = as_cli(main, extra=(FileExistsError,))
