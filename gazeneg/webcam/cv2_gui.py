"""Make the installed cv2 the GUI build (capture and live open windows).

opencv-python (GUI) and opencv-python-headless (albumentations depends on it) write the same cv2/
files, and whichever pip installs last wins: after `pip install -e .` that is often the headless one,
whose cv2.imshow raises "The function is not implemented". `make install` runs

    python -m gazeneg.webcam.cv2_gui fix

after pip: it reinstalls opencv-python, at the version already installed, last (--no-deps
--force-reinstall), then checks in a fresh process that cv2 imports and has a GUI backend. Where the
GUI build cannot import (no libGL on a server), it puts the headless build back and says so, so cv2
always works; capture and live then need --headless. `python -m gazeneg.webcam.cv2_gui` only reports."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

# Run by the Python being fixed, which need not have gazeneg installed: self-contained.
CHECK = "import re, cv2; m = re.search(r'^\\s*GUI:\\s*(\\S+)', cv2.getBuildInformation(), re.M); print(m.group(1) if m else 'NONE')"


def gui_backend(build_info: str) -> str | None:
    """The GUI backend named by cv2.getBuildInformation() (e.g. 'QT5', 'GTK3', 'WIN32UI', 'COCOA'),
    or None for a build without one (the headless wheels say 'NONE')."""
    m = re.search(r"^\s*GUI:\s*(\S+)", build_info, re.MULTILINE)
    if not m or m.group(1).upper() == "NONE":
        return None
    return m.group(1)


def installed(dist: str, python: str = sys.executable) -> str | None:
    """The version of `dist` installed for `python`, or None."""
    if python == sys.executable:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None
    r = subprocess.run([python, "-c", f"from importlib.metadata import version; print(version({dist!r}))"],
                       capture_output=True, text=True)
    return r.stdout.strip() or None if r.returncode == 0 else None


def check_in_fresh_process(python: str = sys.executable) -> tuple[bool, str]:
    """(imports, backend or the error) for cv2 as a new process sees it (this one has cv2 cached)."""
    r = subprocess.run([python, "-c", CHECK], capture_output=True, text=True)
    if r.returncode != 0:
        return False, (r.stderr.strip().splitlines() or ["import failed"])[-1]
    return True, r.stdout.strip()


def _pip(*args: str, python: str = sys.executable) -> None:
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--quiet", *args], check=True)


def fix(python: str = sys.executable, pip=_pip, check=check_in_fresh_process, log=print) -> str:
    # python: the interpreter whose cv2 is fixed (a venv's), by default this one.
    """Reinstall opencv-python last when the cv2 in place has no GUI; returns what was done:
    'gui' (already, or now, a GUI build), 'headless' (the GUI build cannot import here: headless kept)."""
    ok, backend = check(python)
    if ok and backend != "NONE":
        log(f"cv2: GUI backend {backend}")
        return "gui"
    gui_version = installed("opencv-python", python)
    if gui_version is None:
        log("cv2: no GUI backend and opencv-python is not installed: `pip install opencv-python`, then run "
            "`python -m gazeneg.webcam.cv2_gui fix`")
        return "headless"
    log(f"cv2: {'no GUI backend' if ok else 'does not import (' + backend + ')'}; reinstalling "
        f"opencv-python=={gui_version} last, over opencv-python-headless")
    pip(f"opencv-python=={gui_version}", python=python)
    ok, backend = check(python)
    if ok and backend != "NONE":
        log(f"cv2: GUI backend {backend}")
        return "gui"
    headless_version = installed("opencv-python-headless", python)
    log(f"cv2: the GUI build does not work here ({backend}); capture and live need --headless")
    if not ok and headless_version:
        pip(f"opencv-python-headless=={headless_version}", python=python)
        log(f"cv2: opencv-python-headless=={headless_version} put back so that cv2 imports")
    return "headless"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["fix"]:
        return 0 if fix() == "gui" else 1
    if argv:
        print("usage: python -m gazeneg.webcam.cv2_gui [fix]", file=sys.stderr)
        return 2
    ok, backend = check_in_fresh_process()
    print(f"cv2: GUI backend {backend}" if ok and backend != "NONE" else f"cv2: no GUI backend ({backend})")
    return 0 if ok and backend != "NONE" else 1


if __name__ == "__main__":
    sys.exit(main())
