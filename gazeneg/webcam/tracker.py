"""The tracker as a library, and the outputs `gazeneg live` gains from it.

    from gazeneg.webcam.tracker import Tracker

    with Tracker("runs/.../best.pt", source=0) as tracker:       # camera 0, or a video file / image folder
        for sample in tracker:                                    # record.GazeSample, one per frame
            if sample.valid:
                print(sample.t_mono, sample.row, sample.col, sample.x_px, sample.y_px)
            tracker.mark("trial 3 start")                         # the next sample's event column

Tracker runs what `gazeneg live` runs (live.FramePipeline inside a live.LiveSession, the same smoother and
the per-user calibration saved beside the checkpoint by `gazeneg live`), headless: no window, no
calibration targets shown. The outputs (a gaze file, streams, a recorded session) are the same objects
live's options open (add_args / attach), so a program and the command write the same samples.

SampleTap wraps a LiveSession: every frame it feeds turns into a GazeSample, handed to each sink
(sink.write(sample, frame, live_result)), and kept as .last. It adds to the session:
- the one-target recentre (key r in live's window, Tracker.recentre()): a dot at the screen centre; the
  median of the calibrated gaze on it after the fixation delay gives an offset added to the calibration's
  translation (saved with it), so a slow drift (the person shifted in the chair) is removed without a full
  calibration. Blinks and lost frames give no samples; too few and it is refused, the calibration unchanged.
- after each accuracy check, the per-target and per-region report (webcam.accuracy) as a PNG and a
  markdown table beside the calibration; refused, with the reason, when a target got no samples.
"""

from __future__ import annotations

from pathlib import Path

from gazeneg import grid
from gazeneg.model.checkpoint import load_checkpoint
from gazeneg.webcam.accuracy import AccuracyError, recentre_offset, target_report, write_target_report
from gazeneg.webcam.detect import make_detector
from gazeneg.webcam.filters import DEFAULT_SMOOTHER
from gazeneg.webcam.live import (
    VALIDATE,
    Calibration,
    FramePipeline,
    LiveSession,
    TargetCollector,
    adopt_legacy_calibration,
    make_smoother,
)
from gazeneg.webcam.record import EventInbox, GazeRecorder, GazeSample, make_sample
from gazeneg.webcam.replay import ReplaySource, SessionRecorder, StripReplayPipeline
from gazeneg.webcam.screens import place_window
from gazeneg.webcam.sources import default_clock, open_source, screen_size
from gazeneg.webcam.stream import LslSink, WebSocketSink, parse_address

LIVE_WINDOW = "gazeneg live"   # live.LiveWindow's window name


class GazeFileSink:
    """record.GazeRecorder as a sink."""

    def __init__(self, path, *, fsync: bool = False):
        self.recorder = GazeRecorder(path, fsync=fsync)

    def write(self, sample: GazeSample, frame, res=None) -> None:
        self.recorder.write(sample)

    def close(self) -> None:
        self.recorder.close()


class SampleTap:
    """A LiveSession that also turns each result into a GazeSample for its sinks. Everything else (press,
    mode, collector, report...) is the session's own. screen: (w, h) pixels for x_px/y_px. source: when it
    has a `timestamp` (a replayed session), that recorded time is the pipeline's clock, so a replay
    smooths and times exactly as the recording did."""

    def __init__(self, session: LiveSession, *, screen: tuple[int, int], sinks=(), events: EventInbox | None = None,
                 source=None):
        self.session = session
        self.screen = screen
        self.sinks = list(sinks)
        self.events = events or EventInbox()
        self.source = source
        self.frame_index = 0
        self.last: GazeSample | None = None
        self.recentring: TargetCollector | None = None
        self.last_offset = None
        self.report = None        # the last accuracy.TargetReport
        self.report_files = None
        self.window_monitor = None  # live's window goes onto this screens.Monitor at the first frame

    def __getattr__(self, name):
        return getattr(self.session, name)

    @property
    def collector(self):
        """The target on show: the recentre's while it runs, else the session's (what render_live draws)."""
        return self.recentring if self.recentring is not None else self.session.collector

    def press(self, key: str, now: float) -> None:
        if key == "r":
            self.start_recentre()
        else:
            self.session.press(key, now)

    def start_recentre(self, target=grid.CENTRE, *, samples: int | None = None,
                       fixation_s: float | None = None) -> None:
        n = samples or self.session.samples
        self.recentring = TargetCollector([tuple(target)], samples=n, min_samples=max(1, n // 2), retries=1,
                                          fixation_s=self.session.fixation_s if fixation_s is None else fixation_s)

    def _finish_recentre(self) -> None:
        target, pts = self.recentring.results[0]
        need = max(1, self.recentring.min_samples)
        self.recentring = None
        log = self.session.log
        if len(pts) < need:
            self.session.error = (f"recentre failed: {len(pts)} good samples on the dot, {need} needed (face lost "
                                  "or eyes closed); calibration unchanged; press r to try again")
            log(self.session.error)
            return
        off = recentre_offset(pts, target)
        cal = self.session.pipe.calibration
        m = cal.matrix.copy()
        m[:, 2] += off
        self.session.pipe.calibration = Calibration(m, cal.n_points, cal.fit_error_cells, gain=cal.gain)
        self.session.pipe.smoother.reset()
        self.last_offset = off
        self.session.error = None
        self.events.put(f"recentre {off[0]:+.3f},{off[1]:+.3f}")
        path = self.session.calib_path
        if path is not None:
            self.session.pipe.calibration.save(path)
        log(f"recentred: offset {off[0]:+.2f} rows, {off[1]:+.2f} cols from {len(pts)} samples"
            + (f"; saved to {path}" if path is not None else ""))

    def _write_report(self, collector) -> None:
        s = self.session
        try:
            self.report = target_report(collector.results, screen_cm=s.screen_cm, distance_cm=s.distance_cm,
                                        screen_px=self.screen)
        except AccuracyError as e:
            s.log(f"accuracy report refused: {e}")
            return
        if s.calib_path is not None:
            self.report_files = write_target_report(self.report, s.calib_path)
            s.log(f"accuracy per target and region: {self.report_files[0]} and {self.report_files[1]}")

    def feed(self, frame_bgr, now: float):
        ts = getattr(self.source, "timestamp", None)
        if ts is not None:
            now = ts
        if self.window_monitor is not None and self.frame_index == 0:
            place_window(LIVE_WINDOW, self.window_monitor)
        mode = self.session.mode
        validating = self.session.collector if mode == VALIDATE else None
        res = self.session.feed(frame_bgr, now)
        if validating is not None and validating.done:
            self._write_report(validating)
        if self.recentring is not None:
            self.recentring.feed(res.point, now)
            if self.recentring.done:
                self._finish_recentre()
        sample = make_sample(res, frame=self.frame_index, now=now, screen=self.screen, mode=mode,
                             event=self.events.take())
        self.frame_index += 1
        self.last = sample
        for sink in self.sinks:
            sink.write(sample, frame_bgr, res)
        return res

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []


# ----------------------------------------------------------------------------------------------
# live's options (one hook in cli/live.py each: add_args(parser), attach(session, args, source))


def sinks_from_args(args, events: EventInbox, screen) -> list:
    sinks = [GazeFileSink(path, fsync=args.record_fsync) for path in args.record_gaze]
    streams = []
    if args.lsl:
        streams.append(LslSink(name=args.lsl_name, screen=screen))
    if args.websocket is not None:
        streams.append(WebSocketSink(*parse_address(args.websocket), events=events))
    for st in streams:
        if args.wait_for_subscriber > 0:
            st.wait(args.wait_for_subscriber)
    sinks += streams
    if args.record_session:
        settings = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))}
        sinks.append(SessionRecorder(args.record_session, keep=args.session_keep, settings=settings))
    return sinks


def open_input(args):
    """live's frame source: the --replay session, else --source."""
    return ReplaySource(args.replay) if args.replay else open_source(args.source)


def attach(session: LiveSession, args, source=None) -> SampleTap:
    """The session wrapped with the outputs live's options ask for; close() it at the end."""
    screen = screen_size(getattr(args, "screen", None)) if getattr(args, "screen", None) else screen_size(None)
    if args.calibration:
        session.pipe.calibration = Calibration.load(args.calibration)
    if isinstance(source, ReplaySource) and source.keep == "strips":
        session.pipe = StripReplayPipeline(session.pipe, source)
    events = EventInbox(args.events_from)
    sinks = sinks_from_args(args, events, screen)
    tap = SampleTap(session, screen=screen, sinks=sinks, events=events, source=source)
    if getattr(args, "monitor", None) is not None and not getattr(args, "headless", False):
        tap.window_monitor = args.monitor
    return tap


# ----------------------------------------------------------------------------------------------
# The Python API


def build_pipeline(checkpoint, *, smoother: str = DEFAULT_SMOOTHER, smoother_kwargs: dict | None = None,
                   face_backend: str = "auto", iris: str = "alternate", calibration="auto") -> FramePipeline:
    """live's FramePipeline for a checkpoint. calibration: "auto" (the OS user's saved
    <checkpoint>.calib.<user>.json if there is one, an old per-checkpoint <checkpoint>.calib.json moved there
    first, else none), None (none), a path, or a live.Calibration."""
    model, _ = load_checkpoint(checkpoint)
    if calibration == "auto":
        calibration = Calibration.load_or_identity(adopt_legacy_calibration(checkpoint)[0])
    elif calibration is None:
        calibration = Calibration()
    elif not isinstance(calibration, Calibration):
        calibration = Calibration.load(calibration)
    return FramePipeline(model, detector=make_detector(face_backend, alternate_iris=iris == "alternate"),
                         smoother=make_smoother(smoother, **(smoother_kwargs or {})), calibration=calibration)


class Tracker:
    """for sample in Tracker(checkpoint, source=0): ... (see the module docstring).

    source: camera index, video file, image folder, a replay.ReplaySource (a recorded session), or any object
    with read() -> frame | None (and close()).
    record_gaze: file(s) to append the samples to (.csv / .jsonl). screen: (w, h) pixels for x_px, y_px
    (default: the screen's size, else 1920x1080). max_frames: stop after this many. sinks: more sinks
    (objects with write(sample, frame, live_result) and close())."""

    def __init__(self, checkpoint, source=0, *, smoother: str = DEFAULT_SMOOTHER, smoother_kwargs: dict | None = None,
                 calibration="auto", face_backend: str = "auto", iris: str = "alternate", screen=None,
                 record_gaze=(), events_from=None, max_frames: int | None = None, sinks=(), clock=None,
                 pipeline: FramePipeline | None = None):
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.pipeline = pipeline or build_pipeline(checkpoint, smoother=smoother, smoother_kwargs=smoother_kwargs,
                                                   face_backend=face_backend, iris=iris, calibration=calibration)
        self.source = source if hasattr(source, "read") else open_source(str(source))
        self.clock = clock or default_clock(self.source)
        if isinstance(record_gaze, (str, Path)):
            record_gaze = [record_gaze]
        self.session = LiveSession(self.pipeline, calibrate="never", validate=False, log=lambda *_: None)
        if isinstance(self.source, ReplaySource) and self.source.keep == "strips":
            self.session.pipe = StripReplayPipeline(self.pipeline, self.source)
        screen = tuple(screen) if screen is not None else screen_size(None)
        self.tap = SampleTap(self.session, screen=screen,
                             sinks=[*(GazeFileSink(p) for p in record_gaze), *sinks],
                             events=EventInbox(events_from), source=self.source)
        self.max_frames = max_frames
        self.closed = False

    @property
    def calibration(self) -> Calibration:
        return self.pipeline.calibration

    def mark(self, event: str) -> None:
        """Put `event` in the next sample's event column (thread-safe)."""
        self.tap.events.put(event)

    def add_sink(self, sink) -> None:
        self.tap.sinks.append(sink)

    def recentre(self, target=grid.CENTRE, *, samples: int = 15, fixation_s: float = 0.5):
        """One-target drift correction: call while the person looks at `target` (row, col; your program shows
        the dot). Runs frames until `samples` good samples came after `fixation_s` (or the target timed
        out); returns the (d_row, d_col) offset now added to the calibration, or raises AccuracyError with
        the calibration unchanged. Its frames are not yielded by the iterator; the sinks get them."""
        self.tap.start_recentre(target, samples=samples, fixation_s=fixation_s)
        while self.tap.recentring is not None:
            if self.step() is None:
                self.tap.recentring = None
                raise AccuracyError("recentre: the source ended before the target was done")
        if self.session.error:
            raise AccuracyError(self.session.error)
        return self.tap.last_offset

    def step(self) -> GazeSample | None:
        """One frame through the pipeline: its sample, or None when the source has ended."""
        if self.closed or (self.max_frames is not None and self.tap.frame_index >= self.max_frames):
            return None
        frame = self.source.read()
        if frame is None:
            return None
        self.tap.feed(frame, self.clock())
        return self.tap.last

    def __iter__(self):
        try:
            while (sample := self.step()) is not None:
                yield sample
        finally:
            self.close()

    def run(self, callback) -> int:
        """callback(sample) for every frame until the source ends or it returns False; the frames run."""
        n = 0
        for sample in self:
            n += 1
            if callback(sample) is False:
                break
        return n

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.tap.close()
            self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
