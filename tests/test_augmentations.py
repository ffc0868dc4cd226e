"""Augmentations: each row draws its own shift, noise at the stated SNR, stretch about the middle, and
no augmentation is the identity."""

from __future__ import annotations

import torch

from audiation.augmentations import Augment
from audiation.randomness import Streams


def test_augment_shift_noise_and_stretch():
    signal = torch.randn(3, 16000)
    shifted = Augment(16000, max_shift_ms=5)(signal, Streams(0, [0, 1, 2]))
    shifts = [next(s for s in range(-80, 81) if torch.equal(torch.roll(signal[i], s)[100:-100], shifted[i, 100:-100]))
              for i in range(3)]
    assert len(set(shifts)) > 1  # each row draws its own shift
    noisy = Augment(16000, noise_snr_db=20)(signal, Streams(0, [0, 1, 2]))
    snr = 10 * torch.log10(signal.pow(2).mean(1) / (noisy - signal).pow(2).mean(1))
    assert torch.allclose(snr, torch.full((3,), 20.0), atol=0.5)
    ramp = torch.linspace(-1, 1, 1001)[None]
    stretched = Augment(16000, stretch=0.1)(ramp, Streams(0, [5]))
    assert abs(stretched[0, 500]) < 1e-6  # stretched about the middle
    assert torch.equal(Augment(16000)(signal, Streams(0, [0, 1, 2])), signal)


def test_integer_shift_equals_the_general_warp():
    signal = torch.randn(4, 1000)
    shift = torch.tensor([[-7.0], [0.0], [3.0], [250.0]])
    torch.testing.assert_close(Augment._shift(signal, shift), Augment._warp(signal, torch.ones(4, 1), shift))
