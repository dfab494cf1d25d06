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
    from gazeneg.model.checkpoint import read_checkpoint

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
    from gazeneg.study.sweep import load_done

    rng = random.Random(1)
    out = tmp_path / "sw"
    code = ("import sys; from gazeneg.study.sweep import SweepConfig, run_sweep\n"
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
    """Needs root to mount a small tmpfs; skipped otherwise. Then the disk grows and the run resumes."""
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
        # Space freed (the tmpfs grown): the same run resumes and finishes.
        assert subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], capture_output=True).returncode == 0
        (rd,) = [p for p in mnt.iterdir() if p.is_dir()]
        r2 = subprocess.run([sys.executable, "scripts/train.py", "--resume", str(rd)], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
        assert r2.returncode == 0, r2.stderr
        assert (rd / "metrics.json").is_file() and not list(mnt.rglob("*.tmp"))
    finally:
        time.sleep(0.2)
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_capture_killed_at_random_points_resumes_to_a_consistent_dataset(tmp_path):
    """A headless capture from an image folder, SIGKILLed at random moments and resumed: every image has
    its labels row and every row its image, no temp files, no duplicate rows, and the session completes."""
    from gazeneg.data.dataset import load_dataset
    from tests.own_data import write_face_frames

    frames_dir = tmp_path / "frames"
    write_face_frames(frames_dir, 400, name="{i:04d}.jpg", seed=3)
    out = tmp_path / "ds"
    code = ("from gazeneg.webcam import capture as C\n"
            "plan = [C.Target(t.row, t.col, None) for t in C.make_plan(cells=list(range(0, 144, 3)), "
            "order='rowmajor')]\n"
            f"C.capture({str(out)!r}, {str(frames_dir)!r}, subject='a', session='s1', plan=plan, "
            "settings=C.CaptureSettings(frames_per_target=5, fixation_s=0.0), headless=True, "
            f"resume={{resume}}, face_backend='haar', log=lambda *a: None)\n")
    rng = random.Random(2)
    def n_images():
        return len(list((out / "images").iterdir())) if (out / "images").exists() else 0

    killed_mid_way = 0
    for _ in range(5):
        # kill when a random number of further images is on disk: a random point of the session
        target = min(n_images() + rng.randint(5, 45), 48 * 5 - 1)
        proc = _start(["-c", code.format(resume=(out / "labels.csv").exists())])
        deadline = time.time() + 120
        while proc.poll() is None and n_images() < target and time.time() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_mid_way += 1
        proc.wait()
    done = subprocess.run([sys.executable, "-c", code.format(resume=(out / "labels.csv").exists())], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ds = load_dataset(out)
    on_disk = {f"images/{p.name}" for p in (out / "images").iterdir()}
    assert on_disk == set(ds.paths.tolist()) and len(set(ds.paths.tolist())) == len(ds)
    assert not list(out.rglob("*.tmp"))
    cells = {(round(float(r), 3), round(float(c), 3)) for r, c in ds.targets}
    assert len(cells) == 48 and len(ds) == 48 * 5
    assert killed_mid_way >= 1   # at least one kill landed in the middle of the session


def _rows(ds):
    with open(ds / "labels.csv", newline="") as f:
        return sorted(tuple(r.values()) for r in csv.DictReader(f))


def test_an_import_killed_at_random_points_ends_as_an_uninterrupted_one(tmp_path):
    """Issue 24 items 8-10: SIGKILL a new import and an import --resume at random points; rerunning the same
    command ends with exactly the rows and images of an uninterrupted import (nothing twice, nothing
    half-written, no hidden building folder left)."""
    from gazeneg.webcam.importer import import_photos
    from tests.own_data import SCREEN, make_photo_folder

    photos, labels = make_photo_folder(tmp_path / "raw", per_session=200)   # about 5 s an import here
    lines = labels.read_text().splitlines(keepends=True)
    first = tmp_path / "first.csv"
    first.write_text("".join(lines[:201]))
    ref = tmp_path / "ref"
    import_photos(photos, first, ref, screen=SCREEN, crop="eye", log=lambda *_: None)
    import_photos(photos, labels, ref, screen=SCREEN, crop="eye", resume=True, log=lambda *_: None)
    rng = random.Random(1)
    out = tmp_path / "ds"

    def cmd(csv_path):
        return ["-m", "gazeneg", "import", str(photos), str(csv_path), "--screen", "1440x900", "--crop", "eye",
                "--out", str(out), "--quiet", *(["--resume"] if (out / "labels.csv").exists() else [])]

    for csv_path in (first, labels):
        for _ in range(3):
            _kill_after(_start(cmd(csv_path)), rng.uniform(1.0, 5.0))
        done = subprocess.run([sys.executable, *cmd(csv_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert _rows(out) == _rows(ref)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(p.name for p in (ref / "images").iterdir())
    assert all((out / "images" / p.name).read_bytes() == p.read_bytes() for p in (ref / "images").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".importing")]
