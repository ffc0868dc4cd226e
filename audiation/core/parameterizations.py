"""Parameterizations: the learnable tensors behind a batch of signals, one row per target.

Each row is initialised from its own random stream (`randomness.Streams`), so a target's result does
not depend on which other targets share its batch, nor on the device; or, given `initial` (rows, samples),
from that signal exactly: real speech, for "what does this unit want this word to become".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from audiation.core.randomness import Streams


class FFT(nn.Module):
    """The seed's recipe: random normal spectrum, each coefficient scaled by 1/f ** decay, inverse real FFT.

    The scale is (floor_hz / max(f, floor_hz)) ** decay with f in Hz, so it falls from 1 at the floor to
    (floor/Nyquist) ** decay at the top (the seed's 1/(1+f) with f in cycles/sample only reached 0.67). `decay`
    is 0.5 by default, not the seed's 1, so an "s" keeps its high frequencies (README). Because Adam takes steps
    of similar size on every coefficient, the same scale also sets how fast each band learns. `rms` sets the
    level: the waveform's RMS when every coefficient has unit variance. Coefficients start at `init_std`
    (Lucid's 0.01), small next to what Adam's steps add, so the result is what the objective asked for rather
    than the random start (scaling both together would change nothing: the model normalises its input).
    """

    scale: torch.Tensor  # a buffer: torch types what it registers as `Tensor | Module`

    def __init__(
        self,
        streams: Streams,
        seconds: float,
        sample_rate: int,
        decay: float = 0.5,
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


VOICED_START = 2.0  # the voicing logit a speech signal starts at: 88% harmonics, a vowel Praat hears as voiced


def _mel(hz: torch.Tensor | float):
    return 2595.0 * (torch.log10(1 + torch.as_tensor(hz) / 700.0))


class Speech(nn.Module):
    """A voice, not a spectrum: a differentiable harmonic-plus-noise synthesizer, one row per target.

    Per 10 ms frame (`frame_hz`) it learns an F0 (kept within `f0_hz` by a sigmoid on a log scale), a
    voicing share, a loudness, and two spectral envelopes on `bands` mel-spaced bands: one for the
    harmonics of F0, one for a noise band. Frames are interpolated to samples: the harmonics are sines of
    the integrated F0 (so pitch glides are smooth), the noise is the row's fixed white noise shaped frame by
    frame in the STFT domain. It starts mostly voiced, at a neutral 145 Hz. A fixed spectral tilt (-`tilt_db` per octave above 200 Hz) makes the start a
    buzzy neutral vowel rather than a flat buzz. Each row's level is set to `rms` (the model normalises its
    input; the loudness contour is what matters). What it cannot say is anything a larynx and a vocal tract
    could not: no clicks, no arbitrary spectra.
    """

    # buffers: torch types what it registers as `Tensor | Module`
    tilt: torch.Tensor
    window: torch.Tensor
    noise_stft: torch.Tensor
    bin_position: torch.Tensor

    def __init__(
        self,
        streams: Streams,
        seconds: float,
        sample_rate: int,
        bands: int = 32,
        f0_hz: tuple[float, float] = (70.0, 300.0),
        frame_hz: int = 100,
        harmonics: int = 60,
        tilt_db: float = 6.0,
        rms: float = 0.1,
        init_std: float = 0.1,
        initial: torch.Tensor | None = None,
    ):
        super().__init__()
        if initial is not None:
            raise ValueError("parameterization=speech cannot start from a clip (parameterization.init)")
        self.num_samples = round(seconds * sample_rate)
        self.sample_rate, self.rms, self.harmonics = sample_rate, rms, harmonics
        self.hop = sample_rate // frame_hz
        self.n_fft = 4 * self.hop
        frames = self.num_samples // self.hop + 1  # torch.stft's frame count (centred)
        self.log_f0_range = (math.log(f0_hz[0]), math.log(f0_hz[1]))
        self.f0 = nn.Parameter(init_std * streams.normal(frames))
        self.voicing = nn.Parameter(VOICED_START + init_std * streams.normal(frames))
        self.loudness = nn.Parameter(init_std * streams.normal(frames))
        self.harmonic_envelope = nn.Parameter(init_std * streams.normal(frames, bands))
        self.noise_envelope = nn.Parameter(init_std * streams.normal(frames, bands))
        device = streams.device
        nyquist = sample_rate / 2
        self.mel_top = float(_mel(nyquist))
        centres = torch.linspace(0, self.mel_top, bands, device=device)
        hz = 700.0 * (10 ** (centres / 2595.0) - 1)
        # natural-log amplitude of the tilt at each band
        self.register_buffer("tilt", -tilt_db / 20 * math.log(10) * torch.log2(hz.clamp(min=200.0) / 200.0))
        self.register_buffer("window", torch.hann_window(self.n_fft, device=device))
        noise = streams.normal(self.num_samples)
        self.register_buffer("noise_stft", torch.stft(noise, self.n_fft, self.hop, window=self.window,
                                                      return_complex=True))
        bins = torch.fft.rfftfreq(self.n_fft, d=1.0 / sample_rate, device=device)
        self.register_buffer("bin_position", _mel(bins) / self.mel_top * (bands - 1))

    def _envelope_at(self, envelope: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Log amplitude of (rows, frames, bands) envelopes at fractional band `position`s, linearly
        interpolated; `position` is (rows, frames, k) or (k,)."""
        bands = envelope.shape[-1]
        position = position.clamp(0, bands - 1)
        low = position.floor().long().clamp(max=bands - 2)
        weight = position - low
        if position.dim() == 1:
            return envelope[..., low] * (1 - weight) + envelope[..., low + 1] * weight
        return (torch.gather(envelope, -1, low) * (1 - weight) + torch.gather(envelope, -1, low + 1) * weight)

    def _to_samples(self, frames: torch.Tensor) -> torch.Tensor:
        """(rows, channels, frames) -> (rows, channels, samples), linear between frame centres."""
        return torch.nn.functional.interpolate(frames, size=self.num_samples, mode="linear", align_corners=True)

    def forward(self) -> torch.Tensor:
        low, high = self.log_f0_range
        f0 = torch.exp(low + (high - low) * torch.sigmoid(self.f0))  # (rows, frames)
        voicing = torch.sigmoid(self.voicing)
        k = torch.arange(1, self.harmonics + 1, device=f0.device, dtype=f0.dtype)
        frequency = f0[..., None] * k  # (rows, frames, harmonics)
        position = _mel(frequency) / self.mel_top * (self.harmonic_envelope.shape[-1] - 1)
        tilted = self.harmonic_envelope + self.tilt
        amplitude = torch.exp(self._envelope_at(tilted, position)) * (frequency < self.sample_rate / 2)
        f0_samples = self._to_samples(f0[:, None])[:, 0]
        phase = 2 * math.pi * torch.cumsum(f0_samples / self.sample_rate, dim=1)
        amplitude = self._to_samples(amplitude.transpose(1, 2))  # (rows, harmonics, samples)
        voiced = (amplitude * torch.sin(k[:, None] * phase[:, None])).sum(1)
        shape = torch.exp(self._envelope_at(self.noise_envelope + self.tilt, self.bin_position))  # (rows, frames, bins)
        noise = torch.istft(self.noise_stft * shape.transpose(1, 2), self.n_fft, self.hop, window=self.window,
                            length=self.num_samples)
        mix = self._to_samples(torch.stack([voicing, 1 - voicing, torch.exp(self.loudness)], 1))
        signal = (mix[:, 0] * voiced / math.sqrt(self.harmonics) + mix[:, 1] * noise) * mix[:, 2]
        return signal * (self.rms / signal.pow(2).mean(1, keepdim=True).add(1e-12).sqrt())
