"""Directions in a layer's space that separate two sets of speech (pitch, speaking rate, voice).

Each clip is one vector: its activations averaged over its frames. Two ways to a direction, both
returned as unit vectors in the layer's own coordinates (what `objective=direction` takes):
- `mean_difference`: the positive clips' mean minus the negatives'. The baseline.
- `logistic_probe`: L2-regularised logistic regression on standardised features; its weights, mapped
  back to raw coordinates. Usually better: it discounts dimensions that vary a lot within each set.
`auc` measures how well projections on a direction separate held-out clips (0.5 = chance, 1 = perfect).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch

from audiation.data.activations import ActivationCache


def clip_vectors(cache: ActivationCache) -> tuple[list[str], np.ndarray]:
    """(files, one mean activation vector per file) from a cache: pieces of one file are pooled together."""
    files = cache.files
    sums = {f: np.zeros(cache.num_units, dtype=np.float64) for f in files}
    counts = dict.fromkeys(files, 0)
    for piece in cache.pieces:
        block = np.asarray(cache.activations[piece.first_frame:piece.first_frame + piece.num_frames], dtype=np.float64)
        sums[piece.file] += block.sum(axis=0)
        counts[piece.file] += piece.num_frames
    return files, np.stack([sums[f] / counts[f] for f in files]).astype(np.float32)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    difference = positive[:, None] - negative[None, :]
    return float((difference > 0).mean() + 0.5 * (difference == 0).mean())


def _unit(vector: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # a zero vector is NaN (0 / 0): the caller says why, in one line
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def mean_difference(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    return _unit(positive.mean(axis=0) - negative.mean(axis=0))


def logistic_probe(positive: np.ndarray, negative: np.ndarray, l2: float, steps: int = 200) -> np.ndarray:
    """L2-regularised logistic regression (L-BFGS, full batch) on standardised features; the weight
    vector divided by the features' scale is the direction in raw coordinates."""
    features = np.concatenate([positive, negative]).astype(np.float64)
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    x = torch.from_numpy((features - mean) / scale)
    y = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).double()
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(x @ weights + bias, y)
        value = value + l2 * weights.pow(2).sum() / len(y)
        value.backward()
        return value

    optimizer.step(loss)
    return _unit(weights.detach().numpy() / scale)


def leave_one_speaker_out(positive: np.ndarray, negative: np.ndarray, positive_speakers: list[str | None],
                          negative_speakers: list[str | None], l2: float) -> tuple[dict | None, str | None]:
    """Does the direction hold for a voice it never saw? For each speaker with clips on both sides: both
    methods fitted on every other speaker's clips, scored (AUC) on this speaker's. Returns ({method: mean
    AUC over speakers, "speakers": how many}, None), or (None, why not) when it cannot be measured."""
    if None in positive_speakers or None in negative_speakers:
        missing = positive_speakers.count(None) + negative_speakers.count(None)
        return None, (f"{missing} clip(s) have no speaker (a speaker column in metadata.tsv, or one subfolder "
                      "per speaker)")
    both = sorted(cast("set[str]", set(positive_speakers) & set(negative_speakers)))  # no None: refused above
    if len(both) < 2:
        return None, (f"clips of at least two speakers on both sides are needed; found {len(both)} "
                      f"({', '.join(both) or 'none'})")
    pos, neg = np.array(positive_speakers), np.array(negative_speakers)
    scores: dict[str, list[float]] = {"probe": [], "mean": []}
    for held in both:
        train_pos, train_neg = positive[pos != held], negative[neg != held]
        for method, direction in (("probe", logistic_probe(train_pos, train_neg, l2)),
                                  ("mean", mean_difference(train_pos, train_neg))):
            scores[method].append(auc(positive[pos == held] @ direction, negative[neg == held] @ direction))
    return {**{method: float(np.mean(values)) for method, values in scores.items()}, "speakers": len(both)}, None
