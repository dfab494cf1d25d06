"""gazeneg/cli/eval.py: `gazeneg eval` as a package command, its options checked once at parsing, its errors
as one line, Ctrl-C naming the folder to continue in, the report naming the command typed."""

import json

import pytest

from gazeneg.cli import eval as ev
from gazeneg.cli import main as console


@pytest.mark.parametrize("bad", ["-1", "0", "nan", "inf", "abc"])
def test_the_margin_is_checked_once_when_parsing(bad, capsys):
    with pytest.raises(SystemExit) as e:
        ev.get_args_parser("gazeneg eval").parse_args(["--margin", bad])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--margin" in last and repr(bad) in last
    assert ev.get_args_parser().parse_args(["--margin", "0.1"]).margin == 0.1


def test_seeds_below_two_are_refused_when_parsing(capsys):
    with pytest.raises(SystemExit):
        ev.get_args_parser().parse_args(["--seeds", "1"])
    assert "--seeds" in capsys.readouterr().err and ev.get_args_parser().parse_args(["--seeds", "2"]).seeds == 2


def test_a_sweep_option_in_the_personal_regime_is_one_line_exit_2(capsys):
    rc = console.main(["eval", "--regime", "personal", "--seeds", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: --seeds") and "--ks" in err
    rc = console.main(["eval", "--regime", "one_person"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs --data" in err and "Traceback" not in err


@pytest.mark.parametrize("given_out", [True, False])
def test_ctrl_c_names_the_folder_and_the_command_that_continues(given_out, tmp_path, monkeypatch, capsys):
    from gazeneg.study import sweep

    def interrupted(cfg, sequential=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    monkeypatch.chdir(tmp_path)
    argv = ["--quick", "--regime", "sweep"] + (["--out", "mine"] if given_out else [])
    rc = console.main(["eval", *argv])
    out, err = capsys.readouterr()
    folder = out.split("output folder: ")[1].split()[0]
    assert rc == 130 and (folder == "mine") == given_out
    assert f"kept in {folder}" in err and "--resume" not in err
    again = err.split("continue with `")[1].split("`")[0]
    assert again.startswith("gazeneg eval --quick --regime sweep") and again.count("--out") == 1
    assert again.endswith(f"--out {folder}")


def test_a_tiny_sweep_reports_the_command_typed(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["--data", str(tiny_dataset), "--regime", "sweep", "--arms", "adam:baseline", "--seeds", "2",
            "--budgets", "1", "--epochs", "1", "--sequential", "--out", str(out), "--margin", "0.2"]
    assert console.main(["eval", *argv]) == 0
    printed = capsys.readouterr().out
    assert "equivalence margin +-0.2 cells" in printed and str(out / "report.md") in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"].startswith("gazeneg eval --data ") and summary["margin_cells"] == 0.2
    assert "gazeneg eval --data" in (out / "report.md").read_text()


def test_each_eval_option_is_written_once_and_described_in_help(monkeypatch):
    """Every option of `gazeneg eval` comes from one field's metadata (the command's own, SweepOptions',
    PersonalOptions'); SweepConfig and PersonalConfig carry the very same definitions; --help describes each."""
    import argparse
    import dataclasses

    from gazeneg.config import options_of
    from gazeneg.study.personal import PersonalConfig
    from gazeneg.study.sweep import SweepConfig

    found = options_of(*ev.OPTION_CLASSES)
    assert sorted(found) == sorted(ev.ORDER) and len(ev.ORDER) == 25
    monkeypatch.setenv("COLUMNS", "1000")   # help lines unwrapped: each is found whole
    parser = ev.get_args_parser("gazeneg eval")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    assert set(actions) == set(found)
    text = " ".join(parser.format_help().split())
    for name, (f, _) in found.items():
        assert actions[name].help not in (None, "", argparse.SUPPRESS), name
        assert " ".join(f.metadata["help"].split()) in text, name
        assert tuple(actions[name].choices or ()) == f.metadata["choices"], name
    for config in (SweepConfig, PersonalConfig):
        for f in dataclasses.fields(config):
            if f.name in found:
                assert f.metadata is found[f.name][0].metadata or f.metadata == found[f.name][0].metadata, f.name
