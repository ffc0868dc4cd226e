"""Objectives: they compose linearly, score each row on its own, and the unit objective's terms are
what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiation.core import objectives
from audiation.core.objectives import Geometry, Objective


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


def test_each_row_is_scored_on_its_own_units():
    acts = torch.randn(3, 5, 8)
    unit = torch.tensor([2, 7, 0])
    score, _ = objectives.channel(unit)(acts, torch.zeros(3, 100))
    torch.testing.assert_close(score, acts[torch.arange(3), :, unit].mean(dim=1))
    direction = torch.zeros(3, 8)
    direction[torch.arange(3), unit] = 2.0  # a unit vector after normalising: the same as the channel
    torch.testing.assert_close(objectives.direction(direction)(acts, torch.zeros(3, 100))[0], score)


def test_unit_objective_terms_activation_neighbours_and_silence():
    geometry = Geometry(num_samples=16000, num_frames=49, num_units=4, hop=320, field=400, sample_rate=16000)
    acts = torch.zeros(1, 49, 4)
    acts[0, 24] = torch.tensor([3.0, -1.0, 1.0, 2.0])
    signal = torch.zeros(1, 16000)
    start, stop = geometry.frame_samples(24, margin_ms=25)
    signal[0, start:stop] = 1.0
    total, terms = objectives.unit(geometry, torch.tensor([0]), frame=24)(acts, signal)
    assert terms["activation"].item() == 3.0
    assert terms["neighbours"].item() == pytest.approx((1 + 1 + 2) / 3)  # mean |activation| of the other units
    assert terms["silence"].item() == 0.0  # all energy inside the frame's samples and margin
    assert total.item() == pytest.approx(3.0 - 0.5 * 4 / 3)
    signal[0, :100] = 1.0  # energy away from the frame: the silence term is its share, subtracted
    total, terms = objectives.unit(geometry, torch.tensor([0]))(acts, signal)  # the middle frame is 24
    assert (start, stop) == (24 * 320 - 400, 24 * 320 + 400 + 400)  # 25 ms = 400 samples each side
    assert terms["silence"].item() == pytest.approx(100 / 1300)
    assert total.item() == pytest.approx(3.0 - 0.5 * 4 / 3 - 1.0 * 100 / 1300)
    weighted = objectives.unit(geometry, torch.tensor([0]), neighbours=2.0, silence=3.0, silence_margin_ms=0)
    total, terms = weighted(acts, signal)
    assert terms["silence"].item() == pytest.approx((100 + 1200 - 400) / 1300)  # only the frame's own 400 inside
    assert total.item() == pytest.approx(3.0 - 2.0 * 4 / 3 - 3.0 * 900 / 1300)
    assert geometry.frame_samples(0) == (0, 400) and geometry.frame_samples(48, 10) == (48 * 320 - 160, 48 * 320 + 400 + 160)
    assert geometry.frame_centre_seconds(24) == pytest.approx((24 * 320 + 200) / 16000)


def test_a_channels_log_probability_rises_only_when_the_letter_beats_the_others():
    """channel(log_softmax=True): the mean over frames of log p(unit); raising every logit together (which
    the raw logit objective rewards) leaves it unchanged."""
    logits = torch.randn(2, 7, 5)
    unit = torch.tensor([1, 3])
    raw, heard = objectives.channel(unit), objectives.channel(unit, log_softmax=True)
    expected = torch.stack([logits[0].log_softmax(-1)[:, 1].mean(), logits[1].log_softmax(-1)[:, 3].mean()])
    torch.testing.assert_close(heard(logits, None)[0], expected)
    torch.testing.assert_close(heard(logits + 4.0, None)[0], expected)
    torch.testing.assert_close(raw(logits + 4.0, None)[0], raw(logits, None)[0] + 4.0)


def test_diversity_compares_a_sample_only_with_its_own_siblings_and_is_the_recorded_similarity():
    from audiation.hearing.quality import sibling_similarity

    signals = torch.randn(4, 16000)
    signals[2] = signals[0]  # identical to row 0, but another target's sample: it must not count
    groups = torch.tensor([0, 0, 1, 1])
    _, terms = objectives.diversity(groups)(torch.zeros(4, 5, 3), signals)
    profile = objectives.spectral_profile(signals)
    expected = torch.stack([profile[0] @ profile[1], profile[1] @ profile[0], profile[2] @ profile[3],
                            profile[3] @ profile[2]])
    torch.testing.assert_close(terms["diversity"], expected)
    assert terms["diversity"][0] < 0.9  # with row 2 counted it would be near (1 + x) / 2
    recorded = sibling_similarity(signals.numpy(), ["a", "a", "b", "b"])
    np.testing.assert_allclose(recorded, expected.numpy(), atol=1e-5)


def test_a_spectral_profile_ignores_level_and_what_lies_40_db_below_the_loudest_band():
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t)[None]
    faint = tone + 1e-4 * torch.sin(2 * torch.pi * 5000 * t)  # 80 dB down
    audible = tone + 0.3 * torch.sin(2 * torch.pi * 5000 * t)  # 10 dB down
    profile = objectives.spectral_profile(torch.cat([tone, 3 * tone, faint, audible]))
    assert profile[0] @ profile[1] > 0.9999 and profile[0] @ profile[2] > 0.9999
    assert profile[0] @ profile[3] < 0.95


def test_regularisers_are_the_numbers_they_say():
    geometry = Geometry(num_samples=16000, num_frames=49, num_units=4, hop=320, field=400, sample_rate=16000)
    t = torch.arange(16000) / 16000
    low, high = torch.sin(2 * torch.pi * 1000 * t), torch.sin(2 * torch.pi * 6000 * t)
    signal = torch.stack([low, low + 0.5 * high, 2 * low])
    acts = torch.zeros(3, 49, 4)
    share = objectives.high_frequency(geometry, 4000)(acts, signal)[1]["high_frequency"]
    torch.testing.assert_close(share, torch.tensor([0.0, 0.25 / 1.25, 0.0]), atol=1e-4, rtol=0)
    assert objectives.high_frequency(geometry, 7000)(acts, signal)[1]["high_frequency"][1] < 1e-4  # the cutoff
    torch.testing.assert_close(objectives.power()(acts, signal)[0], torch.tensor([0.5, 0.625, 2.0]), atol=1e-3, rtol=0)
    close = objectives.stay_close(low.expand(3, -1))(acts, signal)[0]
    torch.testing.assert_close(close, torch.tensor([0.0, 0.125 / 0.5, 1.0]), atol=1e-3, rtol=0)


def test_a_texts_objective_is_the_ctc_log_likelihood_per_character():
    logits = torch.randn(2, 9, 5)
    tokens, lengths = torch.tensor([[1, 2, 2], [3, 0, 0]]), torch.tensor([3, 1])
    value = objectives.text(tokens, lengths, blank=0)(logits, None)[0]
    log_probs = logits.log_softmax(-1).transpose(0, 1)
    loss = torch.nn.functional.ctc_loss(log_probs, tokens, torch.tensor([9, 9]), lengths, blank=0, reduction="none")
    torch.testing.assert_close(value, -loss / lengths)


def test_layer_objective_is_the_mean_square_activation():
    acts = torch.arange(12.0).reshape(2, 2, 3)
    torch.testing.assert_close(objectives.layer()(acts, None)[0], acts.pow(2).mean(dim=(1, 2)))
    assert set(objectives.layer()(acts, None)[1]) == {"activation"}
    assert set(objectives.channel(torch.tensor([0, 1]))(acts, None)[1]) == {"activation"}
    assert set(objectives.direction(torch.ones(2, 3))(acts, None)[1]) == {"activation"}
    assert repr(objectives.power() * 2 - objectives.layer()) == "2*power + -1*activation"


def test_a_spectral_profile_has_its_bands_and_is_unit_length():
    signal = torch.randn(3, 16000)
    profile = objectives.spectral_profile(signal)
    assert profile.shape == (3, 64)
    torch.testing.assert_close(profile.norm(dim=1), torch.ones(3))
    # mean removed: white noise's flat profile has a small norm, so fp32 rounding of the mean, divided by
    # it, reaches ~1e-4; a profile that kept its mean would sum to ~8 (a unit vector of 64 equal parts)
    torch.testing.assert_close(profile.sum(dim=1), torch.zeros(3), atol=1e-3, rtol=0)
    assert objectives.spectral_profile(signal, bands=16).shape == (3, 16)
    spectrum = torch.fft.rfft(signal[:1]).abs().pow(2)[:, 1:]
    db = 10 * torch.log10(torch.stack([part.mean(dim=1) for part in spectrum.tensor_split(64, dim=1)], dim=1))
    db = torch.maximum(db, db.max() - 40)
    torch.testing.assert_close(profile[:1], torch.nn.functional.normalize(db - db.mean(), dim=1), atol=1e-5, rtol=0)


def test_the_unit_objectives_defaults_margin_frame_and_rows():
    geometry = Geometry(num_samples=16000, num_frames=49, num_units=4, hop=320, field=400, sample_rate=16000)
    acts = torch.zeros(2, 49, 4)
    acts[0, 10] = torch.tensor([3.0, -1.0, 1.0, 2.0])
    acts[1, 10] = torch.tensor([0.0, 5.0, 1.0, 1.0])
    signal = torch.zeros(2, 16000)
    signal[:, 10 * 320] = 1.0  # inside the frame's samples
    signal[:, 10 * 320 - 405] = 0.5  # 25.3 ms before the frame: outside a 25 ms margin, inside a 26 ms one
    total, terms = objectives.unit(geometry, torch.tensor([0, 1]), frame=10)(acts, signal)
    torch.testing.assert_close(terms["activation"], torch.tensor([3.0, 5.0]))
    torch.testing.assert_close(terms["neighbours"], torch.tensor([4 / 3, 2 / 3]))
    torch.testing.assert_close(terms["silence"], torch.tensor([0.2, 0.2]))  # energy: 0.25 of 1.25
    torch.testing.assert_close(total, torch.tensor([3.0 - 0.5 * 4 / 3 - 0.2, 5.0 - 0.5 * 2 / 3 - 0.2]))
    signal[1] = 2 * signal[1]  # the share does not depend on the level, and each row has its own
    torch.testing.assert_close(objectives.silence_outside(geometry, 10, 25.0)(acts, signal)[1]["silence"],
                               torch.tensor([0.2, 0.2]))


def test_a_text_that_cannot_fit_scores_zero_not_minus_infinity_and_blank_is_zero_by_default():
    logits = torch.randn(1, 3, 5)
    tokens, lengths = torch.tensor([[1, 2, 3, 4]]), torch.tensor([4])  # 4 characters, 3 frames
    value, terms = objectives.text(tokens, lengths)(logits, None)
    assert value.item() == 0.0 and set(terms) == {"activation"}
    fits = torch.tensor([[1, 2]]), torch.tensor([2])
    default = objectives.text(*fits)(logits, None)[0]
    torch.testing.assert_close(default, objectives.text(*fits, blank=0)(logits, None)[0])
    assert not torch.allclose(default, objectives.text(*fits, blank=4)(logits, None)[0])


def test_regulariser_edges_a_tone_at_the_cutoff_and_references_of_their_own():
    geometry = Geometry(num_samples=16000, num_frames=49, num_units=4, hop=320, field=400, sample_rate=16000)
    t = torch.arange(16000) / 16000
    at_cutoff = torch.sin(2 * torch.pi * 4000 * t)[None]
    assert objectives.high_frequency(geometry, 4000)(None, at_cutoff)[1]["high_frequency"].item() < 1e-6
    references = torch.stack([torch.ones(16000), 3 * torch.ones(16000)])
    close = objectives.stay_close(references)(None, torch.zeros(2, 16000))
    torch.testing.assert_close(close[1]["stay_close"], torch.tensor([1.0, 1.0]))


def test_a_spectral_profile_floors_each_row_at_its_own_loudest_band():
    t = torch.arange(16000) / 16000
    tones = [(500, 0.0), (2000, -20.0), (4000, -35.0), (6000, -45.0)]  # the last one below the 40 dB floor
    loud = sum(10 ** (db / 20) * torch.sin(2 * torch.pi * f * t) for f, db in tones)
    signal = torch.stack([loud, 1e-3 * loud])  # the same shape, 60 dB apart
    profile = objectives.spectral_profile(signal)
    torch.testing.assert_close(profile[0], profile[1], atol=1e-4, rtol=0)
    spectrum = torch.fft.rfft(loud[None]).abs().pow(2)[:, 1:]
    db = 10 * torch.log10(torch.stack([part.mean(dim=1) for part in spectrum.tensor_split(64, dim=1)], dim=1) + 1e-20)
    floored = torch.maximum(db, db.max() - 40)
    torch.testing.assert_close(profile[:1], torch.nn.functional.normalize(floored - floored.mean(), dim=1),
                               atol=1e-5, rtol=0)
    deeper = torch.maximum(db, db.max() - 41)
    assert not torch.allclose(profile[:1], torch.nn.functional.normalize(deeper - deeper.mean(), dim=1), atol=1e-3)


def test_sibling_mean_averages_over_each_rows_siblings():
    similarity = torch.arange(16.0).reshape(4, 4)
    groups = torch.tensor([0, 0, 0, 1])
    torch.testing.assert_close(objectives.sibling_mean(similarity, groups),
                               torch.tensor([(1 + 2) / 2, (4 + 6) / 2, (8 + 9) / 2, 0.0]))


def test_a_quiet_signals_high_frequency_share_is_still_its_share():
    geometry = Geometry(num_samples=16000, num_frames=49, num_units=4, hop=320, field=400, sample_rate=16000)
    t = torch.arange(16000) / 16000
    quiet = 1e-6 * (torch.sin(2 * torch.pi * 1000 * t) + torch.sin(2 * torch.pi * 6000 * t))[None]
    assert objectives.high_frequency(geometry, 4000)(None, quiet)[1]["high_frequency"].item() == pytest.approx(0.5, abs=1e-3)
