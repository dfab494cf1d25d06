"""The examples in docs/integration.md run as written (with a test checkpoint, source and port put in)."""

import contextlib
import io
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from gazeneg.webcam.record import GazeSample, read_samples
from tests.conftest import face_frames, tiny_checkpoint, write_folder

DOC = Path(__file__).resolve().parents[1] / "docs" / "integration.md"
README = DOC.parents[1] / "README.md"
# The README's copy of the example, once the lead adds it under the same marker, runs too.
EXAMPLE_FILES = [DOC] + ([README] if "<!-- example: tracker" in README.read_text() else [])


def _python_block(after: str, path=DOC) -> str:
    text = path.read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(after):], re.S).group(1)


def _indented_block(starting: str) -> str:
    text = DOC.read_text()
    block = text[text.index(starting):].split("\n\n")
    lines = []
    for para in block:
        if not para.startswith("    "):
            break
        lines.append("\n".join(x[4:] for x in para.splitlines()))
    return "\n\n".join(lines)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_the_python_api_example_runs(path, tmp_path, monkeypatch):
    code = _python_block("<!-- example: tracker", path)
    ckpt = tiny_checkpoint(tmp_path)
    folder = write_folder(tmp_path / "frames", face_frames(40))
    code = code.replace('"best.pt"', repr(str(ckpt))).replace("source=0", f"source={str(folder)!r}")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(path), "exec"), {})
    rows = read_samples(tmp_path / "gaze.csv")
    assert len(rows) == 40 and rows[31]["event"] == "stimulus on"
    assert len(out.getvalue().splitlines()) == 40 and "pixel (" in out.getvalue()


def test_the_websocket_client_example_runs():
    pytest.importorskip("websockets", reason="websockets (gazeneg[stream]) is not installed")
    from gazeneg.webcam.record import EventInbox
    from gazeneg.webcam.stream import WebSocketSink

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = _indented_block("    import json, asyncio").replace("8765", str(port))
    events = EventInbox()
    sink = WebSocketSink("127.0.0.1", port, events=events)
    out = io.StringIO()

    def client():
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), {})

    t = threading.Thread(target=client)
    t.start()
    assert sink.wait(30)
    time.sleep(0.2)
    for i in range(3):
        sink.write(GazeSample(10.0 + i, 1.7e9, i / 30, i, "ok", row=2.0, col=11.0, x_px=1380.0, y_px=300.0))
    sink.write(GazeSample(10.5, 1.7e9, 0.2, 3, "no_face"))
    sink.close()
    t.join(30)
    assert out.getvalue().split() == ["10.0", "1380.0", "300.0", "11.0", "1380.0", "300.0", "12.0", "1380.0", "300.0"]
    assert events.take() == "trial 1"
