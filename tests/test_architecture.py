"""The package's layers, checked on its source: every import of a gazeneg module points down the layer
order (or stays inside its own sub-package), nothing imports a private name from another module, and the
import graph, function-level imports included, has no circle. docs/architecture.md draws the same order."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gazeneg"

# Lowest first. A module may import from a lower layer or from its own sub-package; siblings on one rank
# (study and webcam) may not import each other.
LAYERS: list[tuple[int, str]] = [
    (0, "gazeneg"),              # grid, strip, seeding, config, files, errors, testing, units: shared vocabulary
    (1, "gazeneg.data"),
    (2, "gazeneg.model"),
    (3, "gazeneg.wronglabels"),
    (4, "gazeneg.training"),
    (5, "gazeneg.study"),
    (5, "gazeneg.webcam"),
    (6, "gazeneg.cli"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(mod: str) -> tuple[int, str]:
    if mod == "gazeneg.__main__":
        return 6, "gazeneg.cli"
    best = (0, "gazeneg")
    for rank, prefix in LAYERS:
        if (mod == prefix or mod.startswith(prefix + ".")) and len(prefix) > len(best[1]):
            best = (rank, prefix)
    return best


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports(path: Path, mod: str):
    """(target module, names, line, at module level) for each import of a gazeneg module in path."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top_level = {id(n) for n in tree.body}
    is_pkg = path.name == "__init__.py"
    known = modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("gazeneg"):
                continue
            names = [a.name for a in node.names]
            # `from gazeneg.pkg import module` imports the module itself
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            for t in subs or [target]:
                yield t, ([] if subs else names), node.lineno, id(node) in top_level
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("gazeneg"):
                    yield a.name, [], node.lineno, id(node) in top_level


def edges():
    for mod, path in modules().items():
        for target, names, line, _ in imports(path, mod):
            yield mod, target, names, f"{path.relative_to(ROOT)}:{line}"


def test_every_module_has_a_layer_and_packages_exist():
    for _, prefix in LAYERS:
        assert (ROOT / prefix.replace(".", "/") / "__init__.py").is_file(), prefix
    flat = sorted(p.name for p in PKG.glob("*.py"))
    # the top level holds only the shared vocabulary
    assert set(flat) <= {"__init__.py", "__main__.py", "grid.py", "strip.py", "seeding.py", "config.py",
                         "files.py", "errors.py", "testing.py", "units.py"}, flat


def test_imports_point_down_the_layers():
    bad = []
    for src, dst, _, where in edges():
        (rs, ps), (rd, pd) = layer_of(src), layer_of(dst)
        if ps == pd or dst == "gazeneg":
            continue
        if rd >= rs:
            bad.append(f"{where}: {src} (layer {ps}) imports {dst} (layer {pd})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_no_private_name_is_imported_across_modules():
    bad = [f"{where}: {src} imports {n} from {dst}" for src, dst, names, where in edges()
           for n in names if n.startswith("_") and dst != src]
    assert not bad, "\n".join(bad)


def test_no_import_circle():
    graph: dict[str, set[str]] = {}
    for src, dst, _, _ in edges():
        if dst != src and dst in modules():
            graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checker_catches_an_upward_import(tmp_path):
    """The rules above are not vacuous: a data module importing the training loop is reported."""
    assert layer_of("gazeneg.data.dataset")[0] < layer_of("gazeneg.training.loop")[0]
    assert layer_of("gazeneg.study.sweep")[0] == layer_of("gazeneg.webcam.live")[0]
    fake = tmp_path / "gazeneg" / "data" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from gazeneg.training.loop import _set\n")
    found = list(imports(fake, "gazeneg.data.x"))
    assert found == [("gazeneg.training.loop", ["_set"], 2, False)]
    (rs, _), (rd, _) = layer_of("gazeneg.data.x"), layer_of(found[0][0])
    assert rd > rs
