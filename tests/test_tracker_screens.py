"""--monitor N: the monitors from xrandr's report, the chosen one's pixels and size becoming --screen and
--screen-cm (explicit options win), the recorded screen pixels following it, and clear errors."""

import numpy as np
import pytest

from gazeneg.cli import live as live_cli
from gazeneg.webcam import screens
from gazeneg.webcam.record import read_samples
from tests.conftest import face_frames, tiny_checkpoint, write_folder

XRANDR = """Screen 0: minimum 320 x 200, current 4480 x 1440, maximum 16384 x 16384
eDP-1 connected primary 1920x1080+0+360 (normal left inverted right x axis y axis) 344mm x 194mm
   1920x1080     60.01*+  59.97    59.96    59.93
HDMI-1 disconnected (normal left inverted right x axis y axis)
DP-1 connected 2560x1440+1920+0 (normal left inverted right x axis y axis) 597mm x 336mm
   2560x1440     59.95*+
DP-2 connected 1280x720+0+0 (normal left inverted right x axis y axis) 0mm x 0mm
"""


def test_parse_xrandr():
    mons = screens.parse_xrandr(XRANDR)
    assert [m.name for m in mons] == ["eDP-1", "DP-1", "DP-2"]
    a, b, c = mons
    assert a.primary and (a.width_px, a.height_px, a.x, a.y) == (1920, 1080, 0, 360) and a.size_cm == (34.4, 19.4)
    assert (b.index, b.width_px, b.x, b.size_cm) == (1, 2560, 1920, (59.7, 33.6)) and not b.primary
    assert c.size_cm is None and "physical size unknown" in c.describe()


def test_monitor_sets_the_screen_unless_given(monkeypatch):
    monkeypatch.setattr(screens, "monitors", lambda: screens.parse_xrandr(XRANDR))
    parse = live_cli.get_args_parser().parse_args
    a = parse(["x.pt", "--monitor", "1"])
    assert a.screen == "2560x1440" and a.screen_cm == (59.7, 33.6) and a.monitor.name == "DP-1"
    assert parse(["x.pt", "--monitor", "1", "--screen-cm", "50x30"]).screen_cm == (50.0, 30.0)
    assert parse(["x.pt", "--screen-cm", "50x30", "--monitor", "1"]).screen_cm == (50.0, 30.0)
    assert parse(["x.pt", "--screen", "800x600", "--monitor", "1"]).screen == "800x600"
    unknown = parse(["x.pt", "--monitor", "2"])       # no physical size: the default cm stay, said in --help
    assert unknown.screen == "1280x720" and unknown.screen_cm == live_cli.DEFAULT_SCREEN_CM


def test_monitor_drives_the_recorded_pixels_and_errors_are_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(screens, "monitors", lambda: screens.parse_xrandr(XRANDR))
    ckpt = tiny_checkpoint(tmp_path)
    folder = write_folder(tmp_path / "f", face_frames(6))
    out = tmp_path / "g.csv"
    assert live_cli.cli([str(ckpt), "--headless", "--source", str(folder), "--monitor", "1", "--record-gaze",
                         str(out)]) == 0
    rows = read_samples(out)
    x = np.array([r["x_px"] for r in rows])
    col = np.clip([r["col"] for r in rows], -0.5, 15.5)
    assert np.allclose(x, (col + 0.5) * 2560 / 16)                 # 160 px per column on the 2560 px monitor
    capsys.readouterr()
    assert live_cli.cli([str(ckpt), "--headless", "--source", str(folder), "--monitor", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "there are 3 monitor(s)" in err and "1: DP-1 2560x1440" in err
    monkeypatch.setattr(screens, "monitors", lambda: [])
    assert live_cli.cli([str(ckpt), "--headless", "--source", str(folder), "--monitor", "0"]) == 2
    assert "give the screen as --screen WxH" in capsys.readouterr().err


def test_monitors_never_fails_here():
    assert isinstance(screens.monitors(), list)    # no xrandr, no screeninfo, or a display: a list either way
    with pytest.raises(screens.ScreenError, match="reports no monitors"):
        screens.choose(0, [])


def test_the_live_window_is_moved_onto_the_monitor(monkeypatch):
    import inspect

    from gazeneg.webcam import live as L
    from gazeneg.webcam import tracker

    assert inspect.signature(L.LiveWindow).parameters["name"].default == tracker.LIVE_WINDOW
    monkeypatch.setattr(screens, "monitors", lambda: screens.parse_xrandr(XRANDR))
    calls = []
    monkeypatch.setattr(tracker, "place_window", lambda name, mon: calls.append((name, mon.name)))
    frames = face_frames(2)
    for headless, want in ((False, [(tracker.LIVE_WINDOW, "DP-1")]), (True, [])):
        args = live_cli.get_args_parser().parse_args(["x.pt", "--monitor", "1"] + (["--headless"] if headless else []))
        pipe = L.FramePipeline(predict_fn=lambda s, f: np.array([[2.0, 11.0]]))
        tap = tracker.attach(L.LiveSession(pipe, calibrate="never", validate=False, log=lambda *a: None), args)
        calls.clear()
        tap.feed(frames[0], 0.0)
        tap.feed(frames[1], 0.1)
        assert calls == want                       # once, at the first frame, and never without a window
        tap.close()
