"""Head pose as a model input: the selfie convention, the renderer's turned heads, labels.csv's pose
columns, and old checkpoints (docs/face.md, "Head pose")."""

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gazeneg.data.dataset import FACE_FEATURES, DatasetError, DatasetWriter, load_dataset, new_meta
from gazeneg.data.synth import DEFAULT_CONFIG, camera_pose, render_dataset, render_sample, sample_subject
from gazeneg.strip import (
    POSE_SCALE_DEG,
    RELATIVE_POSE_LIMIT_DEG,
    PoseReference,
    face_features,
    head_rotation,
    pose_angles,
    pose_reference,
    relative_pose,
    selfie_pose,
)
from tests.conftest import fast_config, make_tiny_dataset, rewrite_labels

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
    assert f.shape == (FACE_FEATURES,) == (13,)
    assert f[4:7].tolist() == pytest.approx([15 / POSE_SCALE_DEG, -1.0, 6 / POSE_SCALE_DEG])
    assert face_features(220, 140, 200, 200, 640, 480)[4:].tolist() == [0.0] * 9


def test_a_turned_head_moves_the_irises_like_a_shifted_gaze():
    """The strip follows the eye corners, which turn with the head: at the same target, a head turned to
    the right (yaw > 0) shows the irises further left, by the eye-in-head angle; the pose features say so."""
    import dataclasses

    cfg = dataclasses.replace(DEFAULT_CONFIG.noiseless(), iris_view="head")   # the eye-in-head premise pinned here
    sp = _neutral(sample_subject(np.random.default_rng(3), cfg))

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


def _neutral(sp):
    """The person with the camera at the screen's top centre, no pose bias, no posture, no kappa."""
    import dataclasses

    return dataclasses.replace(sp, camera_cm=(0.0, -18.0, 0.0), pose_bias=(0.0, 0.0, 0.0),
                               posture=(0.0, 0.0, 0.0), kappa=((0.0, 0.0), (0.0, 0.0)))


@pytest.mark.parametrize("seed", [4, 1])
def test_rendered_labels_hold_the_measured_pose_and_the_model_gets_it_relative(tmp_path, seed):
    """labels.csv holds the pose the person's camera measures (with the person's bias); the loader hands the
    model the turn away from the person's median, which follows the head's own turn away from its posture
    whatever the camera's place (seed 4: camera above the screen, seed 1: beside it)."""
    out = render_dataset(tmp_path / "r", n_subjects=2, frames_per_cell=1, seed=seed, workers=1, progress=False,
                         contact_sheet=False)
    meta = json.loads((out / "meta.json").read_text())
    rows = list(csv.DictReader(open(out / "labels.csv")))
    truth = list(csv.DictReader(open(out / "truth.csv")))
    ds = load_dataset(out, load_images=False)
    for name, sp in meta["subjects"].items():
        m = np.array([r["subject"] == name for r in rows])
        pose = np.array([[float(r[k]) for k in ("yaw", "pitch", "roll")] for r in rows])[m]
        head = np.array([[float(r[k]) for k in ("head_yaw", "head_pitch", "head_roll")] for r in truth])[m]
        rel_true = np.array([pose_angles(head_rotation(*sp["posture"]).T @ head_rotation(*h)) for h in head])
        assert np.std(rel_true, 0) == pytest.approx(DEFAULT_CONFIG.head_rotation_sd_deg, rel=0.3)   # 144 draws
        raw = face_features(0, 0, 1, 1, 1, 1, *pose.T)
        expected, _ = relative_pose(raw, pose_reference(raw))
        assert np.allclose(ds.face[m, 4:7], expected[:, 4:7], atol=1e-3)
        rel = ds.face[m, 4:7] * POSE_SCALE_DEG
        for k in range(3):   # the pose noise is 1 deg, the bias a fixed turn of a few degrees
            assert np.corrcoef(rel[:, k], rel_true[:, k])[0, 1] > 0.8, (name, sp["camera_cm"], k)
    places = {tuple(sp["camera_cm"])[1] for sp in meta["subjects"].values()}
    assert places  # both seeds' people load; which camera places they drew is in meta.json


def test_a_constant_pose_offset_for_a_person_changes_no_prediction(tmp_path):
    """The camera moved or set up elsewhere (above, below, beside the screen): the same turn C applied to every
    measured head pose of a person (R -> C R) leaves what the model sees, and so every prediction, unchanged;
    another person's rows are untouched."""
    from gazeneg.model.networks import create_model, predict

    ds_dir = make_tiny_dataset(tmp_path / "ds", subjects=2, cells=[0, 5, 17, 40, 100, 143])
    rng = np.random.default_rng(0)

    def set_pose(rows, offset=(0.0, 0.0, 0.0), who="s00"):
        head = rows[0]
        out = [head]
        for i, r in enumerate(rows[1:]):
            r = list(r)
            g = np.random.default_rng(i).normal(0, 4, 3)
            if r[head.index("subject")] == who:
                g = pose_angles(head_rotation(*offset) @ head_rotation(*g))
            for k, name in enumerate(("yaw", "pitch", "roll")):
                r[head.index(name)] = f"{g[k]:.5f}"
            out.append(r)
        return out

    rewrite_labels(ds_dir, set_pose)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = load_dataset(ds_dir)
        rewrite_labels(ds_dir, lambda rows: set_pose(rows, offset=(17.0, -31.0, 6.0)))
        b = load_dataset(ds_dir)
    torch.manual_seed(0)
    model = create_model("mlp")
    assert np.abs(a.face[:, 4:7]).max() > 0.05                       # there is a pose to see
    assert np.allclose(a.face, b.face, atol=1e-5)
    assert np.allclose(predict(model, a.images, a.face), predict(model, b.images, b.face), atol=1e-2)
    # the live pipeline's reference does the same: a fixed offset on every frame changes nothing
    ref_a, ref_b = PoseReference(window=50), PoseReference(window=50)
    C = head_rotation(17.0, -31.0, 6.0)
    for k in range(40):
        pose = rng.normal(0, 4, 3)
        f = face_features(0, 0, 1, 1, 1, 1, *pose)
        fa = ref_a.apply(f)
        fb = ref_b.apply(face_features(0, 0, 1, 1, 1, 1, *pose_angles(C @ head_rotation(*pose))))
        if k:   # from the second frame on the reference is a median of frames: both follow their own
            assert np.abs(fa[4:7] - fb[4:7]).max() < 0.05 / POSE_SCALE_DEG + 0.25 * np.abs(fa[4:7]).max()
    assert np.allclose(fa, fb, atol=0.5 / POSE_SCALE_DEG)


def test_a_pose_beyond_the_trained_range_is_clipped_and_counted(tmp_path):
    lim = np.asarray(RELATIVE_POSE_LIMIT_DEG) / POSE_SCALE_DEG
    face = np.zeros((5, FACE_FEATURES), np.float32)
    face[:, 4] = np.array([0.0, 0.0, 0.0, 0.0, 40.0]) / POSE_SCALE_DEG      # one frame turned 40 deg
    out, clipped = relative_pose(face, np.zeros(3))
    assert clipped.tolist() == [False] * 4 + [True]
    assert out[4, 4] == pytest.approx(lim[0]) and (np.abs(out[:, 4:7]) <= lim + 1e-6).all()
    ref = PoseReference(fixed=np.zeros(3))
    for f in face:
        ref.apply(f)
    assert (ref.n_seen, ref.n_clipped, ref.last_clipped) == (5, 1, True)
    # the loader says how many rows it clipped
    img = np.zeros((32, 96, 3), np.uint8)
    with DatasetWriter(tmp_path / "c", new_meta("t"), fsync=False) as wr:
        for i, yaw in enumerate([0.0, 1.0, -1.0, 2.0, 45.0]):
            wr.add(img, 1.0, float(i), subject="a", session="t", face=(1, 2, 30, 30), frame=(64, 48),
                   pose=(yaw, 0.0, 0.0))
    with pytest.warns(UserWarning, match=r"labels\.csv: 1 of 5 rows have a head pose beyond the trained range"):
        ds = load_dataset(tmp_path / "c")
    raw = face_features(1, 2, 30, 30, 64, 48, np.array([0.0, 1.0, -1.0, 2.0, 45.0]), 0.0, 0.0)
    assert abs(pose_reference(raw)[0] * POSE_SCALE_DEG - 0.5) < 0.01      # the 45 deg frame is left out
    assert ds.face[4, 4] == pytest.approx(lim[0]) and ds.face[0, 4] == pytest.approx(-0.5 / POSE_SCALE_DEG, abs=1e-3)


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
        wr.add(img, 2.0, 2.0, subject="a", session="t", face=(1, 2, 30, 30), frame=(64, 48), pose=(5, -25.5, 2))
    with pytest.warns(UserWarning, match=r"1 of 3 rows have a head pose beyond the trained range") as rec:
        ds = load_dataset(tmp_path / "p")
    assert len(rec) == 1      # a file with the columns warns about nothing else
    # two rows turned (5, -25.5, 2), one without a pose (empty cells: zeros): each reaches the model as its
    # turn away from the person's reference, the row without a pose clipped to the trained range
    raw = face_features(1, 2, 30, 30, 64, 48, [5, 0, 5], [-25.5, 0, -25.5], [2, 0, 2])
    rel, clipped = relative_pose(raw, pose_reference(raw))
    assert clipped.tolist() == [False, True, False]
    assert ds.face[:, 4:7] == pytest.approx(rel[:, 4:7], abs=1e-6)
    assert ds.face[0, 4:7] == pytest.approx(ds.face[2, 4:7], abs=1e-6)
    for value, match in (("400", r"labels\.csv line 2: head pose .* not in degrees"), ("up", r"labels\.csv line 2: .*pitch")):
        def set_pitch(rows, value=value):
            rows[1][rows[0].index("pitch")] = value
            return rows

        rewrite_labels(tmp_path / "p", set_pitch)
        with pytest.raises(DatasetError, match=match):
            load_dataset(tmp_path / "p")


def test_a_checkpoint_from_before_the_pose_features_says_retrain(tmp_path):
    from gazeneg.model.checkpoint import (
        CheckpointError,
        init_state,
        load_checkpoint,
        save_checkpoint,
        weights_digest,
    )
    from gazeneg.model.networks import create_model

    model = create_model("mlp")
    path = tmp_path / "old.pt"
    save_checkpoint(path, model, model_name="mlp", model_kwargs={}, config={}, epoch=1)
    ckpt = torch.load(path, weights_only=True)
    for k in list(ckpt["state_dict"]):     # what a 4-feature model held
        if k.startswith("face_mlp."):
            v = ckpt["state_dict"][k]
            n = FACE_FEATURES
            ckpt["state_dict"][k] = v[:, :4].clone() if v.ndim == 2 else v[:4].clone() if v.shape == (n,) else v
    ckpt["weights_sha256"] = weights_digest(ckpt["state_dict"])
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
    assert m[:7].tolist() == pytest.approx([-f[0], f[1], f[2], f[3], -f[4], f[5], -f[6]])
    assert mirror_face_features(torch.from_numpy(f)).numpy().tolist() == pytest.approx(m.tolist())

    cfg = DEFAULT_CONFIG.noiseless()
    sp = _neutral(sample_subject(np.random.default_rng(5), cfg))
    a = render_sample(sp, 3.0, 5.0, np.random.default_rng(0), config=cfg, head_pose=(6.0, 2.0, 4.0))
    b = render_sample(sp, 3.0, 15.0 - 5.0, np.random.default_rng(0), config=cfg, head_pose=(-6.0, 2.0, -4.0))
    assert IMAGE_W - a.iris_xy[::-1, 0] == pytest.approx(b.iris_xy[:, 0], abs=0.05)
    assert a.iris_xy[::-1, 1] == pytest.approx(b.iris_xy[:, 1], abs=0.05)
    fa = face_features(0, 0, 1, 1, 1, 1, *a.pose, eyes=a.eye_feats)
    fb = face_features(0, 0, 1, 1, 1, 1, *b.pose, eyes=b.eye_feats)
    assert mirror_face_features(fa)[4:] == pytest.approx(fb[4:], abs=1e-4)   # pose and both eyes' landmarks

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
    from gazeneg.data.splits import load_splits
    from gazeneg.model.checkpoint import load_checkpoint
    from gazeneg.model.networks import predict
    from gazeneg.training.loop import run
    from scripts.pose_ablation import main

    data = render_dataset(tmp_path / "r", n_subjects=5, frames_per_cell=1, seed=2, workers=1, progress=False,
                          contact_sheet=False)
    cfg = fast_config(data, tmp_path / "runs", epochs=3, ema=0.0, threads=1)
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
    cfg2 = fast_config(flat, tmp_path / "runs2", ema=0.0, threads=1)
    run_dir2 = run(cfg2, argv=[], log=lambda *_: None)
    assert main(["--checkpoint", str(Path(run_dir2) / "best.pt")]) == 1
    assert "carry no head pose" in capsys.readouterr().out
