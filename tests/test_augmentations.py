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


def test_a_room_adds_a_causal_decaying_tail_3_to_20_db_below_the_direct_sound():
    click = torch.zeros(4, 16000)
    click[:, 4000] = 1.0
    room = Augment(16000, room_ms=100)
    heard = room(click, Streams(0, [0, 1, 2, 3]))
    torch.testing.assert_close(heard[:, :4001], click[:, :4001], rtol=0, atol=1e-6)  # causal; direct sound kept
    tail = heard[:, 4001:]
    level_db = 10 * torch.log10(tail.pow(2).sum(1))
    assert ((level_db > -20.1) & (level_db < -2.9)).all() and level_db.std() > 0.5, level_db  # drawn per row
    assert tail[:, 1600:].abs().max() < 1e-6  # it ends within room_ms
    early, late = tail[:, :400].pow(2).sum(1), tail[:, 1200:1600].pow(2).sum(1)
    assert (late < early / 100).all()  # and decays
    assert not room.is_identity
    sine = torch.sin(torch.arange(16000) / 5.0)[None].repeat(2, 1).requires_grad_()
    room(sine, Streams(0, [0, 1])).pow(2).sum().backward()  # differentiable
    assert sine.grad.abs().sum() > 0
