"""Quality numbers and the sweep report."""

from __future__ import annotations

import shutil
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import compose

from audiation.config.configs import ASSETS
from audiation.core.objectives import Geometry
from audiation.hearing.quality import character_error_rate, silence_ratio_db
from audiation.jobs.audiate_job import audiate_folder
from audiation.report import write_report


def test_silence_ratio_compares_power_away_from_and_at_the_frame():
    geometry = Geometry(16000, 49, 32, 320, 400, 16000)
    signal = np.full((2, 16000), 0.01)
    signal[:, 24 * 320:24 * 320 + 400] = 0.1  # 20 dB louder at frame 24
    signal[1] = 0.1
    assert silence_ratio_db(signal, geometry, 24) == pytest.approx([-20.0, 0.0])


def test_every_target_gets_quality_numbers_and_a_sweep_gets_a_report(tmp_path):
    for layer in (1, 2):
        audiate_folder(compose("model=random_small", "logger=none", f"model.layer={layer}", "objective.unit=0:3",
                        "steps=5", "quality.draws=2", "quality.judges=false"), tmp_path / f"job{layer}", None)
    report = write_report(tmp_path).read_text()
    for layer in ("L1", "L2"):
        assert f"| selectivity | {layer} | 3 |" in report and f"| robust_activation | {layer} | 3 |" in report
    png = (tmp_path / "report.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width / height <= 3, (width, height)  # small multiples on a page, not a strip of 5 plots
    assert (tmp_path / "report.csv").read_text().count("\n") == 1 + 5 * 2  # header + 5 measures (before, after, robust,
    # selectivity, silence) x 2 layers


def test_activation_ratio_is_final_over_the_datasets_max(tmp_path, monkeypatch):
    import audiation.jobs.audiate_job

    stats = {"max": np.linspace(-1, 2, 32), "p99": np.full(32, 0.5), "mean_abs": np.ones(32)}
    monkeypatch.setattr(audiation.jobs.audiate_job, "open_cache", lambda *args: SimpleNamespace(stats=stats))
    monkeypatch.setattr(audiation.jobs.audiate_job.phones, "frame_labels", lambda *args: None)  # no frames to name units by
    (tmp_path / "data").mkdir()  # a folder with audio in it; its statistics are the ones above
    shutil.copy(ASSETS / "speech-slice" / "000002.flac", tmp_path / "data")
    metrics = audiate_folder(compose("model=random_small", "logger=none", "objective=channel", "objective.unit=[0,31]",
                                     "steps=3", f"quality.data={tmp_path / 'data'}", "examples.top_k=0"),
                             tmp_path / "job", None)
    low, high = metrics["targets"]
    assert low["activation_ratio"] is None  # the unit never fires on the data: no ratio (null, not NaN)
    assert high["activation_ratio"] == pytest.approx(high["final_activation"] / 2.0)
    assert high["activation_ratio_p99"] == pytest.approx(high["final_activation"] / 0.5)


def _measured(encoder, *overrides):
    import torch

    from audiation.config.builder import build_batch, plan
    from audiation.core.render import evaluate
    from audiation.hearing import quality

    cfg = compose("model=random_small", "logger=none", "objective.unit=0:2", "quality.draws=3", *overrides)
    plan_ = plan(cfg)
    batch = build_batch(plan_, plan_.targets)
    signal = np.random.default_rng(0).standard_normal((2, plan_.geometry.num_samples)).astype(np.float32) * 0.1
    final = evaluate(encoder, plan_.layer, batch.objective, torch.from_numpy(signal))
    settings = quality.QualitySettings(draws=int(cfg.quality.draws), seed=int(cfg.seed))
    return final, quality.measure(encoder, plan_.layer, batch, signal, final, plan_.geometry, plan_.frame, settings)


def test_selectivity_is_the_activation_over_its_neighbours_and_robustness_uses_fresh_augmentations(small_encoder):
    final, scores = _measured(small_encoder)
    for row, score in enumerate(scores):
        assert score["selectivity"] == pytest.approx(final["activation"][row] / final["neighbours"][row], rel=1e-6)
        assert abs(score["robust_activation"] - final["activation"][row]) > 1e-4  # shifted and noisy: not clean
    clean, same = _measured(small_encoder, "augmentation=none")
    assert [s["robust_activation"] for s in same] == pytest.approx(list(clean["activation"]), rel=1e-5)


def peak_only(geometry, unit, frame=None, neighbours=0.5, silence=1.0, silence_margin_ms=25.0):
    """A user's own objective of a unit at a frame: the activation alone, no neighbours term."""
    from audiation.core.objectives import Objective

    frame = geometry.middle_frame() if frame is None else frame
    return Objective("activation", lambda acts, _signal: acts[range(len(unit)), frame, unit])


def test_a_unit_at_a_frame_gets_its_selectivity_from_the_layer_whatever_the_objectives_terms(small_encoder):
    final, scores = _measured(small_encoder)
    own, own_scores = _measured(small_encoder, f"objective._target_={__name__}.peak_only")
    assert "neighbours" not in own
    for score, own_score in zip(scores, own_scores):
        assert own_score["selectivity"] == pytest.approx(score["selectivity"], rel=1e-5)
        assert own_score["silence_ratio_db"] == pytest.approx(score["silence_ratio_db"])


@pytest.mark.parametrize("reference,heard,rate", [
    ("moon", "moon", 0.0), ("moon", "", 1.0), ("moon", "mon", 0.25), ("ab", "ba", 1.0), ("a b", " a   b ", 0.0),
    ("Moon", "MOON", 0.0), ("", "x", 1.0), ("abc", "abd", 1 / 3), ("ab", "abcd", 1.0), ("kitten", "sitting", 0.5),
    ("star", " Star.", 0.0)])
def test_character_error_rate_is_the_edit_distance_over_the_reference_length(reference, heard, rate):
    assert character_error_rate(reference, heard) == pytest.approx(rate)


def test_robustness_is_measured_only_when_asked_and_averages_its_draws(small_encoder):
    _, none = _measured(small_encoder, "quality.draws=0")
    assert all("robust_activation" not in s for s in none)
    final, three = _measured(small_encoder)
    _, one = _measured(small_encoder, "quality.draws=1")
    assert all(a["robust_activation"] != b["robust_activation"] for a, b in zip(one, three))


def _judged(encoder, listener, *overrides):
    """quality.measure on one second of the shipped slice's speech, for CTC targets of tiny."""
    import torch

    from audiation.config.builder import build_batch, plan
    from audiation.core.render import evaluate
    from audiation.data.audio_files import read_audio
    from audiation.hearing import quality

    cfg = compose("model=tiny", "logger=none", "quality.draws=0", *overrides)
    plan_ = plan(cfg)
    batch = build_batch(plan_, plan_.targets)
    speech = read_audio(ASSETS / "speech-slice" / "000002.flac", 16000)[:16000]
    signal = np.stack([speech] * len(plan_.targets)).astype(np.float32)
    final = evaluate(encoder, plan_.layer, batch.objective, torch.from_numpy(signal))
    settings = quality.QualitySettings(draws=0, listener=listener)
    return signal, quality.measure(encoder, plan_.layer, batch, signal, final, plan_.geometry, plan_.frame, settings)


def test_what_is_not_a_letter_is_the_blank_the_word_gap_and_the_specials():
    from conftest import spec

    from audiation.hearing.quality import not_letters
    from audiation.models.encoder import load_encoder

    tiny = load_encoder(spec("model=tiny"), "cpu")
    assert sorted({tiny.vocabulary[i] for i in not_letters(tiny)}) == ["<pad>", "<unk>", "|"]


def test_each_judge_is_recorded_under_its_own_name_the_model_itself_first():
    import torch
    from conftest import spec

    from audiation.models.encoder import Ensemble, Layer, load_encoder

    tiny, listener = load_encoder(spec("model=tiny"), "cpu"), load_encoder(spec("model=listener"), "cpu")
    letters = [tiny.vocabulary.index(c) for c in "ne"]  # tiny hears "donpy" in this second
    signal, scores = _judged(tiny, listener, "model.layer=logits", "objective=channel",
                             f"objective.unit=[{letters[0]},{letters[1]}]")
    wave = torch.from_numpy(signal)
    for model, prefix in ((tiny, ""), (listener, "listener_")):
        heard = model(wave, Layer("logits")).argmax(dim=-1)
        for row, letter in enumerate(letters):
            assert scores[row][f"{prefix}heard_share"] == pytest.approx((heard[row] == letter).float().mean().item())
            assert scores[row][f"{prefix}transcript"] == model.decode(heard)[row]
            spoken = [int(i) for i in heard[row] if model.vocabulary[int(i)] not in ("<pad>", "|", "<unk>")]
            expected = sum(i == letter for i in spoken) / len(spoken) if spoken else None
            assert scores[row][f"{prefix}heard_share_of_letters"] == pytest.approx(expected)
    assert scores[0]["heard_share_of_letters"] > scores[0]["heard_share"] > 0  # blanks do not count against it
    assert scores[0]["heard_share"] > 0 and scores[0]["transcript"] and "ensemble_heard_share" not in scores[0]
    pair = Ensemble([tiny, listener])
    _, together = _judged(pair, None, "model.layer=logits", "objective=channel", f"objective.unit=[{letters[0]}]")
    assert together[0]["heard_share"] == pytest.approx(scores[0]["heard_share"])  # tiny's own, not the pair's
    mean = pair(wave[:1], Layer("logits")).argmax(dim=-1)
    assert together[0]["ensemble_heard_share"] == pytest.approx((mean[0] == letters[0]).float().mean().item())
    assert together[0]["ensemble_transcript"] == pair.decode(mean)[0] and "listener_heard_share" not in together[0]
    _, words = _judged(tiny, listener, "objective=text", "objective.text=[moon]")
    assert words[0]["transcript"] == tiny.transcribe(wave[:1])[0]
    assert words[0]["listener_transcript"] == listener.transcribe(wave[:1])[0]
    assert words[0]["cer"] == pytest.approx(character_error_rate("moon", words[0]["transcript"]))
    assert words[0]["listener_cer"] == pytest.approx(character_error_rate("moon", words[0]["listener_transcript"]))


def test_silence_ratio_is_finite_for_a_silent_frame_and_per_row():
    geometry = Geometry(16000, 49, 32, 320, 400, 16000)
    signal = np.full((3, 16000), 1e-3, dtype=np.float32)
    signal[0, 24 * 320:24 * 320 + 400] = 0.0  # nothing at the frame: 10 log10(1e-6 / 1e-20)
    signal[1, 24 * 320:24 * 320 + 400] = 1e-2
    signal[2] = 0.0
    signal[2, 24 * 320:24 * 320 + 400] = 1e-2  # nothing away from it: 10 log10(1e-20 / 1e-4)
    assert silence_ratio_db(signal, geometry, 24) == pytest.approx([140.0, -20.0, -160.0], abs=1e-3)


def test_the_reports_plot_is_one_titled_box_plot_per_measure_and_hides_the_empty_cells(tmp_path, monkeypatch):
    from audiation.jobs import sweep_report
    from audiation.outputs.disk import pyplot

    plt, drawn = pyplot(), []
    monkeypatch.setattr(plt, "close", drawn.append)  # the figure, kept to read instead of closed
    rng = np.random.default_rng(0)
    collected = {measure: {"2": rng.random(4), "6": rng.random(4)}
                 for measure in ("activation_ratio", "speech_probability", "voiced_share", "hnr_db", "silence_db")}
    with plt.rc_context({"figure.dpi": 50}):  # a user's matplotlibrc does not change the page's size
        sweep_report._plot(collected, tmp_path / "report.png", "a sweep")
    assert struct.unpack(">II", (tmp_path / "report.png").read_bytes()[16:24]) == (3 * 360, 2 * 320)
    [figure] = drawn
    shown = [axis for axis in figure.axes if axis.get_visible()]
    assert len(figure.axes) == 6 and len(shown) == 5  # 3 columns by 2 rows: the sixth cell is hidden
    assert [axis.get_title() for axis in shown] == list(collected)
    assert all(axis.get_xlabel() == "layer" and [t.get_text() for t in axis.get_xticklabels()] == ["2", "6"]
               for axis in shown)
    assert [line.get_ydata()[0] for line in shown[0].lines if line.get_linestyle() == "--"] == [1.0]
    assert not [line for line in shown[1].lines if line.get_linestyle() == "--"]  # the dataset's maximum: ratios only
    assert figure.texts[0].get_text() == "a sweep" and (tmp_path / "report.png").stat().st_size > 1000
    plt.close("all")


class _Hearer(torch.nn.Module):
    """A CTC model that hears `heard` in any clip: the error rates are then known exactly."""

    def __init__(self, heard: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.heard, self.name, self.sample_rate, self.tokens = heard, "hearer", 16000, None
        self.head, self.vocabulary, self.lengths = object(), ["a"], []

    def transcribe(self, batch):
        self.lengths.append(batch.shape[-1])
        return [self.heard]


def test_the_models_error_rate_on_its_data_is_the_mean_over_readable_transcribed_files_and_kept(tmp_path, caplog):
    import soundfile as sf

    from audiation.hearing.quality import cached_data_error_rate, data_error_rate

    for name, seconds in (("a.wav", 1), ("b.wav", 2), ("c.wav", 30), ("long.wav", 30.5), ("untold.wav", 1)):
        sf.write(tmp_path / name, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)
    (tmp_path / "bad.wav").write_text("not audio")
    (tmp_path / "metadata.tsv").write_text("file\ttext\na.wav\tmoon\nb.wav\tmoan\nc.wav\tmoon\nlong.wav\tmoon\nbad.wav\tmoon\n")
    files = sorted(tmp_path.glob("*.wav"))
    hearer = _Hearer("moon")  # right on a.wav and c.wav (0), one letter of four wrong on b.wav (0.25); past 30 s: not
    assert data_error_rate(hearer, files) == {"cer": 0.0833, "files": 3} and hearer.lengths == [16000, 32000, 480000]
    assert data_error_rate(_Hearer("moon"), files, limit=1) == {"cer": 0.0, "files": 1}
    assert data_error_rate(hearer, files[2:], limit=1) is None  # its one transcribed file is unreadable
    assert data_error_rate(_Hearer("moon"), files[1:], limit=1) == {"cer": 0.25, "files": 1}
    assert not caplog.records
    assert data_error_rate(_Hearer("mo"), [tmp_path / "a.wav"]) == {"cer": 0.5, "files": 1}  # at the bar: said nothing
    assert not caplog.records and data_error_rate(_Hearer("x"), [tmp_path / "untold.wav"]) is None
    no_head = _Hearer("moon")
    no_head.head = None
    assert data_error_rate(no_head, files) is None  # it cannot transcribe
    no_head.head, no_head.vocabulary = object(), None
    assert data_error_rate(no_head, files) is None
    decoder = _Hearer("moon")  # a Whisper: its decoder's tokens, no CTC head
    decoder.head, decoder.vocabulary, decoder.tokens = None, None, object()
    assert data_error_rate(decoder, files) == {"cer": 0.0833, "files": 3}
    bare = _Hearer("moon")
    del bare.tokens  # an encoder that never had a decoder's tokens
    assert data_error_rate(bare, files) == {"cer": 0.0833, "files": 3}

    cache, made = tmp_path / "cache", []
    cache.mkdir()
    assert cached_data_error_rate(cache, lambda: made.append(1) or _Hearer("xyzzy"), files) == {"cer": 1.25, "files": 3}
    assert cached_data_error_rate(cache, lambda: pytest.fail("loaded again"), files) == {"cer": 1.25, "files": 3}
    assert made == [1] and [r.getMessage() for r in caplog.records] == [
        "warning: hearer hears its transcribed data at CER 1.25 (3 files): unit names measured on data a model does "
        "not understand describe its confusion, not speech"] * 2
    (cache / "model_cer.json").write_text('{"model": "hearer"}')  # damaged: measured again
    assert cached_data_error_rate(cache, lambda: _Hearer("moon"), files) == {"cer": 0.0833, "files": 3}


def test_the_ids_that_are_not_letters_are_the_blank_the_word_gap_and_the_specials():
    from audiation.hearing import quality

    model = SimpleNamespace(config=SimpleNamespace(pad_token_id=9),
                            vocabulary=["<pad>", "a", "<unk>", "|", "b", "<s>", "</s>", "'", "c"])
    assert quality.not_letters(model) == [9, 0, 2, 3, 5, 6]
