"""The judges: tools built for human speech, on the shipped speech slice against noise, on bad input, and
in every target's record."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import compose

from audiation.config.configs import ASSETS
from audiation.hearing import judges
from audiation.jobs.audiate_job import audiate_folder
from audiation.outputs.results import read_record

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
    # Voiced share measured 0.58-0.86 (mean 0.724) on the six clips: Praat is deterministic on fixed clips, so
    # the margins are small (0.03 of a 1-s clip is 3 of its ~100 pitch frames); the 75 Hz floor gives 0.47 and 0.64
    voiced = [s["voiced_share"] for s in speech]
    assert min(voiced) > 0.53 and np.mean(voiced) == pytest.approx(0.724, abs=0.03), voiced
    assert max(n["voiced_share"] for n in heard_noise) < 0.05
    assert all(60 <= s["f0_hz"] <= 300 and s["hnr_db"] > 5 and 200 < s["f1_hz"] < s["f2_hz"] < 3000 for s in speech)
    assert all(n["f0_hz"] is None and n["hnr_db"] < 5 for n in heard_noise)
    assert all(s["judges_note"] is None and s["phone_at_target"] is None for s in speech)  # no target given


def test_the_judges_hear_the_low_and_the_high_voice_of_the_pitch_contrast_as_speech_an_octave_apart():
    """The shipped pitch-contrast pairs: one text and voice each, espeak-ng's pitch 14-17 (low) or 84-95
    (high). Measured on the first four pairs: F0 75-86 Hz low, 147-171 Hz high, high over low 1.72-2.23;
    voiced share 0.51-0.55 low, 0.59-0.85 high; speech probability 0.89-0.97."""
    heard = {voice: [judges.judge(*sf.read(path, dtype="float32"))
                     for path in sorted((ASSETS / "pitch-contrast" / voice).glob("*.flac"))[:4]]
             for voice in ("low", "high")}
    low, high = ([j["f0_hz"] for j in heard[voice]] for voice in ("low", "high"))
    assert all(65 < f0 < 95 for f0 in low) and all(135 < f0 < 185 for f0 in high), (low, high)
    assert min(h / lo for h, lo in zip(high, low)) > 1.6, (low, high)  # no octave error on either
    assert all(j["voiced_share"] > 0.45 and j["speech_probability"] > 0.8 for js in heard.values() for j in js), heard


def test_an_f0_and_formants_rest_on_enough_voiced_frames_or_are_null():
    """A 140 Hz buzz over 5% of a quiet second is voiced in about that share of frames: too few to name a pitch
    (null, the voiced share says why); over 40% of it, its F0 is heard."""
    from audiation.hearing.judges import MIN_VOICED_SHARE, praat

    t = np.arange(16000) / 16000
    buzz = (0.3 * np.sign(np.sin(2 * np.pi * 140 * t))).astype(np.float32)
    quiet = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 1e-4

    def buzzing(share):
        x = quiet.copy()
        x[:int(share * 16000)] += buzz[:int(share * 16000)]
        return praat(x)

    brief, long = buzzing(0.05), buzzing(0.4)
    assert 0 < brief["voiced_share"] < MIN_VOICED_SHARE <= long["voiced_share"], (brief, long)
    assert brief["f0_hz"] is None and brief["f1_hz"] is None and brief["f2_hz"] is None
    assert long["f0_hz"] == pytest.approx(140, rel=0.02) and long["f1_hz"] is not None


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
    from audiation.config.builder import build_batch, plan
    from audiation.models.encoder import load_encoder

    cfg = compose("model=random_small", "logger=none", "objective=channel", "objective.unit=0:2",
                  "regularizer.speech=2.0")
    job = plan(cfg)
    batch = build_batch(job, job.targets)
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


# --- judges that fail or are slow: a signal's files come first, a failure is a note, the loop never waits ---

BATCHES = ("model=random_small", "logger=none", "objective.unit=0:4", "batch_size=2", "steps=2", "quality.draws=0")


def test_a_judge_that_raises_costs_only_its_own_numbers_never_a_signal(tmp_path, monkeypatch):
    def broken(vad, signal):
        raise RuntimeError("silero broke")

    monkeypatch.setattr(judges, "speech_log_probability", broken)
    metrics = audiate_folder(compose(*BATCHES), tmp_path, None)
    assert metrics["run"]["complete"] == 4
    for unit in range(4):
        record = read_record(tmp_path, f"L2-U{unit}-unit")
        assert all((tmp_path / file).is_file() for file in record["files"].values())
        assert record["speech_probability"] is None
        assert record["judges_note"] == "silero failed: RuntimeError: silero broke"
        assert isinstance(record["phones"], list) and record["voiced_share"] is not None  # the others still hear


def test_a_slow_judge_holds_up_neither_the_loop_nor_any_file(tmp_path, monkeypatch):
    import threading

    from audiation.jobs import audiate_job

    optimised, seen = threading.Event(), []  # optimised: the last batch's loop is over
    audiated = []

    def audiate(*args, **kwargs):
        result = real_audiate(*args, **kwargs)
        audiated.append(1)
        if len(audiated) == 2:
            optimised.set()
        return result

    def slow(vad, signal):
        if not seen:  # the first batch's judging waits until the second batch has optimised
            seen.append([(tmp_path / "targets" / name / "audio.wav").is_file() for name in ("L2-U0-unit", "L2-U1-unit")])
            seen.append(optimised.wait(60))
        return real_judge(vad, signal)

    real_audiate, real_judge = audiate_job.audiate, judges.speech_log_probability
    monkeypatch.setattr(audiate_job, "audiate", audiate)
    monkeypatch.setattr(judges, "speech_log_probability", slow)
    audiate_folder(compose(*BATCHES), tmp_path, None)
    assert seen == [[True, True], True]  # the batch's WAVs were written before it; the loop went on without it
    assert all(0 <= read_record(tmp_path, f"L2-U{unit}-unit")["speech_probability"] <= 1 for unit in range(4))


FAKE = '''
import os, time


def load(device):
    def hear(x, about):
        if about.text == "raise":
            raise ValueError("cannot hear this one")
        if about.text == "die":
            os._exit(3)
        if about.text in ("hang", "slow"):
            time.sleep(600 if about.text == "hang" else 1)
        return {"heard": about.text}
    return hear
'''


def _fake_judge(folder) -> judges.Judge:
    """A CPU judge from a file of its own, as a worker runs it: it raises, kills its process, hangs or takes
    a second when a target's text says so."""
    import importlib.util

    path = folder / "fake_judge.py"
    path.write_text(FAKE)
    spec = importlib.util.spec_from_file_location("fake_judge", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return judges.Judge("fake", ("heard",), module.load)


def _hear(panel, signals: np.ndarray, abouts: list) -> dict[int, dict]:
    """Every row's verdict, as a job's writer hands them over: each row once written, then the batch."""
    verdicts = {}
    hearing = panel.hear(signals, 16000, abouts, verdicts.__setitem__)
    for row in range(len(signals)):
        hearing.written(row)
    hearing.all_written()
    return verdicts


def _heard(panel, texts: list[str]) -> dict[int, dict]:
    noise = np.random.default_rng(0).standard_normal((len(texts), 4000)).astype(np.float32)
    return _hear(panel, noise, [judges.About(None, text) for text in texts])


def test_a_cpu_judge_that_raises_kills_its_process_or_hangs_costs_that_signal_its_verdict_only(tmp_path):
    panel = judges.Panel((_fake_judge(tmp_path),), "cpu", busy=1, timeout=3)
    try:
        verdicts = _heard(panel, ["a", "raise", "b", "die", "c", "hang", "d"])
        panel.wait()
    finally:
        panel.close()
    assert [verdicts[row]["heard"] for row in range(7)] == ["a", None, "b", None, "c", None, "d"]
    assert verdicts[1]["judges_note"] == "fake failed: ValueError: cannot hear this one"
    assert verdicts[3]["judges_note"] == "the CPU judges' process failed on this signal: it ended, exit code 3"
    assert verdicts[5]["judges_note"] == "the CPU judges' process failed on this signal: no verdict in 3 s"
    assert [verdicts[row]["judges_note"] for row in (0, 2, 4, 6)] == [None] * 4  # a new worker took over


def test_a_decorated_cpu_judge_runs_in_a_worker_from_its_own_file(tmp_path):
    import functools

    fake = _fake_judge(tmp_path)

    @functools.wraps(fake.load)  # the wrapper's code is written here, the loader's in fake_judge.py
    def wrapped(device):
        return fake.load(device)

    panel = judges.Panel((judges.Judge("fake", ("heard",), wrapped),), "cpu", busy=1)
    try:
        verdicts = _heard(panel, ["a", "b"])
        panel.wait()
    finally:
        panel.close()
    assert [verdicts[row]["heard"] for row in range(2)] == ["a", "b"]


def test_a_slow_cpu_judge_keeps_the_jobs_end_waiting_never_its_caller(tmp_path):
    import time

    panel = judges.Panel((_fake_judge(tmp_path),), "cpu", busy=1)
    try:
        start = time.perf_counter()
        verdicts = _heard(panel, ["slow"] * 3)  # a second each
        handed_over = time.perf_counter() - start
        panel.wait()
        judged = time.perf_counter() - start
    finally:
        panel.close()
    assert handed_over < 1 <= judged
    assert [verdicts[row]["heard"] for row in range(3)] == ["slow"] * 3


def test_a_jobs_panel_hears_what_the_judges_hear_one_signal_at_a_time():
    clips = [*_speech(3), np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1,
             np.zeros(16000, np.float32)]
    panel = judges.panel("cpu", 1)
    verdicts = _hear(panel, np.stack(clips), [judges.About(0.5)] * len(clips))
    panel.wait()
    for row, clip in enumerate(clips):
        alone = judges.judge(clip, 16000, target_seconds=0.5)
        assert verdicts[row] == {**alone, "speech_probability": pytest.approx(alone["speech_probability"], abs=1e-3)}


def test_a_judges_worker_runs_the_judges_file_alone_without_torch_or_the_package():
    import subprocess
    import sys

    probe = judges._WORKER.replace("module.serve()", "print(sorted({'torch', 'audiation'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe, judges.__file__], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr  # ~0.3 s to start, not ~2.5 s


def test_every_judges_fields_are_declared_in_the_record_schema():
    from audiation.outputs import record_schema

    assert set(judges.FIELDS) | {"judges_note"} <= set(record_schema.BY_KEY)
