"""No function in the package (or studies/) over 80 lines: a longer one is cut into named pieces (issue 20).
Lengths are measured by ast, from the `def` line to the function's last line, decorators excluded."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80
# "path:function" pairs allowed over the limit, each with the reason it still is.
ALLOWED: set[str] = set()


def long_functions(roots, max_lines: int = MAX_LINES) -> list[tuple[str, int]]:
    """("path:qualified name", lines) of every function over max_lines under the given folders."""
    found = []
    for root in roots:
        for path in sorted(Path(root).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.as_posix()
            found += [(f"{rel}:{name}", n) for name, n in _lengths(ast.parse(path.read_text(encoding="utf-8")))
                      if n > max_lines]
    return found


def _lengths(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node.end_lineno - node.lineno + 1
            yield from _lengths(node, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _lengths(node, prefix + node.name + ".")
        else:
            yield from _lengths(node, prefix)


def test_no_function_over_80_lines():
    roots = [p for p in (ROOT / "gazeneg", ROOT / "studies") if p.is_dir()]
    over = [f"{name} ({n} lines)" for name, n in long_functions(roots) if name not in ALLOWED]
    assert not over, f"functions over {MAX_LINES} lines (cut them into named pieces): " + ", ".join(over)


def test_the_check_finds_a_long_function_and_names_it(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"class C:\n    def short(self):\n        pass\n\n    def long(self):\n{body}\n"
                                   f"\n\ndef ok():\n    return 1\n".replace("\n    x", "\n        x"))
    assert long_functions([tmp_path]) == [(f"{(tmp_path / 'm.py').as_posix()}:C.long", MAX_LINES + 1)]


def test_the_allow_list_names_only_functions_that_exist_and_are_long():
    found = dict(long_functions([ROOT / "gazeneg", *([ROOT / "studies"] if (ROOT / "studies").is_dir() else [])]))
    stale = sorted(ALLOWED - set(found))
    assert not stale, f"remove from ALLOWED (no longer over {MAX_LINES} lines or gone): {', '.join(stale)}"
