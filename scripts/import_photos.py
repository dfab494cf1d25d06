#!/usr/bin/env python
"""Thin wrapper: the program is gazeneg/cli/import_photos.py, also run as `gazeneg import` (see --help)."""

import sys

from gazeneg.cli.import_photos import cli, get_args_parser, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(cli())
