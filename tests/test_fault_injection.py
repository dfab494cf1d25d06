"""Fault injection: kill training and the sweep at random points (SIGKILL, nothing gets to clean up) and
resume, several times; fill the disk. Afterwards nothing may be lost, duplicated or half-written.
Slow (each kill restarts a Python process that imports torch): `make test-slow`."""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.slow


def _start(args, **kw):
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kw)


def _kill_after(proc, seconds):
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_training_killed_at_random_points_resumes_without_loss_or_duplicates(tiny_dataset, tmp_path):
    from gazeneg.checkpoint import read_checkpoint

    rng = random.Random(0)
    out = tmp_path / "runs"
    common = ["--epochs", "6", "--model", "mlp", "--val-subjects", "1", "--test-subjects", "1", "--augment", "false",
              "--flip", "false", "--progress", "false"]
    _kill_after(_start(["scripts/train.py", "--data", str(tiny_dataset), "--out", str(out), *common]), 4.0)
    for _ in range(4):
        runs = list(out.iterdir()) if out.exists() else []
        if not runs:   # killed before the run folder existed: start again
            _kill_after(_start(["scripts/train.py", "--data", str(tiny_dataset), "--out", str(out), *common]),
                        rng.uniform(3, 8))
            continue
        (rd,) = runs
        _kill_after(_start(["scripts/train.py", "--resume", str(rd)]), rng.uniform(3, 8))
    runs = list(out.iterdir()) if out.exists() else []
    if runs:
        (rd,) = runs
        done = subprocess.run([sys.executable, "scripts/train.py", "--resume", str(rd)], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
    else:   # a very slow machine: every kill came before the run folder existed
        done = subprocess.run([sys.executable, "scripts/train.py", "--data", str(tiny_dataset), "--out", str(out),
                               *common], cwd=ROOT, capture_output=True, text=True, timeout=600)
        (rd,) = list(out.iterdir())
    assert done.returncode == 0, done.stderr
    with open(rd / "metrics.csv", newline="") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == list(range(6))
    assert not list(rd.glob(".*.tmp"))
    for ck in ("best.pt", "last.pt"):
        assert read_checkpoint(rd / ck)["epoch"] <= 5
    assert (rd / "metrics.json").is_file() and (rd / "predictions.csv").is_file()


def test_sweep_killed_at_random_points_resumes_every_run_exactly_once(tiny_dataset, tmp_path):
    from gazeneg.experiment import load_done

    rng = random.Random(1)
    out = tmp_path / "sw"
    code = ("import sys; from gazeneg.experiment import SweepConfig, run_sweep\n"
            f"run_sweep(SweepConfig(data={str(tiny_dataset)!r}, out={str(out)!r}, seeds=6, budgets=(1,), "
            "arms=['adam:baseline', 'adam:naive_l0.3'], workers=2, base={'val_subjects': 1, 'test_subjects': 1, "
            "'batch_size': 32, 'epochs': 2}), progress=False)\n")
    for _ in range(4):
        _kill_after(_start(["-c", code]), rng.uniform(5, 12))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    text = (out / "results.csv").read_text()
    assert text.endswith("\n")
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [(r["arm"], r["seed"], r["budget"]) for r in rows]
    assert len(keys) == len(set(keys)) == 12
    assert len(load_done(out)) == 12
    assert all(len(r) == len(rows[0]) and r["final_test_error"] for r in rows)


def test_a_full_disk_gets_one_line_and_leaves_no_half_written_checkpoint(tiny_dataset, tmp_path):
    """Needs root to mount a small tmpfs; skipped otherwise."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        r = subprocess.run([sys.executable, "scripts/train.py", "--data", str(tiny_dataset), "--out", str(mnt),
                            "--epochs", "2", "--model", "gazecnn", "--val-subjects", "1", "--test-subjects", "1",
                            "--progress", "false"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 2, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert "disk is full" in last and "Traceback" not in r.stderr
        assert not list(mnt.rglob("*.tmp"))
    finally:
        time.sleep(0.2)
        subprocess.run(["umount", str(mnt)], capture_output=True)
