"""Run folders under a second writer and a damaged resume (issue 24 items 9, 14, 15, 17): one training process
per run folder, one personal run per --out, and a resume that is refused leaves the run as it was."""

import json

import pytest
import torch
from filelock import FileLock, Timeout

from gazeneg.config import ConfigError, from_dict
from gazeneg.training import loop
from gazeneg.training.loop import run
from tests.conftest import fast_config


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """A finished 2-epoch run folder (copied per test by `run_dir`)."""
    out = tmp_path_factory.mktemp("runs")
    cfg = fast_config(tiny_dataset, out, epochs=2)
    return run(cfg, argv=["x"])


@pytest.fixture
def run_dir(trained, tmp_path):
    import shutil

    return shutil.copytree(trained, tmp_path / trained.name)


def _files(d):
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file() and p.suffix != ".lock"}


def test_a_second_resume_of_a_run_in_use_is_refused(run_dir):
    """Item 9: two `train --resume R` at once appended epochs 2-7 twice to metrics.csv."""
    before = _files(run_dir)
    with FileLock(run_dir / ".train.lock"), pytest.raises(ConfigError, match=r"in use by another training process"):
        run(from_dict({}), resume=str(run_dir), resume_epochs=3, argv=["x"])
    assert _files(run_dir) == before


def test_a_run_holds_its_folder_while_it_trains(run_dir, monkeypatch):
    real_fit = loop.fit
    seen = []

    def fit(cfg, splits, *, run_dir=None, **kw):
        with pytest.raises(Timeout):
            FileLock(run_dir / ".train.lock").acquire(timeout=0)
        seen.append(run_dir)
        return real_fit(cfg, splits, run_dir=run_dir, **kw)

    monkeypatch.setattr(loop, "fit", fit)
    run(from_dict({}), resume=str(run_dir), resume_epochs=3, argv=["x"])
    assert seen == [run_dir]
    FileLock(run_dir / ".train.lock").acquire(timeout=0)   # released when run returns


def _edit_last(run_dir, fn):
    d = torch.load(run_dir / "last.pt", weights_only=True)
    fn(d)
    torch.save(d, run_dir / "last.pt")


@pytest.mark.parametrize("edit, culprit", [
    (lambda d: d.update(epoch=-5), r"last\.pt: epoch -5 is not an epoch of this 2-epoch run"),
    (lambda d: d.update(epoch=10 ** 9), r"last\.pt: epoch 1000000000 is not an epoch"),
    (lambda d: d["extra"].update(best_err=float("nan")), r"last\.pt: training state 'best_err' is nan"),
    (lambda d: d["extra"].update(history=7), r"last\.pt: training state 'history' is 7"),
    (lambda d: d.update(model_name="gazecnn"), r"last\.pt: holds a 'gazecnn' model, the run's config\.json says 'mlp'"),
    (lambda d: d.update(state_dict="x"), r"last\.pt: 'state_dict' must be a dict"),
])
def test_a_refused_resume_changes_nothing(run_dir, edit, culprit):
    """Item 15: a resume with a damaged last.pt is refused naming it, and config.json is not rewritten."""
    from gazeneg.model.checkpoint import CheckpointError

    _edit_last(run_dir, edit)
    before = _files(run_dir)
    with pytest.raises((ConfigError, CheckpointError), match=culprit):
        run(from_dict({}), resume=str(run_dir), resume_epochs=3, argv=["x"])
    assert _files(run_dir) == before


def test_epochs_may_only_extend_a_resumed_run(run_dir):
    before = _files(run_dir)
    with pytest.raises(ConfigError, match=r"--epochs 1 would shorten the 2-epoch run"):
        run(from_dict({}), resume=str(run_dir), resume_epochs=1, argv=["x"])
    assert _files(run_dir) == before


@pytest.mark.parametrize("content, culprit", [
    ("[1, 2]", r"config\.json: must hold a JSON object of settings, not a list"),
    ('{"epochz": 3}', r"config\.json: unknown config key\(s\): epochz"),
    ('{"lr": "fast"}', r"config\.json: .*lr"),
])
def test_a_bad_run_config_names_the_file(run_dir, content, culprit):
    """Items 14, 17: a run config.json holding a list, or a bad key or value, is one error naming the file."""
    (run_dir / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=culprit):
        run(from_dict({}), resume=str(run_dir), argv=["x"])


def test_an_absurd_learning_rate_is_refused():
    """Item 15: --lr 1e9 was accepted (and diverged in one step)."""
    with pytest.raises(ConfigError, match=r"lr must be .* at most 10"):
        from_dict({"lr": 1e9})


def test_a_second_personal_run_on_one_folder_is_refused(tmp_path):
    """Item 9: two personal runs on one --out wrote every row twice (the report counted 4 people for 2)."""
    from gazeneg.study.personal import PersonalConfig, run_personal

    out = tmp_path / "p"
    out.mkdir()
    with FileLock(out / ".personal.lock"), pytest.raises(ValueError, match=r"in use by another personal run"):
        run_personal(PersonalConfig.quick(data=str(tmp_path / "nowhere"), out=str(out)), progress=False)
    assert json.dumps(sorted(p.name for p in out.iterdir())) == json.dumps([".personal.lock"])


def test_a_failed_sweep_start_leaves_no_lock_and_no_sweep_json(tmp_path):
    """Item 10: an eval whose first run fails (two cells: nothing to split) left .sweep.lock and sweep.json."""
    from gazeneg.study.sweep import SweepConfig, all_arms, run_sweep
    from tests.conftest import make_tiny_dataset

    ds = make_tiny_dataset(tmp_path / "ds", subjects=1, cells=[0, 1])
    out = tmp_path / "wl"
    sweep = SweepConfig(data=str(ds), out=str(out), seeds=1, budgets=(1,), arms=[all_arms()[0].name], workers=1,
                        base={"epochs": 1})
    with pytest.raises(ValueError):
        run_sweep(sweep, progress=False, sequential=True)
    assert not out.exists()
