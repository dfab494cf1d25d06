"""`gazeneg <command> --help` is fast: no command's parser imports torch, and its help takes about as long as the
top-level help (issue: 4.6-7.4 s each while torch and OpenCV were imported before parsing)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from gazeneg.cli.main import COMMANDS


@pytest.mark.parametrize("name", list(COMMANDS))
def test_building_a_commands_parser_imports_no_torch(name):
    module = COMMANDS[name][0]
    code = (f"import sys, importlib; m = importlib.import_module({module!r}); m.get_args_parser('gazeneg {name}')"
            ".format_help(); print(sorted(k for k in ('torch', 'torchvision', 'scipy', 'matplotlib') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"gazeneg {name} --help imports {out}"


def _seconds(args: list[str]) -> float:
    best = float("inf")
    for _ in range(3):   # the fastest of three: the least disturbed by whatever else the machine runs
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gazeneg", *args], capture_output=True, check=True)
        best = min(best, time.perf_counter() - t)
    return best


def test_every_commands_help_is_about_as_fast_as_the_top_level_help():
    top = _seconds(["--help"])
    slow = {name: round(s, 2) for name in COMMANDS
            if (s := _seconds([name, "--help"])) > max(1.0, top + 0.8)}
    assert not slow, f"top-level help {top:.2f} s; slower commands: {slow}"
