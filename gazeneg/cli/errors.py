"""Shared command-line wrapper: known bad input becomes one clear line on stderr, not a traceback."""

from __future__ import annotations

import errno
import sys

from gazeneg.errors import GazenegError

# What each command's user does after a full disk or Ctrl-C: how it continues, or None when it cannot
# (live, render). The default is the old generic advice.
RESUME_DEFAULT = "re-run with the same output folder (or --resume) to continue"
RESUME = {
    "import": "run the same command again (a new import wrote nothing; with --resume the photos it added are kept "
              "and skipped)",
    "capture": "re-run with --resume to continue the session",
    "train": "continue it with `gazeneg train --resume RUN_DIR` (RUN_DIR: the run's folder, the newest under --out)",
    "eval": "re-run the same command with the same --out (the output folder it printed first) to continue; "
            "finished runs are kept and skipped",
    "live": None,
    "render": None,
}


def run_cli(main, extra: tuple = (), *, resume: str | None = RESUME_DEFAULT) -> int:
    """Call main(); the errors a user causes (and `extra`, a command's own error types) become
    `error: <message>` on one line and exit code 2. resume: what to do after a full disk or Ctrl-C
    (RESUME[command]); None for a command that cannot resume."""
    try:
        return main()
    except (GazenegError, FileNotFoundError, ValueError, *extra) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # a read-only or full disk, an --out that is a file: the path and the reason, one line
        where = f"{e.filename}: " if e.filename else ""
        hint = ""
        if e.errno == errno.ENOSPC:
            hint = (f" (the disk is full: free some space, then {resume})" if resume else
                    " (the disk is full: free some space and run it again)")
        print(f"error: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished work is kept; {resume}" if resume else
              "\ninterrupted (this command has nothing to resume: run it again)", file=sys.stderr)
        return 130


def as_cli(main, extra: tuple = (), *, resume: str | None = RESUME_DEFAULT):
    """A command's `cli(argv, prog)`, the same for every command: its main(argv, prog) with the errors a user
    causes (GazenegError and `extra`) as one line on stderr and exit code 2, and `resume` (RESUME[command])
    said after a full disk or Ctrl-C. main is looked up in its module at each call, as a `def cli` calling
    main would (so a replaced main, in a test, is the one that runs)."""
    module, name = sys.modules.get(main.__module__), main.__name__

    def cli(argv=None, prog: str | None = None) -> int:
        now = getattr(module, name, main) if module is not None else main   # a file loaded by path: as given
        return run_cli(lambda: now(argv, prog), extra=extra, resume=resume)

    cli.__doc__ = f"{main.__module__}.main with known bad input as one line on stderr and exit 2."
    return cli
