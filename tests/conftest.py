"""What the tests share: a tiny dataset whose images encode the gaze point as a dark disc (training tests run in
seconds without the renderer), the quick training config, the astronaut photo and its moving face as frames,
a video or an image folder, a list of frames as a camera, a tiny checkpoint, and a loader for the programs
outside the package (scripts/, benchmarks/). Test modules import the helpers from tests.conftest; the
fixtures (tiny_dataset, photo) pytest hands them by name."""

import csv
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from gazeneg import grid
from gazeneg.data.dataset import IMAGE_H, IMAGE_W, DatasetWriter, new_meta
from gazeneg.testing import astronaut_path, moving_face_frames
from gazeneg.webcam import model_files

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str, folder: str = "scripts"):
    """A program outside the package (scripts/NAME.py, benchmarks/NAME.py), loaded by its path as a fresh
    module each call (so a test's monkeypatching of it stays in that test)."""
    path = ROOT / folder / f"{name}.py"
    assert path.is_file(), path
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fast_config(data, out=None, **kw):
    """The quick training config the tests train with: the small mlp, one epoch, one validation and one test
    subject, no augmentation or flip, no progress bar; kw overrides or adds any TrainConfig field."""
    from gazeneg.config import from_dict

    base = dict(data=str(data), model="mlp", epochs=1, val_subjects=1, test_subjects=1, progress=False,
                augment=False, flip=False)
    if out is not None:
        base["out"] = str(out)
    return from_dict({**base, **kw})


def train_losses(run_dir) -> list[float]:
    """The train_loss column of a run folder's metrics.csv, one value per epoch."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


def read_photo() -> np.ndarray:
    img = cv2.imread(str(astronaut_path()), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (512, 512, 3)
    return img


@pytest.fixture(scope="module")
def photo():
    """The astronaut (scikit-image's test photo), BGR, 512x512; per module, so a test that paints on it
    affects only its own module."""
    return read_photo()


def face_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """n 640x480 frames of the astronaut's face moving a few pixels, like a person sitting still."""
    return [f for f, _ in moving_face_frames(read_photo(), n, seed=seed)]


def write_folder(folder: Path, frames) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), f)
    return folder


def write_video(path: Path, frames, fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert wr.isOpened(), "OpenCV cannot write an MJPG .avi here"
    for f in frames:
        wr.write(f)
    wr.release()
    return path


def tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A width-8 GazeCNN saved as a checkpoint (random weights: the outputs vary with the input, which is
    what the plumbing tests need)."""
    import torch

    from gazeneg.model.checkpoint import save_checkpoint
    from gazeneg.model.networks import create_model

    torch.manual_seed(seed)
    model = create_model("gazecnn", width=8)
    ckpt = folder / "best.pt"
    save_checkpoint(ckpt, model, model_name="gazecnn", model_kwargs={"width": 8}, config={}, epoch=0)
    return ckpt


class ListSource:
    """A camera made of a list of frames (a file source: not live, 30 fps); raises `error` when asked for frame
    number `fail_at` (a crash, an unplugged camera); None once the list is used up."""

    live = False
    fps = 30.0

    def __init__(self, frames, *, fail_at=None, error=None):
        self.frames, self.fail_at, self.i = frames, fail_at, 0
        self.error = error or RuntimeError("simulated crash")

    def read(self):
        if self.fail_at is not None and self.i == self.fail_at:
            raise self.error
        if self.i >= len(self.frames):
            return None
        f = self.frames[self.i]
        self.i += 1
        return f

    def close(self):
        pass


def rewrite_labels(ds_dir, fn):
    """Replace a dataset's labels.csv rows (header included) by fn(rows): how tests corrupt or age a file."""
    path = ds_dir / "labels.csv"
    rows = fn(list(csv.reader(open(path, newline=""))))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def make_tiny_dataset(root, *, subjects=6, cells=None, frames=1, seed=0):
    rng = np.random.default_rng(seed)
    cells = range(grid.N_CELLS) if cells is None else cells
    with DatasetWriter(root, new_meta("test-tiny"), fsync=False) as wr:
        for s in range(subjects):
            shade = int(rng.integers(150, 220))
            for c in cells:
                r, cc = grid.index_to_cell(c)
                for k in range(frames):
                    img = np.full((IMAGE_H, IMAGE_W, 3), shade, np.uint8)
                    x = 8 + cc * (IMAGE_W - 16) / grid.COL_MAX + rng.normal(0, 0.3)
                    y = 6 + r * (IMAGE_H - 12) / grid.ROW_MAX + rng.normal(0, 0.3)
                    cv2.circle(img, (int(round(x * 4)), int(round(y * 4))), 12, (30, 30, 30), -1,
                               lineType=cv2.LINE_AA, shift=2)
                    wr.add(img, float(r), float(cc), subject=f"s{s:02d}", session="t",
                           name=f"s{s:02d}_{c:03d}_{k}.png", face=(200 + s, 150, 220, 220), frame=(640, 480))
    return root


@pytest.fixture(scope="session")
def landmark_models():
    """The face-landmark model files, fetched into the user cache if need be; the test is skipped only if that
    is impossible."""
    try:
        model_files.fetch(quiet=True)
    except model_files.ModelFileError as e:
        pytest.skip(f"landmark model files unavailable and could not be fetched: {e}")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds")
