"""Held-out splits: which of a job's clips or files are kept out of fitting, to measure on (the features job's
files, the directions job's clips)."""

from __future__ import annotations

import numpy as np


def held_out(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows) of `count` items, each sorted: a seeded shuffle, `fraction` of them
    held out (rounded), and at least one item in each part."""
    order = np.random.default_rng(seed).permutation(count)
    size = min(max(1, round(count * fraction)), count - 1)
    return np.sort(order[size:]), np.sort(order[:size])
