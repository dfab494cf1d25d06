"""live's command-line options for the outputs other programs use (recording, streaming, replay, the One Euro
filter, the monitor), kept free of torch and OpenCV so that `gazeneg live --help` is fast. The options are read
by webcam.tracker (attach, open_input), which runs what they ask for."""

from __future__ import annotations

import argparse

from gazeneg.webcam.filters import DEFAULT_PARAMS
from gazeneg.webcam.model_files import FETCH_COMMAND
from gazeneg.webcam.screens import MonitorAction

# What --record-session keeps: the camera frames, or only the eye strips and detections.
KEEP = ("frames", "strips")
# The screen and seating the accuracy in cm and degrees assume unless told (a 15.6" laptop at arm's length).
DEFAULT_SCREEN_CM = (34.4, 19.3)
DEFAULT_DISTANCE_CM = 60.0
# The face finders (detect.make_detector's backends; detect.BACKENDS is this tuple).
FACE_BACKENDS = ("auto", "landmarks", "haar")


def add_face_backend(p, what: str = "face finder") -> None:
    """--face-backend, the one definition every command that finds faces (capture, import, live, predict) uses."""
    p.add_argument("--face-backend", choices=FACE_BACKENDS, default="auto",
                   help=f"{what}: MediaPipe landmarks (needs `{FETCH_COMMAND}`), Haar cascades, or auto (landmarks "
                        "when the model files are cached, else Haar; the default)")


def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("One Euro filter (--smoother one_euro)")
    g.add_argument("--mincutoff", type=float, default=DEFAULT_PARAMS["one_euro"]["mincutoff"],
                   help="cutoff at rest, Hz: lower = steadier fixations (default %(default)s)")
    g.add_argument("--beta", type=float, default=DEFAULT_PARAMS["one_euro"]["beta"],
                   help="cutoff rise per cell/s of speed: higher = less lag after a saccade (default %(default)s)")
    p.add_argument("--monitor", type=int, action=MonitorAction, default=None, metavar="N",
                   help="the monitor the grid is on (0 = first; from xrandr or screeninfo): its pixels and physical "
                        "size replace --screen and --screen-cm unless those are given")
    g = p.add_argument_group("outputs for other programs (docs/integration.md)")
    g.add_argument("--record-gaze", action="append", default=[], metavar="FILE",
                   help="append every sample to FILE (.csv or .jsonl; may be given twice), flushed per sample")
    g.add_argument("--record-fsync", action="store_true",
                   help="also force each sample to disk (survives a power cut; costs ~1 ms a sample)")
    g.add_argument("--events-from", default=None, metavar="FILE",
                   help="a file other programs append lines to: each new line is the next sample's event")
    g.add_argument("--record-session", default=None, metavar="DIR",
                   help="keep the session to replay it: the camera frames (uncompressed, 0.9 MB each at 640x480: your face) or, with "
                        "--session-keep strips, only the eye strips and detections (~10 KB a frame)")
    g.add_argument("--session-keep", choices=KEEP, default="frames", help="what --record-session keeps")
    g.add_argument("--replay", default=None, metavar="DIR",
                   help="run a --record-session folder through the pipeline again instead of --source")
    g.add_argument("--lsl", action="store_true", help="stream the samples as a Lab Streaming Layer outlet (type Gaze) "
                   "and the events as a Markers outlet (needs gazeneg[stream])")
    g.add_argument("--lsl-name", default="gazeneg", help="the LSL stream's name (default %(default)s)")
    g.add_argument("--websocket", nargs="?", const="8765", default=None, metavar="[HOST:]PORT",
                   help="serve the samples as JSON on ws://HOST:PORT (default 127.0.0.1:8765, this machine only; "
                        "give a host to listen elsewhere); clients may send events (needs gazeneg[stream])")
    g.add_argument("--wait-for-subscriber", type=float, default=0.0, metavar="SECONDS",
                   help="before the first frame, wait up to SECONDS for an LSL inlet and a WebSocket client")
    g.add_argument("--calibration", default=None, metavar="FILE",
                   help="use this calibration file (e.g. for --headless or --replay, which calibrate nothing)")
