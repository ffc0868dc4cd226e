"""Parameterizations: the FFT signal has the level and the spectral slope it is set to, starts small,
and every parameterization starts each row from its own stream; the speech signal is a voice whose F0
follows its control, and each row's gradient stays in its row."""

from __future__ import annotations

import math

import pytest
import torch

from audiation.core.parameterizations import FFT, Speech, Waveform
from audiation.core.randomness import Streams


def test_fft_signal_has_the_rms_it_is_set_to_and_a_power_law_spectrum():
    # Unit-variance complex coefficients: real and imaginary parts each of variance 1/2.
    signal = FFT(Streams(0, list(range(64))), seconds=1.0, sample_rate=16000, decay=1.0, rms=0.1,
                 init_std=math.sqrt(0.5))
    wave = signal().detach()
    assert wave.shape == (64, 16000)
    assert abs(wave.pow(2).mean().sqrt().item() - 0.1) < 0.01  # the level, on average over rows
    spectrum = torch.fft.rfft(wave).abs().pow(2).mean(dim=0)
    low, high = spectrum[200:400].mean(), spectrum[4000:8000].mean()  # around 300 Hz and 6 kHz
    expected = (6000 / 300) ** 2  # power falls as 1/f^2 for decay 1 (amplitude 1/f)
    assert 0.5 * expected < low / high < 2 * expected


def test_coefficients_start_at_init_std_and_rows_differ():
    signal = FFT(Streams(0, [0, 1]), seconds=0.5, sample_rate=16000, init_std=0.01)
    assert math.isclose(signal.coefficients.std().item(), 0.01, rel_tol=0.05)
    assert not torch.equal(signal.coefficients[0], signal.coefficients[1])
    waveform = Waveform(Streams(0, [0, 1]), seconds=0.5, sample_rate=16000, init_std=0.01)
    assert waveform().shape == (2, 8000) and math.isclose(waveform().std().item(), 0.01, rel_tol=0.05)


def test_a_row_starts_the_same_alone_or_in_a_batch():
    alone = FFT(Streams(3, [5]), seconds=0.5, sample_rate=16000)().detach()
    batch = FFT(Streams(3, [1, 5]), seconds=0.5, sample_rate=16000)().detach()
    torch.testing.assert_close(alone[0], batch[1], rtol=0, atol=0)


def test_a_clip_is_the_start_exactly():
    clip = torch.sin(torch.arange(8000) * 0.05)[None].repeat(2, 1) * 0.3
    for kind, kwargs in ((FFT, {"decay": 0.5}), (Waveform, {})):
        signal = kind(Streams(0, [0, 1]), seconds=0.5, sample_rate=16000, initial=clip, **kwargs)
        torch.testing.assert_close(signal().detach(), clip, rtol=1e-4, atol=1e-5)


def test_a_raw_waveform_starts_as_white_noise_of_rms_init_std():
    signal = Waveform(Streams(0, [0, 1]), seconds=1.0, sample_rate=16000)()
    assert signal.shape == (2, 16000)
    torch.testing.assert_close(signal.pow(2).mean(dim=1).sqrt(), torch.full((2,), 0.01), atol=3e-4, rtol=0)


def test_an_odd_number_of_samples_is_kept():
    signal = FFT(Streams(0, [0]), seconds=8001 / 16000, sample_rate=16000)()
    assert signal.shape == (1, 8001)


def _speech(keys, **kwargs):
    return Speech(Streams(3, keys), seconds=0.5, sample_rate=16000, **kwargs)


def test_a_speech_row_is_the_same_alone_or_in_a_batch_and_its_gradient_stays_in_its_row():
    alone = _speech([5])().detach()
    signal = _speech([1, 5])
    batch = signal()
    torch.testing.assert_close(alone[0], batch[1].detach(), rtol=0, atol=1e-4)
    batch[1].pow(2).sum().backward()
    for parameter in signal.parameters():
        assert parameter.grad[0].abs().sum() == 0 and parameter.grad[1].abs().sum() > 0  # every control learns


def test_speech_starts_as_a_voiced_vowel_at_its_level_and_f0_follows_its_control():
    from audiation.hearing import judges

    signal = _speech([0, 1], rms=0.2)
    wave = signal().detach()
    torch.testing.assert_close(wave.pow(2).mean(1).sqrt(), torch.full((2,), 0.2), rtol=1e-4, atol=0)
    heard = judges.judge(wave[0].numpy(), 16000)
    assert heard["voiced_share"] > 0.9 and abs(heard["f0_hz"] - math.sqrt(70 * 300)) < 10  # the range's middle
    with torch.no_grad():
        signal.f0.fill_(math.log(3))  # sigmoid -> 3/4 of the log range
    expected = math.exp(math.log(70) + 0.75 * (math.log(300) - math.log(70)))
    assert abs(judges.judge(signal()[0].detach().numpy(), 16000)["f0_hz"] - expected) < 0.03 * expected


def test_speech_cannot_start_from_a_clip():
    with pytest.raises(ValueError, match="cannot start from a clip"):
        _speech([0], initial=torch.zeros(1, 8000))
