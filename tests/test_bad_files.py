"""Files that lie (issue 24 items 11-13): an image whose size only its decoder knows, a header declaring a
huge image, a meta.json declaring huge strips, a checkpoint with a flipped bit. Each is refused before
memory is spent or a wrong number is shown, with one line naming the file."""

import json
import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from gazeneg.data.dataset import DatasetError, load_dataset
from gazeneg.webcam.sources import CaptureError, ImageFolderSource
from tests.conftest import make_tiny_dataset


def _hdr_named_png(path, shape=(32, 96, 3)):
    """A Radiance HDR file (OpenCV decodes it; PIL cannot read its size) under a .png name."""
    tmp = path.with_suffix(".hdr")
    assert cv2.imwrite(str(tmp), np.ones(shape, np.float32))
    os.replace(tmp, path)


def _png_declaring(path, w, h):
    """A few hundred bytes of PNG whose header declares w x h pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


@pytest.fixture
def small_ds(tmp_path):
    return make_tiny_dataset(tmp_path / "ds", subjects=1, cells=range(4))


def test_the_loader_refuses_an_image_whose_size_only_opencv_reads(small_ds):
    """Item 11: a Radiance HDR named .png passed the PIL header check (PIL cannot open it) and cv2 decoded
    it whatever its size; now it is refused, naming labels.csv's line."""
    first = sorted((small_ds / "images").iterdir())[0]
    _hdr_named_png(first)
    with pytest.raises(DatasetError, match=rf"labels\.csv line \d: image 'images/{first.name}' is not a PNG, JPEG, BMP, TIFF or WebP image \(its size cannot be checked"):
        load_dataset(small_ds)


def test_the_loader_refuses_a_huge_header_with_its_real_size(small_ds):
    first = sorted((small_ds / "images").iterdir())[0]
    _png_declaring(first, 32000, 34000)
    with pytest.raises(DatasetError, match=r"is 32000x34000 pixels \(PNG\), more than 3072 pixels; not decoded "
                                           r"\(meta\.json says 96x32\)"):
        load_dataset(small_ds)


def test_image_folder_sources_bound_their_frames(tmp_path):
    """Item 11: `live --source dir` and `capture --source dir` read frames through the same bounded reader."""
    cv2.imwrite(str(tmp_path / "0.png"), np.full((48, 64, 3), 90, np.uint8))
    _hdr_named_png(tmp_path / "1.png", (40, 40, 3))
    _png_declaring(tmp_path / "2.png", 32000, 34000)
    src = ImageFolderSource(tmp_path)
    assert src.read().shape == (48, 64, 3)
    with pytest.raises(CaptureError, match=r"1\.png: is not a PNG, JPEG, BMP, TIFF or WebP image \(its size cannot be checked before"):
        src.read()
    with pytest.raises(CaptureError, match=r"2\.png: is 32000x34000 pixels \(PNG\), more than 64 megapixels"):
        src.read()


def test_a_declared_image_size_is_bounded_before_allocating(tmp_path):
    """Item 13: meta.json image_size [4096, 4096] over 2,600 rows would allocate 130 GB (ArrayMemoryError)."""
    ds = make_tiny_dataset(tmp_path / "ds", subjects=1, cells=range(1))
    meta = json.loads((ds / "meta.json").read_text())
    (ds / "meta.json").write_text(json.dumps({**meta, "image_size": [4096, 4096]}))
    labels = (ds / "labels.csv").read_text().splitlines()
    src = labels[1].split(",")[0]
    rows = [labels[0]]
    for i in range(2600):   # hard links: 2,600 rows, one tiny file
        os.link(ds / src, ds / f"images/l{i}.png")
        rows.append(",".join([f"images/l{i}.png"] + labels[1].split(",")[1:]))
    (ds / "labels.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"meta\.json: image_size \[4096, 4096\] for 2600 rows needs 121\.9 GiB"):
        load_dataset(ds)


def _saved_mlp(path):
    from gazeneg.model.checkpoint import save_checkpoint
    from gazeneg.model.networks import create_model

    model = create_model("mlp")
    save_checkpoint(path, model, model_name="mlp", model_kwargs={}, config={}, epoch=0)
    return model


def test_a_flipped_bit_in_a_checkpoint_is_found_at_load(tmp_path):
    """Item 12: flip one exponent bit of a weight inside last.pt: refused at load, naming the file (it ran
    with predictions of 1.8e35 cells)."""
    from gazeneg.model.checkpoint import CheckpointError, init_state, load_checkpoint

    model = _saved_mlp(tmp_path / "last.pt")
    w = next(v for v in model.state_dict().values() if v.is_floating_point() and v.numel() > 100)
    raw = bytearray((tmp_path / "last.pt").read_bytes())
    at = raw.find(w.numpy().tobytes()[:64])
    assert at > 0 and raw.count(w.numpy().tobytes()[:64]) == 1
    raw[at + 3] ^= 0x40                    # float32 little-endian: byte 3 holds the sign and the top exponent bits
    (tmp_path / "last.pt").write_bytes(bytes(raw))
    for load in (load_checkpoint, lambda p: init_state(p, "mlp", {"head": "regression"})):
        with pytest.raises(CheckpointError, match=r"last\.pt: its weights do not match the digest stored with them"):
            load(tmp_path / "last.pt")


def test_a_model_with_absurd_outputs_is_refused(tmp_path):
    """Item 12: a checkpoint without a digest (written before it existed) whose weights put a plain grey strip
    1e30 cells away is refused at load and for --init, naming the file."""
    import torch

    from gazeneg.model.checkpoint import CheckpointError, init_state, load_checkpoint

    _saved_mlp(tmp_path / "old.pt")
    d = torch.load(tmp_path / "old.pt", weights_only=True)
    del d["weights_sha256"]
    bias = [k for k, v in d["state_dict"].items() if k.endswith("bias") and v.numel() == 2][-1]
    d["state_dict"][bias] = torch.full_like(d["state_dict"][bias], 1e30)
    torch.save(d, tmp_path / "old.pt")
    for load in (load_checkpoint, lambda p: init_state(p, "mlp", {"head": "regression"})):
        with pytest.raises(CheckpointError, match=r"old\.pt: predicts .* cells for a plain grey strip, absurd"):
            load(tmp_path / "old.pt")
