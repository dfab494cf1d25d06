"""Held-out splits: whole subjects (or, for one person, whole sessions) for validation and test, never
single frames; and the data budget (frames per cell per training subject)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import grid, seeding
from .data import DatasetError, GazeDataset, load_dataset


@dataclass
class Splits:
    train: GazeDataset
    val: GazeDataset
    test: GazeDataset
    groups: dict = field(default_factory=dict)  # split name -> list of held-out group names


def resolve_data_path(data: str) -> Path:
    """"synthetic" is the built-in default set (rendered once, then cached); "synthetic:F" the same
    subjects with F frames per cell; anything else is a dataset folder."""
    if data == "synthetic" or data.startswith("synthetic:"):
        from .synth import ensure_default_dataset

        frames = data.partition(":")[2]
        if frames and not frames.isdigit():
            raise DatasetError(f"data {data!r}: expected 'synthetic' or 'synthetic:F' with F frames per cell")
        return Path(ensure_default_dataset(**({"frames_per_cell": int(frames)} if frames else {})))
    return Path(data)


def split_by_subject(ds: GazeDataset, n_val: int, n_test: int, seed: int, fold: int = 0) -> Splits:
    """Hold out whole subjects (or, for a single person, whole sessions), never single frames.

    `seed` orders the groups; `fold` rotates along that order by n_test, so folds 0, 1, 2, ... test
    disjoint groups until every group has been tested once (then they wrap around): a sweep with
    fold = seed measures each arm on many people, not on one fixed trio."""
    groups = ds.subjects
    uniq = sorted(set(groups.tolist()))
    kind = "subjects"
    if len(uniq) < n_val + n_test + 1:
        groups = np.char.add(np.char.add(ds.subjects.astype(str), "/"), ds.sessions.astype(str))
        uniq = sorted(set(groups.tolist()))
        kind = "subject/session groups"
    if len(uniq) < n_val + n_test + 1:
        raise DatasetError(
            f"{ds.root}: {len(uniq)} {kind} ({', '.join(uniq)}) but the split needs {n_val} for validation, "
            f"{n_test} for test and at least 1 for training. Capture more sessions (scripts/capture.py "
            f"--session NAME) or lower --val-subjects/--test-subjects.")
    order = seeding.numpy_rng(seed, "split").permutation(len(uniq))
    names = [uniq[i] for i in np.roll(order, -fold * n_test)]
    test_g, val_g, train_g = names[:n_test], names[n_test:n_test + n_val], names[n_test + n_val:]
    idx = {k: np.flatnonzero(np.isin(groups, g)) for k, g in (("train", train_g), ("val", val_g), ("test", test_g))}
    # The splits must not share a group, and together they cover the dataset.
    assert not (set(train_g) & set(val_g) or set(train_g) & set(test_g) or set(val_g) & set(test_g))
    assert sum(len(v) for v in idx.values()) == len(ds)
    return Splits(ds.subset(idx["train"]), ds.subset(idx["val"]), ds.subset(idx["test"]),
                  {"train": train_g, "val": val_g, "test": test_g})


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
    """cfg: a TrainConfig (data, val/test_subjects, split_seed, split_fold, budget)."""
    ds = load_dataset(resolve_data_path(cfg.data))
    sp = split_by_subject(ds, cfg.val_subjects, cfg.test_subjects, cfg.split_seed, cfg.split_fold)
    sp.train = apply_budget(sp.train, cfg.budget)
    return sp
