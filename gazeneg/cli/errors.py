"""Shared command-line wrapper: known bad input becomes one clear line on stderr, not a traceback."""

from __future__ import annotations

import errno
import sys

from gazeneg.errors import GazenegError


def run_cli(main, extra: tuple = ()) -> int:
    """Call main(); the errors a user causes (and `extra`, a command's own error types) become
    `error: <message>` on one line and exit code 2."""
    try:
        return main()
    except (GazenegError, FileNotFoundError, ValueError, *extra) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # a read-only or full disk, an --out that is a file: the path and the reason, one line
        where = f"{e.filename}: " if e.filename else ""
        hint = " (the disk is full: free some space, then re-run the same command to resume)" \
            if e.errno == errno.ENOSPC else ""
        print(f"error: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is kept; re-run with the same output folder (or --resume) to "
              "continue", file=sys.stderr)
        return 130


def as_cli(main, extra: tuple = ()):
    """A command's `cli(argv, prog)`: its main(argv, prog) with the errors a user causes (GazenegError and
    `extra`) as one line on stderr and exit code 2."""
    def cli(argv=None, prog: str | None = None) -> int:
        return run_cli(lambda: main(argv, prog), extra=extra)

    cli.__doc__ = f"{main.__module__}.main with known bad input as one line on stderr and exit 2."
    return cli
