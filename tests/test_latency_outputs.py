"""What the live pipeline's per-frame savings must not change (benchmarks/pipeline_latency.py measures the
savings): the model's outputs (webcam.live.frame_predictor against model.networks.predict), the gaze file
lines and WebSocket messages (against the encoding they had: dataclasses.asdict, a csv.writer per line, one
json.dumps per sink), the screen pixels, and the session strips (the pipeline's own crop, lossless), which an
old session's PNG strips still replay like."""

import csv
import io
import json
import math
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import torch

from gazeneg import grid
from gazeneg.model.networks import create_model, predict
from gazeneg.webcam.detect import crop_eyes, make_detector
from gazeneg.webcam.live import FramePipeline, LiveSession, frame_predictor, make_smoother, traced_forward
from gazeneg.webcam.record import (
    SAMPLE_FIELDS,
    GazeRecorder,
    GazeSample,
    make_sample,
    read_samples,
    screen_pixels,
)
from gazeneg.webcam.replay import ReplaySource, SessionRecorder, StripReplayPipeline
from gazeneg.webcam.tracker import SampleTap
from tests.conftest import face_frames


@pytest.fixture(autouse=True)
def one_torch_thread():
    """torch on one thread, as live runs it (two threads on a busy 2-core machine cost ~0.2 s a forward)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (1, 32, 96, 3), dtype=np.uint8), rng.normal(0, 0.3, (1, 13)).astype(np.float32))
            for _ in range(n)]


@pytest.mark.parametrize("head", ["regression", "classification"])
def test_frame_predictor_gives_predicts_numbers_bit_for_bit(head):
    torch.manual_seed(0)
    model = create_model("gazecnn", width=8, head=head)
    fn = frame_predictor(model)
    assert fn.traced   # the traced forward is the one live runs
    for strip, feats in _inputs(6):
        assert np.array_equal(fn(strip, feats), predict(model, strip, feats))
    model.train()   # switched to training by someone else: still the eval-mode numbers
    strip, feats = _inputs(1, seed=5)[0]
    out = fn(strip, feats)
    assert not model.training and np.array_equal(out, predict(model, strip, feats))


def test_traced_forward_is_refused_when_it_would_differ():
    class Moody(torch.nn.Module):   # control flow on the input: a trace would freeze one branch
        def forward(self, x, f):
            return x.mean((1, 2, 3))[:, None].repeat(1, 2) * (2.0 if float(x.mean()) > 0 else -1.0)

        def points(self, out):
            return out

    assert traced_forward(Moody()) is None
    fn = frame_predictor(Moody())   # and the plain model runs
    assert not fn.traced
    strip, feats = _inputs(1)[0]
    assert np.array_equal(fn(strip, feats), predict(Moody(), strip, feats))


def _old_csv_line(s: GazeSample) -> str:
    d = asdict(s)
    buf = io.StringIO()
    cell = [("" if v is None else ("" if isinstance(v, float) and not math.isfinite(v) else
                                   (repr(v) if isinstance(v, float) else str(v)))) for v in (d[k] for k in SAMPLE_FIELDS)]
    csv.writer(buf, lineterminator="\n").writerow(cell)
    return buf.getvalue()


def _old_json_line(s: GazeSample) -> str:
    d = asdict(s)
    return json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()})


def test_gaze_lines_and_messages_are_encoded_as_before(tmp_path):
    samples = [GazeSample(12.5, 1.7e9 + 0.123, 3.25, 7, "ok", "track", 2.5, 11.25, 2.4, 11.0, 2.0, 11.0, 1410.0,
                          270.0, -1.5, -21.0, 0.25, 'stim "on", 3|go'),
               GazeSample(12.6, 1.7e9 + 0.2, 3.3, 8, "no_face", "calibrate", event=""),
               GazeSample(12.7, 1.7e9 + 0.3, 3.35, 9, "ok", raw_row=float("nan"), row=float("inf"), col=1 / 3)]
    for name in ("g.csv", "g.jsonl"):
        rec = GazeRecorder(tmp_path / name)
        for s in samples:
            rec.write(s)
        rec.close()
    lines = (tmp_path / "g.csv").read_text().splitlines(keepends=True)
    assert lines[0] == ",".join(SAMPLE_FIELDS) + "\n"
    assert lines[1:] == [_old_csv_line(s) for s in samples]
    assert (tmp_path / "g.jsonl").read_text().splitlines() == [_old_json_line(s) for s in samples]
    assert read_samples(tmp_path / "g.csv")[0]["event"] == 'stim "on", 3|go'
    # the WebSocket message is the same text as the JSONL line; a changed sample is encoded again
    s = samples[0]
    assert s.json_line() == _old_json_line(s) and s.to_dict() == asdict(s)
    s.event = "changed"
    assert json.loads(s.json_line())["event"] == "changed" and s.json_line() == _old_json_line(s)


def test_screen_pixels_are_grids_numbers():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-3, 20, (3000, 2)), [[8.0, 15.0], [0.0, 0.0], [-0.0, 1e300]]])
    for screen in ((1920, 1080), (1366, 768)):
        for r, c in pts:
            x, y = grid.to_pixels(*grid.clamp(float(r), float(c)), *screen)
            assert screen_pixels(float(r), float(c), screen) == (float(x), float(y))
    assert all(math.isnan(v) for v in screen_pixels(float("nan"), float("nan"), (1920, 1080)))


@pytest.fixture(scope="module")
def strips_session(tmp_path_factory):
    """A strips session recorded through the tap from the live pipeline (a tiny CNN, Haar faces), and the
    frames, results and samples it came from."""
    tmp = tmp_path_factory.mktemp("strips")
    torch.manual_seed(0)
    frames = face_frames(8)
    frames[5] = np.full_like(frames[5], 100)   # no face
    pipe = FramePipeline(create_model("gazecnn", width=8), detector=make_detector("haar"),
                         smoother=make_smoother("one_euro"))
    rec = SessionRecorder(tmp / "s", keep="strips")
    tap = SampleTap(LiveSession(pipe, calibrate="never", validate=False, log=lambda *a: None), screen=(1280, 720),
                    sinks=[rec])
    results, samples = [], []
    for i, f in enumerate(frames):
        results.append(tap.feed(f, i / 30.0))
        samples.append(tap.last)
    tap.close()
    return tmp / "s", frames, results, samples


def test_session_strips_are_the_pipelines_crop(strips_session):
    folder, frames, results, _ = strips_session
    rows = [json.loads(x) for x in (folder / "frames.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and rows[5]["det"] is None and "file" not in rows[5]
    for row, frame, res in zip(rows, frames, results, strict=True):
        if res.det is None:
            continue
        strip, feats = crop_eyes(frame, res.det)   # what the writer thread used to cut again
        assert row["file"].endswith(".bmp")
        saved = cv2.cvtColor(cv2.imread(str(folder / row["file"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(saved, strip) and np.array_equal(saved, res.strip)
        assert row["feats"] == [float(v) for v in feats]


def _replay(folder, results):
    src = ReplaySource(folder)
    torch.manual_seed(0)
    pipe = FramePipeline(create_model("gazecnn", width=8), detector=make_detector("haar"),
                         smoother=make_smoother("one_euro"))
    rp = StripReplayPipeline(pipe, src)
    out = []
    while src.read() is not None:
        out.append(rp.process(None, src.timestamp))
    assert len(out) == len(results)
    return out


def test_strips_replay_like_the_live_run_from_bmp_and_from_old_png(strips_session, tmp_path):
    folder, _, results, _ = strips_session
    for res, again in zip(results, _replay(folder, results), strict=True):
        assert (res.raw is None) == (again.raw is None)
        if res.raw is not None:
            assert np.array_equal(res.raw, again.raw) and np.array_equal(res.smoothed, again.smoothed)
    # a session recorded before strips were BMP (PNG files named in frames.jsonl) replays the same
    old = tmp_path / "old"
    (old / "strips").mkdir(parents=True)
    (old / "session.json").write_text((folder / "session.json").read_text())
    lines = []
    for row in (json.loads(x) for x in (folder / "frames.jsonl").read_text().splitlines()):
        if "file" in row:
            img = cv2.imread(str(folder / row["file"]), cv2.IMREAD_COLOR)
            row["file"] = row["file"][:-4] + ".png"
            cv2.imwrite(str(old / row["file"]), img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        lines.append(json.dumps(row) + "\n")
    (old / "frames.jsonl").write_text("".join(lines))
    for res, again in zip(results, _replay(old, results), strict=True):
        if res.raw is not None:
            assert np.array_equal(res.raw, again.raw)


def test_a_sample_is_made_as_before(strips_session):
    _, _, results, samples = strips_session
    for i, (res, s) in enumerate(zip(results, samples, strict=True)):
        ref = make_sample(res, frame=i, now=i / 30.0, screen=(1280, 720), t_mono=s.t_mono, t_wall=s.t_wall)
        assert ref == s
        if res.smoothed is not None:
            x, y = grid.to_pixels(*grid.clamp(*res.smoothed), 1280, 720)
            assert (s.x_px, s.y_px) == (float(x), float(y))


def test_a_killed_session_recording_replays_up_to_its_last_whole_frame(tmp_path):
    """The writer thread writes in batches (every 0.1 s): a recording killed (SIGKILL) mid-batch still lists
    only frames whose strips are on disk, whole."""
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "s"
    code = f"""
import numpy as np, time
from types import SimpleNamespace
from gazeneg.webcam.detection import Detection
from gazeneg.webcam.replay import SessionRecorder
rec = SessionRecorder({str(folder)!r}, keep="strips")
det = Detection((200, 150, 220, 220), (280.0, 230.0), (360.0, 232.0))
frame = np.zeros((480, 640, 3), np.uint8)
i = 0
while True:
    s = SimpleNamespace(t_source=i / 30, t_mono=time.monotonic(), t_wall=time.time())
    strip = np.full((32, 96, 3), i % 256, np.uint8)
    rec.write(s, frame, SimpleNamespace(det=det, closed=False, strip=strip, feats=np.zeros(13, np.float32)))
    i += 1
    time.sleep(0.004)
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        index = folder / "frames.jsonl"
        while (not index.exists() or index.stat().st_size < 2000) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    src = ReplaySource(folder)
    assert len(src.rows) >= 10
    for k, row in enumerate(src.rows):
        assert row["index"] == k
        img = cv2.imread(str(folder / row["file"]), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (32, 96, 3) and (img == k % 256).all()
