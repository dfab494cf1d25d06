"""Issue 20 point 4: every repository path the README, docs/architecture.md and docs/results.md name exists
(code spans and links naming a file or folder under gazeneg/, scripts/, benchmarks/, tests/, docs/, studies/)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/architecture.md", "docs/results.md", "docs/reliability.md"]
# a path-like token starting at one of the repository's source folders; stops at a space, quote, bracket or `::`
PATH = re.compile(r"(?<![\w./<-])((?:gazeneg|scripts|benchmarks|tests|docs|studies)/[\w./-]*[\w/])")


def named_paths(text: str) -> set[str]:
    out = set()
    for m in PATH.finditer(text):
        p = m.group(1).rstrip(".")
        if text[m.end():m.end() + 1] in ("<", "*", "{"):   # a pattern such as tests/test_cli_<name>.py
            continue
        out.add(p)
    return out


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_doc_names_exists(doc):
    path = ROOT / doc
    text = path.read_text(encoding="utf-8")
    base = path.parent
    missing = sorted(p for p in named_paths(text) if not (ROOT / p).exists() and not (base / p).exists())
    assert not missing, f"{doc} names paths that do not exist: {missing}"


def test_the_path_finder_finds_paths():
    assert named_paths("see `gazeneg/training/step.py` and [x](docs/face.md), not runs/x or <gazeneg/y>") == {
        "gazeneg/training/step.py", "docs/face.md"}
