"""The judges: tools built for human speech, on the shipped speech slice against noise, on bad input, and
in every target's record."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audiation import judges
from audiation.configs import ASSETS
from audiation.jobs import audiate_folder
from audiation.results import read_record
from conftest import compose

SLICE = ASSETS / "speech-slice"


def _speech(n: int = 6) -> list[np.ndarray]:
    """The first n slice clips of at least a second, cut to one second."""
    clips = []
    for path in sorted(SLICE.glob("*.flac")):
        x, rate = sf.read(path, dtype="float32")
        if len(x) >= rate:
            clips.append(x[:rate])
        if len(clips) == n:
            return clips
    raise AssertionError("the slice has too few clips of a second")


def test_each_judge_tells_the_slices_speech_from_noise():
    noise = [np.random.default_rng(seed).standard_normal(16000).astype(np.float32) * 0.1 for seed in range(3)]
    speech = [judges.judge(x, 16000) for x in _speech()]
    heard_noise = [judges.judge(x, 16000) for x in noise]
    assert min(s["speech_probability"] for s in speech) > 0.4 > 0.1 > max(n["speech_probability"] for n in heard_noise)
    assert min(len(s["phones"]) for s in speech) >= 2 and max(len(n["phones"]) for n in heard_noise) <= 1
    assert min(s["voiced_share"] for s in speech) > 0.4 and max(n["voiced_share"] for n in heard_noise) < 0.05
    assert all(60 <= s["f0_hz"] <= 300 and s["hnr_db"] > 5 and 200 < s["f1_hz"] < s["f2_hz"] < 3000 for s in speech)
    assert all(n["f0_hz"] is None and n["hnr_db"] < 5 for n in heard_noise)
    assert all(s["judges_note"] is None and s["phone_at_target"] is None for s in speech)  # no target given


def test_praats_f0_follows_a_tone_and_the_phone_at_the_target_is_the_segment_spanning_it():
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sign(np.sin(2 * np.pi * 140 * t))).astype(np.float32)  # a buzz: harmonics at 140 Hz
    assert judges.judge(tone, 16000)["f0_hz"] == pytest.approx(140, rel=0.02)
    clip = _speech(1)[0]
    silent_then_speech = np.concatenate([np.zeros(8000, np.float32), clip])
    assert judges.judge(silent_then_speech, 16000, target_seconds=0.1)["phone_at_target"] == "SIL"
    loudest = 0.5 + np.argmax(np.convolve(clip ** 2, np.ones(800), "same")) / 16000  # mid-vowel, surely not silence
    assert judges.judge(silent_then_speech, 16000, target_seconds=loudest)["phone_at_target"] not in (None, "SIL")


def test_a_judge_at_another_rate_hears_the_same_signal_resampled():
    clip = _speech(1)[0]
    import soxr
    at_24k = soxr.resample(clip, 16000, 24000).astype(np.float32)
    here, there = judges.judge(clip, 16000), judges.judge(at_24k, 24000)
    assert there["f0_hz"] == pytest.approx(here["f0_hz"], rel=0.03)
    assert there["speech_probability"] == pytest.approx(here["speech_probability"], abs=0.1)


def test_a_quiet_signal_is_judged_as_the_same_signal_at_a_normal_level():
    clip = _speech(1)[0]
    normal, quiet = judges.judge(clip, 16000), judges.judge(clip * 0.003, 16000)  # an audiation's level is arbitrary
    assert quiet["phones"] == normal["phones"]
    assert quiet["speech_probability"] == pytest.approx(normal["speech_probability"], abs=0.02)


@pytest.mark.parametrize("signal,note", [
    (np.zeros(16000, np.float32), "silent"),
    (np.full(16000, np.nan, np.float32), "not finite"),
    (np.ones(1000, np.float32), "under 0.1 s"),
])
def test_nothing_to_judge_gives_null_numbers_and_a_note(signal, note):
    verdict = judges.judge(signal, 16000, target_seconds=0.5)
    assert verdict["judges_note"] == note
    assert all(verdict[k] is None for k in judges.FIELDS)


def test_the_speech_log_probability_is_differentiable_and_per_row():
    vad = judges.load_vad()
    rows = torch.from_numpy(np.stack([_speech(1)[0], np.random.default_rng(0).standard_normal(16000) * 0.1])
                            ).float().requires_grad_()
    both = judges.speech_log_probability(vad, rows)
    alone = judges.speech_log_probability(vad, rows[1:].detach())
    assert both[0] > both[1] and both[1].item() == pytest.approx(alone[0].item(), abs=1e-5)  # no state leaks across rows
    both[1].backward()
    assert rows.grad[1].abs().sum() > 0 and rows.grad[0].abs().sum() == 0


def test_every_target_record_carries_the_judges_unless_turned_off(tmp_path):
    unit = compose("model=random_small", "logger=none", "objective.unit=0:2", "steps=3", "quality.draws=0")
    audiate_folder(unit, tmp_path / "on", None)
    record = read_record(tmp_path / "on", "L2-U1-unit")
    assert set(judges.FIELDS) <= set(record) and record["judges_note"] is None
    assert isinstance(record["phones"], list) and 0 <= record["speech_probability"] <= 1
    assert record["phone_at_target"] is not None  # a unit target: the segment at its frame, SIL included
    off = compose("model=random_small", "logger=none", "objective.unit=0:2", "steps=3", "quality.draws=0",
                  "quality.judges=false")
    audiate_folder(off, tmp_path / "off", None)
    assert not set(judges.FIELDS) & set(read_record(tmp_path / "off", "L2-U1-unit"))


def test_regularizer_speech_rewards_silero_s_log_probability_and_a_run_raises_it(tmp_path):
    from audiation.builder import build_batch, plan
    from audiation.model import load_encoder

    cfg = compose("model=random_small", "logger=none", "objective=channel", "objective.unit=0:2",
                  "regularizer.speech=2.0")
    job = plan(cfg)
    batch = build_batch(cfg, job, job.targets)
    signal = torch.from_numpy(np.stack([_speech(1)[0], np.random.default_rng(0).standard_normal(16000) * 0.1])).float()
    encoder = load_encoder(job.spec, "cpu")
    total, terms = batch.objective(encoder(signal, job.layer), signal)
    expected = judges.speech_log_probability(judges.load_vad(), signal)
    torch.testing.assert_close(terms["speech"], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(total, terms["activation"] + 2.0 * expected, rtol=1e-5, atol=1e-5)
    # weighted so that the reward dominates, a short run makes the signal more speech-like than without it
    quiet = "objective.unit=0", "steps=30", "quality.draws=0", "parameterization=speech"
    without = audiate_folder(compose("model=random_small", "logger=none", "objective=channel", *quiet),
                             tmp_path / "without", None)["targets"][0]
    rewarded = audiate_folder(compose("model=random_small", "logger=none", "objective=channel", *quiet,
                                      "regularizer.speech=50"), tmp_path / "with", None)["targets"][0]
    assert rewarded["speech_probability"] > max(0.5, without["speech_probability"] + 0.3)
