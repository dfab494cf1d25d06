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

import contextlib
import csv
import errno
import json
import os
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gazeneg import grid
from gazeneg.data.dataset import DatasetError, DatasetWriter, new_meta
from gazeneg.files import atomic_write_bytes, atomic_write_text, lock_folder
from gazeneg.webcam.detect import (
    FaceEyeDetector,
    crop_eyes,
    eyes_closed,
    face_columns,
    landmark_features,
    make_detector,
)

# The frame sources, the window and the frame loop live in webcam.py (shared with live.py); these names
# stay importable from here.
from gazeneg.webcam.sources import (  # noqa: F401
    DEFAULT_SCREEN,
    GUI_MISSING,
    IMAGE_EXTS,
    CameraError,
    CameraSource,
    CaptureError,
    FrameClock,
    GuiError,
    ImageFolderSource,
    VideoFileSource,
    Window,
    default_clock,
    frame_loop,
    key_name,
    open_source,
    screen_size,
)

ARROWS = ("left", "right", "up", "down")
KEYS = ARROWS + ("space", "esc")
LAYOUTS = ("grid", "nine")
ORDERS = ("serpentine", "shuffle", "rowmajor")
# The 9-point calibration layout: the four corners, the four edge midpoints and the screen centre.
NINE_POINTS = tuple((r, c) for r in (0.0, grid.CENTRE[0], float(grid.ROW_MAX))
                    for c in (0.0, grid.CENTRE[1], float(grid.COL_MAX)))
PLAN_DIR = "capture"


class NoFaceError(CaptureError):
    pass


class DiskFullError(CaptureError):
    pass


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
                 resume: bool = False, source: str = "webcam", fsync: bool = True, log=print,
                 extend_frames: bool = False):
    """(writer, plan, done, frames): a DatasetWriter on root, the session's plan and frames per target
    (the saved ones when resuming a session, else `plan` and `frames`, which are then saved) and the
    rows already written for this session per target key. extend_frames: on resume, raise the saved
    frames per target to `frames` (the user asked for more with --frames)."""
    root = Path(root)
    if not (isinstance(frames, int) and frames >= 1):
        raise CaptureError(f"frames per target must be a whole number >= 1, not {frames!r}")
    for name, value in (("subject", subject), ("session", session)):
        if not value or any(ch in value for ch in '/\\,"\n') or value.startswith("."):
            raise CaptureError(f"{name} {value!r}: use letters, digits, - and _ only")
    pp = plan_path(root, session)
    if (root / "labels.csv").exists() and not resume:
        raise DatasetError(f"{root}: already holds a dataset; pass --resume to continue a session there (or "
                           "add a new --session to it), or choose another --out folder")
    writer = DatasetWriter(root, new_meta(source, capture_tool="gazeneg.webcam.capture"), resume=resume, fsync=fsync)
    if pp.exists():
        saved = json.loads(pp.read_text())
        if saved["subject"] != subject:
            writer.close()
            raise CaptureError(f"{pp}: session {session!r} belongs to subject {saved['subject']!r}, not "
                               f"{subject!r}")
        plan = [Target(t["row"], t["col"], t["arrow"]) for t in saved["plan"]]
        if extend_frames and frames > saved["frames_per_target"]:
            log(f"session {session!r}: extending from {saved['frames_per_target']} to {frames} frames per target")
            atomic_write_text(pp, json.dumps({**saved, "frames_per_target": frames}, indent=1))
        elif extend_frames and frames < saved["frames_per_target"]:
            writer.close()
            raise CaptureError(f"{pp}: session {session!r} already records {saved['frames_per_target']} frames per "
                               f"target; --frames {frames} would not extend it (captured frames are kept)")
        else:
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
        # The mirrored box and the selfie pose: their data.face_features are the features crop_eyes gives the model.
        item = (strip, *face_columns(det, W, H), landmark_features(det, W), now,
                frame_bgr if self.raw_dir is not None else None)
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
        strip, face, frame_wh, pose, eyes, now, raw = item
        name = f"{self.subject}_{self.session}_{len(self.writer):06d}"
        try:
            if raw is not None:
                ok, buf = cv2.imencode(".jpg", raw, [cv2.IMWRITE_JPEG_QUALITY, 95])
                if ok:  # before the row, so every row of a raw-keeping session has its raw frame
                    atomic_write_bytes(self.raw_dir / f"{name}.jpg", buf.tobytes())
            self.writer.add(strip, target.row, target.col, subject=self.subject, session=self.session,
                            name=f"{name}.png", face=face, frame=frame_wh, pose=pose, eyes=eyes, timestamp=now)
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

    def step(frame, now):
        session.feed(frame, now)
        pressed = ui.show(session, frame) if ui is not None else []
        return pressed + (keys(session, now) if keys is not None else [])

    why = frame_loop(source, step, session.press, clock=clock or default_clock(source),
                     done=lambda: session.done)
    session.summary.source_ended = why == "source ended"
    return session.finish()


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


@contextlib.contextmanager
def _released(lock):
    try:
        yield lock
    finally:
        lock.release()


def _remove_empty(out: Path, session: str, out_existed: bool) -> None:
    """Remove the skeleton a capture that kept no frame wrote (meta.json, a header-only labels.csv, the
    session's plan, empty folders); the folder itself when this capture created it."""
    for f in (out / "labels.csv", out / "meta.json", plan_path(out, session), out / ".capture.lock"):
        f.unlink(missing_ok=True)
    for d in (out / "raw" / session, out / "raw", out / PLAN_DIR, out / "images"):
        with contextlib.suppress(OSError):   # not empty: kept
            d.rmdir()
    if not out_existed:
        with contextlib.suppress(OSError):
            out.rmdir()


def capture(out, source, *, subject: str = "user", session: str | None = None, plan: list[Target] | None = None,
            settings: CaptureSettings | None = None, resume: bool = False, headless: bool = False,
            screen: str | None = None, keep_raw: bool = False, keys=None, clock=None, seed: int = 0,
            log=print, face_backend: str = "auto", extend_frames: bool = False) -> CaptureSummary:
    """Open the source and the dataset, run the session (windowed, or headless for file sources), and
    return the summary. `source` is a camera index, a path, or an object with read()/close().
    face_backend: "auto", "landmarks" or "haar" (face.make_detector)."""
    settings = settings or CaptureSettings()
    if not (isinstance(settings.frames_per_target, int) and settings.frames_per_target >= 1):
        raise CaptureError(f"--frames must be a whole number >= 1, not {settings.frames_per_target!r}")
    detector = make_detector(face_backend, warn=log)
    session = session or time.strftime("s%Y%m%d-%H%M%S")
    plan = plan if plan is not None else make_plan(seed=seed)
    src = open_source(source) if isinstance(source, (str, int, os.PathLike)) else source
    ui = None
    try:
        if headless and getattr(src, "live", False):
            raise CaptureError("--headless needs a video file or image folder as --source: with a camera "
                               "nobody would see the targets")
        if not headless:   # before anything is written: no display leaves no empty dataset behind
            ui = CaptureWindow(screen_size(screen))
        out_existed = Path(out).exists()
        Path(out).mkdir(parents=True, exist_ok=True)
        lock = lock_folder(Path(out), "capture", CaptureError)
        fresh = not (Path(out) / "labels.csv").exists()
        try:
            writer, plan, done, frames = open_capture(out, plan=plan, subject=subject, session=session,
                                                      frames=settings.frames_per_target, resume=resume,
                                                      source="webcam" if getattr(src, "live", False) else "file",
                                                      log=log, extend_frames=extend_frames)
        except BaseException:
            lock.release()
            raise
        settings = CaptureSettings(**{**asdict(settings), "frames_per_target": frames})
        with writer, _released(lock):
            sess = CaptureSession(writer, plan, subject=subject, session=session, settings=settings, done=done,
                                  raw_dir=Path(out) / "raw" / session if keep_raw else None, seed=seed,
                                  detector=detector)
            if sess.done:
                log(f"session {session!r} is already complete")
            if headless and keys is None:
                keys = AutoAnswer()  # re-processing a recording: nobody to answer, accept every target
            try:
                summary = run_capture(sess, src, clock=clock, ui=ui, keys=keys)
            except BaseException:
                for line in sess.finish().lines():  # what is saved, before the error is reported
                    log(line)
                if fresh and len(writer) == 0:
                    writer.close()
                    _remove_empty(Path(out), session, out_existed)
                raise
            if fresh and len(writer) == 0:
                # Nothing kept: leave no empty data-set skeleton (it would make the next capture need --resume).
                writer.close()
                _remove_empty(Path(out), session, out_existed)
                s = summary
                raise NoFaceError(f"no frame was kept from {source}: {s.rejected_no_face} without a face, "
                                  f"{s.rejected_closed} with the eyes closed, "
                                  f"{s.discarded_attention} discarded by the attention check; nothing was saved "
                                  f"in {out}. Sit facing the camera in even light (or give a recording with a face)")
            return summary
    finally:
        if ui is not None:
            ui.close()
        src.close()
