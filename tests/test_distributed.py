"""Distributed data parallel: 2 CPU processes under torchrun train the same model as one process with the
same global batch. The model is "mlp" without the face branch (whose BatchNorm1d standardises the face
features): PyTorch's SyncBatchNorm has no CPU implementation, so a BatchNorm model normalises per shard on
CPU and is not expected to match one process exactly (see gazeneg/training/distributed.py)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gazeneg.config import ConfigError, from_dict
from gazeneg.training import distributed
from gazeneg.training.loop import _check_distributed, run

from .conftest import make_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
# 63 is odd: every global batch splits 32/31 and the last (288 % 63 = 36) 18/18, so the loss scaling for
# uneven shards is exercised.
COMMON = dict(model="mlp", model_kwargs={"use_face": False}, epochs=2, augment=False, flip=False, batch_size=63, val_subjects=1, test_subjects=1,
              device="cpu", progress=False)


def _metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(float(r["train_loss"]), float(r["val_mean_error_cells"])) for r in csv.DictReader(f)]


def test_ddp_two_processes_match_one_process(tmp_path):
    data = make_tiny_dataset(tmp_path / "ds", subjects=4)
    single = run(from_dict({**COMMON, "data": str(data), "out": str(tmp_path / "single")}), argv=[])

    args = [f"--{k.replace('_', '-')}={json.dumps(v) if isinstance(v, dict) else v}"
            for k, v in {**COMMON, "data": data, "out": tmp_path / "ddp"}.items()]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "scripts" / "train.py"), *args], cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Only rank 0 writes: one run folder, one summary.
    (ddp,) = list((tmp_path / "ddp").iterdir())
    assert proc.stdout.count("run folder:") == 1
    assert (ddp / "metrics.json").is_file() and (ddp / "last.pt").is_file()

    a, b = _metrics(single), _metrics(ddp)
    assert len(a) == len(b) == COMMON["epochs"]
    for (la, va), (lb, vb) in zip(a, b, strict=True):
        assert lb == pytest.approx(la, rel=1e-5)
        assert vb == pytest.approx(va, rel=1e-5)
    wa = torch.load(single / "last.pt", weights_only=True)["state_dict"]
    wb = torch.load(ddp / "last.pt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5 * max(1.0, wa[k].abs().max().item()))


def test_shards_partition_each_global_batch():
    idx = torch.randperm(63)
    parts = [distributed.shard(idx, distributed.DistInfo(r, 2, r)) for r in range(2)]
    assert [len(p) for p in parts] == [32, 31]
    assert sorted(torch.cat(parts).tolist()) == sorted(idx.tolist())
    assert distributed.shard(idx, distributed.DistInfo()) is idx  # one process: untouched


def test_single_process_helpers_are_no_ops():
    di = distributed.DistInfo()
    assert not di.enabled and di.is_main
    assert distributed.global_mean(1.5, 3, 3, torch.device("cpu"), di) == 1.5
    assert distributed.broadcast_object("x", di) == "x"


def test_batch_too_small_for_the_processes_names_the_culprit():
    cfg = from_dict({**COMMON, "batch_size": 64})
    with pytest.raises(ConfigError, match="batch_size 64 over 4 processes"):
        _check_distributed(cfg, 64 * 5 + 3, distributed.DistInfo(0, 4, 0))  # last batch: 3 samples, 4 ranks
    _check_distributed(cfg, 64 * 5 + 4, distributed.DistInfo(0, 4, 0))  # one each: fine
    with pytest.raises(ConfigError, match="guard_grad_cap"):
        _check_distributed(cfg.replace(neg_mode="combined", neg_lambda=0.1, guard_grad_cap=1.0), 640,
                           distributed.DistInfo(0, 2, 0))
