"""Which screen the gaze is on: the monitors the platform reports, their pixels, position and physical size.

    mons = monitors()                   # [Monitor(index 0, "eDP-1", 1920x1080 at (0, 0), 344 x 193 mm), ...]
    live --monitor 1                    # that monitor's pixels and cm become --screen and --screen-cm

Where the geometry comes from, first that answers: `xrandr --query` (Linux/X11: every connected output, its
mode and the physical size its EDID reports), the `screeninfo` package when it is installed (Windows,
macOS, Linux), else nothing: then --screen WxH and --screen-cm WxH say it. A physical size of 0 (projectors,
some virtual displays) is treated as unknown. The grid, the screen pixels of recorded samples and the
accuracy in cm and degrees follow the chosen monitor.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from dataclasses import dataclass


class ScreenError(ValueError):
    """A monitor cannot be chosen; the message lists what there is and the options that replace it."""


@dataclass(frozen=True)
class Monitor:
    index: int
    name: str
    width_px: int
    height_px: int
    x: int = 0
    y: int = 0
    width_mm: float | None = None
    height_mm: float | None = None
    primary: bool = False

    @property
    def size_cm(self) -> tuple[float, float] | None:
        if not self.width_mm or not self.height_mm:
            return None
        return self.width_mm / 10.0, self.height_mm / 10.0

    def describe(self) -> str:
        cm = self.size_cm
        size = f", {cm[0]:g} x {cm[1]:g} cm" if cm else ", physical size unknown"
        return (f"{self.index}: {self.name} {self.width_px}x{self.height_px} at ({self.x}, {self.y}){size}"
                f"{' (primary)' if self.primary else ''}")


_XRANDR = re.compile(r"^(?P<name>\S+) connected (?P<primary>primary )?(?P<w>\d+)x(?P<h>\d+)\+(?P<x>-?\d+)\+(?P<y>-?\d+)"
                     r"(?:[^\n]*?\s(?P<wmm>\d+)mm x (?P<hmm>\d+)mm)?", re.MULTILINE)


def parse_xrandr(text: str) -> list[Monitor]:
    """The active outputs of `xrandr --query`, in its order."""
    out = []
    for m in _XRANDR.finditer(text):
        wmm, hmm = (float(m["wmm"]), float(m["hmm"])) if m["wmm"] else (None, None)
        out.append(Monitor(len(out), m["name"], int(m["w"]), int(m["h"]), int(m["x"]), int(m["y"]), wmm or None,
                           hmm or None, bool(m["primary"])))
    return out


def monitors() -> list[Monitor]:
    """The platform's monitors ([] when it cannot tell)."""
    if shutil.which("xrandr"):
        try:
            text = subprocess.run(["xrandr", "--query"], capture_output=True, text=True, timeout=5).stdout
            found = parse_xrandr(text)
            if found:
                return found
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import screeninfo  # optional

        return [Monitor(i, m.name or f"monitor{i}", m.width, m.height, m.x, m.y, m.width_mm or None,
                        m.height_mm or None, bool(getattr(m, "is_primary", False)))
                for i, m in enumerate(screeninfo.get_monitors())]
    except Exception:   # not installed, or no display
        return []


def choose(index: int, found: list[Monitor] | None = None) -> Monitor:
    found = monitors() if found is None else found
    if not found:
        raise ScreenError(f"--monitor {index}: this system reports no monitors (no xrandr or screeninfo, or no "
                          "display); give the screen as --screen WxH (pixels) and --screen-cm WxH instead")
    if not 0 <= index < len(found):
        raise ScreenError(f"--monitor {index}: there are {len(found)} monitor(s): "
                          + "; ".join(m.describe() for m in found))
    return found[index]


class MonitorAction(argparse.Action):
    """--monitor N: sets --screen (pixels) and --screen-cm (when the monitor reports its size) unless they are
    given explicitly (before --monitor: kept; after: they override it), and keeps the Monitor as args.monitor.
    A monitor that does not exist raises ScreenError (one line from the command)."""

    def __call__(self, parser, namespace, value, option_string=None):
        mon = choose(int(value))
        setattr(namespace, self.dest, mon)
        if getattr(namespace, "screen", None) is None:
            namespace.screen = f"{mon.width_px}x{mon.height_px}"
        cm = mon.size_cm
        if cm is not None and hasattr(namespace, "screen_cm") and namespace.screen_cm == parser.get_default("screen_cm"):
            namespace.screen_cm = cm


def place_window(name: str, monitor: Monitor) -> bool:
    """Move an open OpenCV window onto `monitor` and make it fullscreen there; False when the GUI cannot
    (a headless OpenCV build, no such window). Only the position is asked of the window system."""
    import cv2

    try:
        cv2.moveWindow(name, monitor.x, monitor.y)
        cv2.setWindowProperty(name, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        return True
    except cv2.error:
        return False
