#!/usr/bin/env python
"""Thin wrapper: the program is gazeneg/cli/eval.py, also run as `gazeneg eval` (see --help)."""

import sys

from gazeneg.cli.eval import cli, get_args_parser, main  # noqa: F401  (tests load main from here)

if __name__ == "__main__":
    sys.exit(cli())
