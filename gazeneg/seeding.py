"""One seeding helper for every random stream of a run.

A run has one integer seed. Each use of randomness (the subject split, the epoch's sample order, the
augmentation of an epoch, the wrong points...) draws from its own named stream, derived from the seed
and the stream's keys with numpy's SeedSequence (as the synthetic renderer does per subject), so
streams never collide the way `seed * 1_000_003 + epoch` arithmetic can, and adding a stream does not
shift the others.

    rng = seeding.numpy_rng(cfg.seed, "split")                 # numpy Generator
    g = seeding.torch_generator(cfg.seed, "order", epoch)      # torch Generator (CPU)
    s = seeding.seed_int(cfg.seed, "augment", epoch)           # a plain int for an API that wants one
"""

from __future__ import annotations

import numpy as np
import torch

# Stream names -> a fixed number (part of the SeedSequence's spawn key). Never renumber: it changes results.
STREAMS = {
    "split": 1,           # which groups are held out (splits.split_by_subject)
    "order": 2,           # the epoch's sample order (train.train_one_epoch)
    "other": 3,           # literal mode on other photos: the second order
    "torch": 4,           # torch's global RNG at the start of an epoch (dropout and the like)
    "init": 5,            # the model's initial weights
    "augment": 6,         # albumentations, once per epoch
    "device_augment": 7,  # DeviceAugment per epoch and rank
    "wrong_random": 8,    # one angle per sample, kept across epochs
    "wrong_redraw": 9,    # a new angle every step
    "wrong_cells": 10,    # uniform wrong cells per step (classification)
    "personal": 11,       # per-person calibration subsets
}


def seed_sequence(seed: int, stream: str, *keys: int) -> np.random.SeedSequence:
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; known: {', '.join(STREAMS)}")
    return np.random.SeedSequence(int(seed), spawn_key=(STREAMS[stream], *(int(k) for k in keys)))


def seed_int(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit integer seed for the stream (torch.Generator.manual_seed takes < 2**63)."""
    return int(seed_sequence(seed, stream, *keys).generate_state(1, np.uint64)[0] >> np.uint64(1))


def numpy_rng(seed: int, stream: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(seed, stream, *keys))


def torch_generator(seed: int, stream: str, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_int(seed, stream, *keys))
