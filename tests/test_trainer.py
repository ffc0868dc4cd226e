"""The loop's failure paths: NaN/inf names its step and keeps the last finite signal; Ctrl-C keeps
what exists. Objectives compose linearly."""

from __future__ import annotations

import numpy as np
import torch

from audiation.augmentations import Augment
from audiation.model import Layer
from audiation.objectives import Objective, Target
from audiation.parameterizations import FFT
from audiation.randomness import Streams
from audiation.trainer import Batch, LoopSettings, audiate


def _run(encoder, objective, steps=30, log_every=5):
    streams = Streams(0, [0])
    signal = FFT(streams, seconds=0.5, sample_rate=16000)
    optimizer = torch.optim.Adam(signal.parameters(), lr=0.05)
    batch = Batch([Target("test", Layer("transformer", 2), 0)], streams, signal, Augment(16000), objective, optimizer)
    return audiate(encoder, Layer("transformer", 2), batch, LoopSettings(steps, log_every))


def _failing_at(step_to_fail, error=None):
    calls = {"n": 0}

    def term(acts, _signal):
        calls["n"] += 1
        if calls["n"] - 1 == step_to_fail:  # call 0 is the initial evaluation; call k is step k
            if error:
                raise error
            return acts[:, 0, 0] * float("nan")
        return acts[:, 0, 0]

    return Objective("activation", term)


def test_nan_stops_with_the_step_and_keeps_a_finite_signal(small_encoder):
    result = _run(small_encoder, _failing_at(13))
    assert result.stopped == "the loss became NaN/inf at step 13"
    assert result.steps == 10  # the last block of steps that was checked finite
    assert np.isfinite(result.signal).all() and np.abs(result.signal).max() > 0


def test_ctrl_c_keeps_the_signal_so_far(small_encoder):
    result = _run(small_encoder, _failing_at(8, KeyboardInterrupt()))
    assert result.stopped == "interrupted"
    assert result.steps == 7 and np.isfinite(result.signal).all()
    assert len(result.history["activation"]) == 7


def test_objectives_combine_linearly():
    acts = torch.arange(24.0).reshape(2, 3, 4)
    signal = torch.ones(2, 10)
    a = Objective("a", lambda x, s: x[:, 0, 0])
    b = Objective("b", lambda x, s: x[:, 1, 1])
    c = Objective("c", lambda x, s: s.sum(dim=1))
    total, terms = (a + 0.5 * b - c)(acts, signal)
    torch.testing.assert_close(total, acts[:, 0, 0] + 0.5 * acts[:, 1, 1] - 10)
    assert set(terms) == {"a", "b", "c"}
    torch.testing.assert_close((-(2 * a))(acts, signal)[0], -2 * acts[:, 0, 0])


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
