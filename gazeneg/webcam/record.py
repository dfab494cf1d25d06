"""Gaze samples out of the live pipeline: one GazeSample per frame, written to CSV or JSONL as it goes.

    rec = GazeRecorder("out.csv")             # or "out.jsonl"; appends to an existing file with the same columns
    sample = make_sample(res, frame=i, now=t, screen=(1920, 1080), mode="track", event=events.take())
    rec.write(sample)                         # one line, flushed: a crash (even SIGKILL) loses at most this one
    rec.close()

A sample's columns (SAMPLE_FIELDS) are what PsychoPy/Pupil/Tobii users expect of a gaze export:
t_mono (time.monotonic(), seconds: for intervals and for matching other streams on this machine),
t_wall (time.time(), Unix seconds: for matching other machines' clocks), t_source (the clock the pipeline
ran on: wall time for a camera, frame time for a file source or a replay), frame (0-based index),
state (see STATES), mode (calibrate, validate, track), raw_row/raw_col (the model), cal_row/cal_col
(after the per-user calibration), row/col (calibrated and smoothed: the gaze), x_px/y_px (the smoothed
point on the screen in pixels, clamped to it), yaw/pitch/roll (head pose, degrees, selfie convention as
the model gets it; 0 from the Haar backend, which has none) and event (a marker other programs set:
EventInbox). Missing values are empty in CSV and null in JSONL.

Events: a program embedding the tracker calls inbox.put("stim_on"); any other program appends a line
to the file given to `--events-from` (EventInbox.watch): each new line is the event of the next sample.
"""

from __future__ import annotations

import csv
import json
import math
import operator
import os
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from gazeneg import grid
from gazeneg.webcam.detect import detection_pose

# The validity of a sample. ok: a gaze point; no_face: no face found; blink: the landmark backend saw the
# lids shut; closed_eyes: the Haar backend's closed-eye heuristic; pose_out_of_range: a point was computed
# but the head is turned further than POSE_LIMITS_DEG (outside what the model was trained on: the point is
# kept, flagged; also when the pipeline reports the pose clipped to its trained range, LiveResult.pose_clipped);
# no_prediction: a face but the model gave a non-finite answer.
STATES = ("ok", "no_face", "blink", "closed_eyes", "pose_out_of_range", "no_prediction")
# |yaw|, |pitch - PITCH_CENTRE|, |roll| beyond which a sample is flagged. The synthetic renderer's heads
# face the screen from below a laptop camera (pitch about -22 deg) and turn by a few degrees; these limits
# are about three of its standard deviations, wide enough for a person sitting normally.
POSE_LIMITS_DEG = (30.0, 25.0, 25.0)
PITCH_CENTRE_DEG = -22.0

SAMPLE_FIELDS = ("t_mono", "t_wall", "t_source", "frame", "state", "mode", "raw_row", "raw_col", "cal_row",
                 "cal_col", "row", "col", "x_px", "y_px", "yaw", "pitch", "roll", "event")
FORMATS = (".csv", ".jsonl")


class RecordError(ValueError):
    """A gaze file cannot be written as asked; the message names the file and the fix."""


@dataclass
class GazeSample:
    t_mono: float
    t_wall: float
    t_source: float
    frame: int
    state: str
    mode: str = "track"
    raw_row: float | None = None
    raw_col: float | None = None
    cal_row: float | None = None
    cal_col: float | None = None
    row: float | None = None
    col: float | None = None
    x_px: float | None = None
    y_px: float | None = None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    event: str = ""

    @property
    def valid(self) -> bool:
        return self.state == "ok"

    @property
    def point(self) -> tuple[float, float] | None:
        return None if self.row is None else (self.row, self.col)

    def to_dict(self) -> dict:
        # Every value is a number, a string or None: a plain dict, no deep copy (dataclasses.asdict costs ~0.1 ms).
        return dict(zip(SAMPLE_FIELDS, _values(self.__dict__), strict=True))

    def json_line(self) -> str:
        """The sample as one JSON object, SAMPLE_FIELDS in order, non-finite numbers as null (no newline): the
        JSONL line and the WebSocket message. Encoded once for all the sinks that send it; encoded again if a
        field has changed since."""
        values = _values(self.__dict__)
        cached = self.__dict__.get("_json")
        if cached is not None and cached[0] == values:
            return cached[1]
        line = json.dumps(dict(zip(SAMPLE_FIELDS, (None if isinstance(v, float) and not math.isfinite(v) else v
                                                   for v in values), strict=True)))
        self.__dict__["_json"] = (values, line)
        return line


_values = operator.itemgetter(*SAMPLE_FIELDS)   # a sample's __dict__ -> its column values, in order
assert tuple(f.name for f in fields(GazeSample)) == SAMPLE_FIELDS


def sample_state(res, pose=None) -> str:
    """The STATES entry of a live.LiveResult. pose: detection_pose(res.det) when the caller has it already."""
    if res.det is None:
        return "no_face"
    if res.closed:
        return "blink" if res.det.landmarks is not None else "closed_eyes"
    if res.smoothed is None:
        return "no_prediction"
    if getattr(res, "pose_clipped", False):   # the pipeline clipped the pose to the model's trained range
        return "pose_out_of_range"
    yaw, pitch, roll = detection_pose(res.det) if pose is None else pose
    if res.det.landmarks is not None and (abs(yaw) > POSE_LIMITS_DEG[0]
                                          or abs(pitch - PITCH_CENTRE_DEG) > POSE_LIMITS_DEG[1]
                                          or abs(roll) > POSE_LIMITS_DEG[2]):
        return "pose_out_of_range"
    return "ok"


def _pair(v) -> tuple[float | None, float | None]:
    return (None, None) if v is None else (float(v[0]), float(v[1]))


def make_sample(res, *, frame: int, now: float, screen: tuple[int, int], mode: str = "track", event: str = "",
                t_mono: float | None = None, t_wall: float | None = None) -> GazeSample:
    """A GazeSample of one live.LiveResult. screen: (width, height) pixels the grid covers."""
    pose = None if res.det is None else detection_pose(res.det)
    s = GazeSample(time.monotonic() if t_mono is None else t_mono, time.time() if t_wall is None else t_wall,
                   float(now), int(frame), sample_state(res, pose), mode, event=event)
    s.raw_row, s.raw_col = _pair(res.raw)
    s.cal_row, s.cal_col = _pair(res.point)
    s.row, s.col = _pair(res.smoothed)
    if res.smoothed is not None:
        s.x_px, s.y_px = screen_pixels(s.row, s.col, screen)
    if pose is not None:
        s.yaw, s.pitch, s.roll = (float(v) for v in pose)
    return s


def screen_pixels(row: float, col: float, screen: tuple[int, int]) -> tuple[float, float]:
    """grid.to_pixels(*grid.clamp(row, col), *screen) for one point, on Python floats: the same numbers (the
    same IEEE operations in the same order; NaN stays NaN) without numpy's per-call cost on scalars."""
    r = 0.0 if row < 0.0 else (grid.ROW_MAX if row > grid.ROW_MAX else row)
    c = 0.0 if col < 0.0 else (grid.COL_MAX if col > grid.COL_MAX else col)
    return (c + 0.5) * screen[0] / grid.COLS, (r + 0.5) * screen[1] / grid.ROWS


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return str(v)


class GazeRecorder:
    """Appends samples to a .csv or .jsonl file, one line each, flushed to the operating system after every
    sample (fsync=True also forces it to disk, for power cuts: slower). An existing CSV is appended to only
    if its header is SAMPLE_FIELDS."""

    def __init__(self, path, *, fsync: bool = False):
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in FORMATS:
            raise RecordError(f"--record-gaze {self.path}: the file must end in .csv or .jsonl")
        if not self.path.parent.is_dir():
            raise RecordError(f"--record-gaze {self.path}: folder {self.path.parent} does not exist")
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new and self.kind == ".csv":
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            if tuple(header) != SAMPLE_FIELDS:
                raise RecordError(f"{self.path}: exists with other columns ({','.join(header)[:80]}); "
                                  "give a new file name")
        self.fsync = fsync
        self._f = open(self.path, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._f, lineterminator="\n")   # straight into the file's buffer, flushed below
        self._lock = threading.Lock()
        self.n = 0
        if new and self.kind == ".csv":
            self._f.write(",".join(SAMPLE_FIELDS) + "\n")
            self._flush()

    def _flush(self) -> None:
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())

    def write(self, sample: GazeSample) -> None:
        with self._lock:
            if self.kind == ".csv":
                self._csv.writerow([_csv_value(v) for v in _values(sample.__dict__)])
            else:
                self._f.write(sample.json_line() + "\n")
            self._flush()   # the whole line reaches the operating system before write() returns
            self.n += 1

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


def read_samples(path) -> list[dict]:
    """The samples of a .csv or .jsonl gaze file as dicts (numbers as floats, frame as int, missing as None);
    a cut-off last line (the process was killed while writing it) is dropped."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    out = []
    if path.suffix.lower() == ".jsonl":
        for i, line in enumerate(lines, 1):
            try:
                out.append(json.loads(line))
            except ValueError:
                raise RecordError(f"{path}:{i}: not a JSON line") from None
        return out
    for row in csv.DictReader(lines):
        d = {}
        for k, v in row.items():
            if k in ("state", "mode", "event"):
                d[k] = v
            elif k == "frame":
                d[k] = int(v)
            else:
                d[k] = float(v) if v != "" else None
        out.append(d)
    return out


class EventInbox:
    """The event column's source: put(text) from any thread (the Python API, a WebSocket client), or lines
    appended by any program to a watched file. take() hands the pending events (joined by '|') to the next
    sample and clears them."""

    def __init__(self, watch=None):
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self.watch_path = Path(watch) if watch is not None else None
        self._pos = 0
        self._partial = b""
        if self.watch_path is not None:
            if not self.watch_path.exists():
                self.watch_path.touch()
            self._pos = self.watch_path.stat().st_size  # only events written from now on

    def put(self, text: str) -> None:
        text = str(text).replace("\n", " ").replace("|", "/").strip()
        if text:
            with self._lock:
                self._pending.append(text)

    def _poll_file(self) -> None:
        try:
            size = self.watch_path.stat().st_size
        except OSError:
            return
        if size < self._pos:  # truncated by its writer: start again
            self._pos = 0
        if size == self._pos:
            return
        with open(self.watch_path, "rb") as f:
            f.seek(self._pos)
            data = self._partial + f.read(size - self._pos)
        self._pos = size
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            self.put(line.decode("utf-8", "replace"))

    def take(self) -> str:
        if self.watch_path is not None:
            self._poll_file()
        with self._lock:
            out, self._pending = "|".join(self._pending), []
        return out
