"""Augmentations applied to every optimisation step: differentiable, batched, on the signal's device.

Each row draws from its own stream (`randomness.Streams`), so rows stay independent of each other; a
step's draws are two calls for the whole batch, and nothing here waits on the device.
"""

from __future__ import annotations

import torch
from torch import nn

from audiation.core.randomness import Streams


class Augment(nn.Module):
    """Random time stretch, time shift, gain and additive noise, per row.

    - stretch: resample by a factor in [1 - stretch, 1 + stretch] about the signal's middle (the seed's
      ±10% resampling: pitch and tempo jitter together), by linear interpolation;
    - max_shift_ms: move the signal left or right by up to this much, zero-filling the gap;
    - gain_db: scale by up to ± this many dB;
    - room_ms: reverberate as a room would: add to the signal itself convolved with a decaying noise tail,
      the tail's -60 dB time drawn up to this many ms and its level 3-20 dB below the direct sound
      (a second model hears through a different "room" than the first: its own filters);
    - noise_snr_db: add Gaussian noise this many dB below the row's own RMS. Relative, not absolute, so
      the signal always dominates its noise (the seed's absolute noise drowned its quiet signal);
    - with_clean: the loop also scores the clean signal and optimises the mean of both (twice the work).
    """

    def __init__(
        self,
        sample_rate: int,
        max_shift_ms: float = 0.0,
        noise_snr_db: float | None = None,
        stretch: float = 0.0,
        gain_db: float = 0.0,
        room_ms: float = 0.0,
        with_clean: bool = False,
    ):
        super().__init__()
        self.max_shift = int(round(max_shift_ms * sample_rate / 1000))
        self.room = int(round(room_ms * sample_rate / 1000))
        self.with_clean = with_clean
        self.noise_snr_db = noise_snr_db
        self.stretch = stretch
        self.gain_db = gain_db

    @property
    def is_identity(self) -> bool:
        return not (self.max_shift or self.noise_snr_db is not None or self.stretch or self.gain_db or self.room)

    def forward(self, signal: torch.Tensor, streams: Streams) -> torch.Tensor:
        if self.is_identity:
            return signal
        length = signal.shape[1]
        # One uniform draw in [-1, 1) per row for each of: stretch, shift, gain, room decay, room level;
        # one normal draw for the room's tail and the noise together.
        draws = streams.uniform(5) * 2 - 1
        if self.stretch or self.max_shift:
            shift = torch.round(self.max_shift * draws[:, 1:2])
            signal = (self._warp(signal, 1 + self.stretch * draws[:, :1], shift) if self.stretch
                      else self._shift(signal, shift))
        if self.gain_db:
            signal = signal * 10 ** (self.gain_db * draws[:, 2:3] / 20)
        if self.room or self.noise_snr_db is not None:
            noise_length = length if self.noise_snr_db is not None else 0
            normal = streams.normal(self.room + noise_length)
            if self.room:
                signal = self._reverberate(signal, normal[:, :self.room], draws[:, 3:4], draws[:, 4:5])
            if self.noise_snr_db is not None:
                noise = normal[:, self.room:]
                rms = signal.detach().pow(2).mean(dim=1, keepdim=True).sqrt()
                signal = signal + noise * rms * 10 ** (-self.noise_snr_db / 20)
        return signal

    def _reverberate(self, signal: torch.Tensor, tail: torch.Tensor, decay: torch.Tensor,
                     level: torch.Tensor) -> torch.Tensor:
        """signal + (signal * tail), the tail's -60 dB time in [0.2, 1] x room and its energy 3-20 dB below
        the direct sound; one FFT convolution for the whole batch, cut back to the signal's length."""
        length = signal.shape[1]
        n = torch.arange(1, self.room + 1, device=signal.device, dtype=signal.dtype)
        tail = tail * torch.exp(-6.9 * n / (self.room * (0.6 + 0.4 * decay)))  # exp(-6.9) = -60 dB
        tail = tail / tail.pow(2).sum(dim=1, keepdim=True).sqrt() * 10 ** ((-11.5 + 8.5 * level) / 20)
        impulse = torch.nn.functional.pad(tail, (1, 0))  # the tail starts one sample after the direct sound
        size = length + self.room + 1
        wet = torch.fft.irfft(torch.fft.rfft(signal, n=size) * torch.fft.rfft(impulse, n=size), n=size)
        return signal + wet[:, :length]

    @staticmethod
    def _shift(signal: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """out[n] = signal[n - shift], zero outside: an integer shift needs one gather, not _warp's two."""
        length = signal.shape[1]
        index = torch.arange(length, device=signal.device) - shift.long()
        return signal.gather(1, index.clamp(0, length - 1)) * ((index >= 0) & (index < length))

    @staticmethod
    def _warp(signal: torch.Tensor, rate: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """out[n] = signal[c + (n - c) * rate - shift], linearly interpolated, zero outside the signal."""
        length = signal.shape[1]
        centre = (length - 1) / 2
        n = torch.arange(length, device=signal.device, dtype=signal.dtype)
        position = centre + (n - centre) * rate - shift
        left = position.floor()
        weight = position - left
        left = left.long()
        padded = torch.nn.functional.pad(signal, (1, 2))  # index -1 and length..length+1 read zeros

        def read(index):
            return padded.gather(1, (index + 1).clamp(0, length + 2))

        return read(left) * (1 - weight) + read(left + 1) * weight
