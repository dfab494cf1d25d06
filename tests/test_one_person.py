"""The one-person regime (gazeneg/study/one_person.py) on a synthetic capture shaped like the real one the
question came with: one person, three sessions (28 targets; 4 targets near the centre; 22 targets recorded
separately under other lighting), built from the renderer."""

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from gazeneg import grid
from gazeneg.data.synth import render_dataset
from tests.conftest import load_script

S1 = [(r, c) for r in (1, 3, 5, 7) for c in (1, 3, 5, 7, 9, 11, 13)]                        # 28 targets
S2 = [(4, 7), (4, 8), (3, 8), (5, 8)]                                                          # 4 near the centre
S3 = ([(r, c) for r in (2, 6) for c in (0, 3, 6, 9, 12, 15)] + [(r, c) for r in (0, 4, 8) for c in (2, 10, 14)]
      + [(8, 15)])                                                                             # 22 targets


def make_capture(root, *, frames_per_cell: int = 4, seed: int = 7, darker: float = 0.6) -> Path:
    """Render one person over the whole grid, then keep the three sessions' targets: sessions 1 and 2 take
    the first half of each target's frames, session 3 (recorded separately) the second half, its images
    darkened by `darker` with a warm cast (other lighting)."""
    root = Path(root)
    raw = render_dataset(root.parent / (root.name + "-render"), n_subjects=1, frames_per_cell=frames_per_cell,
                         seed=seed, workers=1, progress=False, contact_sheet=False)
    (root / "images").mkdir(parents=True)
    shutil.copy(raw / "meta.json", root / "meta.json")
    sessions = {**{grid.cell_index(r, c): "s1" for r, c in S1}, **{grid.cell_index(r, c): "s2" for r, c in S2}}
    late = {grid.cell_index(r, c) for r, c in S3}
    half = frames_per_cell // 2
    with open(raw / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        cell = grid.cell_index(int(float(r["row"])), int(float(r["col"])))
        frame = int(Path(r["path"]).stem.rsplit("_", 1)[1])
        session = sessions.get(cell) if frame < half else ("s3" if cell in late else None)
        if session is None:
            continue
        img = cv2.imread(str(raw / r["path"]), cv2.IMREAD_COLOR)
        if session == "s3":
            img = np.clip(img.astype(np.float32) * darker * np.array([0.85, 1.0, 1.15]), 0, 255).astype(np.uint8)
        name = f"images/{session}_{Path(r['path']).name}"
        cv2.imwrite(str(root / name), img)
        out.append({**r, "path": name, "session": session})
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(out)
    shutil.rmtree(raw)
    return root


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return make_capture(tmp_path_factory.mktemp("one") / "capture", frames_per_cell=2)


@pytest.fixture(scope="module")
def others(tmp_path_factory):
    """Other people for the base model (the regime never pretrains on the person's own data)."""
    return render_dataset(tmp_path_factory.mktemp("others") / "ds", n_subjects=2, frames_per_cell=1, seed=11,
                          workers=1, progress=False, contact_sheet=False)


def test_the_capture_looks_like_the_real_one(capture):
    from gazeneg.data.dataset import load_dataset
    from gazeneg.study.one_person import groups_of

    ds = load_dataset(capture)
    assert len(set(ds.subjects.tolist())) == 1
    cells = grid.nearest_cell(ds.targets[:, 0], ds.targets[:, 1])
    per = {s: len(np.unique(cells[ds.sessions == s])) for s in ("s1", "s2", "s3")}
    assert per == {"s1": 28, "s2": 4, "s3": 22}
    s3 = ds.images[ds.sessions == "s3"].mean()
    s1 = ds.images[ds.sessions == "s1"].mean()
    assert s3 < 0.8 * s1                                   # other lighting
    kind, groups = groups_of(ds)
    assert kind == "target" and len(set(groups.tolist())) == 54   # sessions do not cover the grid


def test_folds_never_split_a_target_and_never_train_on_a_tiny_slice(capture):
    from gazeneg.data.dataset import load_dataset
    from gazeneg.study.one_person import fold_rows, groups_of, make_folds

    ds = load_dataset(capture)
    _, groups = groups_of(ds)
    folds = make_folds(groups, 4, 2, 0)
    assert len(folds) == 8
    for r in (0, 1):     # each repeat tests every target once
        tested = sorted(g for f in folds if f["repeat"] == r for g in f["test_groups"])
        assert tested == sorted(set(groups.tolist()))
    for f in folds:
        tr, va, te = fold_rows(groups, f["test_groups"], 0.2, 0, 100 * f["repeat"] + f["fold"])
        assert not set(groups[tr]) & set(groups[te]) and not set(groups[va]) & set(groups[te])
        assert not set(groups[tr]) & set(groups[va])
        assert len(tr) >= 0.5 * len(ds)        # no fold learns from a small slice of the person's photos


def test_quick_runs_the_smaller_design_and_the_default_keeps_its_own():
    """--quick: 3 folds x 1 repeat, the original scheme's three implementations against the fine-tuned
    baseline and the base as it is (no CNN from scratch), 3 LRs, the base on one frame per person and target
    for 2 epochs. The default: 4 folds x 2 repeats, every arm with the CNN trained on the person's photos,
    the 6-LR grid, the base on all of base_data for the model's recipe."""
    from gazeneg.study.one_person import ARMS, OWN, OnePersonConfig
    from gazeneg.study.personal import LR_GRID, QUICK_LR_GRID

    q, d = OnePersonConfig.quick(data="x"), OnePersonConfig(data="x")
    assert (q.folds, q.repeats, q.base_budget, q.base_epochs, tuple(q.lr_grid), q.quick_design) == (
        3, 1, 1, 2, QUICK_LR_GRID, True)
    assert q.arms == ["ft:no_finetune", "ft:baseline", "ft:original_l0.5_B2", "ft:original_l0.5_B2_same",
                      "ft:original_l0.5_B2_combined"]
    assert (d.folds, d.repeats, d.base_budget, d.base_epochs, tuple(d.lr_grid), d.steps, d.own_epochs,
            d.quick_design) == (4, 2, 0, 0, LR_GRID, 60, 10, False)
    assert d.arms == ARMS and OWN in d.arms and len(d.arms) == 9
    assert OnePersonConfig.quick(data="x", folds=5).folds == 5          # an option given wins


def test_the_quick_one_person_regime_answers(capture, others, tmp_path):
    """The regime runs end to end: no "invalid", no "hurts" with a better mean, the CNN trained on the
    person's own photos and the fine-tuned base both measured on the same folds, and a plain-words answer
    with the detectable effect that says it is the --quick design. The base is pretrained once, regression
    only, on one frame per person and target of the other people, and cached."""
    from gazeneg.study.one_person import (
        OWN,
        QUICK_ARMS,
        OnePersonConfig,
        build_report,
        read_rows,
        run_one_person,
    )

    cfg = OnePersonConfig.quick(data=str(capture), out=str(tmp_path / "one"), model="mlp", base_data=str(others),
                                cache=str(tmp_path / "cache"), own_epochs=6, workers=1, arms=[*QUICK_ARMS, OWN])
    run_one_person(cfg, progress=False, log=lambda *_: None)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].endswith(".pt") and not cached[0].endswith("-cls.pt"), cached
    rows = read_rows(tmp_path / "one")
    chosen = [r for r in rows if r["selected"]]
    assert {r["person"] for r in chosen} == {"r0f0", "r0f1", "r0f2"}
    assert {r["arm"] for r in chosen} == set(cfg.arms)
    doc = build_report(tmp_path / "one")
    es = {e["arm"]: e for e in doc["entries"]}
    base = es["ft:baseline"]
    for e in doc["entries"]:
        assert e["verdict"] in ("reference", "helps", "hurts", "equivalent", "inconclusive")
        if e["verdict"] == "hurts":
            assert e["mean_error_cells"] > base["mean_error_cells"]
        if e["verdict"] == "helps":
            assert e["mean_error_cells"] < base["mean_error_cells"]
    assert np.isfinite(es[OWN]["mean_error_cells"]) and np.isfinite(base["mean_error_cells"])
    assert es[OWN]["mean_error_cells"] < grid.DIAGONAL
    assert doc["overlap_ratio"] == pytest.approx(0.5)      # 3 folds: n_test/n_train = 1/2
    text = " ".join(doc["answer"])
    assert "would be found with 80% power" in text
    assert "This is the --quick design (3 folds, 1 repeat(s), 6 arms" in text
    assert "1 frame(s) per person and target, 2 epochs" in doc["base"]
    assert (tmp_path / "one" / "report.md").read_text().count("|") > 20
    # resume: a second run finds every fold done and adds no rows
    run_one_person(cfg, progress=False, log=lambda *_: None)
    assert len(read_rows(tmp_path / "one")) == len(rows)


def test_one_person_data_gets_the_one_person_regime_by_default(capture, others, tmp_path, capsys):
    """scripts/eval_wrong_labels.py --data <one person>: the one-person regime, with its plain-words answer."""
    ev = load_script("eval_wrong_labels")
    from gazeneg.study import one_person

    orig = one_person.OnePersonConfig.quick
    try:   # the tests' small base data set instead of the built-in synthetic one
        one_person.OnePersonConfig.quick = classmethod(lambda cls, **kw: orig(**{**kw, "base_data": str(others),
                                                                                "own_epochs": 2}))
        rc = ev.main(["--data", str(capture), "--quick", "--model", "mlp", "--out", str(tmp_path / "o"),
                      "--cache", str(tmp_path / "cache"), "--workers", "1", "--arms", "ft:no_finetune", "ft:baseline",
                      "ft:original_l0.5_B2", "own:trained"])
    finally:
        one_person.OnePersonConfig.quick = orig
    assert rc == 0
    printed = capsys.readouterr().out
    assert "One person: verdicts vs the fine-tuned baseline, paired over 3 cross-validation folds" in printed
    assert "What these photos can and cannot show" in printed
