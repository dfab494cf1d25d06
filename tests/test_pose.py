"""Head pose as a model input: the selfie convention, the renderer's turned heads, labels.csv's pose
columns, and old checkpoints (docs/face.md, "Head pose")."""

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gazeneg.data.dataset import FACE_FEATURES, DatasetError, DatasetWriter, load_dataset, new_meta
from gazeneg.data.synth import DEFAULT_CONFIG, camera_pose, render_dataset, render_sample, sample_subject
from gazeneg.strip import POSE_SCALE_DEG, face_features, head_rotation, pose_angles, selfie_pose
from tests.conftest import make_tiny_dataset, rewrite_labels

NOSE = np.array([0.0, 0.0, -1.0])   # a head at rest looks along -z, at the screen


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (12, 0, 0), (0, -9, 0), (0, 0, 7), (-14, 8, -5)])
def test_pose_angles_invert_head_rotation(yaw, pitch, roll):
    R = head_rotation(yaw, pitch, roll)
    assert np.allclose(R @ R.T, np.eye(3)) and np.linalg.det(R) == pytest.approx(1.0)
    assert pose_angles(R) == pytest.approx((yaw, pitch, roll), abs=1e-9)


def test_selfie_convention_signs():
    # yaw > 0: the nose turns to the person's right (+x); pitch > 0: up (-y); roll > 0: the person's right
    # eye (+x) goes down (+y), which is clockwise in the mirrored image.
    assert (head_rotation(10, 0, 0) @ NOSE)[0] > 0.15
    assert (head_rotation(0, 10, 0) @ NOSE)[1] < -0.15
    assert (head_rotation(0, 0, 10) @ np.array([1.0, 0.0, 0.0]))[1] > 0.15


def test_selfie_pose_mirrors_yaw_and_roll_and_drops_failed_poses():
    assert selfie_pose((12.0, -5.0, 3.0)) == (-12.0, -5.0, -3.0)
    assert selfie_pose(None) == (0.0, 0.0, 0.0)
    assert selfie_pose((float("nan"),) * 3) == (0.0, 0.0, 0.0)
    # Mirroring is conjugation by diag(-1, 1, 1): the same decomposition gives exactly these signs.
    M = np.diag([-1.0, 1.0, 1.0])
    for pose in [(12.0, -5.0, 3.0), (-7.0, 9.0, -11.0)]:
        assert pose_angles(M @ head_rotation(*pose) @ M) == pytest.approx(selfie_pose(pose), abs=1e-9)


def test_face_features_carry_the_pose_scaled():
    f = face_features(220, 140, 200, 200, 640, 480, 15.0, -30.0, 6.0)
    assert f.shape == (FACE_FEATURES,) == (7,)
    assert f[4:].tolist() == pytest.approx([15 / POSE_SCALE_DEG, -1.0, 6 / POSE_SCALE_DEG])
    assert face_features(220, 140, 200, 200, 640, 480)[4:].tolist() == [0.0, 0.0, 0.0]


def test_a_turned_head_moves_the_irises_like_a_shifted_gaze():
    """The strip follows the eye corners, which turn with the head: at the same target, a head turned to
    the right (yaw > 0) shows the irises further left, by the eye-in-head angle; the pose features say so."""
    cfg = DEFAULT_CONFIG.noiseless()
    sp = sample_subject(np.random.default_rng(3), cfg)

    def iris(pose, row=4.0, col=7.5):
        s = render_sample(sp, row, col, np.random.default_rng(0), config=cfg, head_pose=pose)
        return s.iris_xy.mean(0), s.pose

    (x0, y0), pose0 = iris((0, 0, 0))
    (x_yaw, y_yaw), pose_yaw = iris((6, 0, 0))
    (x_up, y_up), pose_up = iris((0, 6, 0))
    col_step = iris((0, 0, 0), col=8.5)[0][0] - x0
    limbus = math.sqrt(sp.eyeball_radius ** 2 - sp.iris_radius ** 2)
    assert x_yaw - x0 == pytest.approx(-limbus * math.sin(math.radians(6)), rel=0.1) and y_yaw == pytest.approx(y0)
    assert y_up - y0 > 1.0                                  # nose up: the eyes look down in the head
    assert 1.0 < (x0 - x_yaw) / col_step < 2.0              # 6 deg of yaw is one to two columns of gaze
    # The camera above the screen sees a head facing the screen pitched down; turns add to it.
    assert pose0 == pytest.approx((0.0, -21.8, 0.0), abs=0.1)
    assert pose_yaw[0] == pytest.approx(6.0, abs=0.5) and pose_up[1] - pose0[1] == pytest.approx(6.0, abs=0.1)
    assert camera_pose(head_rotation(0, 0, 0)) == pytest.approx(pose0, abs=1e-9)


def test_rendered_labels_hold_the_pose_the_model_gets(tmp_path):
    out = render_dataset(tmp_path / "r", n_subjects=1, frames_per_cell=1, seed=4, workers=1, progress=False,
                         contact_sheet=False)
    rows = list(csv.DictReader(open(out / "labels.csv")))
    truth = list(csv.DictReader(open(out / "truth.csv")))
    pose = np.array([[float(r[k]) for k in ("yaw", "pitch", "roll")] for r in rows])
    head = np.array([[float(r[k]) for k in ("head_yaw", "head_pitch", "head_roll")] for r in truth])
    ds = load_dataset(out, load_images=False)
    assert np.allclose(ds.face[:, 4:] * POSE_SCALE_DEG, pose, atol=1e-3)
    sd = DEFAULT_CONFIG.head_rotation_sd_deg
    assert np.std(head, 0) == pytest.approx(sd, rel=0.25)   # 144 draws
    # camera yaw follows the head's yaw (the pose noise is 1 deg); the pitch sits about 22 deg down
    assert np.corrcoef(pose[:, 0], head[:, 0])[0, 1] > 0.9
    assert np.median(pose[:, 1] - head[:, 1]) == pytest.approx(-21.8, abs=1.0)


def _labels_without_pose(ds_dir):
    def drop(rows):
        keep = [i for i, c in enumerate(rows[0]) if c not in ("yaw", "pitch", "roll")]
        return [[r[i] for i in keep] for r in rows]

    rewrite_labels(ds_dir, drop)


def test_labels_without_pose_columns_load_with_zero_pose_and_a_warning(tmp_path):
    ds_dir = make_tiny_dataset(tmp_path / "ds", subjects=1, cells=[0, 5])
    _labels_without_pose(ds_dir)
    with pytest.warns(UserWarning, match=r"labels\.csv: no head-pose column\(s\) yaw, pitch, roll"):
        ds = load_dataset(ds_dir)
    assert ds.face.shape == (2, FACE_FEATURES) and (ds.face[:, 4:] == 0).all() and (ds.face[:, 2] > 0).all()


def test_resuming_an_old_labels_file_keeps_its_columns(tmp_path):
    ds_dir = make_tiny_dataset(tmp_path / "ds", subjects=1, cells=[0])
    _labels_without_pose(ds_dir)
    img = np.zeros((32, 96, 3), np.uint8)
    with DatasetWriter(ds_dir, new_meta("t"), resume=True, fsync=False) as wr:
        wr.add(img, 1.0, 2.0, subject="s00", session="t", face=(1, 2, 30, 30), frame=(64, 48), pose=(5, 5, 5))
    rows = list(csv.reader(open(ds_dir / "labels.csv")))
    assert {len(r) for r in rows} == {len(rows[0])} and "yaw" not in rows[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(load_dataset(ds_dir)) == 2


def test_pose_columns_round_trip_and_bad_values_name_the_line(tmp_path):
    img = np.zeros((32, 96, 3), np.uint8)
    with DatasetWriter(tmp_path / "p", new_meta("t"), fsync=False) as wr:
        wr.add(img, 1.0, 2.0, subject="a", session="t", face=(1, 2, 30, 30), frame=(64, 48), pose=(5, -25.5, 2))
        wr.add(img, 3.0, 2.0, subject="a", session="t", face=(1, 2, 30, 30), frame=(64, 48))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a file with the columns warns about nothing
        ds = load_dataset(tmp_path / "p")
    assert (ds.face[0, 4:] * POSE_SCALE_DEG).tolist() == pytest.approx([5, -25.5, 2])
    assert (ds.face[1, 4:] == 0).all()        # empty pose cells: no pose for that row
    for value, match in (("400", r"labels\.csv line 2: head pose .* not in degrees"), ("up", r"labels\.csv line 2: .*pitch")):
        def set_pitch(rows, value=value):
            rows[1][rows[0].index("pitch")] = value
            return rows

        rewrite_labels(tmp_path / "p", set_pitch)
        with pytest.raises(DatasetError, match=match):
            load_dataset(tmp_path / "p")


def test_a_checkpoint_from_before_the_pose_features_says_retrain(tmp_path):
    from gazeneg.model.checkpoint import CheckpointError, init_state, load_checkpoint, save_checkpoint
    from gazeneg.model.networks import create_model

    model = create_model("mlp")
    path = tmp_path / "old.pt"
    save_checkpoint(path, model, model_name="mlp", model_kwargs={}, config={}, epoch=1)
    ckpt = torch.load(path, weights_only=True)
    for k in list(ckpt["state_dict"]):     # what a 4-feature model held
        if k.startswith("face_mlp."):
            v = ckpt["state_dict"][k]
            ckpt["state_dict"][k] = v[:, :4].clone() if v.ndim == 2 else v[:4].clone() if v.shape == (7,) else v
    torch.save(ckpt, path)
    for load in (load_checkpoint, lambda p: init_state(p, "mlp", {})):
        with pytest.raises(CheckpointError, match=r"old\.pt: was trained on 4 face features.*Retrain"):
            load(path)


def test_the_training_flip_mirrors_yaw_and_roll_with_the_strip():
    """A flipped strip is the mirrored person: col -> 15 - col, and the face features' box x, yaw and roll
    change sign. Checked against the renderer: a head turned right looking at col 5 is the mirror image of a
    head turned left looking at col 10 (iris positions and recorded pose), and both augment paths agree."""
    from gazeneg.data.augment import DeviceAugment, augment_epoch
    from gazeneg.data.dataset import IMAGE_W
    from gazeneg.strip import mirror_face_features

    f = face_features(200, 150, 100, 100, 640, 480, 6.0, -20.0, 3.0)
    m = mirror_face_features(f)
    assert m.tolist() == pytest.approx([-f[0], f[1], f[2], f[3], -f[4], f[5], -f[6]])
    assert mirror_face_features(torch.from_numpy(f)).numpy().tolist() == pytest.approx(m.tolist())

    cfg = DEFAULT_CONFIG.noiseless()
    sp = sample_subject(np.random.default_rng(5), cfg)
    a = render_sample(sp, 3.0, 5.0, np.random.default_rng(0), config=cfg, head_pose=(6.0, 2.0, 4.0))
    b = render_sample(sp, 3.0, 15.0 - 5.0, np.random.default_rng(0), config=cfg, head_pose=(-6.0, 2.0, -4.0))
    assert IMAGE_W - a.iris_xy[::-1, 0] == pytest.approx(b.iris_xy[:, 0], abs=0.05)
    assert a.iris_xy[::-1, 1] == pytest.approx(b.iris_xy[:, 1], abs=0.05)
    fa = face_features(0, 0, 1, 1, 1, 1, *a.pose)
    fb = face_features(0, 0, 1, 1, 1, 1, *b.pose)
    assert mirror_face_features(fa)[4:] == pytest.approx(fb[4:], abs=1e-6)

    imgs = np.stack([a.image] * 64)
    targets = np.tile(np.array([[3.0, 5.0]], np.float32), (64, 1))
    face = np.tile(fa, (64, 1))
    _, t1, f1 = augment_epoch(imgs, targets, face, seed=0, photometric=False, flip=True)
    _, t2, f2 = DeviceAugment(0, "cpu", photometric=False, flip=True)(
        torch.from_numpy(imgs), torch.from_numpy(targets), torch.from_numpy(face))
    for t, ff in ((t1, f1), (t2.numpy(), f2.numpy())):
        flipped = t[:, 1] == 10.0
        assert 0 < flipped.sum() < 64
        assert np.allclose(ff[flipped], mirror_face_features(fa)) and np.allclose(ff[~flipped], fa)


def test_pose_ablation_script_on_a_trained_model(tmp_path, capsys):
    """scripts/pose_ablation.py evaluates the checkpoint's own held-out people: its "as recorded" row is the
    model's error there, its "training mean" row the error with every test pose replaced by the training
    set's mean, and the difference is theirs. A data set without pose has nothing to ablate."""
    from gazeneg.config import from_dict
    from gazeneg.data.splits import load_splits
    from gazeneg.model.checkpoint import load_checkpoint
    from gazeneg.model.networks import predict
    from gazeneg.training.loop import run
    from scripts.pose_ablation import main

    data = render_dataset(tmp_path / "r", n_subjects=5, frames_per_cell=1, seed=2, workers=1, progress=False,
                          contact_sheet=False)
    cfg = from_dict(dict(data=str(data), model="mlp", epochs=3, val_subjects=1, test_subjects=1, augment=False,
                         flip=False, ema=0.0, progress=False, out=str(tmp_path / "runs"), threads=1))
    run_dir = run(cfg, argv=[], log=lambda *_: None)
    ckpt = Path(run_dir) / "best.pt"
    assert main(["--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    model, _ = load_checkpoint(ckpt)
    test = load_splits(cfg).test
    own = np.linalg.norm(predict(model, test.images, test.face) - test.targets, axis=1).mean()
    rows = {line[:22].strip(): line[22:].split() for line in out.splitlines()
            if line.startswith(("pose as recorded", "pose = training mean", "pose shuffled"))}
    assert float(rows["pose as recorded"][0]) == pytest.approx(own, abs=5e-4)
    sp = load_splits(cfg)
    face = test.face.copy()
    face[:, 4:] = sp.train.face[:, 4:].mean(0)
    no_pose = np.linalg.norm(predict(model, test.images, face) - test.targets, axis=1).mean()
    assert float(rows["pose = training mean"][0]) == pytest.approx(no_pose, abs=5e-4)
    assert rows["pose = training mean"][1] == f"{no_pose - own:+.3f}" and "pose shuffled" in rows

    flat = make_tiny_dataset(tmp_path / "flat", subjects=6, cells=[0, 40, 80])
    cfg2 = from_dict(dict(data=str(flat), model="mlp", epochs=1, val_subjects=1, test_subjects=1, augment=False,
                          flip=False, ema=0.0, progress=False, out=str(tmp_path / "runs2"), threads=1))
    run_dir2 = run(cfg2, argv=[], log=lambda *_: None)
    assert main(["--checkpoint", str(Path(run_dir2) / "best.pt")]) == 1
    assert "carry no head pose" in capsys.readouterr().out
