"""Streaming: an LSL inlet and a WebSocket client in this process receive the samples a headless
`gazeneg live --source video` produces in another, with the timestamps of its gaze file; a missing optional
package is a one-line error naming the extra."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from gazeneg.webcam.record import SAMPLE_FIELDS, read_samples
from gazeneg.webcam.stream import LSL_CHANNELS, parse_address
from tests.conftest import face_frames, tiny_checkpoint, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_parse_address_is_local_by_default():
    assert parse_address("9000") == ("127.0.0.1", 9000)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("localhost") == ("localhost", 8765)


def test_missing_package_names_the_extra(tmp_path, monkeypatch, capsys):
    from gazeneg.cli import live as live_cli
    from tests.conftest import write_folder

    ckpt = tiny_checkpoint(tmp_path)
    folder = write_folder(tmp_path / "f", face_frames(2))
    for option, module in (("--lsl", "pylsl"), ("--websocket", "websockets")):
        monkeypatch.setitem(sys.modules, module, None)      # import fails as if it were not installed
        assert live_cli.cli([str(ckpt), "--headless", "--source", str(folder), option]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{option} needs the {module} package" in err and "gazeneg[stream]" in err
        monkeypatch.delitem(sys.modules, module)


def test_lsl_inlet_and_websocket_client_receive_the_samples(tmp_path):
    pylsl = pytest.importorskip("pylsl", reason="pylsl (gazeneg[stream]) is not installed")
    pytest.importorskip("websockets", reason="websockets (gazeneg[stream]) is not installed")
    from websockets.asyncio.client import connect

    ckpt = tiny_checkpoint(tmp_path)
    video = write_video(tmp_path / "face.avi", face_frames(45))
    name, port = f"gazeneg-test-{os.getpid()}", _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gazeneg", "live", str(ckpt), "--headless", "--source", str(video),
                             "--lsl", "--lsl-name", name, "--websocket", str(port), "--wait-for-subscriber", "60",
                             "--record-gaze", str(tmp_path / "gaze.csv")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    received = []

    async def client():
        for _ in range(600):
            try:
                async with connect(f"ws://127.0.0.1:{port}") as ws:
                    await ws.send(json.dumps({"event": "hello from the client"}))
                    async for msg in ws:
                        received.append(json.loads(msg))
                    return
            except OSError:
                await asyncio.sleep(0.1)

    t = threading.Thread(target=lambda: asyncio.run(client()))
    try:
        found = pylsl.resolve_byprop("name", name, timeout=60)
        assert found, "no LSL stream"
        inlet = pylsl.StreamInlet(found[0], max_buflen=60)
        inlet.open_stream(timeout=10)
        t.start()
        info = inlet.info()
        ch = info.desc().child("channels").child("channel")
        labels = []
        while not ch.empty():
            labels.append((ch.child_value("label"), ch.child_value("unit")))
            ch = ch.next_sibling()
        assert info.type() == "Gaze" and labels == [(lbl, unit) for lbl, unit, _ in LSL_CHANNELS]
        values, stamps = [], []
        deadline = time.time() + 120
        while time.time() < deadline:
            chunk, ts = inlet.pull_chunk(timeout=0.5)
            values += chunk
            stamps += ts
            if proc.poll() is not None and not chunk:
                break
        proc.wait(30)
        t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read().decode()
    rows = read_samples(tmp_path / "gaze.csv")
    assert len(rows) == 45
    # LSL: every sample, its values and its timestamp (t_mono on the LSL clock)
    assert len(values) == 45
    v = np.array(values)
    idx = {lbl: i for i, (lbl, _, _) in enumerate(LSL_CHANNELS)}
    assert np.allclose(v[:, idx["frame"]], np.arange(45))
    assert np.allclose(v[:, idx["row"]], [r["row"] for r in rows])
    assert np.allclose(v[:, idx["x_px"]], [r["x_px"] for r in rows])
    assert np.allclose(stamps, [r["t_mono"] for r in rows], atol=1e-6)
    # WebSocket: the client connected before the first frame, so it got them all, as JSON with the file's values
    assert [m["frame"] for m in received] == list(range(45))
    assert list(received[0]) == list(SAMPLE_FIELDS)
    assert [m["t_mono"] for m in received] == pytest.approx([r["t_mono"] for r in rows])
    assert [m["col"] for m in received] == pytest.approx([r["col"] for r in rows])
    # the client's event reached the event column (of one sample)
    assert sum(r["event"] == "hello from the client" for r in rows) == 1
