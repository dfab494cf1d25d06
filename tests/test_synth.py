"""The synthetic renderer: exact, deterministic labels; the gaze signal points the right way on
non-symmetric cells; the written folder is a valid data set; nuisances happen at their rates."""

import dataclasses
import json

import numpy as np
import pytest

from gazeneg import grid
from gazeneg.data import synth
from gazeneg.data.dataset import IMAGE_H, IMAGE_W, DatasetError, face_features, load_dataset
from gazeneg.data.synth import (
    DEFAULT_CONFIG,
    SynthConfig,
    default_dataset_path,
    ensure_default_dataset,
    render_dataset,
    render_sample,
    sample_subject,
)
from scripts.render_synthetic import main as cli_main

CLEAN = DEFAULT_CONFIG.noiseless()


@pytest.fixture(scope="module")
def subject():
    # the convention tests pin directions on a person with the camera at the screen's top centre, no
    # posture and the same kappa in both eyes (the per-person draws have tests of their own)
    return dataclasses.replace(sample_subject(np.random.default_rng(7)), camera_cm=(0.0, -18.0, 0.0),
                               pose_bias=(0.0, 0.0, 0.0), posture=(0.0, 0.0, 0.0), kappa=((5.0, 0.0), (5.0, 0.0)))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """2 subjects x 144 cells x 1 frame, rendered in-process."""
    return render_dataset(tmp_path_factory.mktemp("synth") / "ds", n_subjects=2, frames_per_cell=1, seed=3,
                          workers=1, progress=False)


def _render(subject, row, col, config=CLEAN, seed=0):
    return render_sample(subject, row, col, np.random.default_rng(seed), config=config)


def _dark_centroid(img):
    """Centroid (x, y) of the darkest pixels of each half of the strip: the pupil and iris."""
    g = img.astype(np.float64).mean(axis=2)
    out = []
    for x0 in (0, IMAGE_W // 2):
        half = g[:, x0:x0 + IMAGE_W // 2]
        ys, xs = np.nonzero(half <= np.percentile(half, 4))
        out.append((xs.mean() + x0, ys.mean()))
    return np.array(out)


# ----------------------------------------------------------------------------------------------
# Label direction, pinned on non-symmetric cells


def test_iris_moves_right_for_larger_col(subject):
    a, b = _render(subject, 2, 3), _render(subject, 2, 11)
    assert np.all(b.iris_xy[:, 0] > a.iris_xy[:, 0] + 5)          # ~1.1 px per column
    assert np.allclose(b.iris_xy[:, 1], a.iris_xy[:, 1], atol=0.5)
    da, db = _dark_centroid(a.image), _dark_centroid(b.image)
    assert np.all(db[:, 0] > da[:, 0] + 4)


def test_iris_moves_down_for_larger_row(subject):
    a, b = _render(subject, 2, 11), _render(subject, 6, 11)
    assert np.all(b.iris_xy[:, 1] > a.iris_xy[:, 1] + 3)          # ~1.2 px per row
    assert np.allclose(b.iris_xy[:, 0], a.iris_xy[:, 0], atol=0.5)
    da, db = _dark_centroid(a.image), _dark_centroid(b.image)
    assert np.all(db[:, 1] > da[:, 1] + 2)


def test_sub_cell_shift_changes_pixels(subject):
    # Anti-aliasing: a tenth of a column still changes the image.
    a, b = _render(subject, 4, 7.0), _render(subject, 4, 7.1)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).sum() > 0


def test_vergence_each_eye_its_own_line_of_sight():
    # From the head centre the two eyes, iod apart, see a centred target at mirror-image angles.
    d = synth.eye_directions([0, 0, 50], 6.0, [0, 0, 0])
    assert d[0, 0] > 0 > d[1, 0] and np.isclose(d[0, 0], -d[1, 0])
    assert np.all(d[:, 2] < 0)


def test_upper_lid_follows_vertical_gaze(subject):
    # Looking down lowers the upper lid: the top of the eye opening (bright sclera) moves down.
    def open_top(img):
        g = img.astype(np.float64).mean(axis=2)[:, 14:34]    # a column band through the left eye
        rows = np.nonzero((g > 170).sum(axis=1) > 2)[0]
        return rows.min()

    white = dataclasses.replace(subject, sclera_rgb=(245.0, 245.0, 245.0))   # webcam sclera is grey: whiten it here
    up, down = _render(white, 0, 3), _render(white, 8, 3)
    assert open_top(down.image) > open_top(up.image)


# ----------------------------------------------------------------------------------------------
# Determinism and the face box


def test_same_seed_same_sample_different_seed_differs(subject):
    a = render_sample(subject, 2, 11, np.random.default_rng(5))
    b = render_sample(subject, 2, 11, np.random.default_rng(5))
    c = render_sample(subject, 2, 11, np.random.default_rng(6))
    assert a.image.tobytes() == b.image.tobytes() and a.face == b.face
    assert a.image.tobytes() != c.image.tobytes()


def test_face_box_follows_head():
    sp = sample_subject(np.random.default_rng(0))
    centre = synth.face_box([0, 0, 50], sp.face_w_cm)
    right = synth.face_box([3, 0, 50], sp.face_w_cm)
    lower = synth.face_box([0, 3, 50], sp.face_w_cm)
    near = synth.face_box([0, 0, 45], sp.face_w_cm)
    f = face_features(*np.array([centre, right, lower, near]).T, 640, 480)
    assert f[1, 0] > f[0, 0] + 0.03       # mirrored camera: head to the right, box to the right
    assert f[2, 1] > f[0, 1] + 0.03       # head lower, box lower
    assert f[3, 2] > f[0, 2] * 1.05       # closer, bigger
    assert abs(f[0, 0]) < 1e-6 and abs(f[0, 1]) < 0.02   # the camera is aimed at the nominal head


def test_head_position_changes_face_box_and_eyes(subject):
    # the eye-in-head view: the eyes rotate to hold the target (the camera view, where the iris shows the angle
    # between the target and the camera, moves little: test_real_person pins that)
    cfg = dataclasses.replace(CLEAN, head_range_cm=(3.0, 3.0, 5.0), iris_view="head")
    samples = [_render(subject, 4, 7, cfg, seed=s) for s in range(4)]
    heads = np.array([s.head_cm for s in samples])
    faces = np.array([s.face for s in samples])
    # Box centre x tracks head x (parallax is recoverable from the face box) ...
    assert np.corrcoef(heads[:, 0], faces[:, 0] + faces[:, 2] / 2)[0, 1] > 0.9
    # ... and the same target seen from elsewhere rotates the eyes differently.
    assert np.ptp(np.array([s.iris_xy[0, 0] for s in samples])) > 0.5


# ----------------------------------------------------------------------------------------------
# Nuisance rates


def test_blink_and_lapse_rates_and_label_noise(subject):
    cfg = dataclasses.replace(DEFAULT_CONFIG, blink_rate=0.2, lapse_rate=0.1)
    rng = np.random.default_rng(0)
    n = 300
    samples = [render_sample(subject, 2, 11, rng, config=cfg) for _ in range(n)]
    blinks = np.mean([s.blink for s in samples])
    lapses = np.mean([s.lapse for s in samples])
    assert 0.13 < blinks < 0.27 and 0.05 < lapses < 0.16
    fix = np.array([s.gaze for s in samples if not s.lapse]) - (2, 11)
    assert np.all(np.abs(fix.std(axis=0) - cfg.fixation_sd_cells) < 0.04)


def test_blink_closes_the_eyes(subject):
    cfg = dataclasses.replace(CLEAN, blink_rate=1.0)
    white = dataclasses.replace(subject, sclera_rgb=(245.0, 245.0, 245.0))   # webcam sclera is grey: whiten it here
    open_, shut = _render(white, 4, 7), _render(white, 4, 7, cfg)
    assert shut.blink
    # The white sclera disappears.
    assert (open_.image.mean(axis=2) > 190).sum() > 100 > (shut.image.mean(axis=2) > 190).sum()


def test_noiseless_config_is_exact(subject):
    s = _render(subject, 2, 11)
    assert s.gaze == (2.0, 11.0) and not s.blink and not s.lapse
    assert np.allclose(s.head_cm, [0, 0, CLEAN.distance_cm])


@pytest.mark.parametrize("field,value", [("blink_rate", 1.5), ("iris_radius_px", 20.0), ("supersample", 0),
                                         ("head_range_cm", (1.0, 1.0)), ("gamma", (2.0, 1.0))])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SynthConfig(**{field: value})


def test_target_outside_grid_is_an_error(subject):
    with pytest.raises(ValueError, match="outside"):
        _render(subject, 9, 3)


# ----------------------------------------------------------------------------------------------
# Whole data sets


def test_written_set_loads_with_expected_rows(small_set):
    ds = load_dataset(small_set)
    assert len(ds) == 2 * grid.N_CELLS
    assert ds.images.shape == (2 * grid.N_CELLS, IMAGE_H, IMAGE_W, 3)
    assert sorted(set(ds.subjects)) == ["s00", "s01"] and set(ds.sessions) == {"synth"}
    assert set(map(tuple, ds.targets.tolist())) == set(map(tuple, grid.cell_centres().tolist()))
    assert np.all(ds.face[:, 2] > 0.1) and np.all(np.abs(ds.face[:, :2]) < 0.2)
    meta = json.loads((small_set / "meta.json").read_text())
    assert meta["source"] == "synthetic" and meta["params"]["seed"] == 3
    assert meta["params"]["config"]["screen_w_cm"] == DEFAULT_CONFIG.screen_w_cm
    assert set(meta["subjects"]) == {"s00", "s01"}
    truth = (small_set / "truth.csv").read_text().splitlines()
    assert truth[0].startswith("path,gaze_row,gaze_col") and len(truth) == len(ds) + 1
    assert (small_set / "contact_sheet.png").stat().st_size > 10_000


def test_same_seed_same_bytes_any_worker_count(small_set, tmp_path):
    other = render_dataset(tmp_path / "again", n_subjects=2, frames_per_cell=1, seed=3, workers=2,
                           progress=False, contact_sheet=False)
    assert (other / "labels.csv").read_bytes() == (small_set / "labels.csv").read_bytes()
    assert (other / "truth.csv").read_bytes() == (small_set / "truth.csv").read_bytes()
    for name in ("s00_synth_000_0.png", "s01_synth_043_0.png", "s01_synth_143_0.png"):
        assert (other / "images" / name).read_bytes() == (small_set / "images" / name).read_bytes()


def test_different_seed_differs(small_set, tmp_path):
    other = render_dataset(tmp_path / "seed4", n_subjects=1, frames_per_cell=1, seed=4, workers=1,
                           progress=False, contact_sheet=False)
    name = "images/s00_synth_043_0.png"
    assert (other / name).read_bytes() != (small_set / name).read_bytes()


def test_refuses_a_used_folder_and_bad_counts(small_set, tmp_path):
    with pytest.raises(DatasetError, match="already exists"):
        render_dataset(small_set, n_subjects=1, frames_per_cell=1, progress=False)
    with pytest.raises(ValueError, match="n_subjects"):
        render_dataset(tmp_path / "x", n_subjects=0)
    with pytest.raises(ValueError, match="frames_per_cell"):
        render_dataset(tmp_path / "x", frames_per_cell=1.5)
    with pytest.raises(ValueError, match="workers"):
        render_dataset(tmp_path / "x", workers=0)
    assert not (tmp_path / "x").exists()


def test_ensure_default_dataset_renders_once(tmp_path, monkeypatch):
    monkeypatch.setenv(synth.DATA_DIR_ENV, str(tmp_path))
    kw = dict(n_subjects=1, frames_per_cell=1, seed=0)
    path = default_dataset_path(**kw)
    assert path.parent == tmp_path / "synthetic" and path.name.startswith("default-")
    assert default_dataset_path(**kw) != default_dataset_path(n_subjects=1, frames_per_cell=1, seed=1)
    assert ensure_default_dataset(workers=1, progress=False, **kw) == path
    stamp = (path / "labels.csv").stat().st_mtime_ns
    assert ensure_default_dataset(workers=1, progress=False, **kw) == path
    assert (path / "labels.csv").stat().st_mtime_ns == stamp            # reused, not re-rendered
    # An incomplete folder (lost rows) is rendered again; no temp folders are left behind.
    lines = (path / "labels.csv").read_text().splitlines()
    (path / "labels.csv").write_text("\n".join(lines[:10]) + "\n")
    assert not synth.is_complete(path, **kw)
    ensure_default_dataset(workers=1, progress=False, **kw)
    assert synth.is_complete(path, **kw)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_cli_rejects_bad_values(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli_main(["--out", str(tmp_path / "o"), "--subjects", "0"])
    assert "--subjects" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["--out", str(tmp_path / "o"), "--frames-per-cell", "two"])
    assert "--frames-per-cell" in capsys.readouterr().err


def test_an_installed_package_caches_the_synthetic_set_in_the_user_cache(tmp_path, monkeypatch):
    """Library use of an installed gazeneg (no pyproject.toml above the package) never writes beside
    site-packages: the default set goes to the user cache; $GAZENEG_DATA_DIR still names a folder."""
    from gazeneg.data import synth

    monkeypatch.delenv(synth.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("GAZENEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synth, "REPO_ROOT", tmp_path / "site-packages")
    assert synth.default_dataset_path().is_relative_to(tmp_path / "cache")
    monkeypatch.setenv(synth.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert synth.default_dataset_path().is_relative_to(tmp_path / "mine")
