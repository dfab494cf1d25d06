#!/usr/bin/env python
"""Thin wrapper: the program is gazeneg/commands/importer.py, also run as `gazeneg import` (see --help)."""

import sys

from gazeneg.commands.importer import cli, get_args_parser, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(cli())
