"""`gazeneg live --record-gaze`: the CSV and JSONL columns, the states, events set by another program, and
every sample on disk after the process is killed (SIGKILL) mid-run."""

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from gazeneg.webcam.detection import Detection
from gazeneg.webcam.live import LiveResult
from gazeneg.webcam.record import (
    SAMPLE_FIELDS,
    EventInbox,
    GazeRecorder,
    RecordError,
    make_sample,
    read_samples,
    sample_state,
)
from tests.conftest import face_frames, tiny_checkpoint, write_folder, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _det(landmarks=None):
    return Detection((200, 150, 220, 220), (280.0, 230.0), (360.0, 232.0), landmarks=landmarks)


def _lm(blink=False, pose=(0.0, -22.0, 0.0)):
    # head_pose in the camera's convention (selfie_pose keeps pitch): -22 deg is a head facing the screen
    return SimpleNamespace(blink=blink, head_pose=pose)


def test_states():
    p = np.array([2.0, 11.0])
    assert sample_state(LiveResult(None)) == "no_face"
    assert sample_state(LiveResult(_det(), closed=True)) == "closed_eyes"
    assert sample_state(LiveResult(_det(_lm(blink=True)), closed=True)) == "blink"
    assert sample_state(LiveResult(_det())) == "no_prediction"
    assert sample_state(LiveResult(_det(), raw=p, point=p, smoothed=p)) == "ok"
    from gazeneg.webcam.detect import detection_pose

    facing = _det(_lm())
    assert abs(detection_pose(facing)[1] + 22.0) < 1e-9
    assert sample_state(LiveResult(facing, raw=p, point=p, smoothed=p)) == "ok"
    turned = _det(_lm(pose=(45.0, -22.0, 0.0)))
    assert sample_state(LiveResult(turned, raw=p, point=p, smoothed=p)) == "pose_out_of_range"


def test_sample_columns_in_csv_and_jsonl(tmp_path):
    p = np.array([2.0, 11.0])
    ok = make_sample(LiveResult(_det(_lm()), raw=p + 0.5, point=p + 0.25, smoothed=p), frame=7, now=1.5,
                     screen=(1600, 900), event="go")
    assert (ok.x_px, ok.y_px) == (1600 * 11.5 / 16, 900 * 2.5 / 9)   # cell (2, 11)'s centre in pixels
    none = make_sample(LiveResult(None), frame=8, now=1.6, screen=(1600, 900))
    for name in ("g.csv", "g.jsonl"):
        rec = GazeRecorder(tmp_path / name)
        rec.write(ok)
        rec.write(none)
        rec.close()
        rows = read_samples(tmp_path / name)
        assert list(rows[0]) == list(SAMPLE_FIELDS)
        assert rows[0]["frame"] == 7 and rows[0]["state"] == "ok" and rows[0]["event"] == "go"
        assert (rows[0]["raw_row"], rows[0]["cal_col"], rows[0]["row"], rows[0]["col"]) == (2.5, 11.25, 2.0, 11.0)
        assert rows[0]["pitch"] == pytest.approx(-22.0)
        assert rows[1]["state"] == "no_face" and rows[1]["row"] is None and rows[1]["yaw"] is None
    assert (tmp_path / "g.csv").read_text().splitlines()[0] == ",".join(SAMPLE_FIELDS)
    assert json.loads((tmp_path / "g.jsonl").read_text().splitlines()[1])["x_px"] is None
    # appending keeps one header; a file with other columns is refused
    GazeRecorder(tmp_path / "g.csv").close()
    assert (tmp_path / "g.csv").read_text().count("t_mono") == 1
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RecordError, match="other.csv: exists with other columns"):
        GazeRecorder(tmp_path / "other.csv")
    with pytest.raises(RecordError, match="must end in .csv or .jsonl"):
        GazeRecorder(tmp_path / "g.txt")


def test_event_inbox_reads_lines_other_programs_append(tmp_path):
    f = tmp_path / "events.txt"
    f.write_text("old\n")                 # written before the tracker started: not an event
    box = EventInbox(f)
    assert box.take() == ""
    with open(f, "a") as fh:
        fh.write("trial 1\nstim|on\npart")
    box.put("from api")
    assert box.take() == "from api|trial 1|stim/on"
    with open(f, "a") as fh:
        fh.write("ial\n")
    assert box.take() == "partial" and box.take() == ""


def test_live_record_gaze_survives_sigkill(tmp_path):
    ckpt = tiny_checkpoint(tmp_path)
    video = write_video(tmp_path / "face.avi", face_frames(60) * 20)   # ~1200 frames: longer than the test
    events = tmp_path / "events.txt"
    events.write_text("")
    out_csv, out_jsonl = tmp_path / "gaze.csv", tmp_path / "gaze.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "gazeneg", "live", str(ckpt), "--source", str(video), "--headless",
                             "--record-gaze", str(out_csv), "--record-gaze", str(out_jsonl), "--events-from",
                             str(events), "--screen", "1280x720"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        def rows(path):
            return len(path.read_text().splitlines()) if path.exists() else 0

        deadline = time.time() + 120
        while rows(out_jsonl) < 20 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()
        with open(events, "a") as fh:
            fh.write("trigger 42\n")
        seen = rows(out_jsonl)
        while rows(out_jsonl) < seen + 10 and time.time() < deadline:
            time.sleep(0.05)
        n_before_kill = rows(out_jsonl)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    js, cs = read_samples(out_jsonl), read_samples(out_csv)
    # every sample written before the kill is in the files, whole; the two files agree
    assert len(js) >= n_before_kill and abs(len(js) - len(cs)) <= 1
    assert [r["frame"] for r in js] == list(range(len(js)))
    assert all(r["state"] == "ok" and r["row"] is not None for r in js)
    assert sum(r["event"] == "trigger 42" for r in js) == 1
    t = np.array([r["t_mono"] for r in cs])
    assert (np.diff(t) > 0).all() and abs(cs[0]["t_wall"] - time.time()) < 300
    n = min(len(js), len(cs))
    assert [r["row"] for r in js[:n]] == pytest.approx([r["row"] for r in cs[:n]])


def test_live_record_gaze_bad_path_is_one_line(tmp_path, capsys):
    from gazeneg.cli import live as live_cli

    ckpt = tiny_checkpoint(tmp_path)
    folder = write_folder(tmp_path / "f", face_frames(2))
    assert live_cli.cli([str(ckpt), "--source", str(folder), "--headless", "--record-gaze",
                         str(tmp_path / "no" / "g.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "folder" in err and "does not exist" in err
