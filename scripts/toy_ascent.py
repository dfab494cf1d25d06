#!/usr/bin/env python
"""Thin wrapper: the program is gazeneg/cli/toy.py, also run as `gazeneg toy` (see --help)."""

import sys

from gazeneg.cli.toy import cli, get_args_parser, main  # noqa: F401  (tests load main from here)

if __name__ == "__main__":
    sys.exit(cli())
