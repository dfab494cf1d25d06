"""`gazeneg <command> [options]`: one console command for every program (pyproject [project.scripts]).

Each command is a module of gazeneg/cli/ with get_args_parser(prog), main(argv, prog) and cli(argv, prog); its
scripts/*.py is a thin wrapper over the same functions. Modules are imported only when their command runs, so
`gazeneg --help` is fast."""

from __future__ import annotations

import importlib
import os
import sys
from importlib import metadata
from pathlib import Path

# name -> (where the program is, one line for `gazeneg --help`)
COMMANDS = {
    "render": ("gazeneg.cli.render", "render the synthetic eye data set (exact labels)"),
    "import": ("gazeneg.cli.import_photos", "import a folder of photos plus a CSV of targets (cells or screen pixels)"),
    "capture": ("gazeneg.cli.capture", "capture your own data set: look at targets on a 9x16 grid"),
    "adapt": ("gazeneg.cli.adapt", "match the renders to your webcam: the mean eye strip of its frames"),
    "train": ("gazeneg.cli.train", "train a gaze model on the synthetic set or a data-set folder"),
    "eval": ("gazeneg.cli.eval", "does a negative learning rate on wrong labels help? (sweep, report)"),
    "live": ("gazeneg.cli.live", "live gaze tracking with a trained checkpoint and calibration"),
    "predict": ("gazeneg.cli.predict", "gaze of a checkpoint for a video, image folder or data set (CSV, errors)"),
    "toy": ("gazeneg.cli.toy", "the gradient-ascent logistic toy: its claims checked with numbers"),
}

CHECKOUT = Path(__file__).resolve().parents[2]


def version() -> str:
    try:
        return metadata.version("gazeneg")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def is_checkout() -> bool:
    """True when this gazeneg runs from its repository (an editable install or the source folder), False
    for an installed wheel (the package beside site-packages, no pyproject.toml above it)."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "gazeneg").is_dir()


def use_user_cache_when_installed() -> None:
    """An installed gazeneg keeps the synthetic default set in the user's cache folder
    (<cache>/gazeneg/data, the folder of the face models too; $GAZENEG_CACHE or $XDG_CACHE_HOME move it),
    not in a data/ folder beside site-packages; $GAZENEG_DATA_DIR, when set, names the folder either way.
    Outputs (runs/) go under the current folder in both cases. The variable is inherited by worker
    processes, so they find the same cache."""
    from gazeneg.data.synth import DATA_DIR_ENV

    if is_checkout() or os.environ.get(DATA_DIR_ENV):
        return
    from gazeneg.files import cache_root

    os.environ[DATA_DIR_ENV] = str(cache_root() / "data")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: gazeneg [-h] [--version] <command> [options]", "",
             "A webcam eye-tracker toolkit: does training on deliberately wrong labels with a negative",
             "learning rate help? Each command has its own help: gazeneg <command> --help", "", "commands:"]
    lines += [f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this message and exit", "  --version   show the version and exit",
              "", "The synthetic default set is cached in $GAZENEG_DATA_DIR if set, else the checkout's data/ folder",
              "(installed: the user cache, ~/.cache/gazeneg/data); runs are written under the current folder."]
    return "\n".join(lines)


def run_command(name: str, argv: list[str]) -> int:
    return importlib.import_module(COMMANDS[name][0]).cli(argv, f"gazeneg {name}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        if len(argv) >= 2 and argv[0] == "help" and argv[1] in COMMANDS:
            return run_command(argv[1], ["--help"])
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"gazeneg {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = [c for c in COMMANDS if c.startswith(name[:2])] if not name.startswith("-") else []
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        print(f"error: unknown command {name!r}{hint}; the commands are {', '.join(COMMANDS)} "
              "(gazeneg --help)", file=sys.stderr)
        return 2
    use_user_cache_when_installed()
    try:
        return run_command(name, rest)
    except KeyboardInterrupt:   # Ctrl-C while the command's modules load (torch, OpenCV): before it started
        print("\ninterrupted before the command started: nothing was done", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
