#!/usr/bin/env python
"""Print a sweep's verdicts as one compact Markdown table (arms x budgets), from its summary.json.

    python scripts/sweep_table.py runs/wrong-labels-<time>

Each cell: the paired difference in mean test error to the arm's own baseline (cells, negative is
better; failed runs counted at their imputed error) with the shape-free 95% interval the verdict reads,
the verdict, the smallest difference the comparison could detect at 80% power ("det."), and, when runs
failed, the failures' own verdict ("fails k of n" with its exact interval); baseline rows show their own
error. This is the table docs/results.md quotes."""

import argparse
import json
import math
import sys
from pathlib import Path

from gazeneg.cli.errors import as_cli
from gazeneg.errors import GazenegError


def _cell(e: dict) -> str:
    """"diff [shape-free 95% interval] **verdict**, det. D" (D: the smallest difference this comparison could
    detect at 80% power, Holm family included), then the failures' own verdict when any run failed."""
    if e["verdict"] == "reference":
        fails = f"; {e['failure_verdict']}" if e.get("failed_runs") else ""
        return f"{e['mean_error_cells']:.2f}{fails}"
    d = e.get("diff_vs_baseline")
    if d is None or not math.isfinite(d):
        text = f"**{e['verdict']}**"
    else:
        lo, hi = e.get("diff_ci95_low"), e.get("diff_ci95_high")
        ci = f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None and math.isfinite(lo) else ""
        text = f"{d:+.2f}{ci} **{e['verdict']}**"
    det = e.get("detectable_cells")
    if det is not None and math.isfinite(det):
        text += f", det. {det:.2f}"
    if e.get("failed_runs"):
        text += f"; {e['failure_verdict']}"
    return text


def table(summary: dict) -> str:
    entries = summary["entries"]
    budgets = sorted({e["budget"] for e in entries})
    arms = list(dict.fromkeys(e["arm"] for e in entries))
    by = {(e["arm"], e["budget"]): e for e in entries}
    lines = ["| arm | " + " | ".join(f"budget {b}" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for a in arms:
        lines.append(f"| {a} | " + " | ".join(_cell(by[(a, b)]) if (a, b) in by else "" for b in budgets) + " |")
    return "\n".join(lines)


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="a sweep's output folder (holds summary.json)")
    return p


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    path = Path(args.sweep) / "summary.json"
    if not path.is_file():
        raise GazenegError(f"{path}: no summary.json (run gazeneg eval --out {args.sweep} first)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        print(table(summary))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise GazenegError(f"{path}: not a sweep's summary.json ({type(e).__name__}: {e})") from None
    return 0


cli = as_cli(main)

if __name__ == "__main__":
    sys.exit(cli())
