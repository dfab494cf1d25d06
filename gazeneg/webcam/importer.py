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

This module, not data.py, holds the importer, so data.py never imports face.py (face -> landmarks ->
models_cache would lead back to data)."""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

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
from gazeneg.webcam.detect import FaceEyeDetector, crop_eyes, face_columns

CROPS = ("auto", "face", "resize", "eye")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
FILE_COLUMNS = ("filename", "file", "path", "image", "photo")
AUTO_SAMPLE = 12          # photos auto looks at (shape, and faces for whole frames)
STRIP_ASPECT = IMAGE_W / IMAGE_H   # 3.0
EYE_ASPECTS = (1.2, 2.6)  # width/height of a one-eye crop (an eye is about 2:1 with some margin)
EYE_MAX_SIDE = 400        # px: a one-eye crop is small; a whole webcam frame at 2:1 is not an eye
MAX_PIXELS = 64_000_000   # a photo beyond this (a 4K webcam frame is 8.3 MP) is refused before decoding


@dataclass
class Entry:
    line: int
    filename: str
    row: float
    col: float
    subject: str
    session: str


@dataclass
class ImportSummary:
    out: Path
    crop: str                       # the crop used (auto resolved)
    reason: str                     # why (auto) or "chosen" (given)
    imported: int = 0
    skipped: Counter = field(default_factory=Counter)       # reason -> count
    per_session: Counter = field(default_factory=Counter)   # "subject/session" -> imported
    edge_targets: int = 0           # targets in the half cell between the outer cell centres and the edge

    def lines(self) -> list[str]:
        out = [f"imported {self.imported} photo(s) into {self.out}"
               + (f", {self.edge_targets} of them with targets between the outer cell centres and the screen's edge"
                  if self.edge_targets else "")]
        for reason, n in sorted(self.skipped.items()):
            out.append(f"skipped {n}: {reason}")
        for group, n in sorted(self.per_session.items()):
            out.append(f"  {group}: {n}")
        return out


def parse_screen(text: str) -> tuple[int, int]:
    """'1440x900' -> (1440, 900) pixels."""
    try:
        w, h = (int(v) for v in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise DatasetError(f"--screen {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1440x900") from None
    if w <= 0 or h <= 0:
        raise DatasetError(f"--screen {text!r}: width and height must be positive")
    return w, h


def _check_name(kind: str, value: str, csv_path: Path, line: int | None) -> str:
    if not NAME_RE.match(value):
        fail_at(csv_path, line, f"{kind} {value!r}: use letters, digits, - and _ only (a held-out group is "
                              "named subject/session)")
    return value


def read_labels(csv_path, *, screen: tuple[int, int] | None = None, subject: str = "user",
                session: str = "import") -> list[Entry]:
    """The CSV's rows as Entries in (row, col) cells; every bad value is an error naming file and line."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: no such file")
    _check_name("--subject", subject, csv_path, None)
    _check_name("--session", session, csv_path, None)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{csv_path}: not UTF-8 text (byte {e.start})") from None
    rows = [(i, rec) for i, rec in enumerate(csv.reader(text.splitlines()), start=1)
            if rec and any(x.strip() for x in rec)]
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
    entries = []
    for line, rec in rows:
        need = max(fcol, a, b) + 1
        if len(rec) < need:
            fail_at(csv_path, line, f"expected at least {need} columns, got {len(rec)}")
        u = parse_float(rec[a], "y" if pixels else "row", csv_path, line)
        v = parse_float(rec[b], "x" if pixels else "col", csv_path, line)
        if pixels:
            w, h = screen
            if not (0 <= v <= w and 0 <= u <= h):
                fail_at(csv_path, line, f"pixel ({v:g}, {u:g}) is off the {w}x{h} screen")
            r, c = (float(t) for t in grid.from_pixels(v, u, w, h))
        else:
            r, c = u, v
        if not grid.on_screen(r, c):
            fail_at(csv_path, line, f"target ({r:g}, {c:g}) is off the screen (rows {grid.ROW_EDGES[0]}.."
                                  f"{grid.ROW_EDGES[1]}, cols {grid.COL_EDGES[0]}..{grid.COL_EDGES[1]})")
        r = float(np.clip(r, *grid.ROW_EDGES))   # a rounding hair beyond the edge is the edge
        c = float(np.clip(c, *grid.COL_EDGES))
        subj = rec[scol].strip() if scol is not None and scol < len(rec) and rec[scol].strip() else subject
        sess = rec[sscol].strip() if sscol is not None and sscol < len(rec) and rec[sscol].strip() else session
        name = rec[fcol].strip()
        if not name:
            fail_at(csv_path, line, "empty filename")
        entries.append(Entry(line, name, r, c, _check_name("subject", subj, csv_path, line),
                             _check_name("session", sess, csv_path, line)))
    if not entries:
        fail_at(csv_path, None, "has a header but no rows: nothing to import")
    return entries


def _read_photo(photos_dir: Path, e: Entry, csv_path: Path) -> np.ndarray:
    path = (photos_dir / e.filename).resolve()
    if not path.is_relative_to(photos_dir.resolve()):
        fail_at(csv_path, e.line, f"photo {e.filename!r} leads outside the photo folder {photos_dir}")
    # The size from the header, before decoding (as the loader does): a small file can hold a huge image.
    try:
        with PIL.Image.open(path) as im:
            w, h = im.size
    except PIL.Image.DecompressionBombError:
        w = h = MAX_PIXELS   # far beyond: refused below
    except OSError:
        w = h = 0            # not an image PIL knows: cv2 decides below
    if w * h > MAX_PIXELS:
        fail_at(csv_path, e.line, f"photo {e.filename!r} has more than {MAX_PIXELS / 1e6:.0f} megapixels "
                                f"({w}x{h}); not decoded")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        fail_at(csv_path, e.line, f"photo {e.filename!r} is missing or cannot be decoded")
    return img


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


def _detector():
    return FaceEyeDetector()  # OpenCV's Haar cascades: no model files needed


def decide_crop(photos_dir: Path, entries: list[Entry], csv_path: Path) -> tuple[str, str]:
    """auto: one crop for the whole folder, and the reason, from a sample of its photos."""
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
    det = _detector()
    found = sum(det.detect(im) is not None for im in sample)
    if found == 0:
        raise DatasetError(
            f"{photos_dir}: crop auto: the photos look like whole frames ({shape}) but no face and eyes were found "
            f"in any of the {len(sample)} sampled; nothing would be imported. If they are eye crops, pass "
            "--crop eye (one eye) or --crop resize (both eyes)")
    return "face", f"auto: {shape}: whole frames, a face found in {found} of {len(sample)} sampled"


def import_photos(photos_dir, csv_path, out_dir, *, subject: str = "user", session: str = "import",
                  crop: str = "auto", screen: tuple[int, int] | str | None = None, progress: bool = False,
                  resume: bool = False, log=print) -> ImportSummary:
    """Import photos_dir's photos named in csv_path into the data-set folder out_dir (new, or resume=True
    to add to it). Returns the summary; every photo skipped is counted with its reason, and a run that
    would import nothing is an error."""
    photos_dir, csv_path, out_dir = Path(photos_dir), Path(csv_path), Path(out_dir)
    if not photos_dir.is_dir():
        raise DatasetError(f"{photos_dir}: no such folder")
    if crop not in CROPS:
        raise DatasetError(f"crop must be one of {', '.join(CROPS)}, not {crop!r}")
    if isinstance(screen, str):
        screen = parse_screen(screen)
    entries = read_labels(csv_path, screen=screen, subject=subject, session=session)
    # Every photo must exist before anything is written: a typo in the CSV is one error, not a half import.
    for e in entries:
        if not (photos_dir / e.filename).is_file():
            fail_at(csv_path, e.line, f"photo {e.filename!r} is missing or cannot be decoded")
    mode, reason = decide_crop(photos_dir, entries, csv_path) if crop == "auto" else (crop, "chosen with --crop")
    log(f"import: crop {mode} ({reason})")
    summary = ImportSummary(out_dir, mode, reason)
    detector = _detector() if mode == "face" else None
    from tqdm import tqdm

    existed = out_dir.exists()
    meta = new_meta("import", imported_from=str(photos_dir), crop=mode)
    with DatasetWriter(out_dir, meta, resume=resume, fsync=False) as wr:
        for e in tqdm(entries, desc="import", unit="photo", disable=not progress):
            img = _read_photo(photos_dir, e, csv_path)
            face = frame = pose = None
            if mode == "face":
                det = detector.detect(img)
                if det is None:
                    summary.skipped["no face and eyes found (crop face)"] += 1
                    continue
                strip, _feats = crop_eyes(img, det)
                # crop_eyes mirrors (a selfie view, as the renderer draws); so must the face box and pose.
                face, frame, pose = face_columns(det, img.shape[1], img.shape[0])
            elif mode == "eye":
                strip = eye_strip(img)
            else:
                strip = resize_strip(img)
            name = f"{e.subject}_{e.session}_{Path(e.filename).stem}_{e.line:06d}.png"
            if f"images/{name}" in wr.paths:  # resume: imported already
                summary.skipped["already imported (resume)"] += 1
                continue
            wr.add(strip, e.row, e.col, subject=e.subject, session=e.session, name=name, face=face, frame=frame, pose=pose)
            summary.imported += 1
            summary.per_session[f"{e.subject}/{e.session}"] += 1
            summary.edge_targets += int(not grid.in_grid(e.row, e.col))
    if summary.imported == 0 and not summary.skipped.get("already imported (resume)"):
        if not existed:   # leave no empty data set behind (it would make the next try need --resume)
            shutil.rmtree(out_dir)
        raise DatasetError(f"{photos_dir}: none of the {len(entries)} photos could be imported "
                           f"({'; '.join(f'{n} {r}' for r, n in summary.skipped.items())}); try another --crop")
    load_dataset(out_dir, load_images=False)   # what was written passes the loader's checks, or says where not
    return summary
