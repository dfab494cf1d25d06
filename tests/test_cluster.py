"""Sweeps on Ray: a reduced quick sweep through a local Ray instance gives the same results.csv as the same
sweep run in one process."""

import csv
import sys

import pytest

from gazeneg.study import tasks as cluster
from gazeneg.study.sweep import SweepConfig, execute, run_sweep

ARMS = ["sgd:baseline", "sgd:naive_l0.3", "sgd:symmetric_k4", "cls:baseline"]


def _rows(out):
    with open(out / "results.csv", newline="") as f:
        return {(r["arm"], r["seed"], r["budget"]): {k: v for k, v in r.items() if k != "seconds"}
                for r in csv.DictReader(f)}


@pytest.mark.slow  # starts a Ray instance: about 10 s and 1 GB on 2 cores; `make test-slow` runs it
def test_sweep_on_local_ray_matches_sequential(tiny_dataset, tmp_path):
    ray = pytest.importorskip("ray")

    def sweep(name, **kw):
        return SweepConfig(data=str(tiny_dataset), out=str(tmp_path / name), seeds=2, budgets=(1,), arms=ARMS,
                           base={"epochs": 3, "val_subjects": 1, "test_subjects": 1}, **kw)

    run_sweep(sweep("local"), progress=False, sequential=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_sweep(sweep("ray", ray="local"), progress=False)
    finally:
        ray.shutdown()
    local, remote = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert len(local) == len(ARMS) * 2
    assert remote == local


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r"pip install gazeneg\[cluster\]"):
        next(cluster.run_on_ray("local", [], SweepConfig(), execute))
