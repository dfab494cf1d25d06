"""Check the gradient-ascent logistic toy's claims with numbers; write report.md and figures.

    python scripts/toy_ascent.py [--out DIR] [--steps 3000] [--lr 0.5] [--seed 0]

The study itself is studies/toy_ascent.py (outside the installed gazeneg package); this wrapper only
parses the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# `python scripts/toy_ascent.py` puts scripts/ on sys.path, not the repository root, and
# `pip install -e .` ships only gazeneg: add the root so `studies` imports from any working folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies import toy_ascent as toy  # noqa: E402  (needs the path above)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="run folder (new or empty); default runs/toy/<timestamp>")
    p.add_argument("--steps", type=int, default=3000, help="full-batch steps per run")
    p.add_argument("--lr", type=float, default=0.5, help="constant step size")
    p.add_argument("--seed", type=int, default=0, help="data and init seed")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args_parser().parse_args(argv)
    try:
        out_dir = toy.fresh_dir(args.out)  # before the work, so a reused folder fails at once
        result = toy.run_experiment(steps=args.steps, lr=args.lr, seed=args.seed)
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(toy.write_run(result, out_dir, argv=argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
