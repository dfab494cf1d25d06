"""gazeneg/cli/train.py: Ctrl-C names the run folder and the command that continues it (it said 'the newest
under --out'), or says that nothing was started."""

import pytest

from gazeneg.cli import main as console
from gazeneg.training import loop
from gazeneg.training.runfiles import new_run_dir


@pytest.mark.parametrize("made_folder", [True, False])
def test_ctrl_c_names_the_run_folder_to_resume(made_folder, tiny_dataset, tmp_path, monkeypatch, capsys):
    made = {}

    def interrupted(cfg, *, resume=None, argv=None, resume_epochs=None, **kw):
        if made_folder:   # as the loop does: a fresh folder with its config.json, then training
            made["dir"] = new_run_dir(cfg.out, "mlp")
            (made["dir"] / "config.json").write_text("{}")
        raise KeyboardInterrupt

    old = new_run_dir(str(tmp_path / "runs"), "old")   # an earlier run under the same --out is not this one
    (old / "config.json").write_text("{}")
    monkeypatch.setattr(loop, "run", interrupted)
    rc = console.main(["train", "--data", str(tiny_dataset), "--model", "mlp", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert rc == 130 and len(err.splitlines()) == 1
    if made_folder:
        assert err == (f"interrupted: the finished epochs are kept in {made['dir']}; continue with "
                       f"`gazeneg train --resume {made['dir']}`")
    else:
        assert "nothing to resume" in err and str(old) not in err
