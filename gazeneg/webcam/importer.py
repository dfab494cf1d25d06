"""Import a folder of photos plus a CSV of targets into gazeneg's data-set format.

The CSV names each photo and where the person looked: `filename,row,col` in grid cells (this grid's
convention: integers are cell centres, rows -0.5..8.5 and cols -0.5..15.5 are on the screen, edges
included), or `filename,x,y` in screen pixels with the screen's size given (pixel (0, 0) is the
top-left corner; converted by grid.from_pixels, so x = 0 is col -0.5 and x = W is col 15.5). Optional
`subject` and `session` columns; without them every row gets the subject and session passed in. With a
header row the columns may come in any order; without one they are filename, then the two coordinates,
then subject and session if present.

How a photo becomes the model's 32x96 two-eye strip (`crop`):
  face    find the face and both eyes (gazeneg.webcam.detect) and cut the aligned strip, as the webcam does;
  resize  the photo already is an eye strip: squeeze it to 96x32;
  eye     the photo is one eye: scaled to one eye slot (48 px wide, aspect kept) and put in both slots
          of the strip, unmirrored (mirroring would flip the horizontal gaze), so every one-eye photo
          gives the model the same layout, with an eye where a two-eye model expects one;
  auto    decides once per folder from the photos' shape (and, for whole frames, whether faces are
          found in a sample), says what it decided and why, and refuses rather than skip every photo.

Every photo is a first frame: the face finder (gazeneg.webcam.detect.make_detector, the same one capture
and live use: landmarks when the model files are cached, else Haar; the backend is named in meta.json)
runs without tracking, so no face box is carried from one separate photo to the next.

Reliability. One import writes a folder at a time (a lock beside it, and the data set's own lock when
adding to it). Every row is checked and every photo read, bounded (gazeneg.data.images) and cut before
anything is written: a bad row anywhere is one error naming its line, and the folder is as it was. A new
data set is built in a hidden folder beside --out and renamed to it at the end. --resume matches photos
by source file and content (each image's name holds a hash of both), never by CSV line, so an edited CSV
resumes correctly.

This module, not data.py, holds the importer, so data.py never imports face.py (face -> landmarks ->
models_cache would lead back to data)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gazeneg import grid
from gazeneg.data.dataset import (
    IMAGE_H,
    IMAGE_W,
    DatasetError,
    DatasetWriter,
    fail_at,
    load_dataset,
    new_meta,
    parse_float,
)
from gazeneg.data.images import ImageFileError, read_image
from gazeneg.files import lock_folder
from gazeneg.units import parse_size
from gazeneg.webcam.detect import crop_eyes, face_columns, landmark_features, make_detector

CROPS = ("auto", "face", "resize", "eye")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
FILE_COLUMNS = ("filename", "file", "path", "image", "photo")
AUTO_SAMPLE = 12          # photos auto looks at (shape, and faces for whole frames)
STRIP_ASPECT = IMAGE_W / IMAGE_H   # 3.0
EYE_ASPECTS = (1.2, 2.6)  # width/height of a one-eye crop (an eye is about 2:1 with some margin)
EYE_MAX_SIDE = 400        # px: a one-eye crop is small; a whole webcam frame at 2:1 is not an eye
MAX_PIXELS = 64_000_000   # a photo beyond this (a 4K webcam frame is 8.3 MP) is refused before decoding
STEM_CHARS = 40           # the part of a photo's file name kept in its image name (then its hash)
LISTED = 20               # off-screen rows listed by line in the summary (then a count)


@dataclass
class Entry:
    line: int
    filename: str
    row: float
    col: float
    subject: str
    session: str
    offscreen: str = ""   # with skip_offscreen: why this row's target is off the screen (it is not imported)


@dataclass
class ImportSummary:
    out: Path
    crop: str                       # the crop used (auto resolved)
    reason: str                     # why (auto) or "chosen" (given)
    imported: int = 0
    skipped: Counter = field(default_factory=Counter)       # reason -> count
    per_session: Counter = field(default_factory=Counter)   # "subject/session" -> imported
    edge_targets: int = 0           # targets in the half cell between the outer cell centres and the edge
    offscreen: list = field(default_factory=list)           # "line N name: why" of the rows skipped off screen
    face_backend: str = ""          # crop face: the face finder used
    warnings: list = field(default_factory=list)            # splits.data_warnings of the whole data set

    def lines(self) -> list[str]:
        out = [f"imported {self.imported} photo(s) into {self.out}"
               + (f", {self.edge_targets} of them with targets between the outer cell centres and the screen's edge"
                  if self.edge_targets else "")]
        for reason, n in sorted(self.skipped.items()):
            out.append(f"skipped {n}: {reason}")
        if self.offscreen:
            out.append(f"skipped {len(self.offscreen)} with the target off the screen (--skip-offscreen):")
            out += [f"  {x}" for x in self.offscreen[:LISTED]]
            if len(self.offscreen) > LISTED:
                out.append(f"  ... and {len(self.offscreen) - LISTED} more")
        for group, n in sorted(self.per_session.items()):
            out.append(f"  {group}: {n}")
        out += [f"warning: {w}" for w in self.warnings]
        return out


def parse_screen(text: str) -> tuple[int, int]:
    """'1440x900' -> (1440, 900) pixels (gazeneg.units.parse_size, the one WxH parser; SizeError when bad)."""
    return parse_size(text, "--screen", "pixels")


def _check_name(kind: str, value: str, csv_path: Path, line: int | None) -> str:
    if not NAME_RE.match(value):
        fail_at(csv_path, line, f"{kind} {value!r}: use letters, digits, - and _ only (a held-out group is "
                              "named subject/session)")
    return value


def _records(csv_path: Path, text: str) -> list[tuple[int, list[str]]]:
    """(first line number, fields) of every non-blank record. The text goes to csv.reader whole, so a
    quoted field may hold a newline or U+2028 (str.splitlines would cut it); an unmatched quote is an
    error naming the line it opens, not csv's 'field larger than field limit'."""
    reader = csv.reader(io.StringIO(text, newline=""))
    out = []
    while True:
        start = reader.line_num + 1
        try:
            rec = next(reader)
        except StopIteration:
            return out
        except csv.Error as e:
            hint = " (an unmatched double quote?)" if "field limit" in str(e) or "EOF" in str(e) else ""
            fail_at(csv_path, start, f"not a readable CSV row: {e}{hint}")
        if rec and any(x.strip() for x in rec):
            out.append((start, rec))


def read_labels(csv_path, *, screen: tuple[int, int] | None = None, subject: str = "user",
                session: str = "import", skip_offscreen: bool = False) -> list[Entry]:
    """The CSV's rows as Entries in (row, col) cells; every bad value is an error naming file and line.
    skip_offscreen: a target off the screen is kept as an Entry with .offscreen saying why (the importer
    counts and lists it) instead of an error."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: no such file")
    _check_name("--subject", subject, csv_path, None)
    _check_name("--session", session, csv_path, None)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{csv_path}: not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
    rows = _records(csv_path, text)
    if not rows:
        fail_at(csv_path, None, "has no rows: nothing to import")
    first = [x.strip().lower() for x in rows[0][1]]
    pixels = screen is not None
    if first and first[0] in FILE_COLUMNS or any(k in first for k in ("row", "col", "x", "y")):
        col = {k: i for i, k in enumerate(first)}
        fcol = next((col[k] for k in FILE_COLUMNS if k in col), None)
        if fcol is None:
            fail_at(csv_path, rows[0][0], f"header {','.join(first)} has no filename column ({', '.join(FILE_COLUMNS)})")
        if "x" in col and "y" in col:
            a, b, pixels = col["y"], col["x"], True   # stored as (row-like, col-like) = (y, x)
        elif "row" in col and "col" in col:
            if screen is not None:
                fail_at(csv_path, rows[0][0], "--screen is for x,y pixel labels; this CSV has row,col (cells)")
            a, b, pixels = col["row"], col["col"], False
        else:
            fail_at(csv_path, rows[0][0], f"header {','.join(first)} needs row,col (cells) or x,y (pixels)")
        scol, sscol = col.get("subject"), col.get("session")
        rows = rows[1:]
    else:  # no header: filename, then row,col (or x,y with --screen), then subject, session
        fcol, scol, sscol = 0, 3, 4
        a, b = (2, 1) if pixels else (1, 2)
    if pixels and screen is None:
        fail_at(csv_path, None, "labels are x,y screen pixels: give the screen's size with --screen WIDTHxHEIGHT")
    entries, seen = [], {}
    for line, rec in rows:
        need = max(fcol, a, b) + 1
        if len(rec) < need:
            fail_at(csv_path, line, f"expected at least {need} columns, got {len(rec)}")
        u = parse_float(rec[a], "y" if pixels else "row", csv_path, line)
        v = parse_float(rec[b], "x" if pixels else "col", csv_path, line)
        off = ""
        if pixels:
            w, h = screen
            if not (0 <= v <= w and 0 <= u <= h):
                off = f"pixel ({v:g}, {u:g}) is off the {w}x{h} screen"
            r, c = (float(t) for t in grid.from_pixels(v, u, w, h))
        else:
            r, c = u, v
        if not off and not grid.on_screen(r, c):
            off = (f"target ({r:g}, {c:g}) is off the screen (rows {grid.ROW_EDGES[0]}..{grid.ROW_EDGES[1]}, "
                   f"cols {grid.COL_EDGES[0]}..{grid.COL_EDGES[1]})")
        if off and not skip_offscreen:
            fail_at(csv_path, line, off + "; --skip-offscreen leaves such rows out (counted and listed)")
        if not off:
            r = float(np.clip(r, *grid.ROW_EDGES))   # a rounding hair beyond the edge is the edge
            c = float(np.clip(c, *grid.COL_EDGES))
        subj = rec[scol].strip() if scol is not None and scol < len(rec) and rec[scol].strip() else subject
        sess = rec[sscol].strip() if sscol is not None and sscol < len(rec) and rec[sscol].strip() else session
        name = rec[fcol].strip()
        if not name:
            fail_at(csv_path, line, "empty filename")
        key = os.path.normpath(name)
        if key in seen:
            other = seen[key]
            same = (other.row, other.col) == (r, c)
            fail_at(csv_path, line, f"photo {name!r} is listed again (first on line {other.line}"
                                  + (")" if same else f" with target ({other.row:g}, {other.col:g}), here ({r:g}, "
                                                      f"{c:g}))") + ": each photo may be named once")
        entries.append(Entry(line, name, r, c, _check_name("subject", subj, csv_path, line),
                             _check_name("session", sess, csv_path, line), off))
        seen[key] = entries[-1]
    if not entries:
        fail_at(csv_path, None, "has a header but no rows: nothing to import")
    return entries


def _photo_path(photos_dir: Path, e: Entry, csv_path: Path) -> Path:
    path = (photos_dir / e.filename).resolve()
    if not path.is_relative_to(photos_dir.resolve()):
        fail_at(csv_path, e.line, f"photo {e.filename!r} leads outside the photo folder {photos_dir}")
    if not path.is_file():
        fail_at(csv_path, e.line, f"photo {e.filename!r} is missing or cannot be decoded")
    return path


def _read_photo(photos_dir: Path, e: Entry, csv_path: Path) -> np.ndarray:
    """The photo, decoded (BGR) only after its header said it is at most MAX_PIXELS (gazeneg.data.images)."""
    path = _photo_path(photos_dir, e, csv_path)
    try:
        return read_image(path, max_pixels=MAX_PIXELS)
    except ImageFileError as err:
        fail_at(csv_path, e.line, f"photo {e.filename!r} {err}")
    except OSError as err:
        fail_at(csv_path, e.line, f"photo {e.filename!r} cannot be read ({err.strerror or err})")


def image_name(e: Entry, photo_bytes: bytes) -> str:
    """The data set's name for a photo: subject, session, the start of its file name (safe characters
    only) and a hash of its file name and content. Resume matches photos by this name, so a row moved,
    added or deleted in the CSV changes nothing, and a changed photo is a new one."""
    digest = hashlib.sha256(os.path.normpath(e.filename).encode() + b"\0" + photo_bytes).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", Path(e.filename).stem)[:STEM_CHARS]
    return f"{e.subject}_{e.session}_{stem}_{digest}.png"


def resize_strip(img_bgr: np.ndarray) -> np.ndarray:
    """An eye-strip photo squeezed to the model's 96x32, RGB."""
    return cv2.cvtColor(cv2.resize(img_bgr, (IMAGE_W, IMAGE_H), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def eye_strip(img_bgr: np.ndarray) -> np.ndarray:
    """One eye photo -> the 96x32 RGB strip with the eye, aspect kept, in both 48x32 eye slots."""
    half = IMAGE_W // 2
    h, w = img_bgr.shape[:2]
    new_h = max(1, round(h * half / w))
    eye = cv2.resize(img_bgr, (half, new_h), interpolation=cv2.INTER_AREA if w > half else cv2.INTER_LINEAR)
    if new_h >= IMAGE_H:   # taller than the slot: keep the middle (the eye sits centred in an eye crop)
        top = (new_h - IMAGE_H) // 2
        eye = eye[top:top + IMAGE_H]
    else:                  # shorter: pad with the border's own pixels, not black bars the model would learn
        pad = IMAGE_H - new_h
        eye = cv2.copyMakeBorder(eye, pad // 2, pad - pad // 2, 0, 0, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(np.concatenate([eye, eye], axis=1), cv2.COLOR_BGR2RGB)


def face_detector(face_backend: str = "auto", log=print):
    """The face finder of capture and live (make_detector: landmarks when the model files are cached, else
    Haar), without tracking: every photo of an import is a first frame."""
    return make_detector(face_backend, track=False, warn=log)


def backend_name(detector) -> str:
    return getattr(detector, "backend", "haar")


def decide_crop(photos_dir: Path, entries: list[Entry], csv_path: Path, detector=None) -> tuple[str, str]:
    """auto: one crop for the whole folder, and the reason, from a sample of its photos."""
    entries = [e for e in entries if not e.offscreen] or entries
    step = max(1, len(entries) // AUTO_SAMPLE)
    sample = [_read_photo(photos_dir, e, csv_path) for e in entries[::step][:AUTO_SAMPLE]]
    aspects = np.array([im.shape[1] / im.shape[0] for im in sample])
    sides = np.array([max(im.shape[:2]) for im in sample])
    aspect, side = float(np.median(aspects)), int(np.median(sides))
    shape = f"median {aspect:.2f}:1, {side} px on the long side, over {len(sample)} sampled photos"
    if abs(aspect - STRIP_ASPECT) / STRIP_ASPECT < 0.15:
        return "resize", f"auto: {shape}: already two-eye strips at the model's 3:1"
    if EYE_ASPECTS[0] <= aspect <= EYE_ASPECTS[1] and side <= EYE_MAX_SIDE:
        return "eye", f"auto: {shape}: one-eye crops (aspect {EYE_ASPECTS[0]}..{EYE_ASPECTS[1]}:1, at most " \
                      f"{EYE_MAX_SIDE} px)"
    det = detector if detector is not None else face_detector()
    found = sum(det.detect(im) is not None for im in sample)
    if found == 0:
        raise DatasetError(
            f"{photos_dir}: crop auto: the photos look like whole frames ({shape}) but no face and eyes were found "
            f"in any of the {len(sample)} sampled; nothing would be imported. If they are eye crops, pass "
            "--crop eye (one eye) or --crop resize (both eyes)")
    return "face", f"auto: {shape}: whole frames, a face found in {found} of {len(sample)} sampled " \
                   f"({backend_name(det)} face finder)"


def cut_photo(img_bgr: np.ndarray, mode: str, detector=None):
    """(strip RGB, face box, frame size, pose, eye landmark features) of one photo for crop `mode`; None when
    crop face finds no face. Crop face is exactly live's cut of a first frame: crop_eyes, face_columns and
    landmark_features of the detection (the features are None from Haar and for the eye and image crops)."""
    if mode == "face":
        det = detector.detect(img_bgr)
        if det is None:
            return None
        strip, _feats = crop_eyes(img_bgr, det)
        # crop_eyes mirrors (a selfie view, as the renderer draws); so must the face box and pose.
        return (strip, *face_columns(det, img_bgr.shape[1], img_bgr.shape[0]), landmark_features(det, img_bgr.shape[1]))
    if mode == "eye":
        return eye_strip(img_bgr), None, None, None, None
    return resize_strip(img_bgr), None, None, None, None


def _building_dir(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.importing"


def import_photos(photos_dir, csv_path, out_dir, *, subject: str = "user", session: str = "import",
                  crop: str = "auto", screen: tuple[int, int] | str | None = None, progress: bool = False,
                  resume: bool = False, log=print, skip_offscreen: bool = False,
                  face_backend: str = "auto") -> ImportSummary:
    """Import photos_dir's photos named in csv_path into the data-set folder out_dir (new, or resume=True
    to add to it). All or nothing: every row is checked and every photo read and cut before anything is
    written. Returns the summary; every photo skipped is counted with its reason, and a run that would
    import nothing is an error. skip_offscreen: rows whose target is off the screen are left out, counted
    and listed (otherwise they are an error). face_backend: crop face's finder ("auto", "landmarks",
    "haar"; make_detector)."""
    photos_dir, csv_path, out_dir = Path(photos_dir), Path(csv_path), Path(out_dir)
    if not photos_dir.is_dir():
        raise DatasetError(f"{photos_dir}: no such folder")
    if crop not in CROPS:
        raise DatasetError(f"crop must be one of {', '.join(CROPS)}, not {crop!r}")
    if isinstance(screen, str):
        screen = parse_screen(screen)
    entries = read_labels(csv_path, screen=screen, subject=subject, session=session, skip_offscreen=skip_offscreen)
    offscreen = [e for e in entries if e.offscreen]
    entries = [e for e in entries if not e.offscreen]
    if not entries:
        fail_at(csv_path, None, f"every one of its {len(offscreen)} rows has its target off the screen: nothing "
                                "to import")
    # Every photo must exist and stay inside the folder before anything is read: a typo is one error.
    for e in entries:
        _photo_path(photos_dir, e, csv_path)
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"--out {out_dir}: is a file, not a folder")
    has_data = (out_dir / "labels.csv").is_file()
    if has_data and not resume:
        raise DatasetError(f"{out_dir}: already holds a data set; add --resume to add these photos to it, or "
                           "choose another --out")
    if not has_data and out_dir.is_dir() and any(out_dir.iterdir()):
        raise DatasetError(f"--out {out_dir}: exists and holds files but no data set (no labels.csv); choose a "
                           "new or empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir.parent / f".{out_dir.name}.import.lock"

    def busy(_msg):
        return DatasetError(f"{out_dir} is being written by another import (it holds {lock_path}); wait for it to "
                            "finish or choose another --out")

    lock = lock_folder(out_dir.parent, f"{out_dir.name}.import", busy)
    try:
        inner = lock_folder(out_dir, "capture", busy) if has_data else None   # capture's lock: one writer
        try:
            return _import_locked(photos_dir, csv_path, out_dir, entries, offscreen, crop=crop, progress=progress,
                                  has_data=has_data, log=log, face_backend=face_backend)
        finally:
            if inner is not None:
                inner.release()
    finally:
        lock.release()


def _import_locked(photos_dir: Path, csv_path: Path, out_dir: Path, entries: list[Entry], offscreen: list[Entry],
                   *, crop: str, progress: bool, has_data: bool, log, face_backend: str) -> ImportSummary:
    from tqdm import tqdm

    detector = None
    if crop in ("auto", "face"):
        detector = face_detector(face_backend, log)
    mode, reason = decide_crop(photos_dir, entries, csv_path, detector) if crop == "auto" else (crop, "chosen with --crop")
    log(f"import: crop {mode} ({reason})")
    summary = ImportSummary(out_dir, mode, reason)
    summary.offscreen = [f"line {e.line} {e.filename}: {e.offscreen}" for e in offscreen]
    if mode == "face":
        summary.face_backend = backend_name(detector)
    present = set()
    if has_data:
        present = _existing_paths(out_dir)
    # Phase 1: read, bound, hash and cut every photo. Nothing is written until all of them pass.
    items = []
    for e in tqdm(entries, desc="import", unit="photo", disable=not progress):
        path = _photo_path(photos_dir, e, csv_path)
        try:
            data = path.read_bytes()
        except OSError as err:
            fail_at(csv_path, e.line, f"photo {e.filename!r} cannot be read ({err.strerror or err})")
        name = image_name(e, data)
        if f"images/{name}" in present:
            summary.skipped["already imported (resume)"] += 1
            continue
        cut = cut_photo(_read_photo(photos_dir, e, csv_path), mode, detector)
        if cut is None:
            summary.skipped["no face and eyes found (crop face)"] += 1
            continue
        items.append((e, name, cut))
    if not items and not summary.skipped.get("already imported (resume)"):
        raise DatasetError(f"{photos_dir}: none of the {len(entries)} photos could be imported "
                           f"({'; '.join(f'{n} {r}' for r, n in summary.skipped.items())}); try another --crop")
    meta = new_meta("import", imported_from=str(photos_dir), crop=mode,
                    **({"face_backend": summary.face_backend} if mode == "face" else {}))
    # Phase 2: write. A new data set is built beside --out and renamed to it at the end; an existing one
    # gets its rows appended (a kill part-way is repaired by --resume: the names match).
    target = out_dir if has_data else _building_dir(out_dir)
    if not has_data and target.exists():
        shutil.rmtree(target)   # a killed earlier import's half-built folder (under our lock: nobody else's)
    try:
        with DatasetWriter(target, meta, resume=has_data, fsync=False) as wr:
            for e, name, (strip, face, frame, pose, eyes) in items:
                wr.add(strip, e.row, e.col, subject=e.subject, session=e.session, name=name, face=face, frame=frame,
                       pose=pose, eyes=eyes)
                summary.imported += 1
                summary.per_session[f"{e.subject}/{e.session}"] += 1
                summary.edge_targets += int(not grid.in_grid(e.row, e.col))
        with warnings.catch_warnings():   # its warnings would name the hidden folder; training loads say them
            warnings.simplefilter("ignore")
            written = load_dataset(target, load_images=False)   # passes the loader's checks, or says where not
        from gazeneg.data.splits import data_warnings  # splits needs torch (seeding): not at `import --help`

        summary.warnings = data_warnings(written.targets)
        if not has_data:
            if out_dir.is_dir():
                out_dir.rmdir()   # empty (checked above): rename needs the name free
            os.rename(target, out_dir)
    except BaseException:
        if not has_data and target.exists():
            shutil.rmtree(target, ignore_errors=True)
        raise
    return summary


def _existing_paths(out_dir: Path) -> set:
    """The image paths already in a data set's labels.csv (load_dataset checks the file first)."""
    return set(load_dataset(out_dir, load_images=False).paths.tolist())
