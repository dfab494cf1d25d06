"""The command-line programs: each module has `get_args_parser(prog)`, `main(argv, prog)` (raises on bad
input) and `cli(argv, prog)` (bad input as one line, exit 2). `gazeneg <command>` (console.py) and the
thin scripts/*.py wrappers both call these."""
