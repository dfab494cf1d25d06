"""Sessions recorded and replayed: `gazeneg live --record-session DIR` keeps what the camera gave, with each
frame's timestamp; `gazeneg live --replay DIR` runs it through the pipeline again, with this or another
checkpoint, filter or calibration, and gives the same samples for the same settings.

What a session folder holds is the user's choice (--session-keep), and either way it is a person's face:
  frames (default): every camera frame, uncompressed (frames/000000.bmp...: lossless and the cheapest to write,
          about 0.2 ms; a PNG costs 10-60 ms of CPU a frame here): 0.9 MB a frame at 640x480, 27 MB a second
          at 30 fps. Any later pipeline (another face backend too) can replay it.
  strips: only the 96x32 eye strip the model sees (strips/000000.bmp: lossless, ~0.01 ms to write where a
          PNG took 0.2-0.5 ms of the shared core; sessions recorded with PNG strips replay as before) and the
          detection (face box, eye centres, head pose, blink, face features) in frames.jsonl: about 10 KB a
          frame, no full face image, but the face finding is fixed as recorded: a replay reruns the model,
          calibration and filter only. The strip is the pipeline's own crop of the frame (LiveResult.strip).
frames.jsonl: one line per frame (index, t_source = the pipeline clock, t_mono, t_wall, the detection);
session.json: what was kept, the settings, the format version. Frames are written by a background thread
(an image costs up to a few ms) that wakes every 0.1 s for what has come, each line after its image, so a killed
recording replays up to its last whole frame.

    rec = SessionRecorder("sessions/s1", keep="frames", settings={...})   # a tracker sink
    src = ReplaySource("sessions/s1")                                     # a frame source: .timestamp, .record
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gazeneg.files import atomic_write_text
from gazeneg.webcam.detect import crop_eyes, eyes_closed
from gazeneg.webcam.detection import Detection
from gazeneg.webcam.live import LiveResult
from gazeneg.webcam.options import KEEP

SESSION_VERSION = 1


class SessionError(ValueError):
    """A session folder cannot be written or replayed; the message names it and the fix."""


class SessionRecorder:
    """A tracker sink (write(sample, frame, res)) that keeps the frames or the strips of a session."""

    def __init__(self, folder, *, keep: str = "frames", settings: dict | None = None, queue_size: int = 256,
                 batch_s: float = 0.1):
        if keep not in KEEP:
            raise SessionError(f"--session-keep {keep!r}: choose frames or strips")
        self.folder = Path(folder)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise SessionError(f"--record-session {self.folder}: exists and is not empty; give a new folder")
        (self.folder / keep).mkdir(parents=True, exist_ok=True)
        self.keep = keep
        atomic_write_text(self.folder / "session.json", json.dumps({
            "format_version": SESSION_VERSION, "keep": keep, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "contains": ("camera frames: images of the person's face" if keep == "frames" else
                         "eye strips (96x32 images of the eyes) and face detections"),
            "settings": settings or {}}, indent=1))
        self._index = open(self.folder / "frames.jsonl", "a", encoding="utf-8")
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        # The writer wakes at most every batch_s and writes what has come (3 frames at 30 fps): its code and data
        # stay warm in the cache from one frame to the next, about half the CPU a frame of waking for each.
        self.batch_s = batch_s
        self._thread = threading.Thread(target=self._work, name="session-writer", daemon=True)
        self._thread.start()
        self.n = 0

    def write(self, sample, frame, res=None) -> None:
        if self._error is not None:
            raise SessionError(f"{self.folder}: recording failed: {self._error}")
        det = None if res is None else res.det
        # strips: the pipeline's own crop of this frame when it has one (the same pixels and features crop_eyes
        # gives; cutting it again in the writer thread cost ~0.2-0.5 ms of the shared core a frame).
        cut = None
        if self.keep == "strips" and det is not None and getattr(res, "strip", None) is not None \
                and getattr(res, "feats", None) is not None:
            cut = (res.strip, res.feats)
        self._q.put((self.n, sample.t_source, sample.t_mono, sample.t_wall, frame, det,
                     None if res is None else res.closed, cut))
        self.n += 1

    def _work(self) -> None:
        while True:
            items = [self._q.get()]
            while not self._q.empty():
                items.append(self._q.get_nowait())   # this thread is the only reader: it is there
            for item in items:
                if item is None:
                    return
                try:
                    self._write_one(*item)
                except BaseException as e:   # reported by the next write() or close()
                    self._error = e
                    return
            self._index.flush()   # the batch's lines, each after its image: a kill loses no image of a listed line
            if self._q.empty():
                time.sleep(self.batch_s)

    def _write_one(self, i, t_source, t_mono, t_wall, frame, det, closed, cut=None) -> None:
        row = {"index": i, "t_source": t_source, "t_mono": t_mono, "t_wall": t_wall}
        name = f"{i:06d}"
        if self.keep == "frames":
            img = frame
            row["file"] = f"frames/{name}.bmp"
        else:
            row["det"] = _det_dict(det)
            row["closed"] = bool(closed)
            if det is not None:
                strip, feats = cut if cut is not None else crop_eyes(frame, det)
                img = cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)
                row["file"] = f"strips/{name}.bmp"
                row["feats"] = [float(v) for v in feats]
                row["frame_size"] = [int(frame.shape[1]), int(frame.shape[0])]
            else:
                img = None
        if img is not None:
            ext = row["file"][-4:]
            ok, buf = cv2.imencode(ext, img)
            if not ok:
                raise SessionError(f"cannot encode frame {i} as {ext}")
            (self.folder / row["file"]).write_bytes(buf.tobytes())
        self._index.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        self._index.close()
        if self._error is not None:
            raise SessionError(f"{self.folder}: recording failed: {self._error}")


@dataclass(frozen=True)
class RecordedLandmarks:
    """What a replay needs of landmarks.FaceLandmarks: blink, head pose, lid openings."""

    blink: bool
    head_pose: tuple
    opening: tuple


def _det_dict(det: Detection | None) -> dict | None:
    if det is None:
        return None
    d = {"face": [float(v) for v in det.face], "left_eye": list(det.left_eye), "right_eye": list(det.right_eye),
         "eyes_found": det.eyes_found, "tracked": det.tracked, "backend": det.backend}
    lm = det.landmarks
    if lm is not None:
        d["landmarks"] = {"blink": bool(lm.blink), "head_pose": [float(v) for v in lm.head_pose],
                          "opening": [float(v) for v in lm.opening]}
    return d


def _det_from(d: dict | None) -> Detection | None:
    if d is None:
        return None
    lm = d.get("landmarks")
    return Detection(tuple(d["face"]), tuple(d["left_eye"]), tuple(d["right_eye"]), d["eyes_found"], d["tracked"],
                     d["backend"], None if lm is None else RecordedLandmarks(lm["blink"], tuple(lm["head_pose"]),
                                                                              tuple(lm["opening"])))


class ReplaySource:
    """A recorded session as a frame source. read() -> the frame (frames kept) or, for strips, a gray
    placeholder frame of the recorded size (the pipeline takes the strip from .record); .timestamp is the
    frame's recorded pipeline time, .record its frames.jsonl line."""

    live = False

    def __init__(self, folder):
        self.folder = Path(folder)
        meta_path = self.folder / "session.json"
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise SessionError(f"--replay {self.folder}: not a recorded session ({meta_path.name}: "
                               f"{type(e).__name__})") from None
        if self.meta.get("format_version", 0) > SESSION_VERSION:
            raise SessionError(f"{meta_path}: session format {self.meta['format_version']} is newer than this gazeneg")
        self.keep = self.meta.get("keep")
        if self.keep not in KEEP:
            raise SessionError(f"{meta_path}: 'keep' is {self.keep!r}, not frames or strips")
        lines = (self.folder / "frames.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]     # cut off by a kill while writing
        self.rows = [json.loads(x) for x in lines]
        if not self.rows:
            raise SessionError(f"--replay {self.folder}: no frames were recorded")
        t = [r["t_source"] for r in self.rows]
        self.fps = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 30.0
        self._i = 0
        self.timestamp: float | None = None
        self.record: dict | None = None

    def read(self) -> np.ndarray | None:
        if self._i >= len(self.rows):
            return None
        row = self.rows[self._i]
        self._i += 1
        self.record, self.timestamp = row, float(row["t_source"])
        if self.keep == "frames":
            frame = cv2.imread(str(self.folder / row["file"]), cv2.IMREAD_COLOR)
            if frame is None:
                raise SessionError(f"{self.folder / row['file']}: missing or unreadable frame")
            return frame
        w, h = row.get("frame_size", (640, 480))
        return np.full((h, w, 3), 60, np.uint8)

    def close(self) -> None:
        pass


class StripReplayPipeline:
    """A FramePipeline's model, calibration and filter fed with a strips session's recorded strips and
    detections instead of finding the face again. Every attribute (calibration, smoother, predict_fn,
    pose_reference...) is the wrapped pipeline's; process() repeats FramePipeline.process after its crop."""

    def __init__(self, pipe, source: ReplaySource):
        object.__setattr__(self, "pipe", pipe)
        object.__setattr__(self, "source", source)

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def __setattr__(self, name, value):
        setattr(self.pipe, name, value)

    def process(self, frame_bgr, now: float) -> LiveResult:
        pipe, row = self.pipe, self.source.record
        det = _det_from(row.get("det"))
        res = LiveResult(det)
        if det is None:
            return res
        strip = cv2.imread(str(self.source.folder / row["file"]), cv2.IMREAD_COLOR)
        if strip is None:
            raise SessionError(f"{self.source.folder / row['file']}: missing or unreadable strip")
        strip = cv2.cvtColor(strip, cv2.COLOR_BGR2RGB)
        feats = np.asarray(row["feats"], np.float32)
        pose_reference = getattr(pipe, "pose_reference", None)
        if pose_reference is not None:
            feats = pose_reference.apply(feats)
            res.pose_clipped = pose_reference.last_clipped
        res.strip = strip
        res.closed = pipe.skip_closed and (row["closed"] if det.landmarks is None else eyes_closed(strip, det))
        if res.closed:
            return res
        res.model_feats = feats
        raw = np.asarray(pipe.predict_fn(pipe.model_strip(strip), feats[None]), np.float64).reshape(2)
        if not np.isfinite(raw).all():
            return res
        res.raw = raw
        res.point = pipe.calibration.apply(raw)
        res.smoothed = pipe.smoother.update(res.point, now)
        return res
