"""Objectives: what an audiation maximises, as small composable objects (after Lucid's optvis).

An `Objective` maps a layer's activations (batch, frames, units) and the signal (batch, samples) to one
score per row, to be MAXIMISED. Objectives combine linearly: `unit + 0.5 * power - silence`. Each keeps
its named terms so their values can be logged apart; the term called "activation" is the target's.

A batch of targets is one batch of signals, one row each, and rows never mix: every score is per row.
The objective factories take plain tensors and numbers; `builder` makes them from the config.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from audiation.core.kinds import TargetKind
from audiation.models.layers import Layer

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

    num_samples: int
    num_frames: int
    num_units: int
    hop: int  # samples between frames
    field: int  # samples one conv frame sees
    sample_rate: int
    offset: int = 0  # frame t sees samples from t * hop + offset (negative where the front end pads)

    def middle_frame(self) -> int:
        return self.num_frames // 2

    def frame_samples(self, frame: int, margin_ms: float = 0.0) -> tuple[int, int]:
        """(start, stop) of the input samples `frame` sees, widened by `margin_ms` on each side."""
        margin = int(margin_ms * self.sample_rate / 1000)
        start = frame * self.hop + self.offset
        return max(start - margin, 0), min(start + self.field + margin, self.num_samples)

    def frame_centre_seconds(self, frame: int) -> float:
        return (frame * self.hop + self.offset + self.field / 2) / self.sample_rate


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


unit_objective = unit  # for objectives whose argument `unit` (the target tensor) hides the function


def channel(unit: torch.Tensor, log_softmax: bool = False) -> Objective:
    """One unit over every frame. With `log_softmax` (CTC logits only), the unit's log-probability: it
    rises only as the letter beats every other token, blank included, i.e. as greedy decoding hears it;
    a raw logit can rise with all the others and leave the letter unheard."""

    def target(acts, _signal):
        scores = acts.log_softmax(dim=2) if log_softmax else acts
        return scores.gather(2, unit.view(-1, 1, 1).expand(-1, acts.shape[1], 1)).squeeze(2).mean(dim=1)

    return Objective("activation", target)


def feature(geometry: Geometry, unit: torch.Tensor, kind: TargetKind = TargetKind.channel, frame: int | None = None,
            neighbours: float = 0.5, silence: float = 1.0, silence_margin_ms: float = 25.0) -> Objective:
    """A sparse autoencoder's features: the encoder sees the layer through the SAE (`sae.FeatureView`), so a
    feature is a unit of that view, over every frame (`kind="channel"`) or at one frame (`kind="unit"`)."""
    if kind == TargetKind.unit:
        return unit_objective(geometry, unit, frame, neighbours, silence, silence_margin_ms)
    return channel(unit)


def layer() -> Objective:
    """Deep dream: the mean square activation of the whole layer."""
    return Objective("activation", lambda acts, _signal: acts.pow(2).mean(dim=(1, 2)))


def direction(direction: torch.Tensor) -> Objective:
    """The projection of every frame on a unit-length vector of the layer's space, averaged."""
    unit_vectors = direction / direction.norm(dim=1, keepdim=True)

    def target(acts, _signal):
        return torch.einsum("btc,bc->bt", acts, unit_vectors.to(acts.dtype)).mean(dim=1)

    return Objective("activation", target)


def text(tokens: torch.Tensor, lengths: torch.Tensor, blank: int = 0, decoder=None) -> Objective:
    """The CTC log-likelihood of a text under the model's character outputs (the `logits` layer), per
    character: whole words rather than one unit. `tokens` (rows, longest) holds each row's text as token
    ids, padded; `lengths` their lengths. With `decoder` (Whisper: `Encoder.text_log_likelihood`), the
    decoder's teacher-forced log-likelihood per token instead, of the encoder's output."""
    if decoder is not None:
        return Objective("activation", lambda encoded, _signal: decoder(encoded, tokens, lengths))

    def log_likelihood(logits, _signal):
        log_probs = logits.float().log_softmax(dim=-1).transpose(0, 1)  # (frames, rows, vocabulary)
        frames = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long, device=logits.device)
        loss = torch.nn.functional.ctc_loss(log_probs, tokens, frames, lengths, blank=blank, reduction="none",
                                            zero_infinity=True)
        return -loss / lengths

    return Objective("activation", log_likelihood)


# --- regularisers (terms to subtract) ---------------------------------------------------------------


def spectral_profile(signal: torch.Tensor, bands: int = 64, floor_db: float = 40.0) -> torch.Tensor:
    """(rows, bands): each row's long-term spectral shape: its power in `bands` equal stretches of frequency
    (DC left out) in dB, floored `floor_db` below its loudest band (the quiet extremes say nothing a
    listener hears), mean removed (the level neither), unit length. Differentiable."""
    spectrum = torch.fft.rfft(signal.float()).abs().pow(2)[:, 1:]
    average = torch.zeros(spectrum.shape[1], bands, device=signal.device)
    for band, bins in enumerate(np.array_split(np.arange(spectrum.shape[1]), bands)):
        average[bins, band] = 1.0 / max(len(bins), 1)
    db = 10 * torch.log10(spectrum @ average + 1e-20)
    db = torch.maximum(db, db.amax(dim=1, keepdim=True) - floor_db)
    return torch.nn.functional.normalize(db - db.mean(dim=1, keepdim=True), dim=1)


def sibling_mean(similarity: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Per row: the mean of a (rows, rows) similarity over the other rows of its group."""
    siblings = (groups[:, None] == groups[None, :]).float()
    siblings.fill_diagonal_(0)
    return (similarity * siblings).sum(dim=1) / siblings.sum(dim=1).clamp(min=1)


def diversity(groups: torch.Tensor) -> Objective:
    """Per row: the mean cosine similarity of its spectral profile (`spectral_profile`) to those of the
    other samples of its target (rows with the same `groups` id): subtracted, it makes a target's samples
    sound different, each still driving the target. The record's `sibling_similarity` is this number.

    Not the similarity of the samples' activation vectors (Lucid's diversity, time-averaged here): between
    samples of one unit of a residual stream those were 0.95-0.99 whatever the sound, and weights that
    moved them cost a third of the activation while the spectra stayed alike (RESULTS.md, "Diversity")."""

    def similarity(_acts, signal):
        profile = spectral_profile(signal)
        return sibling_mean(profile @ profile.T, groups)

    return Objective("diversity", similarity)


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


def stay_close(reference: torch.Tensor) -> Objective:
    """Mean square distance of each row's signal from its reference signal, relative to the reference's
    own power: keeps an audiation started from a clip near that clip."""
    power = reference.pow(2).mean(dim=1).clamp(min=1e-12)
    return Objective("stay_close", lambda _acts, signal: (signal - reference).pow(2).mean(dim=1) / power)


def speech(log_probability: Callable[[torch.Tensor], torch.Tensor]) -> Objective:
    """A speech detector's mean log speech probability of each row (a reward: it is added); the builder
    passes silero-vad's (`judges.speech_log_probability`). The detector runs on the CPU whatever the device
    (silero's TorchScript model is only known to work there); gradients cross."""
    return Objective("speech", lambda _acts, signal: log_probability(signal.float().cpu()).to(signal.device))


def silence_outside(geometry: Geometry, frame: int, margin_ms: float, device="cpu") -> Objective:
    """Share of the signal's energy outside the samples `frame` sees (plus a margin each side)."""
    start, stop = geometry.frame_samples(frame, margin_ms)
    outside = torch.ones(geometry.num_samples, device=device)
    outside[start:stop] = 0

    def share(_acts, signal):
        energy = signal.pow(2)
        return (energy * outside).sum(dim=1) / (energy.sum(dim=1) + 1e-12)

    return Objective("silence", share)


# --- targets -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One row of an audiation: what it maximises, and the key that seeds its random stream.

    `objective` is the objective's label (the config option's `name`, never a Python name), so target
    names, and with them resumed folders, survive any renaming in the code."""

    objective: str
    layer: Layer
    key: int
    kind: TargetKind = TargetKind.layer
    unit: int | None = None
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    text: str | None = None
    index: int | None = None  # objective=direction: which of the vectors
    sample: int | None = None  # with samples=K: which of the target's K signals (each its own stream)

    @property
    def name(self) -> str:
        return self.group if self.sample is None else f"{self.group}-s{self.sample}"

    @property
    def group(self) -> str:
        """The target's name without its sample number: what its samples have in common."""
        if self.kind is TargetKind.text:
            return f"{self.objective}-{re.sub(r'[^0-9A-Za-z]+', '_', self.text or '').strip('_') or 'blank'}"
        if self.kind.of_units:
            return f"{self.layer.label}-U{self.unit}-{self.objective}"
        if self.kind is TargetKind.direction:
            return f"{self.layer.label}-D{self.index}-{self.objective}"
        return f"{self.layer.label}-{self.objective}"
