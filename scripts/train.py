#!/usr/bin/env python
"""Thin wrapper: the program is gazeneg/commands/train.py, also run as `gazeneg train` (see --help)."""

import sys

from gazeneg.commands.train import cli, get_args_parser, main  # noqa: F401  (tests load main from here)

if __name__ == "__main__":
    sys.exit(cli())
