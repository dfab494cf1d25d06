"""Capturing a gaze dataset from a webcam (or a video file or image folder) into the standard format.

The pieces are plain classes so that everything except the window runs headless in tests:

    source = open_source("0")                          # camera index, video file or image folder
    plan = make_plan(layout="grid", order="serpentine", attention_rate=0.2)
    writer, plan, done = open_capture(out, plan=plan, subject="me", session="s1", frames=10, resume=False)
    session = CaptureSession(writer, plan, subject="me", session="s1", done=done)
    summary = run_capture(session, source, clock=..., keys=AutoAnswer())   # or ui=CaptureWindow(...)

One target at a time sits at a cell centre. After it appears the session waits `fixation_s`, then
records `frames_per_target` frames of that target; a frame with no face or with closed eyes is
rejected and counted. Some targets carry an attention check: a small arrow inside the target while it
is shown; afterwards the user presses the matching arrow key. A wrong (or no) answer discards that
target's frames and puts the target back at the end of the queue. Space pauses, Esc ends.

Durability: every kept frame goes through data.DatasetWriter (image to a temp name then renamed; its
labels.csv row appended and flushed after it), so a crash, Ctrl-C or an unplugged camera loses at
most the frame in flight. Frames of a target with an attention check are held in memory until the
answer (they are only good data once it is right), so there a crash loses that one target's frames.
The plan of each session is saved as capture/<session>.json in the dataset folder; `resume=True`
counts the rows already written for that session and skips the targets they complete.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import sys
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import grid
from .data import DatasetError, DatasetWriter, atomic_write_bytes, atomic_write_text, new_meta
from .face import FaceEyeDetector, crop_eyes, eyes_closed, make_detector, mirror_box

ARROWS = ("left", "right", "up", "down")
KEYS = ARROWS + ("space", "esc")
LAYOUTS = ("grid", "nine")
ORDERS = ("serpentine", "shuffle", "rowmajor")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The 9-point calibration layout: the four corners, the four edge midpoints and the screen centre.
NINE_POINTS = tuple((r, c) for r in (0.0, grid.CENTRE[0], float(grid.ROW_MAX))
                    for c in (0.0, grid.CENTRE[1], float(grid.COL_MAX)))
DEFAULT_SCREEN = (1920, 1080)
PLAN_DIR = "capture"


class CaptureError(RuntimeError):
    """A problem the person capturing can fix; the message says how."""


class CameraError(CaptureError):
    pass


class NoFaceError(CaptureError):
    pass


class DiskFullError(CaptureError):
    pass


class GuiError(CaptureError):
    pass


# ----------------------------------------------------------------------------------------------
# Frame sources: read() -> BGR frame, or None when a file source has no more frames


class CameraSource:
    live = True

    def __init__(self, index: int, *, width: int = 640, height: int = 480):
        self.index = index
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            self.cap.release()
            dev = Path(f"/dev/video{index}")
            if sys.platform.startswith("linux") and dev.exists():
                raise CameraError(f"camera {index} ({dev}) exists but cannot be opened: it is busy (close "
                                  "other programs using it: browser tabs, video calls) or you lack permission "
                                  "(add yourself to the 'video' group)")
            raise CameraError(f"no camera at index {index}: check it is plugged in, try --source 1, or give a "
                              "video file or image folder as --source")
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        ok, frame = self.cap.read()
        if not ok or frame is None:
            self.cap.release()
            raise CameraError(f"camera {index} opened but delivers no frames: it is probably busy in another "
                              "program (browser tab, video call); close that and try again")
        self._first = frame
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        ok, frame = self.cap.read()
        if not ok or frame is None:
            raise CameraError(f"camera {self.index} stopped delivering frames (unplugged?). Every frame "
                              "captured so far is saved; plug it back in and re-run with --resume")
        return frame

    def close(self) -> None:
        self.cap.release()


class VideoFileSource:
    live = False

    def __init__(self, path, *, fps: float | None = None):
        self.path = Path(path)
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise CaptureError(f"{self.path}: cannot open as a video (unsupported codec or not a video)")
        self.fps = fps or self.cap.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        return frame if ok else None

    def close(self) -> None:
        self.cap.release()


class ImageFolderSource:
    """Every image in a folder, in file-name order, as consecutive frames at `fps`."""

    live = False

    def __init__(self, folder, *, fps: float = 30.0):
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise CaptureError(f"{self.folder}: no images ({', '.join(IMAGE_EXTS)}) in this folder")
        self.fps = fps
        self._i = 0

    def read(self) -> np.ndarray | None:
        if self._i >= len(self.files):
            return None
        path = self.files[self._i]
        self._i += 1
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise CaptureError(f"{path}: cannot be read as an image")
        return frame

    def close(self) -> None:
        pass


def open_source(spec, *, fps: float | None = None, width: int = 640, height: int = 480):
    """A camera for an integer (or a string of digits), an ImageFolderSource for a folder, a
    VideoFileSource for a file."""
    s = str(spec)
    if s.isdigit():
        return CameraSource(int(s), width=width, height=height)
    p = Path(s)
    if p.is_dir():
        return ImageFolderSource(p, fps=fps or 30.0)
    if p.is_file():
        return VideoFileSource(p, fps=fps)
    raise CaptureError(f"--source {s!r}: not a camera index, a video file or an image folder")


class FrameClock:
    """Time for a file source: each call returns the next frame's timestamp at `fps`, so fixation
    delays and timeouts are counted in frames and a replay is deterministic."""

    def __init__(self, fps: float = 30.0):
        self.dt = 1.0 / fps
        self.n = 0

    def __call__(self) -> float:
        t = self.n * self.dt
        self.n += 1
        return t


# ----------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class Target:
    """One target: where (continuous row, col; integer = a cell centre) and the attention-check
    arrow shown inside it (None = no check for this target)."""

    row: float
    col: float
    arrow: str | None = None

    @property
    def key(self) -> tuple[float, float]:
        return (round(self.row, 3), round(self.col, 3))


def make_plan(*, layout: str = "grid", order: str = "serpentine", cells=None, n_cells: int = 0,
              repeats: int = 1, attention_rate: float = 0.0, seed: int = 0) -> list[Target]:
    """Targets in showing order. layout "grid": the cell centres (all 144, the `cells` indices, or
    `n_cells` random ones); "nine": the 9-point calibration layout. order: "serpentine" (row by row,
    alternating direction), "rowmajor" or "shuffle". The whole sequence is shown `repeats` times
    (reshuffled each time). Each target carries an attention-check arrow with probability
    attention_rate."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, not {repeats}")
    if not 0.0 <= attention_rate <= 1.0:
        raise ValueError(f"attention_rate must be in [0, 1], not {attention_rate}")
    rng = np.random.default_rng(seed)
    if layout == "nine":
        points = list(NINE_POINTS)
    else:
        if cells is not None and n_cells:
            raise ValueError("give cells or n_cells, not both")
        idx = list(range(grid.N_CELLS)) if cells is None else [int(c) for c in cells]
        for c in idx:
            grid.index_to_cell(c)  # raises with the bad index named
        if n_cells:
            if not 0 < n_cells <= len(idx):
                raise ValueError(f"n_cells must be in 1..{len(idx)}, not {n_cells}")
            idx = sorted(rng.choice(idx, size=n_cells, replace=False).tolist())
        points = [tuple(float(v) for v in grid.index_to_cell(c)) for c in idx]
    plan = []
    for _ in range(repeats):
        if order == "shuffle":
            seq = [points[i] for i in rng.permutation(len(points))]
        elif order == "serpentine":
            rows = sorted({r for r, _ in points})
            seq = []
            for i, r in enumerate(rows):
                line = sorted((p for p in points if p[0] == r), key=lambda p: p[1])
                seq += line[::-1] if i % 2 else line
        else:
            seq = sorted(points)
        for r, c in seq:
            arrow = str(rng.choice(ARROWS)) if rng.random() < attention_rate else None
            plan.append(Target(r, c, arrow))
    return plan


# ----------------------------------------------------------------------------------------------
# Opening (or resuming) a session's dataset


def plan_path(root, session: str) -> Path:
    return Path(root) / PLAN_DIR / f"{session}.json"


def count_rows(root, *, subject: str, session: str) -> Counter:
    """Rows already in labels.csv for this subject and session, per target key (row, col)."""
    counts: Counter = Counter()
    labels = Path(root) / "labels.csv"
    if not labels.is_file():
        return counts
    with open(labels, newline="") as f:
        for rec in csv.DictReader(f):
            if rec.get("subject") == subject and rec.get("session") == session:
                counts[(round(float(rec["row"]), 3), round(float(rec["col"]), 3))] += 1
    return counts


def open_capture(root, *, plan: list[Target], subject: str, session: str, frames: int,
                 resume: bool = False, source: str = "webcam", fsync: bool = True, log=print):
    """(writer, plan, done, frames): a DatasetWriter on root, the session's plan and frames per target
    (the saved ones when resuming a session, else `plan` and `frames`, which are then saved) and the
    rows already written for this session per target key."""
    root = Path(root)
    for name, value in (("subject", subject), ("session", session)):
        if not value or any(ch in value for ch in '/\\,"\n') or value.startswith("."):
            raise CaptureError(f"{name} {value!r}: use letters, digits, - and _ only")
    pp = plan_path(root, session)
    if (root / "labels.csv").exists() and not resume:
        raise DatasetError(f"{root}: already holds a dataset; pass --resume to continue a session there (or "
                           "add a new --session to it), or choose another --out folder")
    writer = DatasetWriter(root, new_meta(source, capture_tool="gazeneg.capture"), resume=resume, fsync=fsync)
    if pp.exists():
        saved = json.loads(pp.read_text())
        if saved["subject"] != subject:
            writer.close()
            raise CaptureError(f"{pp}: session {session!r} belongs to subject {saved['subject']!r}, not "
                               f"{subject!r}")
        plan = [Target(t["row"], t["col"], t["arrow"]) for t in saved["plan"]]
        frames = saved["frames_per_target"]
        log(f"resuming session {session!r}: its saved plan of {len(plan)} targets, {frames} frames each")
    else:
        pp.parent.mkdir(exist_ok=True)
        atomic_write_text(pp, json.dumps({"subject": subject, "session": session, "frames_per_target": frames,
                                          "plan": [asdict(t) for t in plan]}, indent=1))
    return writer, plan, count_rows(root, subject=subject, session=session), frames


# ----------------------------------------------------------------------------------------------
# The state machine


FIXATE, RECORD, ANSWER, PAUSED, DONE = "fixate", "record", "answer", "paused", "done"


@dataclass
class CaptureSettings:
    frames_per_target: int = 10
    fixation_s: float = 0.8          # wait after a target appears before recording
    answer_timeout_s: float = 10.0   # no answer within this counts as a wrong answer
    no_face_timeout_s: float = 10.0  # no face for this long (while not paused) ends the capture


@dataclass
class CaptureSummary:
    out: Path
    session: str
    targets_total: int = 0
    targets_done: int = 0           # completed in this run
    targets_already_done: int = 0   # complete before this run (resume)
    frames_kept: int = 0
    rejected_no_face: int = 0
    rejected_closed: int = 0
    discarded_attention: int = 0    # frames thrown away after a wrong or missing answer
    wrong_answers: int = 0
    stopped_early: bool = False     # Esc
    source_ended: bool = False      # a file source ran out of frames first
    per_cell: dict = field(default_factory=dict)  # cell index -> frames of this session in the dataset

    @property
    def complete(self) -> bool:
        return self.targets_done + self.targets_already_done >= self.targets_total

    def lines(self) -> list[str]:
        out = [f"capture summary for session {self.session!r} in {self.out}",
               f"  targets: {self.targets_done} done now, {self.targets_already_done} done before, "
               f"{self.targets_total} in the plan" + ("" if self.complete else "  (INCOMPLETE: "
               + ("the source ran out of frames; " if self.source_ended else "") + "re-run with --resume)"),
               f"  frames kept: {self.frames_kept}; rejected: {self.rejected_no_face} no face, "
               f"{self.rejected_closed} eyes closed; discarded by the attention check: "
               f"{self.discarded_attention} ({self.wrong_answers} wrong or missing answers)"]
        if self.per_cell:
            out.append("  frames per cell of this session (rows 0-8, cols 0-15; . = none):")
            for r in range(grid.ROWS):
                row = [self.per_cell.get(grid.cell_index(r, c), 0) for c in range(grid.COLS)]
                out.append("    " + " ".join(f"{v:3d}" if v else "  ." for v in row))
        return out


class CaptureSession:
    """The capture state machine. Drive it with feed(frame, now) for every camera frame and
    press(key) for key presses ("left", "right", "up", "down", "space", "esc"); `now` is seconds from
    any clock. It writes through `writer` and never touches a window."""

    def __init__(self, writer: DatasetWriter, plan: list[Target], *, subject: str, session: str,
                 settings: CaptureSettings | None = None, done: Counter | None = None,
                 detector: FaceEyeDetector | None = None, raw_dir=None, seed: int = 0):
        # detector: anything with detect(frame_bgr) -> Detection | None (face.make_detector's default:
        # the landmark backend when its model files are cached, else Haar).
        self.writer = writer
        self.subject, self.session = subject, session
        self.s = settings or CaptureSettings()
        self.detector = detector or make_detector()
        self.raw_dir = Path(raw_dir) if raw_dir is not None else None
        if self.raw_dir is not None:
            self.raw_dir.mkdir(parents=True, exist_ok=True)
        self.rng = np.random.default_rng(seed)
        self.summary = CaptureSummary(Path(writer.root), session, targets_total=len(plan))
        n = self.s.frames_per_target
        left = Counter(done or {})
        self.per_cell: Counter = Counter()
        for key, v in left.items():
            self.per_cell[int(grid.nearest_cell(*key))] += v
        # queue of [target, frames still needed]
        self.queue: deque = deque()
        for t in plan:
            have = min(left[t.key], n)
            left[t.key] -= have
            if have >= n:
                self.summary.targets_already_done += 1
            else:
                self.queue.append([t, n - have])
        self.phase = DONE if not self.queue else FIXATE
        self.buffer: list = []   # held frames of a target with an attention check
        self.t_shown: float | None = None
        self.t_answer: float | None = None
        self.t_face: float | None = None
        self.last_det = None
        self.frames_seen = 0

    # -- state -----------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.phase == DONE

    @property
    def current(self) -> Target | None:
        return self.queue[0][0] if self.queue else None

    @property
    def needed(self) -> int:
        return self.queue[0][1] if self.queue else 0

    @property
    def arrow_visible(self) -> bool:
        t = self.current
        return t is not None and t.arrow is not None and self.phase in (FIXATE, RECORD)

    # -- inputs ----------------------------------------------------------------------------------

    def feed(self, frame_bgr: np.ndarray, now: float) -> None:
        if self.phase in (DONE, PAUSED):
            return
        self.frames_seen += 1
        if self.t_shown is None:
            self.t_shown = now
        if self.t_face is None:
            self.t_face = now
        if self.phase == ANSWER:
            if now - self.t_answer >= self.s.answer_timeout_s:
                self._answered(False, now)
            return
        det = self.detector.detect(frame_bgr)
        self.last_det = det
        if det is not None:
            self.t_face = now
        elif now - self.t_face >= self.s.no_face_timeout_s:
            self.buffer.clear()
            raise NoFaceError(f"no face seen for {now - self.t_face:.0f} s: sit facing the camera, in even "
                              "light, about an arm's length away. Captured frames are saved; re-run with "
                              "--resume to continue")
        if self.phase == FIXATE:
            if now - self.t_shown < self.s.fixation_s:
                return
            self.phase = RECORD
        # RECORD
        if det is None:
            self.summary.rejected_no_face += 1
            return
        strip, _feats = crop_eyes(frame_bgr, det)
        if eyes_closed(strip, det):
            self.summary.rejected_closed += 1
            return
        target = self.current
        W, H = frame_bgr.shape[1], frame_bgr.shape[0]
        # The mirrored box: its data.face_features are the features crop_eyes gives the model.
        item = (strip, mirror_box(det.face, W), (W, H), now, frame_bgr if self.raw_dir is not None else None)
        if target.arrow is not None:
            self.buffer.append(item)
        else:
            self._write(target, item)
            self.queue[0][1] -= 1
        if target.arrow is not None and len(self.buffer) >= self.needed:
            self.phase, self.t_answer = ANSWER, now
        elif target.arrow is None and self.needed <= 0:
            self._next(now)

    def press(self, key: str, now: float) -> None:
        if key not in KEYS:
            raise ValueError(f"unknown key {key!r}; keys are {', '.join(KEYS)}")
        if key == "esc":
            self.buffer.clear()
            if self.phase != DONE:
                self.summary.stopped_early = bool(self.queue)
            self.phase = DONE
        elif key == "space":
            if self.phase == PAUSED:
                self._show(now)  # the current target again, from its fixation delay
            elif self.phase != DONE:
                self.phase = PAUSED
                self.buffer.clear()  # the person looked away: held frames are no longer trusted
        elif self.phase == ANSWER:
            self._answered(key == self.current.arrow, now)

    # -- transitions -----------------------------------------------------------------------------

    def _show(self, now: float) -> None:
        self.phase = FIXATE if self.queue else DONE
        self.t_shown = now
        self.t_face = now  # the no-face timeout counts from when a target is (re)shown
        self.buffer.clear()

    def _next(self, now: float) -> None:
        self.queue.popleft()
        self.summary.targets_done += 1
        self._show(now)

    def _answered(self, correct: bool, now: float) -> None:
        target = self.current
        if correct:
            for item in self.buffer:
                self._write(target, item)
            self.buffer.clear()
            self.queue[0][1] = 0
            self._next(now)
            return
        self.summary.wrong_answers += 1
        self.summary.discarded_attention += len(self.buffer)
        entry = self.queue.popleft()
        # Back of the queue, with a fresh arrow so the answer cannot be remembered.
        self.queue.append([Target(target.row, target.col, str(self.rng.choice(ARROWS))), entry[1]])
        self._show(now)

    def _write(self, target: Target, item) -> None:
        strip, face, frame_wh, now, raw = item
        name = f"{self.subject}_{self.session}_{len(self.writer):06d}"
        try:
            if raw is not None:
                ok, buf = cv2.imencode(".jpg", raw, [cv2.IMWRITE_JPEG_QUALITY, 95])
                if ok:  # before the row, so every row of a raw-keeping session has its raw frame
                    atomic_write_bytes(self.raw_dir / f"{name}.jpg", buf.tobytes())
            self.writer.add(strip, target.row, target.col, subject=self.subject, session=self.session,
                            name=f"{name}.png", face=face, frame=frame_wh, timestamp=now)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise DiskFullError(f"disk full while writing to {self.writer.root}: free some space, then "
                                    "re-run with --resume; every frame before this one is saved") from e
            raise
        self.summary.frames_kept += 1
        self.per_cell[int(grid.nearest_cell(target.row, target.col))] += 1

    def finish(self) -> CaptureSummary:
        self.buffer.clear()
        self.summary.per_cell = dict(self.per_cell)
        return self.summary


# ----------------------------------------------------------------------------------------------
# Key sources for headless runs


class AutoAnswer:
    """Answers every attention check, correctly except for the answers numbered in `wrong` (0-based,
    counting answers given). Optional `script`: {frame number (1-based, every frame read counts, paused
    or not): [keys]} pressed after that frame."""

    def __init__(self, wrong=(), script: dict | None = None):
        self.wrong = set(wrong)
        self.script = script or {}
        self.answers = 0
        self.frame = 0

    def __call__(self, session: CaptureSession, now: float) -> list[str]:
        self.frame += 1
        keys = list(self.script.get(self.frame, []))
        if session.phase == ANSWER:
            right = session.current.arrow
            keys.append(right if self.answers not in self.wrong else
                        next(a for a in ARROWS if a != right))
            self.answers += 1
        return keys


# ----------------------------------------------------------------------------------------------
# The loop


def run_capture(session: CaptureSession, source, *, clock=None, ui=None, keys=None) -> CaptureSummary:
    """Feed frames from source into session until it is done, the source ends, Esc, or an error.
    clock: seconds (default: wall time for a camera, FrameClock(source.fps) for a file source).
    ui: anything with show(session, frame) -> list of key names (CaptureWindow). keys: a callable
    (session, now) -> list of key names (AutoAnswer) for headless runs."""
    clock = clock or (time.time if getattr(source, "live", False) else FrameClock(getattr(source, "fps", 30.0)))
    while not session.done:
        frame = source.read()
        if frame is None:
            session.summary.source_ended = True
            break
        now = clock()
        session.feed(frame, now)
        pressed = []
        if ui is not None:
            pressed += ui.show(session, frame)
        if keys is not None:
            pressed += keys(session, now)
        for k in pressed:
            session.press(k, now)
    return session.finish()


# ----------------------------------------------------------------------------------------------
# Screen and window (the only part that needs a display)


def screen_size(override: str | None = None) -> tuple[int, int]:
    """(width, height) in pixels: `override` "WxH", else tkinter's idea of the screen, else 1920x1080."""
    if override:
        try:
            w, h = (int(v) for v in override.lower().split("x"))
            if w <= 0 or h <= 0:
                raise ValueError
        except ValueError:
            raise CaptureError(f"--screen {override!r}: expected WIDTHxHEIGHT in pixels, e.g. 2560x1440") from None
        return w, h
    try:
        import tkinter

        root = tkinter.Tk()
        root.withdraw()
        w, h = root.winfo_screenwidth(), root.winfo_screenheight()
        root.destroy()
        if w > 0 and h > 0:
            return int(w), int(h)
    except Exception:  # no tkinter, no display: fall back
        pass
    return DEFAULT_SCREEN


GUI_MISSING = ("this OpenCV has no GUI support (cv2.imshow: 'The function is not implemented'), usually "
               "because opencv-python-headless is installed. Install the GUI build: pip uninstall "
               "opencv-python-headless && pip install --force-reinstall opencv-python; or run with --headless "
               "and a video file or image folder as --source")

# cv2.waitKeyEx codes of the arrow keys on each backend (GTK, Qt, Windows, macOS), plus WASD.
_KEYCODES = {
    **dict.fromkeys((65361, 0x1000012, 2424832, 63234, ord("a")), "left"),
    **dict.fromkeys((65363, 0x1000014, 2555904, 63235, ord("d")), "right"),
    **dict.fromkeys((65362, 0x1000013, 2490368, 63232, ord("w")), "up"),
    **dict.fromkeys((65364, 0x1000015, 2621440, 63233, ord("s")), "down"),
    32: "space",
    27: "esc",
    ord("q"): "esc",
}


def key_name(code: int) -> str | None:
    return _KEYCODES.get(code) if code >= 0 else None


class Window:
    """A fullscreen OpenCV window: show(canvas) -> key names pressed. The only class that calls
    cv2.imshow / cv2.waitKeyEx. extra_keys: {key code: name} beyond the arrows, WASD, space, Esc, q."""

    def __init__(self, name: str = "gazeneg", *, fullscreen: bool = True, extra_keys: dict | None = None):
        self.keys = {**_KEYCODES, **(extra_keys or {})}
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise GuiError("no display (DISPLAY is not set): run on a desktop session, or use --headless with a "
                           "video file or image folder as --source")
        self.name = name
        try:
            cv2.namedWindow(name, cv2.WINDOW_NORMAL)
            if fullscreen:
                cv2.setWindowProperty(name, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        except cv2.error as e:
            if "not implemented" in str(e).lower():
                raise GuiError(GUI_MISSING) from None
            raise

    def show(self, canvas: np.ndarray) -> list[str]:
        try:
            cv2.imshow(self.name, canvas)
        except cv2.error as e:
            if "not implemented" in str(e).lower():
                raise GuiError(GUI_MISSING) from None
            raise
        code = cv2.waitKeyEx(1)
        k = self.keys.get(code) if code >= 0 else None
        return [k] if k else []

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.name)
        except cv2.error:
            pass


def _arrow(canvas, centre, direction: str, size: float, colour) -> None:
    x, y = centre
    ux, uy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[direction]
    tip = (x + ux * size, y + uy * size)
    back = (x - ux * size * 0.2, y - uy * size * 0.2)
    side = (-uy * size * 0.6, ux * size * 0.6)
    pts = np.array([tip, (back[0] + side[0], back[1] + side[1]), (back[0] - side[0], back[1] - side[1])])
    cv2.fillConvexPoly(canvas, np.round(pts).astype(np.int32), colour, lineType=cv2.LINE_AA)


def render_capture(session: CaptureSession, screen_w: int, screen_h: int) -> np.ndarray:
    """The capture screen as a BGR image: the target, its arrow or question, and a status line."""
    canvas = np.full((screen_h, screen_w, 3), 40, np.uint8)
    unit = min(screen_w / grid.COLS, screen_h / grid.ROWS)
    font = cv2.FONT_HERSHEY_SIMPLEX
    t = session.current
    if t is not None and session.phase != DONE:
        x, y = (float(v) for v in grid.to_pixels(t.row, t.col, screen_w, screen_h))
        c = (round(x), round(y))
        ring = (0, 200, 0) if session.phase == RECORD else (230, 230, 230)
        cv2.circle(canvas, c, round(unit * 0.32), ring, max(2, round(unit * 0.04)), cv2.LINE_AA)
        if session.arrow_visible:
            _arrow(canvas, c, t.arrow, unit * 0.12, (0, 220, 255))
        elif session.phase == ANSWER:
            cv2.putText(canvas, "?", (c[0] - round(unit * 0.1), c[1] + round(unit * 0.1)), font,
                        unit / 60, (0, 220, 255), 2, cv2.LINE_AA)
        else:
            cv2.circle(canvas, c, max(2, round(unit * 0.05)), (0, 0, 230), -1, cv2.LINE_AA)
    s = session.summary
    status = {FIXATE: "look at the dot", RECORD: "recording - keep looking at the dot",
              ANSWER: "which way did the arrow point? press that arrow key",
              PAUSED: "PAUSED - space to continue, Esc to finish", DONE: "done"}[session.phase]
    if session.phase in (FIXATE, RECORD) and session.last_det is None and session.frames_seen:
        status += "   [NO FACE - face the camera]"
    text = (f"{status}    target {s.targets_done + s.targets_already_done + 1}/{s.targets_total}   kept "
            f"{s.frames_kept}   rejected {s.rejected_no_face + s.rejected_closed}   space pause, Esc end")
    cv2.putText(canvas, text, (20, screen_h - 20), font, 0.6, (180, 180, 180), 1, cv2.LINE_AA)
    return canvas


class CaptureWindow:
    """The capture UI: render_capture in a fullscreen Window."""

    def __init__(self, screen: tuple[int, int], name: str = "gazeneg capture"):
        self.screen = screen
        self.window = Window(name)

    def show(self, session: CaptureSession, frame) -> list[str]:
        return self.window.show(render_capture(session, *self.screen))

    def close(self) -> None:
        self.window.close()


# ----------------------------------------------------------------------------------------------
# One call for scripts/capture.py


def capture(out, source, *, subject: str = "user", session: str | None = None, plan: list[Target] | None = None,
            settings: CaptureSettings | None = None, resume: bool = False, headless: bool = False,
            screen: str | None = None, keep_raw: bool = False, keys=None, clock=None, seed: int = 0,
            log=print, face_backend: str = "auto") -> CaptureSummary:
    """Open the source and the dataset, run the session (windowed, or headless for file sources), and
    return the summary. `source` is a camera index, a path, or an object with read()/close().
    face_backend: "auto", "landmarks" or "haar" (face.make_detector)."""
    detector = make_detector(face_backend, warn=log)
    settings = settings or CaptureSettings()
    session = session or time.strftime("s%Y%m%d-%H%M%S")
    plan = plan if plan is not None else make_plan(seed=seed)
    src = open_source(source) if isinstance(source, (str, int, os.PathLike)) else source
    ui = None
    try:
        if headless and getattr(src, "live", False):
            raise CaptureError("--headless needs a video file or image folder as --source: with a camera "
                               "nobody would see the targets")
        writer, plan, done, frames = open_capture(out, plan=plan, subject=subject, session=session,
                                                  frames=settings.frames_per_target, resume=resume,
                                                  source="webcam" if getattr(src, "live", False) else "file",
                                                  log=log)
        settings = CaptureSettings(**{**asdict(settings), "frames_per_target": frames})
        with writer:
            sess = CaptureSession(writer, plan, subject=subject, session=session, settings=settings, done=done,
                                  raw_dir=Path(out) / "raw" / session if keep_raw else None, seed=seed,
                                  detector=detector)
            if sess.done:
                log(f"session {session!r} is already complete")
            if not headless:
                ui = CaptureWindow(screen_size(screen))
            elif keys is None:
                keys = AutoAnswer()  # re-processing a recording: nobody to answer, accept every target
            try:
                return run_capture(sess, src, clock=clock, ui=ui, keys=keys)
            except BaseException:
                for line in sess.finish().lines():  # what is saved, before the error is reported
                    log(line)
                raise
    finally:
        if ui is not None:
            ui.close()
        src.close()
