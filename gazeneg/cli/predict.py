"""Gaze of a trained checkpoint for a video, an image folder or a data-set folder, to CSV; for a labelled
data-set folder also the error table and a heatmap of the error over the 9x16 grid.

    gazeneg predict runs/.../best.pt recording.mp4                 # -> recording_gaze.csv
    gazeneg predict runs/.../best.pt photos/ --out photos.csv      # an image folder, in file-name order
    gazeneg predict runs/.../best.pt my_capture/                   # a data-set folder (labels.csv): -> my_capture_gaze.csv,
                                                                   #    my_capture_gaze_errors.csv/.json, _heatmap.png
    gazeneg predict best.pt data/synthetic_v2 --subjects s03,s07  # only these subjects (train's held-out test set)

Videos and image folders go through the live pipeline (face and eyes found in each frame, the eye strip
cut, the model, the per-user calibration saved beside the checkpoint unless --calibration none, no
smoothing unless --smoother): the CSV has `gazeneg live --record-gaze`'s columns after `path`. A data-set
folder's strips and face features are fed to the model as `gazeneg train` evaluates them (the same
function), so its figures are train's for the same checkpoint and images.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
from pathlib import Path

from gazeneg.cli.errors import as_cli
from gazeneg.files import atomic_write_text
from gazeneg.units import size_arg
from gazeneg.webcam.filters import SMOOTHERS
from gazeneg.webcam.options import DEFAULT_DISTANCE_CM, DEFAULT_SCREEN_CM, add_face_backend


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a gazeneg checkpoint (best.pt of a run)")
    p.add_argument("source", help="a video file, an image folder, or a data-set folder (with labels.csv)")
    p.add_argument("--out", default=None, help="the CSV to write (default: <source name>_gaze.csv here)")
    p.add_argument("--force", action="store_true", help="overwrite the output files")
    p.add_argument("--subjects", default=None, help="data-set folder: only these subjects (comma-separated)")
    p.add_argument("--smoother", choices=SMOOTHERS, default="none", help="video/images: filter (default none)")
    p.add_argument("--calibration", default="auto", help="video/images: auto (the OS user's "
                   "<checkpoint>.calib.<user>.json if present), none, or a calibration file")
    add_face_backend(p, "videos and image folders: the face finder")
    p.add_argument("--screen", type=size_arg("--screen"), default="1920x1080", metavar="WxH", help="screen pixels for x_px/y_px and the "
                   "error in pixels (default 1920x1080)")
    p.add_argument("--screen-cm", type=size_arg("--screen-cm", "cm"), default="x".join(map(str, DEFAULT_SCREEN_CM)),
                   metavar="WxH",
                   help="screen size in cm (errors in cm, deg; default %(default)s)")
    p.add_argument("--distance-cm", type=float, default=DEFAULT_DISTANCE_CM,
                   help="eye-screen distance (errors in degrees; default %(default)s)")
    return p


def _outputs(args, source: Path, dataset: bool) -> dict[str, Path]:
    name = source.resolve().stem if source.is_file() else source.resolve().name
    out = Path(args.out) if args.out else Path(f"{name or 'source'}_gaze.csv")
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out {out}: must end in .csv")
    files = {"csv": out}
    if dataset:
        stem = out.with_suffix("")
        files.update(errors=Path(f"{stem}_errors.csv"), json=Path(f"{stem}_errors.json"),
                     heatmap=Path(f"{stem}_heatmap.png"))
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not args.force:
        raise ValueError(f"{existing[0]} exists: give another --out or --force to overwrite")
    return files


def predict_dataset(args, root: Path, files: dict) -> dict:
    # torch and the model code only when predicting: `gazeneg predict --help` stays fast
    import numpy as np
    import torch

    from gazeneg.data.dataset import load_dataset
    from gazeneg.model.checkpoint import load_checkpoint
    from gazeneg.model.metrics import error_metrics
    from gazeneg.training.loop import evaluate, tensors
    from gazeneg.training.runfiles import write_predictions
    from gazeneg.webcam.accuracy import TABLE_FIELDS, error_heatmap, format_table, region_table

    model, _ = load_checkpoint(args.checkpoint)
    ds = load_dataset(root)
    if args.subjects:
        want = [s.strip() for s in args.subjects.split(",") if s.strip()]
        unknown = sorted(set(want) - set(ds.subjects))
        if unknown:
            raise ValueError(f"--subjects: {', '.join(unknown)} not in {root} (it has {', '.join(sorted(set(ds.subjects)))})")
        keep = np.isin(ds.subjects, want)
        n = len(keep)
        ds = dataclasses.replace(ds, **{f.name: getattr(ds, f.name)[keep] for f in dataclasses.fields(ds)
                                        if isinstance(getattr(ds, f.name), np.ndarray) and len(getattr(ds, f.name)) == n})
    pred = evaluate(model, tensors(ds), torch.device("cpu"))
    true = ds.targets.astype(np.float64)
    screen_px, screen_cm = args.screen, args.screen_cm
    metrics = error_metrics(pred, true)
    table = region_table(pred, true, screen_cm=screen_cm, distance_cm=args.distance_cm, screen_px=screen_px)
    write_predictions(files["csv"], ds, pred)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    atomic_write_text(files["errors"], buf.getvalue())
    atomic_write_text(files["json"], json.dumps({"checkpoint": str(args.checkpoint), "source": str(root),
                                                 "subjects": sorted(set(ds.subjects)), **metrics,
                                                 "regions": table}, indent=1))
    error_heatmap(pred, true, files["heatmap"], title=f"{Path(args.checkpoint).name} on {root.name}: mean error "
                  "per cell (cells)")
    for line in format_table(table):
        print(line)
    return metrics


def predict_frames(args, source: Path, files: dict) -> int:
    from gazeneg.webcam.record import SAMPLE_FIELDS
    from gazeneg.webcam.sources import ImageFolderSource, open_source
    from gazeneg.webcam.tracker import Tracker

    src = open_source(str(source))
    names = [p.name for p in src.files] if isinstance(src, ImageFolderSource) else None
    calibration = None if args.calibration == "none" else args.calibration
    if calibration == "auto":   # an old per-checkpoint calibration becomes this user's, said once
        from gazeneg.webcam.live import adopt_legacy_calibration

        _, moved = adopt_legacy_calibration(args.checkpoint)
        if moved:
            print(moved)
    rows = []
    with Tracker(args.checkpoint, source=src, smoother=args.smoother, calibration=calibration,
                 face_backend=args.face_backend, screen=args.screen) as tracker:
        for s in tracker:
            d = s.to_dict()
            d["path"] = names[s.frame] if names is not None else f"{source.name}#{s.frame}"
            rows.append(d)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=("path", *SAMPLE_FIELDS), lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    atomic_write_text(files["csv"], buf.getvalue())
    ok = sum(r["state"] == "ok" for r in rows)
    print(f"{len(rows)} frames, {ok} with a gaze point ({len(rows) - ok} without: see the state column)")
    return len(rows)


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    source = Path(args.source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such video, image folder or data-set folder")
    dataset = source.is_dir() and (source / "labels.csv").is_file()
    files = _outputs(args, source, dataset)
    if dataset:
        m = predict_dataset(args, source, files)
        print(f"{m['n']} labelled images: mean error {m['mean_error_cells']:.3f} cells, median "
              f"{m['median_error_cells']:.3f}, cell accuracy {m['cell_accuracy']:.1%}, within one cell "
              f"{m['within1_accuracy']:.1%}")
    else:
        predict_frames(args, source, files)
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


cli = as_cli(main)
