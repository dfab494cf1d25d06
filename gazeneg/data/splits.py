"""Held-out splits: whole subjects (or, for one person, whole sessions) for validation and test, never
single frames; and the data budget (frames per cell per training subject).

One or two sittings (too few sessions for a validation, a test and a training group) are split within the
sessions by target cell instead: every photo of a cell goes to one split, so no test target is seen in
training; about CELL_FRACTION of the cells each for validation and test. The split says which it did
(Splits.kind), and --val-groups/--test-groups may name cells: 'cell:37' (row * 16 + col) or 'cells:0-15'."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gazeneg import grid, seeding
from gazeneg.data.dataset import DatasetError, GazeDataset, load_dataset

CELL_FRACTION = 0.2   # with too few sessions: the share of the target cells held out for validation, and for test
CELL_RE = re.compile(r"^cells?:(\d+)(?:-(\d+))?$")
KINDS = {"subjects": "whole subjects", "subject/session groups": "whole sessions",
         "cells": "target cells within the sessions (too few sessions to hold whole ones out; no test target is "
                  "seen in training)"}


@dataclass
class Splits:
    train: GazeDataset
    val: GazeDataset
    test: GazeDataset
    groups: dict = field(default_factory=dict)  # split name -> list of held-out group names
    kind: str = "subjects"                      # what a group is: a key of KINDS


def describe(kind: str) -> str:
    """How a split's held-out groups were chosen, for summaries: 'held out: whole sessions'."""
    return KINDS.get(kind, kind)


def cell_set(name: str) -> set | None:
    """'cell:37' -> {37}, 'cells:0-15' -> {0..15}; None when name is not a cell set."""
    m = CELL_RE.match(name.strip())
    if not m:
        return None
    a, b = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
    if not 0 <= a <= b < grid.N_CELLS:
        raise DatasetError(f"{name!r}: cells are numbered 0..{grid.N_CELLS - 1} (row * {grid.COLS} + col), low to high")
    return set(range(a, b + 1))


def target_cells(ds: GazeDataset) -> np.ndarray:
    return np.atleast_1d(grid.nearest_cell(ds.targets[:, 0], ds.targets[:, 1])).astype(int)


SYNTHETIC_RE = re.compile(r"^synthetic(?::(\d+)(?::(\d+))?)?$")


def synthetic_spec(data: str) -> tuple[int | None, int] | None:
    """(frames per cell or None for the default, people seed) of a built-in synthetic data spec; None
    when `data` names a folder. 'synthetic', 'synthetic:F' (F frames per cell), 'synthetic:F:S' (the
    same renderer with the people drawn by seed S: another 24 people, independent of seed 0's)."""
    if data != "synthetic" and not data.startswith("synthetic:"):
        return None
    m = SYNTHETIC_RE.match(data)
    if not m or (m.group(1) is not None and int(m.group(1)) < 1):
        raise DatasetError(f"data {data!r}: expected 'synthetic', 'synthetic:F' (F >= 1 frames per cell) or "
                           "'synthetic:F:S' (F frames per cell, people drawn with seed S)")
    return (int(m.group(1)) if m.group(1) else None), int(m.group(2) or 0)


def resolve_data_path(data: str) -> Path:
    """"synthetic" is the built-in default set (rendered once, then cached); "synthetic:F" the same
    subjects with F frames per cell; "synthetic:F:S" other subjects (drawn with seed S); anything else is
    a dataset folder."""
    spec = synthetic_spec(data)
    if spec is not None:
        from gazeneg.data.synth import DEFAULT_FRAMES_PER_CELL, ensure_default_dataset

        frames, seed = spec
        return Path(ensure_default_dataset(frames_per_cell=frames or DEFAULT_FRAMES_PER_CELL, seed=seed))
    return Path(data)


def synthetic_people(data: str, seed: int) -> str | None:
    """The spec of the synthetic set like `data` (the same frames per cell) whose people are drawn with `seed`
    ('synthetic:F:seed'); None when `data` names a folder."""
    spec = synthetic_spec(data)
    if spec is None:
        return None
    from gazeneg.data.synth import DEFAULT_FRAMES_PER_CELL

    return f"synthetic:{spec[0] or DEFAULT_FRAMES_PER_CELL}:{seed}"


def _seeded_groups(ds: GazeDataset, rest: np.ndarray, n_val: int, n_test: int) -> tuple[np.ndarray, list, str]:
    """The grouping key of each photo (subject, or subject/session where there are too few subjects
    among `rest` for the groups still to choose), its names among `rest`, and what they are."""
    groups = ds.subjects.astype(str)
    uniq = sorted(set(groups[rest].tolist()))
    kind = "subjects"
    if len(uniq) < n_val + n_test + 1:
        groups = np.char.add(np.char.add(ds.subjects.astype(str), "/"), ds.sessions.astype(str))
        uniq = sorted(set(groups[rest].tolist()))
        kind = "subject/session groups"
    return groups, uniq, kind


def _cell_groups(ds: GazeDataset, rest: np.ndarray) -> tuple[np.ndarray, list]:
    """Each photo's target cell as its group ('cell:37'), and the cells among `rest`."""
    groups = np.array([f"cell:{c}" for c in target_cells(ds)])
    return groups, sorted(set(groups[rest].tolist()), key=lambda g: int(g[5:]))


def _named_mask(ds: GazeDataset, names: tuple, option: str) -> np.ndarray:
    """Photos of the groups named by --test-groups/--val-groups: 'alice' (every session of a subject) or
    'me/s3' (one session); a name not in the data set is an error that lists the names that are."""
    subj = ds.subjects.astype(str)
    sess = np.char.add(np.char.add(subj, "/"), ds.sessions.astype(str))
    mask = np.zeros(len(ds), bool)
    for name in names:
        cells = cell_set(name)
        if cells is not None:
            m = np.isin(target_cells(ds), sorted(cells))
            if not m.any():
                raise DatasetError(f"{ds.root}: {option} {name!r}: no photo has its target in "
                                   f"{'that cell' if len(cells) == 1 else 'those cells'}; the data set's cells are "
                                   f"{_cell_ranges(target_cells(ds))}")
            mask |= m
            continue
        m = (sess == name) if "/" in name else (subj == name)
        if not m.any():
            raise DatasetError(
                f"{ds.root}: {option} {name!r} is not in the data set; its subjects are "
                f"{', '.join(sorted(set(subj.tolist())))} and its sessions {', '.join(sorted(set(sess.tolist())))}")
        mask |= m
    return mask


def _cell_ranges(cells) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, run = [], []
    for c in sorted(set(int(x) for x in cells)):
        if run and c != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}")
            run = []
        run.append(c)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}")
    return ", ".join(out)


def parse_groups(text) -> tuple:
    """'me/s3, me/s2' (or a list) -> ('me/s3', 'me/s2')."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    return tuple(dict.fromkeys(g.strip() for g in items if g.strip()))


def split_by_subject(ds: GazeDataset, n_val: int, n_test: int, seed: int, fold: int = 0, *,
                     test_groups=(), val_groups=()) -> Splits:
    """Hold out whole subjects (or, for a single person, whole sessions), never single frames.

    `seed` orders the groups; `fold` rotates along that order by n_test, so folds 0, 1, 2, ... test
    disjoint groups until every group has been tested once (then they wrap around): a sweep with
    fold = seed measures each arm on many people, not on one fixed trio.

    test_groups / val_groups (names: 'alice' or 'me/s3') hold out exactly those groups instead of the
    seeded choice; a split not named is still chosen by seed and fold among the remaining groups. With
    only the test groups named, validation takes n_val groups, or fewer where fewer remain (always
    leaving one for training): the split records what was used."""
    test_groups, val_groups = parse_groups(test_groups), parse_groups(val_groups)
    named = {}
    if test_groups:
        named["test"] = _named_mask(ds, test_groups, "--test-groups")
    if val_groups:
        named["val"] = _named_mask(ds, val_groups, "--val-groups")
        if "test" in named and (named["val"] & named["test"]).any():
            raise DatasetError(f"{ds.root}: --val-groups {','.join(val_groups)} and --test-groups "
                               f"{','.join(test_groups)} share photos: a group is held out for one of them only")
    held = np.zeros(len(ds), bool)
    for m in named.values():
        held |= m
    rest = np.flatnonzero(~held)
    n_val_left = 0 if "val" in named else n_val
    n_test_left = 0 if "test" in named else n_test
    groups, uniq, kind = _seeded_groups(ds, rest, n_val_left, n_test_left)
    if "test" in named and "val" not in named and 2 <= len(uniq) < n_val + 1:
        # The test groups are named and too few groups remain for n_val: validation takes what leaves
        # one group for training (one person, three sessions, --test-groups me/s3: val one session).
        n_val_left = len(uniq) - 1
    sittings = len(set(np.char.add(np.char.add(ds.subjects.astype(str), "/"), ds.sessions.astype(str))[rest].tolist()))
    if len(uniq) < n_val_left + n_test_left + 1 and n_val_left + n_test_left > 0 and sittings < 3:
        # One or two sittings: too few sessions to hold whole ones out. Split them by target cell instead
        # (held-out shares of the cells, not one cell each), when there are cells enough. (With three or
        # more, asking for more held-out groups than there are stays an error: the request is the mistake.)
        c_groups, c_uniq = _cell_groups(ds, rest)
        c_test = max(1, round(CELL_FRACTION * len(c_uniq))) if n_test_left else 0
        c_val = max(1, round(CELL_FRACTION * len(c_uniq))) if n_val_left else 0
        if len(c_uniq) >= c_test + c_val + 1:
            groups, uniq, kind, n_test_left, n_val_left = c_groups, c_uniq, "cells", c_test, c_val
    if len(uniq) < n_val_left + n_test_left + 1:
        taken = f" besides the named {', '.join(test_groups + val_groups)}" if named else ""
        raise DatasetError(
            f"{ds.root}: {len(uniq)} {kind}{taken} ({', '.join(uniq[:20])}{', ...' if len(uniq) > 20 else ''}) but "
            f"the split needs {n_val_left} for validation, {n_test_left} for test and at least 1 for training. "
            f"Capture more targets or sessions (gazeneg capture --session NAME), or, with gazeneg train, name the "
            f"held-out groups with --val-groups/--test-groups (a subject, subject/session, or cells such as cells:0-15).")
    order = seeding.numpy_rng(seed, "split").permutation(len(uniq))
    names = [uniq[i] for i in np.roll(order, -fold * n_test_left)]
    test_g, val_g = names[:n_test_left], names[n_test_left:n_test_left + n_val_left]
    train_g = names[n_test_left + n_val_left:]
    idx = {k: np.flatnonzero(np.isin(groups, g) & ~held) for k, g in (("train", train_g), ("val", val_g), ("test", test_g))}
    for k, m in named.items():
        idx[k] = np.flatnonzero(m)
    test_g = list(test_groups) if "test" in named else test_g
    val_g = list(val_groups) if "val" in named else val_g
    # The splits must not share a photo (nor, when seeded, a group), and together they cover the dataset.
    assert not (set(train_g) & set(val_g) or set(train_g) & set(test_g) or set(val_g) & set(test_g))
    assert not (set(idx["train"]) & set(idx["val"]) or set(idx["train"]) & set(idx["test"])
                or set(idx["val"]) & set(idx["test"]))
    assert sum(len(v) for v in idx.values()) == len(ds)
    if named and kind != "cells" and any(cell_set(g) is not None for g in test_groups + val_groups):
        kind = "cells"   # cells named by hand: the rest were chosen by cell too only when kind says so
    return Splits(ds.subset(idx["train"]), ds.subset(idx["val"]), ds.subset(idx["test"]),
                  {"train": train_g, "val": val_g, "test": test_g}, kind)


FEW_CELLS = 24           # targets covering fewer cells than this (a sixth of 144) teach little of the screen
CROWDED_TARGET = 0.25    # one target holding more than this share of the photos dominates training (a real
                         # import of 90 mouse clicks and carets: 34 on one point, 41 points, 16 cells)


def data_warnings(targets) -> list[str]:
    """What about a data set's targets makes a model trained on it weak, one sentence each: the targets
    cover few cells, or one target holds most photos (a real import: 32 of about 40 photos on one point)."""
    t = np.asarray(targets, np.float64).reshape(-1, 2)
    if not len(t):
        return []
    out = []
    cells = set(np.atleast_1d(grid.nearest_cell(t[:, 0], t[:, 1])).astype(int).tolist())
    if len(cells) < FEW_CELLS:
        out.append(f"the targets cover only {len(cells)} of the {grid.N_CELLS} cells: the model learns little of the "
                   "rest of the screen (capture or import targets spread over it)")
    keys, counts = np.unique(np.round(t, 2), axis=0, return_counts=True)
    top = int(counts.argmax())
    if counts[top] > CROWDED_TARGET * len(t) and len(keys) >= 4:
        out.append(f"one target, (row {keys[top][0]:g}, col {keys[top][1]:g}), holds {counts[top]} of the {len(t)} "
                   f"photos ({counts[top] / len(t):.0%}): the model learns mostly to answer it")
    return out


def apply_budget(ds: GazeDataset, budget: int) -> GazeDataset:
    """Keep the first `budget` frames of every (subject, cell): the "too little data" setting."""
    if budget <= 0:
        return ds
    cells = grid.nearest_cell(ds.targets[:, 0], ds.targets[:, 1])
    seen: dict = {}
    keep = []
    for i, key in enumerate(zip(ds.subjects.tolist(), np.atleast_1d(cells).tolist(), strict=True)):
        if seen.get(key, 0) < budget:
            seen[key] = seen.get(key, 0) + 1
            keep.append(i)
    return ds.subset(np.array(keep))


def load_splits(cfg) -> Splits:
    """cfg: a TrainConfig (data, val/test_subjects, split_seed, split_fold, test/val_groups, budget)."""
    ds = load_dataset(resolve_data_path(cfg.data))
    sp = split_by_subject(ds, cfg.val_subjects, cfg.test_subjects, cfg.split_seed, cfg.split_fold,
                          test_groups=getattr(cfg, "test_groups", ""), val_groups=getattr(cfg, "val_groups", ""))
    sp.train = apply_budget(sp.train, cfg.budget)
    return sp
