"""Opening a model (`models.encoder`) without loading it: its spec's names, where it is read from, each
refusal of a folder that is not a model we can audiate (in one line), the digest a resumed job compares,
its vocabulary and whether it normalises its input. Nothing here reads weights."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import ROOT

from audiation.errors import AudiationError
from audiation.models import encoder
from audiation.models.encoder import ModelSpec

TINY = ROOT / "audiation" / "assets" / "tiny-w2v2-espeak"


def _copy(tmp_path: Path, name: str = "model", weights: bool = True) -> Path:
    folder = tmp_path / name
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    if weights:
        shutil.copy(TINY / "model.safetensors", folder / "model.safetensors")
    return folder


def _refusal(spec: ModelSpec) -> str:
    with pytest.raises(AudiationError) as refused:
        encoder.load_config(spec)
    return str(refused.value)


def test_a_specs_names_peers_and_members():
    assert [ModelSpec(name).short_name for name in ("org/wav2vec2-base", "/data/mine/", "random_small", "")] == [
        "wav2vec2-base", "mine", "random_small", "model"]
    spec = ModelSpec("a/first", random_init=True, config={"hidden_size": 8}, normalize=False, sample_rate=8000,
                     ensemble=("b/second", "third"), window="full")
    assert spec.short_name == "first+second+third"
    peer = spec.peer(Path("b/second"))
    assert (peer.name, peer.random_init, peer.config, peer.ensemble) == ("b/second", False, {}, ())
    assert (peer.normalize, peer.sample_rate, peer.window) == (False, 8000, "full")  # read the same way
    assert [m.name for m in spec.members()] == ["a/first", "b/second", "third"]
    assert spec.members()[0].random_init and spec.members()[0].ensemble == ()
    assert ModelSpec("x").members() == [ModelSpec("x")]


def test_a_fingerprint_is_the_spec_and_a_folders_files(tmp_path):
    random = ModelSpec("random_small", random_init=True).fingerprint()
    assert random == {"name": "random_small", "random_init": True, "architecture": "wav2vec2", "config": {},
                      "init_seed": 0, "normalize": True, "sample_rate": 16000, "ensemble": ()}  # no window: none set
    assert ModelSpec("random_small", random_init=True, window="full").fingerprint()["window"] == "full"
    folder = _copy(tmp_path)
    (folder / "runs").mkdir()  # a folder inside is not the model's
    files = ModelSpec(str(folder)).fingerprint()["files"]
    assert sorted(files) == sorted(p.name for p in folder.iterdir() if p.name != "runs")
    weights = folder / "model.safetensors"
    assert files["model.safetensors"] == [weights.stat().st_size, weights.stat().st_mtime_ns]
    both = ModelSpec(str(folder), ensemble=(str(TINY),)).fingerprint()
    assert both == {"ensemble": [ModelSpec(str(folder)).fingerprint(), ModelSpec(str(TINY)).fingerprint()]}


def test_a_name_is_a_folder_when_it_looks_like_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "here").mkdir()
    assert [encoder._is_local(name) for name in ("./x", "/x", "~x", "org/here", "org/elsewhere", "facebook")] == [
        True, True, True, True, False, False]


@pytest.mark.parametrize("value,offline", [("1", True), ("true", True), ("0", False), ("", False), ("false", False),
                                           ("False", False)])
def test_the_hub_is_not_tried_when_hf_hub_offline_says_so(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.setattr(encoder, "_can_connect", lambda host: host == "huggingface.co")
    assert encoder._hub_reachable() is not offline
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example")
    assert encoder._hub_reachable() is False


def test_a_folder_that_is_not_a_model_we_can_audiate_is_one_line(tmp_path):
    assert _refusal(ModelSpec(str(tmp_path / "none"))) == (
        f"model.name={tmp_path / 'none'}: no such model folder (expected {tmp_path / 'none' / 'config.json'})")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert _refusal(ModelSpec(str(tmp_path / "bert"))) == (
        f"model.name={tmp_path / 'bert'} is a bert model, not a wav2vec2-family speech encoder or a Whisper (the "
        "families this project audiates)")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    assert _refusal(ModelSpec(str(tmp_path / "bad"))) == (
        f"model.name={tmp_path / 'bad'} could not be opened: It looks like the config file at "
        f"'{tmp_path / 'bad' / 'config.json'}' is not a valid JSON file.")
    bare = _copy(tmp_path, "bare", weights=False)
    assert _refusal(ModelSpec(str(bare))) == (
        f"model.name={bare} has a config but no weights (model.safetensors, pytorch_model.bin)")
    (bare / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad")
    assert _refusal(ModelSpec(str(bare))).startswith(f"model.name={bare}: model.safetensors is damaged (")
    (bare / "model.safetensors").unlink()
    (bare / "pytorch_model.bin").write_bytes(b"not read")  # another kind of weights: only its presence is checked
    assert encoder.load_config(ModelSpec(str(bare))).model_type == "wav2vec2"
    # transformers' strict checks of a field say it on two lines, in an error that is no ValueError or TypeError
    assert _refusal(ModelSpec("random", random_init=True, config={"hidden_size": "abc"})) == (
        "model.config for wav2vec2: Validation error for field 'hidden_size': TypeError: Field 'hidden_size' expected "
        "int, got str (value: 'abc')")
    config = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**config, "hidden_size": "abc"}))
    assert _refusal(ModelSpec(str(bare))) == (
        f"model.name={bare} could not be opened: Validation error for field 'hidden_size': TypeError: Field "
        "'hidden_size' expected int, got str (value: 'abc')")


def test_a_hub_id_offline_is_one_line_naming_what_works():
    assert _refusal(ModelSpec("org/not-cached-anywhere")) == (
        "model.name=org/not-cached-anywhere is not in the Hugging Face cache and the hub cannot be reached; "
        f"{encoder.OFFLINE_HINT}")
    assert encoder.local_folder("org/not-cached-anywhere") is None
    assert encoder.local_folder(str(TINY)) == TINY


def test_a_hub_id_in_the_cache_is_no_local_folder(monkeypatch):
    monkeypatch.setattr(encoder, "_pretrained_kwargs", lambda name: {"pretrained_model_name_or_path": name,
                                                                     "local_files_only": True})
    assert encoder.local_folder("org/cached") is None


def test_the_weights_digest_is_of_the_config_and_weights_only(tmp_path):
    folder = _copy(tmp_path)
    spec = ModelSpec(str(folder))
    digest = encoder.weights_digest(spec)
    assert len(digest) == 16 and digest == encoder.weights_digest(ModelSpec(str(_copy(tmp_path, "same"))))
    (folder / "README.md").write_text("notes")
    (folder / "vocab.json").write_text("{}")
    assert encoder.weights_digest(spec) == digest  # neither is the model's computation
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-3}))
    changed = encoder.weights_digest(spec)
    assert changed != digest
    (folder / "model.safetensors").write_bytes((TINY / "model.safetensors").read_bytes()[:-4] + b"\x00" * 4)
    os.utime(folder / "model.safetensors", ns=(1, 1))
    retrained = encoder.weights_digest(spec)
    assert retrained not in (digest, changed)
    (folder / "extra.safetensors").write_bytes(b"x")  # a shard of the weights, whatever its name
    assert encoder.weights_digest(spec) not in (digest, changed, retrained)
    renamed = _copy(tmp_path, "renamed")
    (renamed / "model.safetensors").rename(renamed / "pytorch_model.bin")  # the same bytes, read another way
    assert encoder.weights_digest(ModelSpec(str(renamed))) != digest
    assert encoder.weights_digest(ModelSpec("random_small", random_init=True)) is None


def test_the_vocabulary_and_the_input_normalisation_come_from_the_checkpoints_files(tmp_path):
    tokens = encoder.vocabulary(ModelSpec(str(TINY)), 32)
    vocab = json.loads((TINY / "vocab.json").read_text())
    assert tokens[:len(vocab)] == sorted(vocab, key=vocab.get) and tokens[len(vocab):] == [""] * (32 - len(vocab))
    assert encoder.vocabulary(ModelSpec("random_small", random_init=True), 32) is None
    bare = _copy(tmp_path, "bare")
    for file in ("vocab.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json"):
        (bare / file).unlink()
    assert encoder.vocabulary(ModelSpec(str(bare)), 32) is None
    assert encoder._normalizes_input(ModelSpec(str(TINY), normalize=False)) is True  # its do_normalize
    assert encoder._normalizes_input(ModelSpec(str(bare), normalize=False)) is False  # none shipped: the option
    assert encoder._normalizes_input(ModelSpec(str(bare), normalize=True)) is True
    assert encoder._normalizes_input(ModelSpec("r", random_init=True, normalize=False)) is False
