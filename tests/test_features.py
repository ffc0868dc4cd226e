"""Sparse autoencoder features (audiation/core/sae.py, the features job, objective=feature): TopK's exact
sparsity, reconstruction, a feature objective equal to the encoder applied to the layer, resume, bad input,
and the feature cards."""

from __future__ import annotations

import json
import re
import shutil
import signal
import types

import numpy as np
import pytest
import torch
from conftest import ROOT, spec
from test_gallery import data

from audiation.browser.page import write_gallery
from audiation.config import builder
from audiation.config.configs import compose
from audiation.config.job_plans import features_plan
from audiation.core import sae
from audiation.core.kinds import TargetKind
from audiation.data import splits
from audiation.data.activations import ActivationCache
from audiation.errors import AudiationError
from audiation.jobs import features_job as features_job_module
from audiation.jobs.audiate_job import audiate_folder
from audiation.jobs.features_job import features_job
from audiation.models.encoder import load_encoder

SLICE = ROOT / "audiation" / "assets" / "speech-slice"
SMALL = ["model=random_small", "model.layer=2", "threads=1"]


def test_topk_keeps_exactly_the_k_largest_pre_activations_rectified():
    model = sae.SAE(8, 32, 5, torch.Generator().manual_seed(0))
    pre = torch.randn(100, 32, generator=torch.Generator().manual_seed(1))
    code = model.code(pre)
    assert ((code != 0).sum(dim=1) <= 5).all()
    top = pre.topk(5, dim=1)
    expected = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
    assert torch.equal(code, expected)
    # frames of a batch of clips (batch, frames, features): the same k per frame, along the features
    assert torch.equal(model.code(pre.reshape(4, 25, 32)), expected.reshape(4, 25, 32))


def test_a_topk_sae_recovers_a_sparse_dictionary():
    """Frames made of 3 of 48 directions in 32 dimensions: a 64-feature SAE explains nearly all their
    variance on held-out frames, and about the 16 features it does not need are the dead ones."""
    rng = np.random.default_rng(0)
    directions = rng.standard_normal((48, 32))
    codes = np.zeros((24000, 48))
    for row in codes:
        row[rng.choice(48, 3, replace=False)] = rng.uniform(1, 3, 3)
    frames = (codes @ directions + 0.01 * rng.standard_normal((24000, 32))).astype(np.float16)
    settings = sae.TrainSettings(features=64, k=3, steps=2000, batch=256, lr=3e-3, dead_after=5000, seed=0)
    _, numbers = sae.train(frames, np.arange(20000), np.arange(20000, 24000), settings)
    assert numbers["variance_explained"] > 0.95, numbers["variance_explained"]
    assert numbers["mean_l0"] <= 3 and numbers["dead_share"] <= 0.3
    losses = numbers["loss_every_50_steps"]  # a curve to plot, at 5 decimals
    assert len(losses) == 40 and losses == [round(v, 5) for v in losses] != [round(v, 4) for v in losses]


@pytest.fixture(scope="module")
def dictionary(tmp_path_factory) -> str:
    """An SAE of random_small's layer 2 on the speech slice, trained briefly by the features job."""
    folder = tmp_path_factory.mktemp("sae")
    features_job(features_plan(compose(*SMALL, f"data.path={SLICE}", f"data.cache_dir={folder / 'cache'}", "features=64", "k=4",
                         "steps=40", "batch=256", config_name="features")), folder / "job")
    return str(folder / "job")


def test_the_features_job_writes_the_sae_and_what_it_measured(dictionary):
    summary = json.loads((sae.Path(dictionary) / sae.SUMMARY).read_text())
    assert summary["layer"] == "L2" and summary["units"] == 32 and summary["features"] == 64 and summary["k"] == 4
    assert summary["data"] == str(SLICE.resolve()) and summary["cache"].startswith(str(sae.Path(dictionary).parent / "cache"))
    assert summary["device"] == "cpu" and summary["loss_every_50_steps"] == []  # 40 steps: none logged yet
    assert 0 < summary["variance_explained"] <= 1
    assert len(summary["firing_frequency"]) == 64 and len(summary["nearest_features"]) == 64
    assert sae.read_summary(dictionary)["features"] == 64
    # held_out=0.1 of the slice's 160 files: 16 distinct files of the cache, and every other frame trained on
    cache = ActivationCache(summary["cache"])
    held = summary["held_out_files"]
    assert len(set(held)) == len(held) == 16 and set(held) <= set(cache.files) and summary["train_files"] == 144
    names = sorted(cache.files)  # the settings' seed chose them: a features job is repeatable
    assert held == [names[row] for row in splits.held_out(len(names), 0.1, summary["settings"]["seed"])[1]]
    held_frames = sae.frame_ranges(cache.pieces, set(held))
    assert summary["held_out_frames"] == len(held_frames) > 0
    assert summary["train_frames"] + len(held_frames) == cache.num_frames
    # mean L0 measured again on the held-out frames, by the saved SAE (TopK caps it at k=4, so <= 4 cannot fail)
    model = sae.load(dictionary)
    with torch.no_grad():
        code = model.code(model.pre(torch.from_numpy(np.asarray(cache.activations[held_frames], dtype=np.float32))))
    assert summary["mean_l0"] == pytest.approx(float((code > 0).sum(dim=1).float().mean()), abs=1e-6)


def test_frame_ranges_are_the_rows_of_the_chosen_files_and_index_the_cache_even_when_none_is_chosen():
    from audiation.data.activations import Piece
    pieces = [Piece("a.wav", 0.0, 0, 3, 1.0), Piece("b.wav", 0.0, 3, 2, 1.0), Piece("a.wav", 0.06, 5, 1, 1.0)]
    assert sae.frame_ranges(pieces, {"a.wav"}).tolist() == [0, 1, 2, 5]
    nothing = sae.frame_ranges(pieces, {"c.wav"})
    # an index of no rows: an integer array of length 0 selects nothing (a float one raises, a length-1 one a row)
    assert nothing.shape == (0,) and nothing.dtype == np.int64
    assert np.zeros((6, 2))[nothing].shape == (0, 2)


def test_mean_l0_and_firing_counts_only_the_features_that_are_on():
    """Three frames whose TopK (k=2) keeps 2, 1 and 1 positive pre-activations (ReLU turns the rest off)."""
    model = sae.SAE(2, 3, 2)
    with torch.no_grad():
        model.W_enc.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    frames = np.array([[1, 1], [1, -1], [-1, -1]], dtype=np.float16)  # pre: [1 1 -2], [1 -1 0], [-1 -1 2]
    numbers = sae.evaluate(model, frames, np.arange(3))
    assert numbers["mean_l0"] == pytest.approx(4 / 3)
    # firing_frequency is written to 4 significant digits
    assert numbers["firing_frequency"] == pytest.approx([2 / 3, 1 / 3, 1 / 3], rel=1e-3) and numbers["dead_share"] == 0


def test_a_feature_objective_is_the_sae_encoder_applied_to_the_layer(dictionary):
    cfg = compose(*SMALL, "logger=none", "objective=feature", f"objective.sae={dictionary}", "objective.unit=[3,9]")
    plan = builder.plan(cfg)
    batch = builder.build_batch(plan, plan.targets)
    encoder = load_encoder(plan.spec, "cpu")
    model = sae.load(dictionary)
    wave = torch.randn(2, plan.geometry.num_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        acts = encoder(wave, plan.layer)
        by_hand = (acts - model.b_dec) @ model.W_enc.T + model.b_enc  # pre-TopK, every feature
        _, terms = batch.objective(sae.FeatureView(encoder, model)(wave, plan.layer), wave)
    assert plan.geometry.num_units == 64
    assert torch.allclose(terms["activation"], by_hand[:, :, [3, 9]].mean(dim=1).diagonal(), atol=1e-5)
    assert plan.kind is TargetKind.channel and plan.frame is None  # its YAML's frame is for kind=unit
    cfg = compose(*SMALL, "logger=none", "objective=feature", f"objective.sae={dictionary}", "objective.kind=unit")
    at_frame = builder.plan(cfg)
    assert at_frame.frame == at_frame.geometry.middle_frame()
    assert {"neighbours", "silence"} <= {name for _, name, _ in builder.build_batch(at_frame, at_frame.targets)
                                         .objective.terms}


def test_a_feature_sweep_resumes_and_a_retrained_sae_is_another_objective(dictionary, tmp_path):
    overrides = [*SMALL, "logger=none", "objective=feature", f"objective.sae={dictionary}", "objective.unit=0:3",
                 "steps=3", f"quality.data={SLICE}", f"quality.cache_dir={tmp_path / 'cache'}", "examples.top_k=1"]
    first = audiate_folder(compose(*overrides), tmp_path / "job")
    record = first["targets"][0]
    assert record["name"] == "L2-U0-feature" and record["firing_frequency"] is not None
    assert record["activation_ratio"] is not None and len(record["examples"]) == 1  # from the features' cache
    (card,) = [c for c in data(write_gallery(tmp_path / "job")) if c["name"] == "L2-U0-feature"]
    rows = dict(card["rows"])
    assert rows["firing_frequency"] == pytest.approx(record["firing_frequency"])
    assert rows["nearest_features"].startswith(f"U{record['nearest_features'][0][0]} (")
    assert audiate_folder(compose(*overrides), tmp_path / "job")["run"]["audiated_now"] == 0
    weights, summary = sae.Path(dictionary) / sae.WEIGHTS, sae.Path(dictionary) / sae.SUMMARY
    saved, saved_summary = weights.read_bytes(), summary.read_text()
    try:
        retrained = sae.load(dictionary)
        retrained.W_enc.data += 0.01
        retrained.save(sae.Path(dictionary), json.loads((sae.Path(dictionary) / sae.SUMMARY).read_text()))
        with pytest.raises(AudiationError, match="objective.sae_sha256"):
            audiate_folder(compose(*overrides), tmp_path / "job")
    finally:
        weights.write_bytes(saved)
        summary.write_text(saved_summary)


@pytest.mark.parametrize("overrides,message", [
    (["features=8", "k=8"], "k=8 must be below features=8"),
    (["features=100000000"], "needs about"),
    (["+kk=3"], "kk is not a key"),
    # its features would be measured and judged as the letters of their indices
    (["model=tiny", "model.layer=logits"], "^model.layer=logits: the CTC outputs are letters already"),
])
def test_bad_training_settings_are_one_line_before_any_work(tmp_path, overrides, message):
    with pytest.raises(AudiationError, match=message):
        features_job(features_plan(compose(*SMALL, f"data.path={SLICE}", *overrides, config_name="features")), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("overrides", [[], ["data.path="]])  # null: refused by the schema itself
def test_a_features_job_without_its_data_says_so_in_one_line(overrides):
    with pytest.raises(AudiationError, match=r"^data.path is required: the folder of audio to train on"):
        features_plan(compose(*SMALL, *overrides, config_name="features"))


def test_a_features_plan_takes_two_files_refuses_one_and_names_its_cache_folder(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for path in sorted(SLICE.glob("*.flac"))[:2]:
        shutil.copy(path, data)
    monkeypatch.chdir(tmp_path)
    plan = features_plan(compose(*SMALL, "data.path=data", f"data.cache_dir={tmp_path / 'cache'}", config_name="features"))
    assert len(plan.files) == 2 and plan.threads == 1 and plan.cache_dir == str(tmp_path / "cache")
    assert plan.data == data.resolve() and plan.data_given == "data"  # the folder itself, and as the user wrote it
    (tmp_path / "a file").write_text("")
    with pytest.raises(AudiationError, match=r"^data\.cache_dir=.* cannot be a folder"):
        features_plan(compose(*SMALL, f"data.path={data}", f"data.cache_dir={tmp_path / 'a file' / 'cache'}",
                              config_name="features"))
    sorted(data.iterdir())[0].unlink()
    with pytest.raises(AudiationError, match=r"^data\.path=\S+ has 1 audio file; at least 2 are needed \(files, not frames, are held out\)$"):
        features_plan(compose(*SMALL, f"data.path={data}", config_name="features"))


def test_training_settings_are_the_jobs_own_and_past_memory_gb_are_refused():
    from audiation.config.job_plans import settings_of
    given = ["features=1024", "k=3", "steps=7", "batch=256", "lr=0.01", "aux_k=5", "aux_weight=0.5", "dead_after=99",
             "seed=4"]
    # 4 bytes x (weights, gradients and Adam's two moments of both matrices + a batch's codes and their gradients):
    # 4 x (8 x 1024 x 32 + 4 x 256 x 1024) = 5,242,880 bytes = 0.00488 GiB
    settings = settings_of(compose(*SMALL, *given, "memory_gb=0.0049", config_name="features"), 32)
    assert settings == sae.TrainSettings(features=1024, k=3, steps=7, batch=256, lr=0.01, aux_k=5, aux_weight=0.5,
                                         dead_after=99, seed=4)
    with pytest.raises(AudiationError, match=r"^features=1024 at 32 units needs about 0\.0 GiB to train \(more than "
                                             r"memory_gb=0\.0048\); choose fewer features or a smaller batch$"):
        settings_of(compose(*SMALL, *given, "memory_gb=0.0048", config_name="features"), 32)


def test_training_is_the_same_for_a_seed_and_needs_one_whole_batch():
    frames = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float16)
    settings = sae.TrainSettings(features=8, k=2, steps=3, batch=16, chunk_frames=32, seed=5)

    def weights(settings):
        model, _ = sae.train(frames, np.arange(16, 64), np.arange(16), settings)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights(settings), weights(settings))  # the seed decides the start and every batch
    assert not torch.equal(weights(settings), weights(sae.TrainSettings(**{**settings.__dict__, "seed": 6})))
    sae.train(frames, np.arange(16), np.arange(16, 20), settings)  # exactly one batch: trained
    with pytest.raises(ValueError, match=r"^15 training frames: fewer than one batch of 16$"):
        sae.train(frames, np.arange(15), np.arange(16, 20), settings)


def test_training_shows_its_label_and_its_steps_so_the_bar_can_say_when_it_ends(capsys):
    frames = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    sae.train(frames, np.arange(32), np.arange(8), sae.TrainSettings(features=8, k=2, steps=3, batch=16),
              label="sae L3")
    shown = capsys.readouterr().err
    assert "sae L3:" in shown and "0/3" in shown and "step/s" in shown  # a bar without its total has no ETA


def test_training_takes_exactly_its_steps_in_whole_batches(monkeypatch):
    frames = np.random.default_rng(0).standard_normal((63, 4)).astype(np.float32)
    sizes = []
    forward = sae.SAE.forward
    monkeypatch.setattr(sae.SAE, "forward", lambda self, x: sizes.append(len(x)) or forward(self, x))
    model, numbers = sae.train(frames, np.arange(63), np.arange(8), sae.TrainSettings(features=8, k=2, steps=50, batch=16))
    assert not any(p.requires_grad for p in model.parameters())  # frozen once trained, as the model is
    # three whole batches a pass (not a fourth of 15), and it stops within a pass; then the held-out frames
    assert sizes[:51] == [16] * 50 + [8] and len(numbers["loss_every_50_steps"]) == 1
    # batches larger than the chunks read from the memory map (batch=100000 on a big dataset) trained on nothing,
    # forever, under a bar at 0
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("training never ended"))
    signal.alarm(20)
    try:
        sizes.clear()
        sae.train(frames, np.arange(63), np.arange(8), sae.TrainSettings(features=8, k=2, steps=50, batch=16,
                                                                            chunk_frames=10))
    finally:
        signal.alarm(0)
    assert sizes[:51] == [16] * 50 + [8]


def test_the_auxiliary_loss_trains_dead_features_and_only_them():
    """A feature that has not fired for `dead_after` frames is dead: its top pre-activations are asked to
    explain what the live ones missed (weighted by `aux_weight`); with none dead the weight changes nothing."""
    frames = np.random.default_rng(0).standard_normal((64, 6)).astype(np.float32)

    def weights(**given):
        settings = sae.TrainSettings(**{"features": 16, "k": 1, "steps": 4, "batch": 32, "seed": 2, **given})
        model, _ = sae.train(frames, np.arange(64), np.arange(8), settings)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights(aux_weight=0.0), weights(aux_weight=1.0))  # none dead after 128 frames
    dead_soon = weights(aux_weight=0.0, dead_after=32)
    assert not torch.equal(dead_soon, weights(aux_weight=1.0, dead_after=32))
    assert not torch.equal(weights(aux_weight=1.0, dead_after=32), weights(aux_weight=1.0, dead_after=32, aux_k=1))
    assert torch.equal(weights(aux_weight=1.0, dead_after=32, aux_k=15), weights(aux_weight=1.0, dead_after=32, aux_k=64))


def test_a_batch_loss_is_its_unexplained_share_plus_the_dead_features_share_of_what_is_left():
    """Exact, on a 3-unit SAE of 4 features (k=1): rows' codes below 1 still fire; features 1 and 3 have not
    fired for 12 frames (dead_after 12: at the edge), so their top aux_k pre-activations explain the error, per row."""
    model = sae.SAE(3, 4, 1)
    with torch.no_grad():
        rows = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [2 ** -0.5, 2 ** -0.5, 0]])
        model.W_dec.copy_(rows)
        model.W_enc.copy_(rows)
    x = torch.tensor([[0.5, 0.1, 0.0], [0.0, 0.0, 0.7]])  # codes: 0.5 on feature 0, 0.7 on feature 2

    def loss(since=10.0, **given):
        settings = sae.TrainSettings(**{"features": 4, "k": 1, "aux_weight": 0.25, "dead_after": 12, **given})
        model.zero_grad()
        value, since_fired = sae.batch_loss(model, x, 0.5, torch.full((4,), since), settings)
        value.backward()
        return value.item(), since_fired.tolist(), model.W_enc.grad[[0, 2]].clone(), model.W_dec.grad[[0, 2]].clone()

    # reconstruction: rows' squared errors 0.01 and 0, their mean over the variance 0.5 is 0.01
    assert loss(since=0.0)[:2] == (pytest.approx(0.01), [0.0, 2.0, 0.0, 2.0])  # none dead yet
    # aux_k=1: row 0's error [0, 0.1, 0] less 0.6 / sqrt(2) of feature 3 leaves [-0.3, -0.2, 0]: 0.13 over 2 rows
    value, since_fired, enc, dec = loss(aux_k=1)
    assert (value, since_fired) == (pytest.approx(0.01 + 0.25 * 0.13 / 2 / 0.5), [0.0, 12.0, 0.0, 12.0])
    # aux_k=2 (or more: only two are dead) adds 0.1 of feature 1: [-0.3, -0.3, 0] leaves 0.18
    assert loss(aux_k=2)[0] == pytest.approx(0.01 + 0.25 * 0.18 / 2 / 0.5) == loss(aux_k=64)[0]
    # the auxiliary loss trains the dead features only: the live ones' gradients are as without it
    _, _, live_enc, live_dec = loss(aux_k=1, aux_weight=0.0)
    assert torch.equal(enc, live_enc) and torch.equal(dec, live_dec)


def _damaged(folder, how):
    from safetensors.torch import load_file, save_file

    summary = json.loads((folder / sae.SUMMARY).read_text())
    if how == "missing":
        (folder / sae.WEIGHTS).unlink()
    elif how == "truncated":  # one byte short: the header is whole, the tensors are not
        data = (folder / sae.WEIGHTS).read_bytes()
        (folder / sae.WEIGHTS).write_bytes(data[:-1])
    elif how == "no summary":
        (folder / sae.SUMMARY).unlink()
    elif how == "header a list":  # a safetensors header is a JSON table
        (folder / sae.WEIGHTS).write_bytes((2).to_bytes(8, "little") + b"[]")
    elif how == "summary not JSON":
        (folder / sae.SUMMARY).write_text("{")
    elif how in ("no k", "short firing_frequency"):
        summary.pop("k") if how == "no k" else summary["firing_frequency"].pop()
        (folder / sae.SUMMARY).write_text(json.dumps(summary))
    else:  # other weights beside the summary: of another width, or retrained and cut off before the summary
        weights = load_file(str(folder / sae.WEIGHTS))
        weights["W_dec"] = weights["W_dec"][:, :-1].contiguous() if how == "W_dec width" else weights["W_dec"] * 2
        save_file(weights, str(folder / sae.WEIGHTS))
        if how == "W_dec width":
            (folder / sae.SUMMARY).write_text(json.dumps({**summary, "weights_sha256": sae.content_digest(folder)}))


@pytest.mark.parametrize("change,message", [
    (["model.layer=1"], "is an SAE of random_small layer L2; this run is random_small layer L1"),
    (["model=tiny", "model.layer=2"], "this run is tiny-w2v2-espeak layer L2"),
    (["missing"], "has no sae.safetensors"),
    (["truncated"], r"sae.safetensors is damaged \(it is truncated\)$"),
    (["no summary"], r"has no features.json: not an SAE folder \(python -m audiation.features makes one\)$"),
    (["summary not JSON"], r"/sae/features.json could not be read: Expecting property name"),
    (["no k"], r"is not an SAE's summary \(k must be a whole number in 1..64\)"),
    (["short firing_frequency"], "firing_frequency must hold 64 numbers"),
    (["W_dec width"], r"does not describe .*'W_dec': \[64, 31\]"),
    (["new weights"], r"/sae/features.json describes other weights than .*/sae/sae.safetensors \(its training was cut "
                      r"off between the two\?\); train it again$"),
    (["header a list"], r"/sae/sae.safetensors is damaged \(its header is not a table\)$"),
    (["objective.kind=layer"], "objective.kind=layer: an SAE.s features are units"),
    (["model=tiny", "model.layer=logits"], "^model.layer=logits: the CTC outputs are letters already"),
])
def test_an_sae_that_does_not_fit_the_run_is_one_line(dictionary, tmp_path, change, message):
    folder = tmp_path / "sae"
    shutil.copytree(dictionary, folder)
    overrides = [o for o in change if "=" in o]
    for how in set(change) - set(overrides):
        _damaged(folder, how)
    cfg = compose(*SMALL, "logger=none", "objective=feature", f"objective.sae={folder}", *overrides)
    with pytest.raises(AudiationError, match=message):
        builder.plan(cfg)


def test_a_dictionary_of_two_features_names_its_one_neighbour(dictionary, tmp_path):
    cache = sae.Path(dictionary).parent / "cache"
    summary = features_job(features_plan(compose(*SMALL, f"data.path={SLICE}", f"data.cache_dir={cache}", "features=2", "k=1",
                                   "steps=2", "batch=256", config_name="features")), tmp_path)
    assert [[pair[0] for pair in row] for row in summary["nearest_features"]] == [[1], [0]]
    assert sae.read_summary(tmp_path)["k"] == 1


def test_the_examples_of_features_come_from_the_layers_cache_without_the_model(dictionary, tmp_path, monkeypatch):
    from audiation.config.job_plans import examples_plan
    from audiation.data import activations
    from audiation.jobs.examples_job import examples_job

    cache = sae.Path(dictionary).parent / "cache"  # the layer's cache, built by the features job
    monkeypatch.setattr(activations, "load_encoder", lambda *_a, **_k: pytest.fail("the model was loaded"))
    summary = examples_job(examples_plan(compose(*SMALL, "logger=none", f"data.path={SLICE}", f"data.cache_dir={cache}",
                                   f"sae={dictionary}", "units=0:2", "top_k=2", config_name="examples")), tmp_path)
    assert summary["sae"] == dictionary and [u["unit"] for u in summary["units"]] == [0, 1]
    for unit in summary["units"]:  # the features' own statistics, not the layer's units'
        assert unit["examples"][0]["activation"] == pytest.approx(unit["stats"]["max"], rel=2e-3)
    assert json.loads((sae.Path(summary["cache"]) / "meta.json").read_text())["transform"] == f"features of {dictionary}"


def test_a_dictionary_that_needs_more_than_memory_gb_is_refused_with_what_it_needs():
    from audiation.config.job_plans import settings_of

    # 4 bytes x (weights, gradients and Adam's moments: 8 x features x units + codes and grads: 4 x batch x features)
    fits = compose(*SMALL, "data.path=x", "features=16384", "batch=2048", "memory_gb=1", config_name="features")
    assert settings_of(fits, 1024).features == 16384  # 2**30 bytes exactly: it fits
    with pytest.raises(AudiationError) as raised:
        settings_of(compose(*SMALL, "data.path=x", "features=16385", "batch=2048", "memory_gb=1", config_name="features"),
                    1024)
    assert str(raised.value) == ("features=16385 at 1024 units needs about 1.0 GiB to train (more than memory_gb=1); "
                                 "choose fewer features or a smaller batch")


def test_an_sae_starts_with_unit_decoder_rows_and_the_encoder_their_copy():
    model = sae.SAE(5, 7, 2, torch.Generator().manual_seed(0))
    assert torch.allclose(model.W_dec.norm(dim=1), torch.ones(7)) and torch.equal(model.W_enc, model.W_dec)
    assert model.W_enc.data_ptr() != model.W_dec.data_ptr()  # two parameters, trained apart
    assert not model.b_enc.any() and not model.b_dec.any()


def test_an_sae_knows_its_model_by_name_and_weights_or_random_config_and_its_own_weights_by_content(tmp_path):
    """Both are written into features.json and compared on reading it: an SAE trained before a change of these
    must still be recognised."""
    import hashlib

    from audiation.models.encoder import weights_digest

    random, local = spec(*SMALL), spec("model=tiny")
    assert sae.identity(random) == {"name": "random_small", "weights_sha256": None, "random_init": True,
                                    "config": random.config} and random.config
    assert sae.identity(local) == {"name": "tiny-w2v2-espeak", "weights_sha256": weights_digest(local),
                                   "random_init": False, "config": {}} and weights_digest(local)
    content = bytes(range(256)) * (5 << 12)  # 5 MiB: read in more than one piece
    (tmp_path / sae.WEIGHTS).write_bytes(content)
    assert sae.content_digest(tmp_path) == hashlib.sha256(content).hexdigest()[:16]


def test_the_dictionary_is_eight_times_the_layer_unless_said():
    from audiation.config.job_plans import settings_of

    assert settings_of(compose(*SMALL, "data.path=x", config_name="features"), 32).features == 256
    assert settings_of(compose(*SMALL, "data.path=x", "features=100", config_name="features"), 32).features == 100


def four_files(folder):
    (folder / "data").mkdir()
    for path in sorted(SLICE.glob("*.flac"))[:4]:  # 0.64, 1.33, 2.47 and 0.99 s
        shutil.copy(path, folder / "data")
    return folder / "data"


@pytest.mark.parametrize("name", [sae.WEIGHTS, sae.SUMMARY, ".hydra", "wandb"])
def test_a_features_job_refuses_another_tools_files_before_any_work(tmp_path, name):
    plan = features_plan(compose(*SMALL, f"data.path={four_files(tmp_path)}", f"data.cache_dir={tmp_path / 'cache'}",
                                 config_name="features"))
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / name).write_text("another tool's")
    with pytest.raises(AudiationError, match=rf"holds files audiation did not write \({re.escape(name)}\)"):
        features_job(plan, tmp_path / "job")
    assert not (tmp_path / "cache").exists()


def test_a_features_job_with_less_data_than_one_batch_says_so_in_one_line(tmp_path):
    given = four_files(tmp_path)  # 5.4 s: ~270 frames, three files' of them trained on
    plan = features_plan(compose(*SMALL, f"data.path={given}", f"data.cache_dir={tmp_path / 'cache'}", "batch=1024",
                                 config_name="features"))
    with pytest.raises(AudiationError, match=rf"^data.path={re.escape(str(given))}: \d+ training frames: fewer than "
                                             r"one batch of 1024; use more audio or a smaller batch$"):
        features_job(plan, tmp_path / "job")


def test_a_few_files_hold_one_out_in_pieces_of_max_seconds_on_the_plans_threads_and_run_again_in_their_folder(
        tmp_path, monkeypatch):
    """held_out=0.1 of 4 files rounds to none: one file is held out all the same, never two. The cache cuts
    each file into pieces of at most `data.max_seconds`, torch runs on the plan's threads, and a second run
    writes over the folder the first one wrote (in a folder made for it), timed from start to end."""
    plan = features_plan(compose(*SMALL, "data.max_seconds=0.5",
                                 f"data.path={four_files(tmp_path)}", f"data.cache_dir={tmp_path / 'cache'}",
                                 "features=64", "k=4", "steps=2", "batch=64", config_name="features"))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        summary = features_job(plan, tmp_path / "new" / "job")
        assert summary["threads"] == torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert len(summary["held_out_files"]) == 1 and summary["train_files"] == 3
    pieces = ActivationCache(summary["cache"]).pieces
    assert len(pieces) >= 2 + 3 + 5 + 2 and max(piece.num_frames for piece in pieces) <= 25  # 50 frames a second
    clock = iter([100.0, 112.345])  # the job's own clock: when it started and when it ended
    monkeypatch.setattr(features_job_module, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    again = features_job(plan, tmp_path / "new" / "job")
    assert again["held_out_files"] == summary["held_out_files"] and again["seconds"] == 12.3


def test_the_decoder_bias_starts_at_the_mean_of_every_chunk_of_training_frames():
    activations = (np.random.default_rng(0).normal(size=(100, 4)) + np.arange(4) * 5).astype(np.float32)
    train, held = np.arange(0, 90), np.arange(90, 100)
    settings = sae.TrainSettings(features=8, k=2, steps=0, batch=8, chunk_frames=16, seed=1)  # 6 chunks, no step
    model, _numbers = sae.train(activations, train, held, settings)
    assert torch.allclose(model.b_dec, torch.from_numpy(activations[train].mean(axis=0)), atol=1e-5)


def test_the_decoder_bias_is_the_mean_of_a_float16_cache_whose_sums_overflow_float16_and_of_one_frame():
    activations = np.full((1024, 4), 100, dtype=np.float16)  # as the cache stores them; a column sums to 102,400
    model, _ = sae.train(activations, np.arange(1000), np.arange(1000, 1024),
                         sae.TrainSettings(features=8, k=2, steps=0, batch=8, chunk_frames=256))
    assert torch.equal(model.b_dec, torch.full((4,), 100.0))
    one, _ = sae.train(activations[:2] * np.float16(0.5), np.arange(1), np.arange(1, 2),
                       sae.TrainSettings(features=8, k=2, steps=0, batch=1))
    assert torch.equal(one.b_dec, torch.full((4,), 50.0))


def test_the_logged_loss_is_the_share_of_the_training_frames_variance_left_unexplained():
    """1 = predicting their mean: at a learning rate too small to move the SAE, each logged loss is one
    batch's squared error over the variance of all the training frames (not of one chunk, nor about zero)."""
    activations = np.random.default_rng(0).normal(3, 0.01, size=(256, 4))  # squared spread 0.1 in all, mean 3
    settings = sae.TrainSettings(features=8, k=2, steps=100, batch=64, chunk_frames=64, lr=1e-9, seed=2)
    model, numbers = sae.train(activations, np.arange(256), np.arange(256), settings)
    unexplained = 1 - numbers["variance_explained"]
    assert len(numbers["loss_every_50_steps"]) == 2
    for loss in numbers["loss_every_50_steps"]:
        assert unexplained * 0.7 < loss < unexplained * 1.4  # a batch of 64 frames against all 256


def test_training_takes_every_step_at_the_settings_learning_rate():
    frames = np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32)

    def encoder(steps, lr):
        model, _ = sae.train(frames, np.arange(64), np.arange(8),
                             sae.TrainSettings(features=8, k=2, steps=steps, batch=16, lr=lr, seed=3))
        return model.W_enc.clone()

    untrained = encoder(0, 1e-3)
    assert torch.equal(encoder(3, 0.0), untrained)  # Adam at the settings' rate, not its own default
    assert not torch.equal(encoder(1, 1e-3), untrained)  # one step asked, one step taken


def test_a_summary_fits_from_one_feature_and_one_unit_up_and_says_what_does_not():
    smallest = {"features": 1, "units": 1, "k": 1, "layer": "L1", "model": {}, "weights_sha256": "0" * 64,
                "firing_frequency": [0.5], "nearest_features": [[[0, 1.0]]]}
    assert sae._summary_misfit(smallest) is None
    for key in ("features", "units"):
        assert sae._summary_misfit({**smallest, key: 0}) == "features and units must be whole numbers >= 1"
        assert sae._summary_misfit({**smallest, key: 1.5}) == "features and units must be whole numbers >= 1"
    assert sae._summary_misfit({**smallest, "k": 2}) == "k must be a whole number in 1..1"
    assert sae._summary_misfit({**smallest, "nearest_features": [[[1, 1.0]]]}) == (
        "nearest_features must hold 1 lists of (feature, cosine)")  # feature 1 of one feature (0) does not exist


TWO = {"features": 2, "units": 3, "k": 2, "layer": "L1", "model": {}, "weights_sha256": "0" * 64,
       "firing_frequency": [0.5, 1], "nearest_features": [[[1, 0.2]], []]}
WHOLE, K, NAMES, WEIGHTS = ("features and units must be whole numbers >= 1", "k must be a whole number in 1..2",
                            "it names no model and layer", "it does not name its weights")
FREQUENCY, NEAREST = "firing_frequency must hold 2 numbers", "nearest_features must hold 2 lists of (feature, cosine)"


@pytest.mark.parametrize("change, misfit", [
    ({"features": True}, WHOLE), ({"units": None}, WHOLE), ({"units": "3"}, WHOLE),
    ({"k": 0}, K), ({"k": 3}, K), ({"k": 1.0}, K), ({"k": True}, K), ({"k": 1}, None),
    ({"layer": 6}, NAMES), ({"model": None}, NAMES), ({"model": []}, NAMES),
    ({"weights_sha256": None}, WEIGHTS),
    ({"firing_frequency": [0.5]}, FREQUENCY), ({"firing_frequency": [0.5, "1"]}, FREQUENCY),
    ({"firing_frequency": [0.5, True]}, FREQUENCY), ({"firing_frequency": {"a": 1, "b": 2}}, FREQUENCY),
    ({"nearest_features": [[]]}, NEAREST), ({"nearest_features": [[], "ab"]}, NEAREST),
    ({"nearest_features": [[], [[1, 0.2, 3]]]}, NEAREST), ({"nearest_features": [[], [[2, 0.2]]]}, NEAREST),
    ({"nearest_features": [[], [[-1, 0.2]]]}, NEAREST), ({"nearest_features": [[], [[1.0, 0.2]]]}, NEAREST),
    ({"nearest_features": [[], [[0, "0.2"]]]}, NEAREST), ({"nearest_features": [[], [[0, False]]]}, NEAREST),
    ({"nearest_features": None}, NEAREST), ({"nearest_features": [[[0, 1]], [[0, -1.0], [1, 0.0]]]}, None),
])
def test_a_summary_says_the_first_thing_that_does_not_fit_word_for_word(change, misfit):
    """Each number an objective=feature run reads from `features.json`, of its kind and at its edges."""
    assert sae._summary_misfit(TWO) is None
    assert sae._summary_misfit({**TWO, **change}) == misfit


def test_a_summary_that_is_not_an_object_says_so():
    assert sae._summary_misfit([TWO]) == "not a JSON object"


def test_a_folder_is_ours_by_its_summary_or_by_the_k_our_save_writes_into_the_weights(tmp_path):
    """`written_here` decides whether the features job may write over a folder: a whole save (its summary
    names the weights), a save cut off before its summary (the weights carry our `k`), and nothing else."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    whole = tmp_path / "whole"
    sae.SAE(4, 8, 2, torch.Generator().manual_seed(0)).save(whole, {"k": 2})
    assert sae.written_here(whole)
    (whole / sae.WEIGHTS).unlink()
    assert sae.written_here(whole)  # the summary alone says so
    cut = tmp_path / "cut"
    sae.SAE(4, 8, 2, torch.Generator().manual_seed(0)).save(cut, {"k": 2})
    (cut / sae.SUMMARY).unlink()  # stopped between the weights and the summary
    assert sae.written_here(cut)
    with safe_open(str(cut / sae.WEIGHTS), "pt") as weights:  # what tells our cut-off save from another tool's
        assert weights.metadata() == {"k": "2"}
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    save_file({"W_enc": torch.zeros(8, 4)}, str(foreign / sae.WEIGHTS), metadata={"format": "pt"})
    (foreign / sae.SUMMARY).write_text(json.dumps({"weights_sha256": 7}))  # someone's summary, not ours
    assert not sae.written_here(foreign)
    (foreign / sae.WEIGHTS).write_bytes(b"\xff" * 12)  # not safetensors at all
    assert not sae.written_here(foreign)
    (foreign / sae.WEIGHTS).write_bytes((3).to_bytes(8, "little") + b"[1]")  # a header, but no object
    assert not sae.written_here(foreign)
    # a header of several MiB is no save of ours (ours is a few hundred bytes): it is not read whole to find out
    huge = json.dumps({"__metadata__": {"k": "2", "pad": "x" * (3 << 19)}}).encode()
    (foreign / sae.WEIGHTS).write_bytes(len(huge).to_bytes(8, "little") + huge)
    assert not sae.written_here(foreign)
    assert not sae.written_here(tmp_path / "nothing")
    (cut / "features.json").write_text("[1, 2]")  # a summary that is no object, beside our weights
    assert sae.written_here(cut)
