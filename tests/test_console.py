"""`gazeneg <command>`: the console entry point dispatches to the same programs as scripts/*.py."""

import subprocess
import sys
from pathlib import Path

import pytest

from gazeneg.cli import main as console
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_command_with_one_line(capsys):
    assert console.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("render", "import", "capture", "train", "eval", "live", "toy"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 10   # a description, not just the name
    assert console.main([]) == 0


def test_version(capsys):
    assert console.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gazeneg {console.version()}"
    assert console.version()[0].isdigit()


def test_unknown_command_is_one_line_exit_2(capsys):
    assert console.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'trian'" in err and "train" in err


@pytest.mark.parametrize("name, expect", [("render", "--frames-per-cell"), ("import", "--screen"),
                                          ("capture", "--attention"), ("train", "--neg-lambda"),
                                          ("eval", "--list-arms"), ("live", "--smoother"), ("toy", "--steps")])
def test_each_command_has_its_scripts_options(name, expect, capsys):
    with pytest.raises(SystemExit) as e:
        console.main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: gazeneg {name}") and expect in out


@pytest.mark.parametrize("script, module", [("train", "train"), ("render_synthetic", "render"),
                                            ("capture", "capture"), ("live", "live"), ("import_photos", "import_photos"),
                                            ("eval_wrong_labels", "eval"), ("toy_ascent", "toy")])
def test_scripts_are_thin_wrappers_over_the_same_functions(script, module):
    import importlib

    mod = load_script(script)
    assert mod.main is importlib.import_module(f"gazeneg.cli.{module}").main


def test_errors_go_through_run_cli_one_line(tmp_path, capsys):
    rc = console.main(["train", "--data", str(tmp_path / "nope"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "nope" in err and "Traceback" not in err
    assert console.main(["train", "--lr", "-1"]) == 2
    assert "lr must be" in capsys.readouterr().err


def test_every_command_runs_from_the_package_outside_a_checkout(monkeypatch, tmp_path, capsys):
    """eval is a package module like the others (it was loaded from scripts/ by path and refused outside a
    checkout): with the checkout out of reach it still lists its arms."""
    monkeypatch.setattr(console, "CHECKOUT", tmp_path)
    monkeypatch.setenv("GAZENEG_DATA_DIR", str(tmp_path / "data"))
    assert all(where.startswith("gazeneg.cli.") for where, _ in console.COMMANDS.values())
    assert console.main(["eval", "--list-arms"]) == 0
    assert "sgd:baseline" in capsys.readouterr().out


def test_installed_console_script_runs():
    exe = Path(sys.executable).with_name("gazeneg")
    if not exe.exists():
        pytest.skip(f"no console script beside {sys.executable}: `pip install -e .` installs it")
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("gazeneg ")


def test_no_help_text_or_message_tells_a_user_to_run_a_script():
    """The commands a user types are `gazeneg <command>` (an installed gazeneg has no scripts/ folder): no
    help text, docstring or message in the package says `python scripts/...`, and no message names a script."""
    import ast

    found = []
    for path in sorted((ROOT / "gazeneg").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
                and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if "python scripts/" in text or (id(node) not in docs and "scripts/" in text):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text.strip()[:80]!r}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", ["capture", "import", "live", "predict"])
def test_face_backend_is_one_option_with_the_detectors_choices(name, capsys):
    """--face-backend is defined once (webcam.options.add_face_backend) with the detector's own backends."""
    import importlib

    from gazeneg.webcam import detect, options

    assert detect.BACKENDS is options.FACE_BACKENDS
    p = importlib.import_module(console.COMMANDS[name][0]).get_args_parser(f"gazeneg {name}")
    (action,) = [a for a in p._actions if "--face-backend" in a.option_strings]
    assert tuple(action.choices) == options.FACE_BACKENDS and action.default == "auto"
    assert "model_files fetch" in action.help


def test_every_command_has_one_cli_shape():
    import importlib

    for name, (where, _) in console.COMMANDS.items():
        mod = importlib.import_module(where)
        assert callable(mod.get_args_parser) and callable(mod.main) and callable(mod.cli), name
        assert mod.get_args_parser(f"gazeneg {name}").prog == f"gazeneg {name}"


def test_every_script_has_the_command_shape(tmp_path, capsys):
    """scripts/*.py: thin wrappers over gazeneg/cli, or (demo, pose_ablation, sweep_table) programs of the same
    shape: get_args_parser(prog), main(argv, prog), cli with errors as one line and exit 2."""
    for path in sorted((ROOT / "scripts").glob("*.py")):
        mod = load_script(path.stem)
        assert callable(mod.main) and callable(mod.cli), path.name
        assert mod.get_args_parser("x").prog == "x", path.name
    table = load_script("sweep_table")
    assert table.cli([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'summary.json'}: no summary.json (run gazeneg eval --out {tmp_path} first)\n"
    (tmp_path / "summary.json").write_text('{"entries": [{"arm": "x"}]}')
    assert table.cli([str(tmp_path)]) == 2
    assert "not a sweep's summary.json (KeyError" in capsys.readouterr().err
