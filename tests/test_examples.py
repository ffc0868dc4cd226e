"""Dataset examples (`python -m audiation.examples`): the activation cache is built once and reused without
the model, unreadable files are skipped by name, any rate and channel count is read as 16 kHz mono, nested
corpora are found, and the command writes clips, spectrograms and examples.json. On the project's `tiny`
model and its shipped speech slice."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ROOT, compose, run_module

from audiation.config import job_plans
from audiation.config.builder import model_spec
from audiation.data import activations, audio_files
from audiation.errors import AudiationError
from audiation.jobs import examples_job
from audiation.models.encoder import load_config, load_encoder, num_frames, parse_layer

SLICE = ROOT / "audiation" / "assets" / "speech-slice"
VOCAB = ROOT / "audiation" / "assets" / "tiny-w2v2-espeak" / "vocab.json"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A copy of the shipped tiny model: a cache is keyed by the model files' mtimes, so a model being
    retrained in place must not change between two runs of one test."""
    folder = tmp_path_factory.mktemp("model") / "tiny-w2v2-espeak"
    shutil.copytree(ROOT / "audiation" / "assets" / "tiny-w2v2-espeak", folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    return model_spec(compose("model=tiny", f"model.name={tiny_folder}").model)


def _open(spec, layer_spec, folder, cache_dir, factory):
    """ActivationCache.open as the command line calls it, with the encoder factory given."""
    config = load_config(spec)
    layer = parse_layer(layer_spec, config)
    return activations.ActivationCache.open(audio_files.list_audio(folder), layer, config, spec.fingerprint(),
                                            spec.short_name, cache_dir, factory, spec.sample_rate)


def _slice_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(SLICE.glob("*.flac"))[:count]:
        shutil.copy2(source, folder / source.name)
    return sorted(folder.iterdir())


def _no_model():
    raise AssertionError("the model was asked for although the cache exists")


def test_cache_is_built_once_then_reused_without_the_model(tiny, tmp_path, monkeypatch):
    _slice_files(tmp_path / "data", 3)
    calls = []

    def factory():
        calls.append(1)
        return load_encoder(tiny, "cpu")

    first = _open(tiny, 1, tmp_path / "data", tmp_path / "cache", factory)
    assert calls == [1]
    second = _open(tiny, 1, tmp_path / "data", tmp_path / "cache", _no_model)
    assert second.folder == first.folder and [p.name for p in (tmp_path / "cache").iterdir()] == [first.folder.name]
    acts = np.asarray(second.activations, dtype=np.float32)
    assert acts.shape == (first.num_frames, 192) and second.activations.dtype == np.float16
    assert np.array_equal(second.stats["max"], acts.max(axis=0))
    np.testing.assert_allclose(second.stats["p99"], np.percentile(acts, 99, axis=0), rtol=1e-6)
    np.testing.assert_allclose(second.stats["mean_abs"], np.abs(acts).mean(axis=0), rtol=1e-5)
    assert sum(p.num_frames for p in second.pieces) == second.num_frames

    monkeypatch.setattr(activations, "load_encoder", lambda *_a, **_k: _no_model())  # the public helper too
    config = load_config(tiny)
    stats = activations.open_cache(tiny, parse_layer(1, config), config, audio_files.list_audio(tmp_path / "data"),
                                   tmp_path / "cache").stats
    assert set(stats) == {"max", "p99", "mean_abs"} and all(v.shape == (192,) for v in stats.values())
    assert np.array_equal(stats["max"], first.stats["max"])

    changed = min((tmp_path / "data").iterdir())  # an edited file is new data: a new cache
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    _open(tiny, 1, tmp_path / "data", tmp_path / "cache", factory)
    assert calls == [1, 1] and len(list((tmp_path / "cache").iterdir())) == 2  # no partial folders left


def _p99_of(columns: list[np.ndarray]) -> np.ndarray:
    values = np.stack(columns, axis=1)
    return activations._p99(values.astype(np.float16), values.min(axis=0), values.max(axis=0))


def test_p99_is_numpys_linear_percentile_on_a_small_array():
    """100 frames: numpy's rank is 0.99 x 99 = 98.01, a hundredth of the way from the 99th value to the 100th."""
    p99 = _p99_of([np.arange(100.0), np.full(100, -3.0), np.r_[np.zeros(50), np.arange(50.0)], -np.arange(100.0)])
    np.testing.assert_allclose(p99, [98.01, -3.0, 48.01, -0.99], rtol=1e-6)


def test_p99_from_the_histogram_is_within_half_a_bin(monkeypatch):
    """Arrays over EXACT_PERCENTILE_VALUES: a histogram of 8192 bins per unit that spreads a bin's values
    evenly. It models values within a bin, not the gap between two (close only when frames are many, as
    they are there), so 101 frames put numpy's rank on a value: 0..100 (p99 = 99), a constant, 50 zeros
    then 0..50 (49), 0..-100 (-1). Measured 0.34-0.42 of a bin off; half a bin allowed."""
    monkeypatch.setattr(activations, "EXACT_PERCENTILE_VALUES", 0)
    columns = [np.arange(101.0), np.full(101, -3.0), np.r_[np.zeros(50), np.arange(51.0)], -np.arange(101.0)]
    p99 = _p99_of(columns)
    half_bin = np.ptp(np.stack(columns, axis=1), axis=0) / activations.HISTOGRAM_BINS / 2
    assert np.all(np.abs(p99 - [99.0, -3.0, 49.0, -1.0]) <= half_bin), p99


def test_unreadable_files_are_skipped_by_name_and_the_rest_processed(tiny, tmp_path, capsys):
    good = _slice_files(tmp_path / "data", 2)
    (tmp_path / "data" / "bad.flac").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "data" / "empty.wav").write_bytes(b"")
    cache = _open(tiny, 1, tmp_path / "data", tmp_path / "cache", lambda: load_encoder(tiny, "cpu"))
    err = capsys.readouterr().err
    for name in ("bad.flac", "empty.wav"):  # libsndfile's own reason, in one line
        assert f"audiation: warning: skipped {tmp_path / 'data' / name}: Error opening " in err
        assert "Format not recognised." in err
    assert cache.files == [str(p) for p in good]
    assert sorted(Path(s["file"]).name for s in cache.skipped) == ["bad.flac", "empty.wav"]

    _open(tiny, 1, tmp_path / "data", tmp_path / "cache", _no_model)  # reused, and still says what it lacks
    again = capsys.readouterr().err
    assert all(f"audiation: warning: skipped {tmp_path / 'data' / name}: " in again for name in ("bad.flac", "empty.wav"))


def test_a_44k_stereo_wav_is_read_as_16k_mono_with_the_right_frames(tiny, tmp_path):
    rate, seconds = 44100, 1.5
    t = np.arange(int(rate * seconds)) / rate
    tone = np.sin(2 * np.pi * 440 * t)
    (tmp_path / "data").mkdir()
    sf.write(tmp_path / "data" / "stereo.wav", np.stack([0.5 * tone, 0.1 * tone], axis=1), rate, subtype="PCM_16")
    signal = audio_files.read_audio(tmp_path / "data" / "stereo.wav", 16000)
    assert signal.ndim == 1 and signal.dtype == np.float32 and len(signal) == 24000
    middle = signal[4000:-4000]
    assert abs(np.sqrt(np.mean(middle ** 2)) - 0.3 / math.sqrt(2)) < 0.005  # the mean of the two channels
    cache = _open(tiny, 4, tmp_path / "data", tmp_path / "cache", lambda: load_encoder(tiny, "cpu"))
    config = load_config(tiny)
    assert cache.num_frames == num_frames(parse_layer(4, config), config, 24000) == 74
    assert cache.pieces[0].duration == pytest.approx(1.5)
    file, centre = cache.locate(73)
    assert file.endswith("stereo.wav") and centre == pytest.approx((73 * 320 + 400 / 2) / 16000)


def test_long_files_go_through_the_model_in_pieces_on_the_frame_grid(tiny, tmp_path):
    longest = max(SLICE.glob("*.flac"), key=lambda p: sf.info(p).frames)
    (tmp_path / "data").mkdir()
    sf.write(tmp_path / "data" / "long.flac", sf.read(longest, dtype="float32")[0][:24000], 16000)
    config = load_config(tiny)
    layer = parse_layer(2, config)
    cache = activations.ActivationCache.open(audio_files.list_audio(tmp_path / "data"), layer, config, tiny.fingerprint(),
                                             "tiny", tmp_path / "cache", lambda: load_encoder(tiny, "cpu"), 16000,
                                             max_seconds=0.5)
    assert [(p.offset_seconds, p.first_frame, p.num_frames) for p in cache.pieces] == [
        (0.0, 0, 24), (0.5, 24, 24), (1.0, 48, 24)]
    assert cache.locate(30)[1] == pytest.approx(0.5 + (6 * 320 + 400 / 2) / 16000)
    middle = torch.from_numpy(audio_files.read_audio(tmp_path / "data" / "long.flac", 16000)[8000:16000])
    with torch.inference_mode():
        alone = load_encoder(tiny, "cpu")(middle[None], layer)[0].numpy()  # the piece, normalised on its own
    np.testing.assert_allclose(np.asarray(cache.activations[24:48], dtype=np.float32), alone, atol=1e-2, rtol=1e-2)


def test_an_empty_or_missing_folder_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(AudiationError, match=r"data.path=.*empty contains no audio files \(.wav, .flac, .ogg"):
        audio_files.list_audio(tmp_path / "empty")
    with pytest.raises(AudiationError, match="no such folder"):
        audio_files.list_audio(tmp_path / "missing")


def test_a_librispeech_style_tree_is_found_with_its_transcripts(tmp_path):
    root = tmp_path / "LibriSpeech" / "dev-clean"
    sources = sorted(SLICE.glob("*.flac"))
    made = []
    for speaker, chapter, utterance, suffix in (("84", "121123", 0, ".flac"), ("84", "121123", 1, ".flac"),
                                                ("174", "50561", 0, ".FLAC"), ("1272", "128104", 3, ".WAV")):
        folder = root / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{speaker}-{chapter}-{utterance:04d}{suffix}"
        if suffix == ".WAV":
            sf.write(path, sf.read(sources[0])[0], 16000)
        else:
            shutil.copy(sources[len(made)], path)
        made.append(path)
    (root / "84" / "121123" / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n"
                                                               "84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n")
    assert audio_files.list_audio(tmp_path / "LibriSpeech") == sorted(p.resolve() for p in made)
    assert audio_files.transcript(made[1]) == "BUT IN LESS THAN FIVE MINUTES"
    assert audio_files.transcript(made[2]) is None
    assert audio_files.transcript(sources[1]).strip()  # the slice's metadata.tsv


def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_module("audiation.examples", *args)


def test_cli_writes_clips_spectrograms_and_json_then_reuses_the_cache(tiny_folder, tmp_path):
    common = ["model=tiny", f"model.name={tiny_folder}", "model.layer=4", f"data.path={SLICE}", f"data.cache_dir={tmp_path / 'cache'}",
              "top_k=3", "threads=1"]
    result = _cli(*common, "units=[3,10]", "logger=none", f"hydra.run.dir={tmp_path / 'job'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "audiation: top-3 examples of 2 unit(s) of L4 from 160 files" in result.stdout
    summary = json.loads((tmp_path / "job" / "examples.json").read_text())
    assert summary["layer"] == "L4" and summary["files"] == 160 and summary["skipped"] == []
    assert [u["unit"] for u in summary["units"]] == [3, 10]
    for unit in summary["units"]:
        found = unit["examples"]
        assert [e["rank"] for e in found] == [1, 2, 3]
        assert found[0]["activation"] == unit["stats"]["max"]  # the best example is the unit's maximum
        column = activations.ActivationCache(summary["cache"]).column(unit["unit"])
        assert unit["stats"]["p99"] == pytest.approx(float(np.percentile(column, 99)), rel=1e-6)
        assert unit["stats"]["mean_abs"] == pytest.approx(float(np.abs(column).mean()), rel=1e-5)
        assert all(a["activation"] >= b["activation"] for a, b in itertools.pairwise(found))
        for example in found:
            assert example["clip"] == f"examples/L4-U{unit['unit']}/{example['rank']}.wav"
            clip, rate = sf.read(tmp_path / "job" / example["clip"])
            assert rate == 16000 and clip.shape == (16000,)
            assert (tmp_path / "job" / example["spectrogram"]).stat().st_size > 1000
            assert 0 < example["time_seconds"] < sf.info(example["file"]).duration and example["text"]
        for a in found:  # one moment per example: same file only when min_gap_seconds apart
            assert all(a is b or a["file"] != b["file"] or abs(a["time_seconds"] - b["time_seconds"]) >= 1.0
                       for b in found)

    again = _cli(*common, "units=5", "logger=wandb", f"hydra.run.dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "loading model" not in again.stderr and (tmp_path / "again" / "examples" / "L4-U5" / "3.wav").is_file()
    runs = list((tmp_path / "again" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))

    inspect = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(runs[0])],
                             capture_output=True, text=True, check=True)
    run = json.loads(inspect.stdout)
    assert run["state"] == "finished" and run["name"] == "L4-examples"
    assert run["tags"] == ["tiny-w2v2-espeak", "examples"]
    assert run["summary"]["examples"]["_type"] == "table-file" and run["summary"]["examples"]["nrows"] == 3


def _compose(*overrides: str):
    """The config exactly as `python -m audiation.examples <overrides>` would see it."""
    return compose(*overrides, config_name="examples")


def test_an_examples_plan_holds_the_folder_threads_units_and_resolved_config_its_record_is_written_from():
    cfg = _compose("model=tiny", f"data.path={SLICE}/.", "units=[3,5]", "threads=1", "clip_seconds=${min_gap_seconds}")
    plan = job_plans.examples_plan(cfg)
    assert (plan.data, plan.threads, plan.units, plan.units_given) == (SLICE.resolve(), 1, [3, 5], [3, 5])
    assert plan.config_record["clip_seconds"] == plan.clip_seconds == 1.0  # as run, not as typed
    assert plan.config_record["units"] == [3, 5] and plan.config_record["model"]["name"] == str(ROOT / "audiation" / "assets" / "tiny-w2v2-espeak")


@pytest.mark.parametrize("overrides,message", [
    ([], "data.path is required: the folder of audio files to search (data.path=/path/to/audio)"),
    (["data.path="], "data.path is required: the folder of audio files to search (data.path=/path/to/audio)"),
    ([f"data.path={SLICE}", "data.cache_dir=FILE/cache"], "data.cache_dir=FILE/cache cannot be a folder: FILE is a file"),
    ([f"data.path={SLICE}", "sae=/no/such"],
     "sae=/no/such: /no/such has no features.json: not an SAE folder (python -m audiation.features makes one)"),
])
def test_an_examples_plans_refusals_are_whole_lines_naming_the_option(tmp_path, overrides, message):
    (tmp_path / "file").write_text("")
    overrides = [o.replace("FILE", str(tmp_path / "file")) for o in overrides]
    with pytest.raises(AudiationError) as raised:
        job_plans.examples_plan(_compose("model=tiny", *overrides))
    assert str(raised.value) == message.replace("FILE", str(tmp_path / "file"))


@pytest.mark.parametrize("overrides,message", [
    ([], "data.path is required"),
    (["data.path=/no/such/folder"], "data.path=/no/such/folder: no such folder"),
    (["data.path=EMPTY"], "contains no audio files (.wav, .flac, .ogg, searched recursively)"),
    (["units=192"], "units=192 is out of range for layer L6 (valid: 0..191)"),
    (["units=[1,x]"], "units=x is not a unit index"),
    (["model.layer=9"], "model.layer=9 is not a layer of this model (valid: 0..6, conv1..conv7, mlp1..mlp6, logits)"),
    (["top_k=0"], "top_k=0 must be > 0"),
    (["clip_seconds=-1"], "clip_seconds=-1 must be > 0"),
    (["min_gap_seconds=-0.5"], "min_gap_seconds=-0.5 must be >= 0"),
])
def test_bad_input_is_one_line_before_any_model_loads(tmp_path, monkeypatch, overrides, message):
    """What `main` prints as `audiation: error: ...` with exit code 2 (the same handler as audiation.run)."""
    (tmp_path / "empty").mkdir()
    overrides = [o.replace("EMPTY", str(tmp_path / "empty")) for o in overrides]
    if not any(o.startswith("data.path") for o in overrides) and overrides:
        overrides.append(f"data.path={SLICE}")
    monkeypatch.setattr(activations, "load_encoder", lambda *_a, **_k: _no_model())
    with pytest.raises(AudiationError) as error:
        job_plans.examples_plan(_compose("model=tiny", *overrides))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_s_logit_prefers_utterances_with_an_s(tiny, tmp_path):
    """The CTC output for "s" is highest in speech that has an "s": its top-5 transcripts contain one more
    often than the slice's utterances do on average."""
    letter = json.loads(VOCAB.read_text())["s"]
    cache = _open(tiny, "logits", SLICE, tmp_path / "cache", lambda: load_encoder(tiny, "cpu"))
    found = activations.top_examples(cache, letter, k=5, min_gap_seconds=math.inf)
    assert len({e.file for e in found}) == 5
    texts = [audio_files.transcript(e.file) for e in found]
    base_rate = np.mean(["s" in audio_files.transcript(f) for f in cache.files])
    assert sum("s" in t for t in texts) > 5 * base_rate, (texts, base_rate)


def test_mlp_neurons_have_dataset_examples_too(tiny, tmp_path):
    _slice_files(tmp_path / "data", 2)
    cache = _open(tiny, "mlp4", tmp_path / "data", tmp_path / "cache", lambda: load_encoder(tiny, "cpu"))
    config = load_config(tiny)
    assert cache.num_units == config.intermediate_size and cache.folder.name.startswith("tiny-w2v2-espeak-mlp4-")
    frames = sum(num_frames(parse_layer(4, config), config, len(audio_files.read_audio(f, 16000))) for f in cache.files)
    assert cache.num_frames == frames  # the transformer's frame grid
    found = activations.top_examples(cache, 7, k=2, min_gap_seconds=0)
    assert found[0].activation == cache.stats["max"][7]


def test_a_loud_but_finite_file_is_skipped_not_spread_as_nan_over_the_cache(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    speech = sorted(SLICE.glob("*.flac"))[:3]
    for path in speech[:2]:
        shutil.copy(path, folder)
    signal, rate = sf.read(speech[2], dtype="float32")
    sf.write(folder / "loud.wav", signal * np.float32(3e38), rate, subtype="FLOAT")
    spec = model_spec(compose("model=tiny").model)
    config = load_config(spec)
    cache = activations.open_cache(spec, parse_layer("6", config), config, audio_files.list_audio(folder), tmp_path / "c")
    assert [Path(s["file"]).name for s in cache.skipped] == ["loud.wav"] and len(cache.files) == 2
    assert all(np.isfinite(v).all() for v in cache.stats.values())
    assert np.isfinite(np.asarray(cache.activations, dtype=np.float32)).all()
    assert "skipped" in capsys.readouterr().err and "not finite" in cache.skipped[0]["reason"]


def test_a_damaged_cache_is_set_aside_said_once_and_built_again_the_newest_damage_kept(tmp_path, caplog):
    spec = model_spec(compose("model=tiny").model)
    config = load_config(spec)
    files = audio_files.list_audio(SLICE)[:2]

    def cache():
        return activations.open_cache(spec, parse_layer("2", config), config, files, tmp_path / "c")

    built = cache()
    first = np.asarray(built.activations, dtype=np.float32)
    reasons = {"{": "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", "[]": None}
    for damage, reason in reasons.items():
        (built.folder / "meta.json").write_text(damage)
        caplog.clear()
        again = cache()
        aside = built.folder.with_name(built.folder.name + ".corrupt")
        assert (aside / "meta.json").read_text() == damage  # the newest damaged copy, the older one replaced
        assert again.folder == built.folder and np.array_equal(np.asarray(again.activations, dtype=np.float32), first)
        (message,) = {r.getMessage() for r in caplog.records if "is damaged (" in r.getMessage()}
        assert message.startswith(f"warning: the activation cache {built.folder} is damaged (")
        assert message.endswith(f"); set aside as {aside.name} and built again")
        assert reason is None or f"damaged ({reason});" in message  # the error's own first line, not a stand-in


def test_a_derived_cache_holds_the_transform_of_every_frame_built_once_and_again_when_damaged(tmp_path, caplog,
                                                                                               monkeypatch):
    spec = model_spec(compose("model=tiny").model)
    config = load_config(spec)
    base = activations.open_cache(spec, parse_layer("2", config), config, audio_files.list_audio(SLICE)[:2],
                                  tmp_path / "c")
    calls = []
    monkeypatch.setattr(activations, "ROW_BLOCK_BYTES", 4 * 192 * 10)  # ten frames a block: its blocks are joined
    monkeypatch.setattr(activations, "EXACT_PERCENTILE_VALUES", 0)  # p99 from a histogram between min and max

    def transform(x):
        calls.append((len(x), x.dtype))
        beyond = np.full((len(x), 1), 1e6, dtype=x.dtype)  # past float16's range: kept at its edge, not inf
        return np.concatenate([x[:, :3] * 2, -np.abs(x[:, 3:4]), beyond, -beyond], axis=1)

    derived = activations.derived_cache(base, transform, "sae-x", "an SAE's features")
    stored = np.asarray(base.activations, dtype=np.float32)
    expected = np.clip(transform(stored), -65504, 65504).astype(np.float16).astype(np.float32)
    got = np.asarray(derived.activations, dtype=np.float32)
    assert derived.folder == base.folder.with_name(base.folder.name + "-sae-x") and got.shape == (base.num_frames, 6)
    assert np.array_equal(got, expected) and np.isfinite(got).all()
    assert calls and all(dtype == np.float32 for _, dtype in calls)  # an SAE is given float32 frames, not the cache's float16
    assert np.allclose(derived.stats["max"], expected.max(axis=0))  # p99 from the stored frames' own min and max:
    assert np.allclose(derived.stats["p99"], activations._p99(expected, expected.min(axis=0), expected.max(axis=0)))
    assert np.allclose(derived.stats["mean_abs"], np.abs(expected).mean(axis=0), rtol=1e-5)
    assert derived.meta == {**base.meta, "units": 6, "derived_from": str(base.folder), "transform": "an SAE's features"}
    assert derived.pieces == base.pieces and derived.locate(base.num_frames - 1) == base.locate(base.num_frames - 1)
    built = len(calls)
    assert np.array_equal(activations.derived_cache(base, transform, "sae-x", "").activations, got)
    assert len(calls) == built  # opened, not built again
    (derived.folder / "meta.json").write_text("{")
    leftover = derived.folder.with_name(f".{derived.folder.name}.partial-{os.getpid()}")
    leftover.mkdir()  # a build of this process's id cut off earlier: cleared, not in the way
    (leftover / "activations.npy").write_bytes(b"cut")
    caplog.clear()
    again = activations.derived_cache(base, transform, "sae-x", "an SAE's features")
    assert len(calls) > built and np.array_equal(np.asarray(again.activations, dtype=np.float32), expected)
    assert (derived.folder.with_name(derived.folder.name + ".corrupt") / "meta.json").read_text() == "{"
    assert [r.getMessage() for r in caplog.records if "is damaged (" in r.getMessage()] == [
        f"warning: the activation cache {derived.folder} is damaged (Expecting property name enclosed in double "
        f"quotes: line 1 column 2 (char 1)); set aside as {derived.folder.name}.corrupt and built again"]
    assert not list(tmp_path.glob("c/.*partial*"))  # no half-built folder left
    assert all(value.dtype == np.float32 for value in again.stats.values())  # as a model's cache keeps them
    # Another process built the same cache while this one did: its folder is taken. A folder in the way that is
    # no cache is refused, and neither leaves a half-built folder behind.
    kept = tmp_path / "kept"
    shutil.copytree(again.folder, kept)
    shutil.rmtree(again.folder)

    def racing(x):
        if not again.folder.exists():
            shutil.copytree(kept, again.folder)
        return transform(x)

    raced = activations.derived_cache(base, racing, "sae-x", "")
    assert raced.folder == again.folder and np.array_equal(np.asarray(raced.activations, dtype=np.float32), expected)
    shutil.rmtree(again.folder)

    def blocked(x):
        again.folder.mkdir(exist_ok=True)
        (again.folder / "someone's file").write_text("")
        return transform(x)

    with pytest.raises(OSError):
        activations.derived_cache(base, blocked, "sae-x", "")
    assert not list(tmp_path.glob("c/.*partial*"))


def test_a_cache_set_aside_is_named_by_its_errors_first_line_cut_at_80_or_else_by_its_kind(tmp_path, caplog):
    for error, reason in [(ValueError(), "ValueError"), (OSError("x" * 100 + "\nsecond line"), "x" * 80)]:
        folder = tmp_path / "c"
        folder.mkdir()
        (folder / "meta.json").write_text("{")
        caplog.clear()
        activations._set_aside(folder, error)
        assert not folder.exists() and (tmp_path / "c.corrupt" / "meta.json").read_text() == "{"
        assert [r.getMessage() for r in caplog.records] == [
            f"warning: the activation cache {folder} is damaged ({reason}); set aside as c.corrupt and built again"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1"])
def test_metadata_is_tab_separated_text_whatever_its_quotes_and_encoding(tmp_path, encoding, caplog):
    rows = [("a.wav", '"quoted" and a lone " quote'), ("b.wav", "café"), ("c.wav", 'she said "no')]
    (tmp_path / "metadata.tsv").write_bytes(("file\ttext\n" + "".join(f"{f}\t{t}\n" for f, t in rows)).encode(encoding))
    assert [audio_files.transcript(tmp_path / f) for f, _ in rows] == [t for _, t in rows]
    assert ("is not UTF-8" in caplog.text) == (encoding == "latin-1")


def test_audiation_results_inside_a_data_folder_are_not_natural_audio(tmp_path, caplog):
    natural = tmp_path / "speech" / "a.flac"
    natural.parent.mkdir()
    shutil.copy(sorted(SLICE.glob("*.flac"))[0], natural)
    job = tmp_path / "outputs" / "runs" / "2026-01-01" / "12-00-00"
    for folder, marks in ((job, ["metrics.json"]), (tmp_path / "outputs" / "examples" / "1", ["examples.json"]),
                          (tmp_path / "outputs" / "killed", [".audiation.lock"])):
        (folder / "targets" / "L1-U0-unit").mkdir(parents=True)
        shutil.copy(natural, folder / "targets" / "L1-U0-unit" / "audio.flac")
        for mark in marks:
            (folder / mark).write_text("{}")
    assert audio_files.list_audio(tmp_path) == [natural]
    assert "left out 3 folder(s) of audiation's own results" in caplog.text


def test_an_examples_job_never_writes_over_another_tools_folder(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("theirs: 1\n")
    cfg = compose("model=tiny", "model.layer=4", "logger=none", "threads=1", f"data.path={SLICE}", "units=0",
                  f"data.cache_dir={tmp_path / 'cache'}", config_name="examples")
    with pytest.raises(AudiationError, match=r"holds files audiation did not write \(.hydra\)"):
        examples_job.examples_job(job_plans.examples_plan(cfg), tmp_path)
    assert (tmp_path / ".hydra" / "config.yaml").read_text() == "theirs: 1\n" and not (tmp_path / "examples").exists()


def test_a_full_disk_while_an_examples_clip_is_written_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import errno

    from audiation.errors import run_or_exit

    write = Path.write_bytes

    def full(path, content):
        if path.suffix == ".wav":  # a write's error names no file; the line must
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(path, content)

    monkeypatch.setattr(Path, "write_bytes", full)
    cfg = compose("model=random_small", "threads=1", f"data.path={SLICE}", "units=0", "top_k=1",
                  f"data.cache_dir={tmp_path / 'cache'}", config_name="examples")
    with pytest.raises(SystemExit) as stop:
        run_or_exit(examples_job.examples_job, job_plans.examples_plan(cfg), tmp_path / "job", saved=lambda: "")
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("audiation: error")]
    assert stop.value.code == 2 and len(said) == 1, said
    assert said[0].startswith("audiation: error: No space left on device (") and "examples/L2-U0/1.wav" in said[0]
    assert not (tmp_path / "job" / "examples.json").exists()


def test_examples_exactly_the_gap_apart_are_both_taken_and_ties_go_to_the_earlier_frame():
    from types import SimpleNamespace

    values = np.array([10, 9, 9, 9, 8, 7, 1, 1, 10], dtype=np.float32)  # frames a quarter second apart
    cache = SimpleNamespace(num_units=1, column=lambda unit: values,
                            locate=lambda frame: ("a.wav", frame * 0.25) if frame < 8 else ("b.wav", 0.0))
    found = activations.top_examples(cache, 0, k=3, min_gap_seconds=1.0)
    assert [(e.rank, e.file, e.frame, e.time_seconds) for e in found] == [
        (1, "a.wav", 0, 0.0), (2, "b.wav", 8, 0.0), (3, "a.wav", 4, 1.0)]  # 10 at 0 before 10 at 8; 4 is 1.0 s on
    assert [e.frame for e in activations.top_examples(cache, 0, k=3, min_gap_seconds=0)] == [0, 8, 1]


def test_a_files_reason_is_its_errors_last_line_or_the_errors_type_when_it_says_nothing():
    from audiation.data.audio_files import _reason

    assert _reason(RuntimeError("Error opening 'a.wav':\n  Format not recognised. ")) == "Format not recognised."
    assert _reason(RuntimeError("  \n ")) == "RuntimeError" and _reason(OSError()) == "OSError"


def test_a_data_path_is_one_file_or_a_tree_walked_once_and_each_refusal_is_one_line(tmp_path, caplog):
    clip = sorted(SLICE.glob("*.flac"))[0]
    (tmp_path / "set" / "sub").mkdir(parents=True)
    shutil.copy(clip, tmp_path / "set" / "sub" / "b.Ogg")
    shutil.copy(clip, tmp_path / "set" / "a.flac")
    (tmp_path / "set" / "notes.txt").write_text("")
    os.symlink(tmp_path / "set", tmp_path / "set" / "sub" / "loop")  # a loop: walked once
    os.symlink(tmp_path / "set" / "sub", tmp_path / "set" / "again")  # a folder twice: its files once
    assert audio_files.list_audio(tmp_path / "set") == [tmp_path / "set" / "a.flac", tmp_path / "set" / "again" / "b.Ogg"]
    assert audio_files.list_audio(tmp_path / "set" / "a.flac") == [tmp_path / "set" / "a.flac"]
    for path, why in ((tmp_path / "set" / "notes.txt", "is not an audio file (.wav, .flac, .ogg)"),
                      (tmp_path / "set" / "sub" / "none", ": no such folder")):
        with pytest.raises(AudiationError) as refused:
            audio_files.list_audio(path, name="positive")
        assert str(refused.value) == f"positive={path}{'' if why[0] == ':' else ' '}{why}"
    (tmp_path / "quiet").mkdir()
    with pytest.raises(AudiationError) as refused:
        audio_files.list_audio(tmp_path / "quiet")
    assert str(refused.value) == (f"data.path={tmp_path / 'quiet'} contains no audio files (.wav, .flac, .ogg, "
                                  "searched recursively)")
    # a job folder is left out below the root, never the root itself; metrics.json without targets/ is no job
    for job in ("j1", "j2", "j3"):
        (tmp_path / "set" / job / "targets").mkdir(parents=True)
        (tmp_path / "set" / job / "metrics.json").write_text("{}")
        shutil.copy(clip, tmp_path / "set" / job / "x.flac")
    (tmp_path / "set" / "notes").mkdir()
    (tmp_path / "set" / "notes" / "metrics.json").write_text("{}")
    shutil.copy(clip, tmp_path / "set" / "notes" / "c.wav")
    caplog.clear()
    assert audio_files.list_audio(tmp_path / "set")[-1] == tmp_path / "set" / "notes" / "c.wav"
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: data.path: left out 3 folder(s) of audiation's own results ({tmp_path / 'set' / 'j1'}, "
        f"{tmp_path / 'set' / 'j2'} ...)"]
    assert audio_files.list_audio(tmp_path / "set" / "j2") == [tmp_path / "set" / "j2" / "x.flac"]
    shutil.rmtree(tmp_path / "set" / "j3")
    caplog.clear()
    audio_files.list_audio(tmp_path / "set")
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: data.path: left out 2 folder(s) of audiation's own results ({tmp_path / 'set' / 'j1'}, "
        f"{tmp_path / 'set' / 'j2'})"]


def test_a_file_without_samples_or_with_non_finite_ones_is_unreadable_with_its_reason(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    (tmp_path / "text.flac").write_text("not audio\n")
    for name, reason in (("empty.wav", "no audio samples"), ("nan.wav", "non-finite samples")):
        with pytest.raises(audio_files.UnreadableAudio) as unreadable:
            audio_files.read_audio(tmp_path / name, 16000)
        assert str(unreadable.value) == reason
    with pytest.raises(audio_files.UnreadableAudio) as unreadable:
        audio_files.read_audio(tmp_path / "text.flac", 16000)
    assert str(unreadable.value) and "\n" not in str(unreadable.value)  # libsndfile's last line only
    assert audio_files._reason(RuntimeError("Error opening\n  Format not recognised. \n")) == "Format not recognised."
    assert audio_files._reason(RuntimeError("")) == "RuntimeError"


def test_transcripts_and_speakers_come_from_the_nearest_metadata_and_a_bad_one_is_said_once(tmp_path, caplog):
    root = tmp_path / "up" / "set"
    folder = root / "anna"
    folder.mkdir(parents=True)
    (folder / "metadata.tsv").write_bytes(b"file\ttext\tspeaker\n a.wav \t hello \t  \nb\tby stem\tbo\nc.wav\n")
    (folder / "x.trans.txt").write_text("a A LIBRISPEECH LINE\n\nd  TWO  SPACES \nb NOT THE METADATA'S\n")
    (tmp_path / "up" / "metadata.tsv").write_text("file\tspeaker\nset/anna/a.wav\tabove\n")  # in root's parent
    (tmp_path / "metadata.tsv").write_text("file\tspeaker\nup/set/anna/d.flac\tfar\n")  # above it: not read
    assert [audio_files.transcript(folder / n) for n in ("a.wav", "b.wav", "c.wav", "d.flac", "e.wav")] == [
        "hello", "by stem", None, "TWO  SPACES", None]
    # the nearest speaker column naming the file (a blank one is none), else the first subfolder of the root
    assert [audio_files.speaker(folder / n, root) for n in ("b", "a.wav", "d.flac")] == ["bo", "above", "anna"]
    assert audio_files.speaker(root / "top.wav", root) is None
    assert audio_files.speaker(tmp_path / "up" / "outside.wav", root) is None  # not under the root: no subfolder
    latin = tmp_path / "latin"
    latin.mkdir()
    (latin / "metadata.tsv").write_bytes("file\ttext\nz.wav\tna\xefve\n".encode("latin-1"))
    assert audio_files.transcript(latin / "z.wav") == "na\xefve"
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: {latin / 'metadata.tsv'} is not UTF-8 (byte 18); read as Latin-1"]  # after 18 bytes of ASCII
    caplog.clear()
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "metadata.tsv").write_text("file\ttext\nz.wav\t" + "x" * (200 << 10) + "\n")
    assert audio_files.transcript(huge / "z.wav") is None
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"warning: {huge / 'metadata.tsv'} is not read (field larger than field limit")
