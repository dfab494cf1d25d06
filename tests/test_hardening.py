"""Careless and hostile input to training and the sweep: one clear error, and nothing half-written left
behind (issue: hardening)."""

import pytest

from gazeneg.config import ConfigError
from gazeneg.data.dataset import DatasetError
from gazeneg.study.sweep import SweepConfig, load_done, run_sweep
from gazeneg.training.loop import run
from tests.conftest import fast_config, load_script


def _sweep(tiny_dataset, out, **base):
    return SweepConfig(data=str(tiny_dataset), out=str(out), seeds=2, budgets=(1,), arms=["adam:baseline"],
                       base={"val_subjects": 1, "test_subjects": 1, "batch_size": 32, **base})


def test_a_failed_sweep_start_writes_nothing_and_the_fixed_command_runs(tiny_dataset, tmp_path):
    out = tmp_path / "sw"
    with pytest.raises(ConfigError, match="epochs"):
        run_sweep(_sweep(tiny_dataset, out, epochs=0), progress=False, sequential=True)
    assert not out.exists()
    # A folder holding a sweep.json but no finished run is reusable.
    out.mkdir()
    (out / "sweep.json").write_text('{"seeds": 9}')
    run_sweep(_sweep(tiny_dataset, out, epochs=1), progress=False, sequential=True)
    assert len(load_done(out)) == 2


def test_a_half_written_last_results_line_is_dropped_and_redone(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sw"
    run_sweep(_sweep(tiny_dataset, out, epochs=1), progress=False, sequential=True)
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    # power cut in the middle of the second row
    (out / "results.csv").write_text("".join(lines[:-1]) + lines[-1][:25])
    capsys.readouterr()
    run_sweep(_sweep(tiny_dataset, out, epochs=1), progress=False, sequential=True)
    cap = capsys.readouterr()
    assert "dropped an incomplete last line" in cap.out + cap.err
    done = load_done(out)
    assert len(done) == 2
    assert (out / "results.csv").read_text().count("\n") == 3   # header + 2 rows, no fragment


def test_two_sweeps_on_one_folder_the_second_is_refused(tiny_dataset, tmp_path):
    from filelock import FileLock

    out = tmp_path / "sw"
    out.mkdir()
    with FileLock(out / ".sweep.lock"):   # another sweep holds the folder
        with pytest.raises(ValueError, match="in use by another sweep"):
            run_sweep(_sweep(tiny_dataset, out, epochs=1), progress=False, sequential=True)
    assert not (out / "results.csv").exists()


@pytest.mark.slow  # spawns a 2-worker pool in a subprocess: 15 s idle, over a minute on a loaded machine
def test_ctrl_c_on_a_sweep_stops_promptly_keeps_finished_runs_and_prints_one_line(tiny_dataset, tmp_path):
    """SIGINT to the sweep (as a terminal sends it to the whole process group) while workers run: it exits
    within seconds with the one-line message, no worker tracebacks, and results.csv keeps whole rows."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sw"
    code = ("import sys; from gazeneg.cli.errors import run_cli; from gazeneg.study.sweep import SweepConfig, run_sweep\n"
            f"sw = SweepConfig(data={str(tiny_dataset)!r}, out={str(out)!r}, seeds=12, budgets=(1,), "
            "arms=['adam:baseline'], workers=2, base={'val_subjects': 1, 'test_subjects': 1, 'batch_size': 32, "
            "'epochs': 3})\n"
            "sys.exit(run_cli(lambda: run_sweep(sw, progress=False) and 0))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "results.csv").exists()
                                          and (out / "results.csv").read_text().count("\n") >= 2):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)   # the whole group, as Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=30)
    assert time.time() - t0 < 15
    assert proc.returncode == 130
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    rows = (out / "results.csv").read_text()
    assert rows.endswith("\n") and 1 <= rows.count("\n") - 1 < 12
    assert len(load_done(out)) == rows.count("\n") - 1


# ----------------------------------------------------------------------------------------------
# Resume and files


def test_resume_after_a_kill_before_the_first_checkpoint_never_repeats_an_epoch(tiny_dataset, tmp_path):
    import csv

    cfg = fast_config(tiny_dataset, tmp_path / "runs", epochs=2)
    rd = run(cfg, argv=["x"])
    # As if killed while writing the first last.pt: metrics.csv has epoch 0, last.pt is a stale temp file.
    (rd / "last.pt").unlink()
    (rd / "metrics.json").unlink()
    with open(rd / "metrics.csv") as f:
        first = f.read().splitlines()[:2]
    (rd / "metrics.csv").write_text("\n".join(first) + "\n")
    (rd / ".last.pt.abc123.tmp").write_bytes(b"\0" * 100)
    run(cfg, resume=str(rd), argv=["x"])
    with open(rd / "metrics.csv", newline="") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == [0, 1]
    assert not list(rd.glob(".*.tmp"))


def test_atomic_writes_get_the_users_umask(tmp_path):
    import os
    import stat

    from gazeneg.files import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.txt", "hi")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644


# ----------------------------------------------------------------------------------------------
# The command line: one line and exit code 2


def _train_cli(argv, capsys):
    from gazeneg.cli.errors import run_cli

    mod = load_script("train")

    rc = run_cli(lambda: mod.main(argv))
    return rc, capsys.readouterr().err


def test_out_that_is_a_file_is_one_line(tiny_dataset, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    rc, err = _train_cli(["--data", str(tiny_dataset), "--out", str(tmp_path / "afile"), "--epochs", "1",
                          "--val-subjects", "1", "--test-subjects", "1", "--model", "mlp"], capsys)
    assert rc == 2 and "afile" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content, culprit", [(None, "is a folder"), (b"\xff\xfe{", "not UTF-8")])
def test_bad_config_files_are_one_line(tmp_path, capsys, content, culprit):
    path = tmp_path / "cfg.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    rc, err = _train_cli(["--config", str(path)], capsys)
    assert rc == 2 and culprit in err and "cfg.json" in err and len(err.strip().splitlines()) == 1


def test_a_full_disk_is_one_line_that_says_so(monkeypatch, capsys):
    import errno

    from gazeneg.cli.errors import run_cli

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/last.pt")

    assert run_cli(full) == 2
    err = capsys.readouterr().err
    assert "runs/x/last.pt" in err and "disk is full" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------
# Dataset folders


def _tiny_copy(tiny_dataset, tmp_path):
    import shutil

    dst = tmp_path / "ds"
    shutil.copytree(tiny_dataset, dst)
    return dst


def _set_first_path(ds, new_path):
    lines = (ds / "labels.csv").read_text().splitlines()
    first = lines[1].split(",")
    first[0] = new_path
    lines[1] = ",".join(first)
    (ds / "labels.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("bad", ["/etc/passwd", "../../outside.png", "images/../../outside.png"])
def test_image_paths_must_stay_inside_the_dataset(tiny_dataset, tmp_path, bad):
    from gazeneg.data.dataset import load_dataset

    ds = _tiny_copy(tiny_dataset, tmp_path)
    (tmp_path / "outside.png").write_bytes((ds / "images" / sorted(p.name for p in (ds / "images").iterdir())[0])
                                           .read_bytes())
    _set_first_path(ds, bad)
    with pytest.raises(DatasetError, match=r"labels.csv line 2: image path .*(relative|outside)"):
        load_dataset(ds)


def test_duplicates_are_found_after_normalising(tiny_dataset, tmp_path):
    from gazeneg.data.dataset import load_dataset

    ds = _tiny_copy(tiny_dataset, tmp_path)
    lines = (ds / "labels.csv").read_text().splitlines()
    second = lines[2].split(",")
    first = lines[1].split(",")
    second[0] = first[0].replace("images/", "images/./")
    lines[2] = ",".join(second)
    (ds / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="line 3: duplicate path"):
        load_dataset(ds)


def test_a_decompression_bomb_is_refused_before_decoding(tiny_dataset, tmp_path):
    import time

    import PIL.Image

    from gazeneg.data.dataset import load_dataset

    ds = _tiny_copy(tiny_dataset, tmp_path)
    first = (ds / "labels.csv").read_text().splitlines()[1].split(",")[0]
    PIL.Image.new("1", (12000, 12000)).save(ds / first)   # a few KB on disk, 432 MB decoded as RGB
    t = time.perf_counter()
    with pytest.raises(DatasetError, match="12000x12000.*not decoded"):
        load_dataset(ds)
    assert time.perf_counter() - t < 10


@pytest.mark.parametrize("meta_change, culprit", [
    ({"grid": 5}, "grid is 5"), ({"format_version": "1"}, "format_version is '1'"),
    ({"format_version": None}, "format_version is None"), ({"image_size": [32]}, "image_size is"),
])
def test_bad_meta_json_values_are_named(tiny_dataset, tmp_path, meta_change, culprit):
    import json

    from gazeneg.data.dataset import load_dataset

    ds = _tiny_copy(tiny_dataset, tmp_path)
    meta = json.loads((ds / "meta.json").read_text())
    meta.update(meta_change)
    (ds / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=f"meta.json: {culprit}"):
        load_dataset(ds)


def test_labels_csv_with_a_bom_loads_and_invalid_utf8_is_named(tiny_dataset, tmp_path):
    from gazeneg.data.dataset import load_dataset

    ds = _tiny_copy(tiny_dataset, tmp_path)
    raw = (ds / "labels.csv").read_bytes()
    (ds / "labels.csv").write_bytes(b"\xef\xbb\xbf" + raw)
    assert len(load_dataset(ds, load_images=False)) == raw.count(b"\n") - 1
    (ds / "labels.csv").write_bytes(raw + b"\xff\xfe,oops\n")
    with pytest.raises(DatasetError, match="labels.csv: not UTF-8"):
        load_dataset(ds, load_images=False)


def test_a_missing_image_is_reported_without_reading_every_row(tiny_dataset, tmp_path):
    import time

    from gazeneg.data.dataset import load_dataset

    ds = _tiny_copy(tiny_dataset, tmp_path)
    header, *rows = (ds / "labels.csv").read_text().splitlines()
    fields = rows[0].split(",")
    many = [",".join([f"images/missing_{i}.png", *fields[1:]]) for i in range(200_000)]
    (ds / "labels.csv").write_text("\n".join([header, *many]) + "\n")
    t = time.perf_counter()
    with pytest.raises(DatasetError, match="line 2: image 'images/missing_0.png' is missing"):
        load_dataset(ds)
    assert time.perf_counter() - t < 5


def test_resume_refuses_flags_it_would_ignore_and_extends_with_epochs(tiny_dataset, tmp_path, capsys):
    import csv

    cfg = fast_config(tiny_dataset, tmp_path / "runs", epochs=2)
    rd = run(cfg, argv=["x"])
    rc, err = _train_cli(["--resume", str(rd), "--epochs", "3", "--lr", "0.5"], capsys)
    assert rc == 2 and "--lr" in err and "--epochs" not in err.split("ignored:")[1].split("(")[0]
    rc, err = _train_cli(["--resume", str(rd), "--epochs", "3", "--progress", "false"], capsys)
    assert rc == 2 and "--progress" in err
    run(cfg, resume=str(rd), argv=["x"], resume_epochs=3)
    with open(rd / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]


def test_eval_and_capture_with_an_out_that_is_a_file_are_one_line(tiny_dataset, tmp_path, capsys):
    from gazeneg.cli.capture import cli as capture_cli
    from gazeneg.cli.errors import run_cli

    afile = tmp_path / "afile"
    afile.write_text("x")
    ev = load_script("eval_wrong_labels")
    rc = run_cli(lambda: ev.main(["--data", str(tiny_dataset), "--regime", "sweep", "--arms", "adam:baseline",
                                  "--seeds", "2", "--budgets", "1", "--epochs", "1", "--out", str(afile / "sub")]))
    err = capsys.readouterr().err
    assert rc == 2 and "afile" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    import cv2

    from gazeneg.testing import astronaut_path

    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0000.jpg"), cv2.imread(str(astronaut_path())))
    rc = capture_cli(["--out", str(afile / "ds"), "--source", str(frames), "--headless"])
    err = capsys.readouterr().err
    assert rc == 2 and "afile" in err and "Traceback" not in err
