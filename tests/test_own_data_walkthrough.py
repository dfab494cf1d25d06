"""README "Your own data": every command in that section, run as written on a generated one-person,
three-session folder (2:1 one-eye photos labelled in screen pixels, the screen's corners included).

Only what needs a person in front of a camera changes: `capture` and `live` read a folder of moving-face
frames (`--source FRAMES --headless`, and for capture a short plan), `runs/<run>/best.pt` is the run the
walkthrough trained, and `checkpoints/demo.pt` (written by `make demo`) is stood in for by that run's model.
"""

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from gazeneg.cli import main as console
from tests.own_data import make_photo_folder, write_face_frames

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Your own data\n", 1)[1].split("\n## ", 1)[0]
    return [shlex.split(line.strip()) for line in section.splitlines() if re.match(r"^    gazeneg ", line)]


def test_the_section_shows_the_whole_walkthrough():
    cmds = [c[:2] for c in readme_commands()]
    assert [c[1] for c in cmds] == ["capture", "capture", "import", "train", "train", "adapt", "eval", "live", "live",
                                    "live"]
    assert ["--test-groups", "me/s3"] == next(c for c in readme_commands() if c[1] == "train")[4:6]


@pytest.fixture
def frames_folder(tmp_path):
    write_face_frames(tmp_path / "frames", 60)
    return tmp_path / "frames"


def _run(cmd: list[str], extra: dict, capsys) -> str:
    """One README command through the console entry point; `extra` adds options by command name."""
    argv = cmd[1:] + extra.get(cmd[1], [])
    try:
        rc = console.main(argv)
    except SystemExit as e:   # argparse
        rc = e.code
    out = capsys.readouterr()
    assert rc == 0, f"`{shlex.join(cmd)}` exited {rc}: {out.err.strip()[-800:]}"
    return out.out


def _walk(tmp_path, monkeypatch, capsys, frames_folder, fast: bool, only=None):
    """Run the section's commands; `only` (command names) restricts it to those."""
    cmds = [c for c in readme_commands() if only is None or c[1] in only]
    if any("--camera-mean" in c for c in cmds):   # live --camera-mean reads the file adapt writes
        assert any(c[1] == "adapt" for c in cmds)
    source = ["--source", str(frames_folder), "--headless"] if frames_folder else []
    extra = {"capture": source + ["--layout", "nine", "--frames", "2", "--fixation", "0.05"],
             "live": source + ["--max-frames", "20"]}
    if fast:   # the same commands, shorter: one epoch of the small model; the personal regime's quickest form
        extra["train"] = ["--epochs", "1", "--model", "mlp", "--progress", "false", "--threads", "1"]
        extra["eval"] = ["--ks", "9", "--lr-grid", "1e-3", "--base-epochs", "1", "--max-units", "1",
                         "--sequential", "--model", "mlp"]
    # 1a. capture: its own folder (the README's "either ... or")
    if any(c[1] == "capture" for c in cmds):
        (tmp_path / "cap").mkdir()
        monkeypatch.chdir(tmp_path / "cap")
        for cmd in (c for c in cmds if c[1] == "capture"):
            _run(cmd, extra, capsys)
        from gazeneg.data.dataset import load_dataset

        cap = load_dataset("data/me", load_images=False)
        assert set(cap.sessions) == {"s1", "s2"} and set(cap.subjects) == {"me"}
    # 1b. import, then the rest on the imported set
    work = tmp_path / "own"
    make_photo_folder(work, per_session=24)
    monkeypatch.chdir(work)
    out = _run(next(c for c in cmds if c[1] == "import"), extra, capsys)
    assert "crop eye" in out and "imported 72 photo(s)" in out and "skipped" not in out
    trains = [c for c in cmds if c[1] == "train"]
    out = _run(trains[0], extra, capsys)
    run = Path(re.search(r"run folder: (\S+)", out).group(1))
    assert "test ['me/s3']" in out and json.loads((run / "metrics.json").read_text())["split_groups"]["test"] == \
        ["me/s3"]
    # checkpoints/demo.pt is `make demo`'s model; here the walkthrough's own run stands in for it.
    os.makedirs("checkpoints", exist_ok=True)
    shutil.copy(run / "best.pt", "checkpoints/demo.pt")
    out = _run(trains[1], extra, capsys)
    assert "test ['me/s3']" in out
    for cmd in (c for c in cmds if c[1] == "adapt"):   # the camera's mean strip, for live --camera-mean
        out = _run(cmd, extra, capsys)
        assert "camera mean written to me.npz" in out and Path("me.npz").is_file()
    for cmd in (c for c in cmds if c[1] == "eval"):
        out = _run(cmd, extra, capsys)
        assert "One person: verdicts" in out and "report.md" in out   # one person: the one-person regime
    for cmd in (c for c in cmds if c[1] == "live"):
        cmd = [str(run / "best.pt") if a == "runs/<run>/best.pt" else a for a in cmd]
        out = _run(cmd, extra, capsys)
        assert '"n_frames"' in out or "median" in out, out[-500:]


def test_import_and_train_steps(tmp_path, monkeypatch, capsys):
    _walk(tmp_path, monkeypatch, capsys, None, fast=True, only=("import", "train"))


@pytest.mark.slow
def test_walkthrough_short_options(tmp_path, monkeypatch, capsys, frames_folder):
    _walk(tmp_path, monkeypatch, capsys, frames_folder, fast=True)


@pytest.mark.slow
def test_walkthrough_as_written(tmp_path, monkeypatch, capsys, frames_folder):
    _walk(tmp_path, monkeypatch, capsys, frames_folder, fast=False)
