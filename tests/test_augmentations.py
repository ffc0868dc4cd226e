"""Augmentations: each row draws its own shift, noise at the stated SNR, stretch about the middle, and
no augmentation is the identity."""

from __future__ import annotations

import torch

from audiation.core.augmentations import Augment
from audiation.core.randomness import Streams


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


def test_a_warp_reads_the_signal_at_its_stretched_and_shifted_positions():
    import numpy as np

    signal = torch.randn(2, 300, dtype=torch.float64)
    rate, shift = torch.tensor([[1.1], [0.93]], dtype=torch.float64), torch.tensor([[3.5], [-12.0]], dtype=torch.float64)
    out = Augment._warp(signal, rate, shift)
    centre = (300 - 1) / 2
    for row in range(2):
        position = centre + (np.arange(300) - centre) * rate[row].item() - shift[row].item()
        expected = np.interp(position, np.arange(300), signal[row].numpy(), left=0.0, right=0.0)
        inside = (position >= 0) & (position <= 299)
        np.testing.assert_allclose(out[row].numpy()[inside], expected[inside], atol=1e-12)
        assert np.all(np.abs(out[row].numpy()[position < -1]) == 0) and np.all(out[row].numpy()[position > 300] == 0)


def test_a_room_is_the_signal_plus_its_convolution_with_the_scaled_tail():
    import numpy as np

    room = Augment(16000, room_ms=2)  # 32 samples of tail
    signal = torch.randn(2, 500, dtype=torch.float64)
    tail = torch.randn(2, 32, dtype=torch.float64)
    decay, level = torch.tensor([[-1.0], [0.5]], dtype=torch.float64), torch.tensor([[1.0], [-0.2]], dtype=torch.float64)
    out = room._reverberate(signal, tail, decay, level)
    for row in range(2):
        n = np.arange(1, 33)
        shaped = tail[row].numpy() * np.exp(-6.9 * n / (32 * (0.6 + 0.4 * decay[row].item())))
        shaped *= 10 ** ((-11.5 + 8.5 * level[row].item()) / 20) / np.sqrt((shaped ** 2).sum())
        wet = np.convolve(signal[row].numpy(), np.concatenate([[0.0], shaped]))[:500]
        np.testing.assert_allclose(out[row].numpy(), signal[row].numpy() + wet, atol=1e-9)


def test_each_step_draws_only_what_its_augmentations_use():
    """One uniform draw for shift, stretch and gain; a normal draw only with noise or a room: an unused draw
    would change every later step's random numbers, and with them every seed's audio."""
    signal = torch.randn(2, 4000)
    for augment, draws in ((Augment(16000, max_shift_ms=5, gain_db=3), 1), (Augment(16000, noise_snr_db=20), 2),
                           (Augment(16000, room_ms=10), 2)):
        streams = Streams(0, [0, 1])
        augment(signal, streams)
        assert streams.draws == draws
