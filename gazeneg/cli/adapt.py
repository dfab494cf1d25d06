"""Match the renders and your webcam: the mean eye strip of your camera's frames, for `gazeneg live
--camera-mean` (your strips brought to the model's training mean; no retraining) or `gazeneg train
--camera-mean` (the renders brought to your camera's mean).

    gazeneg adapt my_frames/ --out camera.npz          # a folder of webcam frames (searched recursively)
    gazeneg adapt me.mp4 --every 5 --out camera.npz    # a video of you at the screen, every 5th frame
    gazeneg adapt my_capture/ --out camera.npz         # a data-set folder from `gazeneg capture` or `import`
    gazeneg live checkpoints/demo.pt --camera-mean camera.npz   # then: your strips brought to the model's
    gazeneg train --camera-mean camera.npz             # or: the synthetic set, matched to your camera's mean

The frames need no labels: any frames of you at your desk, with the webcam and light you will track with,
do (a capture's or a calibration's photos, or 30 seconds of video). Frames and videos go through the live
pipeline (the face finder, both eyes, the corner-cut eye strip; frames without a face or with closed eyes
are skipped); a data-set folder's strips are used as they are. Only the mean strip is written (32x96x3
numbers, from which no face can be read back); nothing leaves your machine. docs/domain-gap.md measures
what it does: the pixel classifier that tells renders from real strips, on frames the mean did not see.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gazeneg.cli.errors import as_cli
from gazeneg.units import at_least
from gazeneg.webcam.options import add_face_backend


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a folder of webcam frames, a video file, or a data-set folder (labels.csv)")
    p.add_argument("--out", required=True, help="the camera-mean file to write (.npz)")
    p.add_argument("--every", type=at_least(1), default=1, help="videos: keep every n-th frame (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_face_backend(p, "frames and videos: the face finder")
    return p


def frame_strips(source: Path, *, face_backend: str = "auto", every: int = 1, progress: bool = True):
    """(strips (N, H, W, 3) uint8 RGB, frames read, {reason: frames skipped}) of a video or a folder of
    frames (recursive), cut as the live pipeline cuts them."""
    import cv2
    import numpy as np
    from tqdm import tqdm

    from gazeneg.strip import IMAGE_H, IMAGE_W
    from gazeneg.webcam.detect import CLOSED, NO_FACE, make_detector, open_eye_strip
    from gazeneg.webcam.sources import ImageFolderSource, VideoFileSource

    if source.is_dir():
        src = ImageFolderSource(source, recursive=True)
        total, video = len(src.files), False
    else:
        src = VideoFileSource(source)
        total, video = int(src.cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None, True
    det = make_detector(face_backend, track=video)
    strips, skipped, n = [], {NO_FACE: 0, CLOSED: 0}, 0
    with tqdm(total=total, desc="eye strips", unit="frame", disable=not progress) as bar:
        while (frame := src.read()) is not None:
            bar.update()
            i, n = n, n + 1
            if i % every:
                continue
            strip, why = open_eye_strip(det, frame)
            if strip is None:
                skipped[why] += 1
            else:
                strips.append(strip)
    src.close()
    return (np.stack(strips) if strips else np.zeros((0, IMAGE_H, IMAGE_W, 3), np.uint8)), n, skipped


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    source, out = Path(args.source).expanduser(), Path(args.out).expanduser()
    if not source.exists():
        raise ValueError(f"{source}: no such file or folder")
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists: give another --out or --force to overwrite")
    from gazeneg.data.adapt import fit_camera_mean

    if source.is_dir() and (source / "labels.csv").is_file():
        from gazeneg.data.dataset import load_dataset

        strips = load_dataset(source).images
        how = f"{len(strips)} strips of the data set {source}"
    else:
        strips, n, skipped = frame_strips(source, face_backend=args.face_backend, every=args.every,
                                          progress=not args.quiet)
        how = (f"{len(strips)} eye strips from {n} frames of {source}"
               + "".join(f"; {v} skipped ({k})" for k, v in skipped.items() if v))
    cam = fit_camera_mean(strips, str(source))
    cam.save(out)
    print(how)
    print(f"camera mean written to {out}; bring your strips to a model's training mean with it, or train on "
          f"renders matched to it:\n    gazeneg live CHECKPOINT --camera-mean {out}\n    gazeneg train --camera-mean {out}")
    return 0


cli = as_cli(main)
