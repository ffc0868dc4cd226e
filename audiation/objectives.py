"""Objectives: what an audiation maximises, as small composable objects (after Lucid's optvis).

An `Objective` maps a layer's activations (batch, frames, units) and the signal (batch, samples) to one
score per row, to be MAXIMISED. Objectives combine linearly: `unit + 0.5 * power - silence`. Each keeps
its named terms so their values can be logged apart; the term called "activation" is the target's.

Targets come from the `objective` config group: `unit`/`channel` take `objective.unit` (an int, a list,
"a:b" or "all"), `direction` takes vectors, `layer` has a single target. A batch of targets is one batch
of signals, one row each, and rows never mix: every score is per row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from audiation.configs import construct
from audiation.errors import AudiationError
from audiation.model import Layer

Term = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Objective:
    def __init__(self, name: str, term: Term):
        self.terms: list[tuple[float, str, Term]] = [(1.0, name, term)]

    @classmethod
    def _of(cls, terms):
        objective = cls.__new__(cls)
        objective.terms = terms
        return objective

    def __call__(self, activations: torch.Tensor, signal: torch.Tensor):
        """(total score per row, {term name: unweighted value per row})."""
        values = {name: term(activations, signal) for _, name, term in self.terms}
        total = sum(weight * values[name] for weight, name, _ in self.terms)
        return total, values

    def __add__(self, other: Objective) -> Objective:
        return Objective._of(self.terms + other.terms)

    def __mul__(self, weight: float) -> Objective:
        return Objective._of([(weight * w, name, term) for w, name, term in self.terms])

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0

    def __sub__(self, other: Objective) -> Objective:
        return self + (-other)

    def __repr__(self) -> str:
        return " + ".join(f"{w:g}*{name}" for w, name, _ in self.terms)


@dataclass(frozen=True)
class Geometry:
    """What an objective needs to know about the signal and the layer's frames."""

    layer: Layer
    num_samples: int
    num_frames: int
    num_units: int
    hop: int  # samples between frames
    field: int  # samples one conv frame sees
    sample_rate: int

    def middle_frame(self) -> int:
        return self.num_frames // 2


# --- target activations -----------------------------------------------------------------------------


def unit(
    geometry: Geometry,
    unit: torch.Tensor,
    frame: int | None = None,
    neighbours: float = 0.5,
    silence: float = 1.0,
    silence_margin_ms: float = 25.0,
) -> Objective:
    """One unit at one frame (default: the middle one), its neighbours at that frame discouraged, and
    silence encouraged away from the samples that frame sees: the seed's unit audiation."""
    frame = geometry.middle_frame() if frame is None else frame
    rows = torch.arange(len(unit), device=unit.device)

    def target(acts, _signal):
        return acts[rows, frame, unit]

    def neighbour_level(acts, _signal):
        at_frame = acts[:, frame, :].abs()
        others = at_frame.sum(dim=1) - at_frame[rows, unit]
        return others / (acts.shape[2] - 1)

    objective = Objective("activation", target) - neighbours * Objective("neighbours", neighbour_level)
    if silence:
        objective = objective - silence * silence_outside(geometry, frame, silence_margin_ms, unit.device)
    return objective


def channel(geometry: Geometry, unit: torch.Tensor) -> Objective:
    """One unit over every frame."""

    def target(acts, _signal):
        return acts.gather(2, unit.view(-1, 1, 1).expand(-1, acts.shape[1], 1)).squeeze(2).mean(dim=1)

    return Objective("activation", target)


def layer(geometry: Geometry) -> Objective:
    """Deep dream: the mean square activation of the whole layer."""
    return Objective("activation", lambda acts, _signal: acts.pow(2).mean(dim=(1, 2)))


def direction(geometry: Geometry, direction: torch.Tensor) -> Objective:
    """The projection of every frame on a unit-length vector of the layer's space, averaged."""
    unit_vectors = direction / direction.norm(dim=1, keepdim=True)

    def target(acts, _signal):
        return torch.einsum("btc,bc->bt", acts, unit_vectors.to(acts.dtype)).mean(dim=1)

    return Objective("activation", target)


# --- regularisers (terms to subtract) ---------------------------------------------------------------


def power() -> Objective:
    """Mean square of the signal: keeps its level from drifting (the model normalises its input)."""
    return Objective("power", lambda _acts, signal: signal.pow(2).mean(dim=1))


def high_frequency(geometry: Geometry, cutoff_hz: float, device="cpu") -> Objective:
    """Share of the signal's spectral energy above `cutoff_hz`: penalises hiss."""
    frequencies = torch.fft.rfftfreq(geometry.num_samples, d=1.0 / geometry.sample_rate, device=device)
    above = (frequencies > cutoff_hz).float()

    def share(_acts, signal):
        energy = torch.fft.rfft(signal).abs().pow(2)
        return (energy * above).sum(dim=1) / (energy.sum(dim=1) + 1e-12)

    return Objective("high_frequency", share)


def silence_outside(geometry: Geometry, frame: int, margin_ms: float, device="cpu") -> Objective:
    """Share of the signal's energy outside the samples `frame` sees (plus a margin each side)."""
    margin = int(margin_ms * geometry.sample_rate / 1000)
    start = max(frame * geometry.hop - margin, 0)
    stop = min(frame * geometry.hop + geometry.field + margin, geometry.num_samples)
    outside = torch.ones(geometry.num_samples, device=device)
    outside[start:stop] = 0

    def share(_acts, signal):
        energy = signal.pow(2)
        return (energy * outside).sum(dim=1) / (energy.sum(dim=1) + 1e-12)

    return Objective("silence", share)


# --- targets from the config ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One row of an audiation: what it maximises, and the key that seeds its random stream."""

    objective: str
    layer: Layer
    key: int
    unit: int | None = None
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        if self.unit is not None:
            return f"{self.layer.label}-U{self.unit}-{self.objective}"
        if self.vector is not None:
            return f"{self.layer.label}-D{self.key}-{self.objective}"
        return f"{self.layer.label}-{self.objective}"


def objective_name(objective_cfg) -> str:
    return objective_cfg._target_.rsplit(".", 1)[-1]


def parse_units(spec, num_units: int, where: str) -> list[int]:
    """`objective.unit` as a list: an int, a list of ints, "a:b[:step]" or "all"."""
    valid = f"valid: 0..{num_units - 1}"
    if isinstance(spec, str) and spec.strip() == "all":
        return list(range(num_units))
    if isinstance(spec, str) and re.fullmatch(r"\s*\d*\s*:\s*\d*\s*(:\s*\d+\s*)?", spec):
        units = list(range(num_units))[slice(*(int(p) if p.strip() else None for p in spec.split(":")))]
        if not units:
            raise AudiationError(f"objective.unit={spec} selects no units of {where} ({valid})")
        return units
    values = [spec] if isinstance(spec, (str, int)) else list(spec)
    units = []
    for value in values:
        try:
            number = int(str(value))
        except ValueError:
            raise AudiationError(f"objective.unit={value} is not a unit index ({valid})") from None
        if not 0 <= number < num_units:
            raise AudiationError(f"objective.unit={number} is out of range for {where} ({valid})")
        units.append(number)
    return units


def parse_directions(spec, num_units: int) -> np.ndarray:
    """`objective.direction`: a .npy path (one vector or a stack of them) or an inline list."""
    if isinstance(spec, str):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise AudiationError(f"objective.direction={spec}: no such .npy file")
        try:
            vectors = np.load(path)
        except (OSError, ValueError) as error:
            raise AudiationError(f"objective.direction={spec} could not be read: {error}") from None
    else:
        vectors = np.asarray(list(spec), dtype=np.float32)
    vectors = np.atleast_2d(vectors).astype(np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != num_units:
        raise AudiationError(
            f"objective.direction has shape {vectors.shape}; expected ({num_units},) or (k, {num_units})"
        )
    if not np.all(np.linalg.norm(vectors, axis=1) > 0):
        raise AudiationError("objective.direction contains a zero vector")
    return vectors


def expand_targets(objective_cfg, layer: Layer, num_units: int) -> list[Target]:
    name = objective_name(objective_cfg)
    if "unit" in objective_cfg:
        units = parse_units(objective_cfg.unit, num_units, f"layer {layer.label}")
        return [Target(name, layer, key=u, unit=u) for u in units]
    if "direction" in objective_cfg:
        vectors = parse_directions(objective_cfg.direction, num_units)
        return [Target(name, layer, key=i, vector=v) for i, v in enumerate(vectors)]
    return [Target(name, layer, key=0)]


def build(objective_cfg, regularizer_cfg, geometry: Geometry, targets: list[Target], device="cpu") -> Objective:
    """The full objective for one batch of targets: the target's objective minus the regularisers.

    Index tensors and masks are made on `device` once, so the loop never copies them per step."""
    batch_field = {}
    if "unit" in objective_cfg:
        batch_field["unit"] = torch.tensor([t.unit for t in targets], device=device)
    elif "direction" in objective_cfg:
        batch_field["direction"] = torch.from_numpy(np.stack([t.vector for t in targets])).to(device)
    objective = construct(objective_cfg, geometry, **batch_field)
    if regularizer_cfg.power:
        objective = objective - regularizer_cfg.power * power()
    if regularizer_cfg.high_frequency:
        objective = objective - regularizer_cfg.high_frequency * high_frequency(geometry, regularizer_cfg.cutoff_hz,
                                                                                 device)
    return objective
