"""The standard dataset format shared by capture, the synthetic renderer, training and evaluation.

A dataset is a folder:

    images/         PNG eye-region images, IMAGE_H x IMAGE_W, RGB (stored by OpenCV as BGR)
    labels.csv      one row per image: path,row,col,subject,session and optionally
                    face_x,face_y,face_w,face_h,frame_w,frame_h (source-frame pixels),
                    yaw,pitch,roll (head pose, degrees, strip.selfie_pose's convention), timestamp
    meta.json       grid shape, image size, source, creation time, format version

The model's input is the eye strip (both eyes, left eye of the image at EYE_LEFT_XY, right at
EYE_RIGHT_XY) plus FACE_FEATURES numbers describing where the face box sits in the source frame
(iTracker's face grid, reduced to 4 numbers) and how the head is turned (yaw, pitch, roll). Both the
renderer and the webcam crop produce exactly this. A labels.csv without pose columns (written before
they existed, or by hand) loads with zero pose and a warning; a row with empty pose cells has no pose.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gazeneg import grid
from gazeneg.data.images import ImageFileError, read_image
from gazeneg.errors import GazenegError
from gazeneg.files import atomic_write_bytes, atomic_write_text

# The strip geometry lives in strip.py, which face.py imports directly (so face and data no longer import
# each other); re-exported here for everything that reads it from data.
from gazeneg.strip import (  # noqa: F401
    CHANNELS,
    EYE_LEFT_XY,
    EYE_RIGHT_XY,
    FACE_FEATURES,
    IMAGE_H,
    IMAGE_W,
    RELATIVE_POSE_LIMIT_DEG,
    face_features,
    relative_pose_by_group,
)

FORMAT_VERSION = 1
# Normalisation applied to uint8 pixels before the model: (x / 255 - MEAN) / STD.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25

REQUIRED_COLUMNS = ("path", "row", "col", "subject", "session")
FACE_COLUMNS = ("face_x", "face_y", "face_w", "face_h", "frame_w", "frame_h")
POSE_COLUMNS = ("yaw", "pitch", "roll")
# Eye landmark features (strip.eye_features), strip-left eye ("l") then strip-right eye ("r").
EYE_COLUMNS = ("eye_lx", "eye_ly", "eye_lopen", "eye_rx", "eye_ry", "eye_ropen")
OPTIONAL_COLUMNS = FACE_COLUMNS + POSE_COLUMNS + EYE_COLUMNS + ("timestamp",)
ALL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


class DatasetError(GazenegError, ValueError):
    """A dataset folder or file is invalid; the message names the file and line at fault."""


@dataclass
class GazeDataset:
    """A whole dataset in memory. images: (N, H, W, 3) uint8 RGB; targets: (N, 2) float32 (row, col);
    face: (N, FACE_FEATURES) float32; subjects/sessions/paths: (N,) str arrays."""

    root: Path
    images: np.ndarray
    targets: np.ndarray
    face: np.ndarray
    subjects: np.ndarray
    sessions: np.ndarray
    paths: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, idx) -> GazeDataset:
        idx = np.asarray(idx)
        return GazeDataset(self.root, self.images[idx], self.targets[idx], self.face[idx],
                           self.subjects[idx], self.sessions[idx], self.paths[idx], self.meta)


def normalize_images(images_uint8):
    """(N, H, W, 3) uint8 numpy or torch -> (N, 3, H, W) float32 torch tensor, normalised."""
    import torch

    t = torch.as_tensor(images_uint8)
    # (x / 255 - mean) / std as one multiply-add pass over the float copy.
    return t.permute(0, 3, 1, 2).float().mul_(1.0 / (255.0 * PIXEL_STD)).sub_(PIXEL_MEAN / PIXEL_STD)


# ----------------------------------------------------------------------------------------------
# Loading and validation


def fail_at(path: Path, line: int | None, msg: str):
    where = f"{path}" if line is None else f"{path} line {line}"
    raise DatasetError(f"{where}: {msg}")


def read_meta(root: Path) -> dict:
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        fail_at(meta_path, None, "missing: a dataset folder needs meta.json, labels.csv and images/")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        fail_at(meta_path, e.lineno, f"not valid JSON ({e.msg})")
    except UnicodeDecodeError as e:
        fail_at(meta_path, None, f"not UTF-8 text (byte {e.start})")
    if not isinstance(meta, dict):
        fail_at(meta_path, None, "must hold a JSON object")
    for key in ("grid", "image_size", "format_version"):
        if key not in meta:
            fail_at(meta_path, None, f"missing key {key!r}")

    def int_pair(v) -> bool:
        return isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)

    if not int_pair(meta["grid"]) or list(meta["grid"]) != [grid.ROWS, grid.COLS]:
        fail_at(meta_path, None, f"grid is {meta['grid']!r}, gazeneg uses [{grid.ROWS}, {grid.COLS}]")
    if not int_pair(meta["image_size"]) or min(meta["image_size"]) < 1 or max(meta["image_size"]) > 4096:
        fail_at(meta_path, None, f"image_size is {meta['image_size']!r}: expected [height, width] in pixels, "
              f"e.g. [{IMAGE_H}, {IMAGE_W}]")
    if not isinstance(meta["format_version"], int) or isinstance(meta["format_version"], bool):
        fail_at(meta_path, None, f"format_version is {meta['format_version']!r}, expected an integer "
              f"({FORMAT_VERSION})")
    if meta["format_version"] > FORMAT_VERSION:
        fail_at(meta_path, None, f"format_version {meta['format_version']} is newer than this gazeneg "
              f"understands ({FORMAT_VERSION}); upgrade gazeneg")
    return meta


def parse_float(value: str, column: str, path: Path, line: int) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        fail_at(path, line, f"column {column!r} has {value!r}, not a number")
    if not math.isfinite(v):
        fail_at(path, line, f"column {column!r} is {value!r}; it must be a finite number")
    return v


def load_dataset(root, *, load_images: bool = True) -> GazeDataset:
    """Load and validate a dataset folder. Every problem raises DatasetError naming file and line."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    meta = read_meta(root)
    h, w = meta["image_size"]
    csv_path = root / "labels.csv"
    if not csv_path.is_file():
        fail_at(csv_path, None, "missing")
    try:
        return _load_rows(root, meta, csv_path, h, w, load_images)
    except UnicodeDecodeError as e:
        fail_at(csv_path, None, f"not UTF-8 text (byte {e.start}); save labels.csv as UTF-8")
    except csv.Error as e:   # an unmatched quote runs a field past csv's 128 KB limit, or to the end
        fail_at(csv_path, _odd_quote_line(csv_path), f"not a readable CSV row: {e} (an unmatched double quote?)")


def _odd_quote_line(path: Path) -> int | None:
    """The first line of a CSV holding an odd number of double quotes: where an unmatched quote opens."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if line.count('"') % 2:
                return n
    return None


def _contained(root: Path, rel: str, csv_path: Path, line_no: int) -> str:
    """The image path, normalised, after checking it stays inside the dataset folder (symlinks resolved)."""
    if not rel or os.path.isabs(rel) or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        fail_at(csv_path, line_no, f"image path {rel!r} must be relative to the dataset folder")
    norm = os.path.normpath(rel).replace("\\", "/")
    base = root.resolve()
    try:
        (base / norm).resolve().relative_to(base)
    except ValueError:
        fail_at(csv_path, line_no, f"image path {rel!r} leads outside the dataset folder {root}")
    return norm


def _load_rows(root: Path, meta: dict, csv_path: Path, h: int, w: int, load_images: bool) -> GazeDataset:
    # utf-8-sig: a byte-order mark (as some spreadsheet programs write) is accepted and dropped
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            fail_at(csv_path, 1, "empty file: expected a header row " + ",".join(REQUIRED_COLUMNS))
        header = [c.strip() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            fail_at(csv_path, 1, f"missing column(s) {', '.join(missing)}; header is {','.join(header)}")
        col = {name: i for i, name in enumerate(header)}
        has_face = all(c in col for c in FACE_COLUMNS)
        has_pose = all(c in col for c in POSE_COLUMNS)
        if has_face and not has_pose:
            partial = [c for c in POSE_COLUMNS if c in col]
            warnings.warn(f"{csv_path}: no head-pose column(s) {', '.join(c for c in POSE_COLUMNS if c not in col)}"
                          f"{' (has ' + ', '.join(partial) + ')' if partial else ''}: the model gets zero head pose "
                          "for every row (written by an older gazeneg? capture or render it again to have it)",
                          stacklevel=2)
        has_eyes = _has_eye_columns(col, has_face, csv_path)
        rows, seen = [], {}
        for line_no, rec in enumerate(reader, start=2):
            if not rec or all(not x.strip() for x in rec):
                continue
            if len(rec) != len(header):
                fail_at(csv_path, line_no, f"has {len(rec)} fields, the header has {len(header)}")
            path = _contained(root, rec[col["path"]].strip(), csv_path, line_no)
            if load_images and not (root / path).is_file():   # stop at the first missing image, not after all rows
                fail_at(csv_path, line_no, f"image {path!r} is missing ({root / path})")
            if path in seen:
                fail_at(csv_path, line_no, f"duplicate path {path!r} (first on line {seen[path]})")
            seen[path] = line_no
            r = parse_float(rec[col["row"]], "row", csv_path, line_no)
            c = parse_float(rec[col["col"]], "col", csv_path, line_no)
            # Targets on the screen's edge (row -0.5 or 8.5, col -0.5 or 15.5) are on the screen.
            if not grid.on_screen(r, 0.0):
                fail_at(csv_path, line_no, f"row {r} is off the screen (rows {grid.ROW_EDGES[0]}..{grid.ROW_EDGES[1]})")
            if not grid.on_screen(0.0, c):
                fail_at(csv_path, line_no, f"col {c} is off the screen (cols {grid.COL_EDGES[0]}..{grid.COL_EDGES[1]})")
            face = np.zeros(FACE_FEATURES, np.float32)
            raw_face = [rec[col[k]].strip() for k in FACE_COLUMNS] if has_face else []
            if has_face and any(raw_face):  # all empty = no face box for this row (e.g. imported crops)
                vals = [parse_float(rec[col[k]], k, csv_path, line_no) for k in FACE_COLUMNS]
                if vals[2] <= 0 or vals[3] <= 0 or vals[4] <= 0 or vals[5] <= 0:
                    fail_at(csv_path, line_no, "face_w, face_h, frame_w and frame_h must be positive")
                pose = [0.0, 0.0, 0.0]
                raw_pose = [rec[col[k]].strip() for k in POSE_COLUMNS] if has_pose else []
                if any(raw_pose):
                    pose = [parse_float(rec[col[k]], k, csv_path, line_no) for k in POSE_COLUMNS]
                    if any(abs(v) > 90 for v in pose):
                        fail_at(csv_path, line_no, f"head pose {pose} is not in degrees within +-90")
                raw_eyes = [rec[col[k]].strip() for k in EYE_COLUMNS] if has_eyes else []
                eyes = ([parse_float(rec[col[k]], k, csv_path, line_no) for k in EYE_COLUMNS]
                        if any(raw_eyes) else None)
                face = face_features(*vals, *pose, eyes=eyes)
            rows.append((line_no, path, r, c, rec[col["subject"]].strip(),
                         rec[col["session"]].strip(), face))
    if not rows:
        fail_at(csv_path, None, "has no data rows: the dataset is empty")
    n = len(rows)
    face = _relative_pose(rows, csv_path)
    if load_images:   # the declared size bounded before anything is allocated (meta.json is only a header)
        _check_image_memory(root / "meta.json", n, h, w)
    images = np.zeros((n, h, w, CHANNELS), np.uint8) if load_images else np.zeros((n, 0, 0, 0), np.uint8)
    if load_images:
        for i, (line_no, path, *_rest) in enumerate(rows):
            images[i] = _read_image(root, path, (h, w), csv_path, line_no)
    return GazeDataset(
        root=root,
        images=images,
        targets=np.array([[r[2], r[3]] for r in rows], np.float32),
        face=face.astype(np.float32),
        subjects=np.array([r[4] for r in rows]),
        sessions=np.array([r[5] for r in rows]),
        paths=np.array([r[1] for r in rows]),
        meta=meta,
    )


MAX_IMAGE_BYTES = 8 * 1024 ** 3   # the most memory a data set's images may take (a strip is 9 KB: 900k strips)


def _check_image_memory(meta_path: Path, n: int, h: int, w: int) -> None:
    """Refuse, naming meta.json, a data set whose images would take more than MAX_IMAGE_BYTES or half of
    this machine's memory: image_size [4096, 4096] over 2,600 rows would be 130 GB."""
    need = n * h * w * CHANNELS
    limit = MAX_IMAGE_BYTES
    try:
        limit = min(limit, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2)
    except (ValueError, OSError, AttributeError):   # no sysconf (Windows): the fixed bound alone
        pass
    if need > limit:
        fail_at(meta_path, None, f"image_size [{h}, {w}] for {n} rows needs {need / 1024 ** 3:.1f} GiB of memory, "
                f"more than the {limit / 1024 ** 3:.1f} GiB gazeneg allows (the model's eye strips are "
                f"[{IMAGE_H}, {IMAGE_W}]); not loaded")


def _has_eye_columns(col: dict, has_face: bool, csv_path: Path) -> bool:
    has_eyes = all(c in col for c in EYE_COLUMNS)
    if has_face and not has_eyes:
        warnings.warn(f"{csv_path}: no eye-landmark columns ({', '.join(EYE_COLUMNS)}): the model gets zero "
                      "eye features for every row (written by an older gazeneg or without landmarks; "
                      "capture, import or render it again to have them)", stacklevel=3)
    return has_eyes


def _relative_pose(rows, csv_path: Path) -> np.ndarray:
    """The rows' face features with each person's (and session's) head pose relative to their own neutral
    pose, clipped to the trained range (strip.relative_pose_by_group); says how many rows were outside it."""
    face, clipped = relative_pose_by_group(np.stack([r[6] for r in rows]), [f"{r[4]}\x00{r[5]}" for r in rows])
    if clipped.any():
        warnings.warn(f"{csv_path}: {int(clipped.sum())} of {len(rows)} rows have a head pose beyond the trained "
                      f"range (+-{RELATIVE_POSE_LIMIT_DEG} deg yaw, pitch, roll from the person's median): "
                      "clipped to it", stacklevel=3)
    return face


def _read_image(root: Path, rel: str, size: tuple[int, int], csv_path: Path, line_no: int) -> np.ndarray:
    p = root / rel
    if not p.is_file():
        fail_at(csv_path, line_no, f"image {rel!r} is missing ({p})")
    # The size from the header of the bytes OpenCV then decodes (data.images): a small file can hold a huge
    # image (a 1 MB PNG of 20000 x 20000 pixels decodes to 1.2 GB), and formats whose size cannot be read
    # undecoded are refused.
    try:
        img = read_image(p, max_pixels=size[0] * size[1])
    except ImageFileError as e:
        fail_at(csv_path, line_no, f"image {rel!r} {e} (meta.json says {size[1]}x{size[0]})")
    if img.shape[:2] != tuple(size):
        fail_at(csv_path, line_no, f"image {rel!r} is {img.shape[1]}x{img.shape[0]}, meta.json says "
              f"{size[1]}x{size[0]}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------------------------
# Writing: atomic images, append-and-flush labels, resumable


def new_meta(source: str, **extra) -> dict:
    meta = {
        "format_version": FORMAT_VERSION,
        "grid": [grid.ROWS, grid.COLS],
        "image_size": [IMAGE_H, IMAGE_W],
        "channels": CHANNELS,
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    meta.update(extra)
    return meta


class DatasetWriter:
    """Writes the standard format incrementally. Each image goes to a temp name then is renamed;
    its labels.csv row is appended and flushed (and fsynced) only after the image is in place, so a
    crash loses at most the frame in flight. Opening an existing folder with resume=True continues it.

        with DatasetWriter(out, new_meta("webcam")) as wr:
            wr.add(image_rgb, row, col, subject="me", session="s1", face=(x, y, w, h), frame=(W, H),
                   pose=(yaw, pitch, roll))

    Resuming a labels.csv written before a column existed (the head pose) keeps its header: new rows are
    written in its columns, so the file stays one table.
    """

    def __init__(self, root, meta: dict, *, resume: bool = False, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self.images_dir = self.root / "images"
        labels = self.root / "labels.csv"
        if labels.exists() and not resume:
            raise DatasetError(f"{self.root}: already holds a dataset; add --resume to continue it, or choose "
                               "another folder")
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.paths: set[str] = set()
        if labels.exists():
            # Drop a trailing partial line (a crash mid-write) before appending.
            raw = labels.read_bytes()
            if raw and not raw.endswith(b"\n"):
                raw = raw[: raw.rfind(b"\n") + 1]
                atomic_write_bytes(labels, raw)
            with open(labels, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                for rec in reader:
                    self.paths.add(rec["path"])
                header = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DatasetError(f"{labels}: line 1: missing column(s) {', '.join(missing)}; cannot resume it")
            self.columns = header
            self.meta = read_meta(self.root)
        else:
            self.meta = meta
            self.columns = list(ALL_COLUMNS)
            atomic_write_text(self.root / "meta.json", json.dumps(meta, indent=2))
            atomic_write_text(labels, ",".join(ALL_COLUMNS) + "\n")
        # Remove temp files left by a crash: their rows were never written.
        for tmp in self.images_dir.glob(".*.tmp"):
            tmp.unlink()
        self._f = open(labels, "a", newline="")
        self._w = csv.writer(self._f)

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, image_rgb: np.ndarray, row: float, col: float, *, subject: str, session: str,
            name: str | None = None, face=None, frame=None, pose=None, eyes=None,
            timestamp: float | None = None) -> str:
        if name is None:
            name = f"{subject}_{session}_{len(self.paths):06d}.png"
        rel = f"images/{name}"
        if rel in self.paths:
            raise DatasetError(f"{self.root / 'labels.csv'}: path {rel!r} already present")
        ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR))
        if not ok:
            raise DatasetError(f"could not encode image for {rel}")
        atomic_write_bytes(self.root / rel, buf.tobytes()) if self.fsync else self._fast_write(rel, buf)
        fx, fy, fw, fh = face if face is not None else ("", "", "", "")
        W, H = frame if frame is not None else ("", "")
        yaw, pitch, roll = pose if pose is not None else ("", "", "")
        values = dict(path=rel, row=f"{row:.4f}", col=f"{col:.4f}", subject=subject, session=session,
                      face_x=_fmt(fx), face_y=_fmt(fy), face_w=_fmt(fw), face_h=_fmt(fh), frame_w=_fmt(W),
                      frame_h=_fmt(H), yaw=_fmt(yaw, 3), pitch=_fmt(pitch, 3), roll=_fmt(roll, 3),
                      **dict(zip(EYE_COLUMNS, (_fmt(v, 4) for v in (eyes if eyes is not None else [""] * 6)),
                                 strict=True)),
                      timestamp="" if timestamp is None else f"{timestamp:.3f}")
        self._w.writerow([values.get(c, "") for c in self.columns])
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())
        self.paths.add(rel)
        return rel

    def _fast_write(self, rel: str, buf) -> None:
        # Bulk rendering: still temp-then-rename, but without fsync per image.
        tmp = self.root / (rel + ".tmp")
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, self.root / rel)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fmt(v, digits: int = 2) -> str:
    if v == "" or v is None:
        return ""
    return f"{float(v):.{digits}f}"
