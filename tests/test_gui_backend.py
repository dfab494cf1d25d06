"""cv2 with a GUI backend after install (opencv-python must win over opencv-python-headless)."""

import sys
from pathlib import Path

import pytest

from gazeneg.webcam import cv2_gui

ROOT = Path(__file__).resolve().parents[1]

QT = "General configuration\n  GUI:                           QT5\n    QT:      YES (ver 5.15.19 )\n"
HEADLESS = "  GUI:                           NONE\n  Media I/O:\n"


def test_gui_backend_parses_build_information():
    assert cv2_gui.gui_backend(QT) == "QT5"
    assert cv2_gui.gui_backend("  GUI:   GTK3\n") == "GTK3"
    assert cv2_gui.gui_backend(HEADLESS) is None
    assert cv2_gui.gui_backend("no such line") is None


def test_the_project_venv_cv2_has_a_gui_backend():
    venv = (ROOT / ".venv").resolve()
    if Path(sys.prefix).resolve() != venv:
        pytest.skip(f"run outside the project's venv ({sys.prefix}, not {venv}): the GUI build is made to win "
                    "by `make install` (python -m gazeneg.webcam.cv2_gui fix)")
    import cv2

    backend = cv2_gui.gui_backend(cv2.getBuildInformation())
    assert backend is not None, "cv2 is the headless build: run `python -m gazeneg.webcam.cv2_gui fix`"
    assert cv2_gui.check_in_fresh_process() == (True, backend)


class FakeEnv:
    """A venv whose cv2 is headless until opencv-python is reinstalled (and, with gui_loads=False, whose
    GUI build cannot import, as without libGL)."""

    def __init__(self, gui_loads=True):
        self.state, self.gui_loads, self.pip_calls = "headless", gui_loads, []

    def check(self, python):
        if self.state == "gui":
            return (True, "QT5") if self.gui_loads else (False, "ImportError: libGL.so.1: cannot open")
        return True, "NONE"

    def pip(self, spec, python):
        self.pip_calls.append(spec)
        self.state = "gui" if spec.startswith("opencv-python==") else "headless"


def test_fix_reinstalls_the_gui_build_last_at_its_version(monkeypatch):
    env = FakeEnv()
    monkeypatch.setattr(cv2_gui, "installed", lambda dist, python=None: {"opencv-python": "4.14.0.94",
                                                                        "opencv-python-headless": "4.14.0.94"}[dist])
    lines = []
    assert cv2_gui.fix(pip=env.pip, check=env.check, log=lines.append) == "gui"
    assert env.pip_calls == ["opencv-python==4.14.0.94"]
    assert "GUI backend QT5" in lines[-1]
    # Already a GUI build: nothing reinstalled.
    env2 = FakeEnv()
    env2.state = "gui"
    assert cv2_gui.fix(pip=env2.pip, check=env2.check, log=lines.append) == "gui" and env2.pip_calls == []


def test_fix_keeps_a_working_headless_cv2_where_the_gui_build_cannot_load(monkeypatch):
    env = FakeEnv(gui_loads=False)
    monkeypatch.setattr(cv2_gui, "installed", lambda dist, python=None: "4.14.0.94")
    lines = []
    assert cv2_gui.fix(pip=env.pip, check=env.check, log=lines.append) == "headless"
    assert env.pip_calls == ["opencv-python==4.14.0.94", "opencv-python-headless==4.14.0.94"]
    assert env.state == "headless" and any("--headless" in ln for ln in lines)


def test_makefile_runs_the_fix_after_every_install():
    mk = (ROOT / "Makefile").read_text()
    for install in ('pip install -e .\n', 'pip install -e ".[dev]"\n'):
        after = mk.split(install, 1)[1]
        assert after.lstrip("\t").startswith("-$(BIN)/python -m gazeneg.webcam.cv2_gui fix")


@pytest.mark.slow
def test_fix_on_a_fresh_venv_with_headless_installed_last(tmp_path):
    """The real thing: a venv where opencv-python-headless was installed after opencv-python (cv2 has no
    GUI), then `fix` for that venv's Python. Needs the package index (skips without it)."""
    import subprocess

    from gazeneg.webcam.cv2_gui import check_in_fresh_process, fix, installed

    version = installed("opencv-python")
    if version is None:
        pytest.skip("opencv-python is not installed here: no version to reproduce")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    for spec in (["numpy", f"opencv-python=={version}"], [f"opencv-python-headless=={version}"]):
        r = subprocess.run([py, "-m", "pip", "install", "--quiet", *spec], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot install {' '.join(spec)} into a scratch venv: {r.stderr.strip()[-200:]}")
    assert check_in_fresh_process(py) == (True, "NONE")          # the bug: headless last, no GUI
    assert fix(python=py, log=lambda *_: None) == "gui"
    ok, backend = check_in_fresh_process(py)
    assert ok and backend != "NONE"
