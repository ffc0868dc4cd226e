"""Parameterizations: the learnable tensors behind a batch of signals, one row per target.

Each row is initialised from its own random stream (`randomness.Streams`), so a target's result does
not depend on which other targets share its batch, nor on the device; or, given `initial` (rows, samples),
from that signal exactly: real speech, for "what does this unit want this word to become".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from audiation.randomness import Streams


class FFT(nn.Module):
    """The seed's recipe: random normal spectrum, each coefficient scaled by 1/f, inverse real FFT.

    The scale is (floor_hz / max(f, floor_hz)) ** decay with f in Hz, so it falls from 1 at the floor to
    floor/Nyquist at the top (the seed's 1/(1+f) with f in cycles/sample only reached 0.67). Because Adam
    takes steps of similar size on every coefficient, the same scale also sets how fast each band learns.
    `rms` sets the level: the waveform's RMS when every coefficient has unit variance. Coefficients start
    at `init_std` (Lucid's 0.01), small next to what Adam's steps add, so the result is what the objective
    asked for rather than the random start (scaling both together would change nothing: the model
    normalises its input).
    """

    def __init__(
        self,
        streams: Streams,
        seconds: float,
        sample_rate: int,
        decay: float = 1.0,
        floor_hz: float = 100.0,
        rms: float = 0.1,
        init_std: float = 0.01,
        initial: torch.Tensor | None = None,
    ):
        super().__init__()
        self.num_samples = num_samples = round(seconds * sample_rate)
        frequencies = torch.fft.rfftfreq(num_samples, d=1.0 / sample_rate, device=streams.device)
        scale = (floor_hz / frequencies.clamp(min=floor_hz)) ** decay
        # Parseval: a unit-variance spectrum with this scale gives a waveform of this RMS.
        unit_rms = math.sqrt(2 * (scale**2).sum().item()) / num_samples
        self.register_buffer("scale", scale * rms / unit_rms)
        if initial is None:
            coefficients = init_std * streams.normal(len(frequencies), 2)
        else:  # the spectrum that the forward pass turns back into `initial`
            coefficients = torch.view_as_real(torch.fft.rfft(initial.to(self.scale), n=num_samples) / self.scale)
        self.coefficients = nn.Parameter(coefficients.contiguous())

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.coefficients) * self.scale
        return torch.fft.irfft(spectrum, n=self.num_samples)


class Waveform(nn.Module):
    """Raw samples, initialised as white noise of RMS `init_std` (or as `initial`): the baseline the FFT one
    improves on."""

    def __init__(
        self,
        streams: Streams,
        seconds: float,
        sample_rate: int,
        init_std: float = 0.01,
        initial: torch.Tensor | None = None,
    ):
        super().__init__()
        num_samples = round(seconds * sample_rate)
        start = init_std * streams.normal(num_samples) if initial is None else initial.to(streams.device).clone()
        self.samples = nn.Parameter(start)

    def forward(self) -> torch.Tensor:
        return self.samples
