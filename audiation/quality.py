"""Quality measures of finished audiations, against the same model, layer and unit.

- `activation_ratio`, `activation_ratio_p99`: the final activation over the unit's maximum (and 99th
  percentile) on a dataset of natural speech: above 1 means the audiation drives the unit further
  than any natural input did. Needs dataset statistics (`quality.data=`).
- `selectivity` (unit objective): the target activation over the mean |activation| of the other units
  at that frame.
- `silence_ratio_db` (unit objective): mean power of the signal away from the target frame relative to
  near it, in dB (lower is quieter elsewhere).
- `robust_activation`: the target activation under fresh augmentations never used in optimisation,
  averaged over `draws` draws: what survives small shifts and noise.
"""

from __future__ import annotations

import numpy as np
import torch

from audiation.model import Encoder, Layer
from audiation.objectives import Geometry, Objective, Target
from audiation.parameterizations import row_generators

FRESH_STREAM = 1_000_003  # offsets the seed so robustness draws never repeat the optimisation's draws


def silence_ratio_db(signal: np.ndarray, geometry: Geometry, frame: int) -> np.ndarray:
    """Per row: 10 log10(mean power outside the frame's samples / mean power inside them)."""
    start, stop = frame * geometry.hop, min(frame * geometry.hop + geometry.field, signal.shape[1])
    inside = np.zeros(signal.shape[1], dtype=bool)
    inside[start:stop] = True
    power = signal.astype(np.float64) ** 2
    return 10 * np.log10((power[:, ~inside].mean(axis=1) + 1e-20) / (power[:, inside].mean(axis=1) + 1e-20))


@torch.no_grad()
def robust_activation(encoder: Encoder, layer: Layer, objective: Objective, augment, signal: torch.Tensor,
                      targets: list[Target], seed: int, draws: int) -> np.ndarray:
    generators = row_generators(seed + FRESH_STREAM, [t.key for t in targets], signal.device)
    total = torch.zeros(len(targets), device=signal.device)
    for _ in range(draws):
        _, terms = objective(encoder(augment(signal, generators), layer).float(), signal)
        total += terms["activation"]
    return (total / draws).cpu().numpy()


def measure(encoder: Encoder, layer: Layer, objective: Objective, augment, signal: np.ndarray,
            targets: list[Target], final_terms: dict[str, np.ndarray], geometry: Geometry, frame: int | None,
            seed: int, draws: int, unit_stats: dict[str, np.ndarray] | None) -> list[dict[str, float]]:
    """One dict of quality numbers per target (row of `signal`)."""
    device = next(encoder.parameters()).device
    final = final_terms["activation"]
    columns: dict[str, np.ndarray] = {}
    if draws > 0:
        columns["robust_activation"] = robust_activation(
            encoder, layer, objective, augment, torch.from_numpy(signal).to(device), targets, seed, draws)
    if frame is not None:
        columns["selectivity"] = final / np.maximum(final_terms["neighbours"], 1e-9)
        columns["silence_ratio_db"] = silence_ratio_db(signal, geometry, frame)
    units = [t.unit for t in targets]
    if unit_stats is not None and None not in units:
        for name, statistic in (("activation_ratio", "max"), ("activation_ratio_p99", "p99")):
            reference = unit_stats[statistic][units]
            # A ratio to a non-positive reference has no meaning: such units never fire on the data.
            columns[name] = np.where(reference > 0, final / np.where(reference > 0, reference, 1), np.nan)
    return [{name: float(values[row]) for name, values in columns.items()} for row in range(len(targets))]
