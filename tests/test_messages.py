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
