"""The encoder wrapper: exact activations, an early stop, frozen weights, hooks always removed."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel

from audiation.errors import AudiationError
from audiation.models.encoder import (
    Encoder,
    Ensemble,
    Layer,
    frame_geometry,
    layer_index,
    num_frames,
    num_units,
    parse_layer,
)

SMALL = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
             conv_dim=[16] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def _encoder(model_type="wav2vec2", **overrides):
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **{**SMALL, **overrides})
    return Encoder(AutoModel.from_config(config), normalize=True, sample_rate=16000, name=model_type)


def _all_hooks(module):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@pytest.mark.parametrize("model_type,overrides", [
    ("wav2vec2", {}),
    ("wav2vec2", {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}),  # pre-LN, like -large
    ("hubert", {}),
    ("wavlm", {}),
    ("data2vec-audio", {}),
])
def test_truncated_forward_equals_full_hidden_states(model_type, overrides):
    encoder = _encoder(model_type, **overrides)
    wave = torch.randn(2, 8000)
    with torch.no_grad():
        full = encoder.base(encoder.preprocess(wave), output_hidden_states=True).hidden_states
        hooks_before = _all_hooks(encoder.model)  # transformers keeps hooks of its own for hidden_states
        for index in range(encoder.config.num_hidden_layers + 1):
            cut = encoder(wave, Layer("transformer", index))
            torch.testing.assert_close(cut, full[index], rtol=1e-5, atol=1e-5)
    assert _all_hooks(encoder.model) == hooks_before


@pytest.mark.parametrize("model_type,overrides", [
    ("wav2vec2", {}),
    ("wav2vec2", {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}),
    ("hubert", {}),
    ("wavlm", {}),
    ("data2vec-audio", {}),
])
def test_mlp_neurons_are_the_full_models_feed_forward_pre_activations(model_type, overrides):
    encoder = _encoder(model_type, **overrides)
    wave = torch.randn(2, 8000)
    for index in range(1, encoder.config.num_hidden_layers + 1):
        feed_forward = encoder.base.encoder.layers[index - 1].feed_forward
        seen = []
        handle = feed_forward.intermediate_dense.register_forward_hook(lambda _m, _a, out: seen.append(out))
        with torch.no_grad():
            encoder.base(encoder.preprocess(wave))  # the whole model, nothing cut
            handle.remove()
            cut = encoder(wave, Layer("mlp", index))
        torch.testing.assert_close(cut, seen[0], rtol=1e-5, atol=1e-5)  # before GELU: it can rise without bound
        assert cut.min() < -0.2  # below GELU's minimum (-0.17): not the activation function's output
        assert cut.shape[-1] == encoder.config.intermediate_size == num_units(Layer("mlp", index), encoder.config)


def test_conv_layers_match_the_feature_encoder():
    encoder = _encoder()
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        features = encoder.base.feature_extractor(encoder.preprocess(wave))  # (batch, channels, frames)
        last = encoder(wave, Layer("conv", 7))
    torch.testing.assert_close(last, features.transpose(1, 2))
    assert last.shape[1] == num_frames(Layer("conv", 7), encoder.config, 8000)


def test_forward_stops_after_the_target_layer_and_weights_are_frozen():
    encoder = _encoder()
    calls = []
    handles = [layer.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
               for i, layer in enumerate(encoder.base.encoder.layers)]
    encoder(torch.randn(1, 8000, requires_grad=True), Layer("transformer", 1))
    for handle in handles:
        handle.remove()
    assert calls == [0]  # layer 1's output needs encoder.layers[0] only; no layer above it ran
    assert not any(p.requires_grad for p in encoder.parameters())


def test_hooks_are_removed_when_the_forward_fails():
    encoder = _encoder()
    hooks_before = _all_hooks(encoder.model)
    with pytest.raises(ValueError):  # torch's own error for an input too short for the first norm
        encoder(torch.randn(1, 10), Layer("transformer", 2))  # too short for the conv stack
    assert _all_hooks(encoder.model) == hooks_before


def test_gradient_reaches_the_input():
    encoder = _encoder()
    wave = torch.randn(1, 8000, requires_grad=True)
    encoder(wave, Layer("transformer", 2))[0, 10, 3].backward()
    assert wave.grad is not None and wave.grad.abs().sum() > 0


@pytest.mark.parametrize("spec,expected", [(0, Layer("transformer", 0)), ("3", Layer("transformer", 3)),
                                           ("conv2", Layer("conv", 2)), ("CONV7", Layer("conv", 7)),
                                           ("mlp1", Layer("mlp", 1)), ("mlp3", Layer("mlp", 3))])
def test_parse_layer(spec, expected):
    assert parse_layer(spec, AutoConfig.for_model("wav2vec2", **SMALL)) == expected


def test_layer_index_puts_conv_layers_below_the_transformer_and_mlp_neurons_with_their_layer():
    """The number W&B sorts and plots runs by: conv1..conv7 are -7..-1, mlpN is N, logits one past the top."""
    config = AutoConfig.for_model("wav2vec2", **SMALL, architectures=["Wav2Vec2ForCTC"])
    specs = ["conv1", "conv2", "conv7", 0, 1, 3, "mlp1", "mlp3", "logits"]
    assert [layer_index(parse_layer(spec, config), config) for spec in specs] == [-7, -6, -1, 0, 1, 3, 1, 3, 4]


@pytest.mark.parametrize("spec", [4, -1, "conv8", "conv0", "mlp0", "mlp4", "logits", "banana"])
def test_parse_layer_rejects_with_the_valid_range(spec):
    with pytest.raises(AudiationError, match=rf"model.layer={spec} .*valid: 0..3, conv1..conv7"):
        parse_layer(spec, AutoConfig.for_model("wav2vec2", **SMALL))


def test_a_refused_layer_lists_exactly_the_models_layers_and_why_logits_are_missing():
    from audiation.models.layers import parse

    base = "valid: 0..3, conv1..conv7, mlp1..mlp3"
    with pytest.raises(AudiationError) as refused:
        parse("banana", 3, 7, logits=False)
    assert str(refused.value) == f"model.layer=banana is not a layer of this model ({base})"
    with pytest.raises(AudiationError) as refused:
        parse("mlp9", 3, 7, logits=True)
    assert str(refused.value) == f"model.layer=mlp9 is not a layer of this model ({base}, logits)"
    with pytest.raises(AudiationError) as refused:
        parse("logits", 3, 7, logits=False, no_logits_why="a pretrained model has no CTC head")
    assert str(refused.value) == f"model.layer=logits: a pretrained model has no CTC head ({base})"


def test_frame_geometry_is_wav2vec2s_20ms_grid():
    config = AutoConfig.for_model("wav2vec2")
    assert frame_geometry(Layer("transformer", 6), config) == (320, 400)
    assert frame_geometry(Layer("conv", 1), config) == (5, 10)
    assert num_frames(Layer("transformer", 6), config, 16000) == 49


def test_bf16_autocast_agrees_with_fp32_within_3_percent_on_the_trained_model():
    """The README's stated tolerance for precision=bf16 (relative L2 error of a layer's activations), where
    it means something: the trained `tiny` model on speech. (A tiny random model is no test of it: on CPUs
    with native bf16 its activations differ by ~30%, on others by <1%.)"""
    import soundfile as sf
    from conftest import spec

    from audiation.config.configs import ASSETS
    from audiation.models.encoder import load_encoder

    tiny = load_encoder(spec("model=tiny"), "cpu")
    speech = [p for p in sorted((ASSETS / "speech-slice").glob("*.flac")) if sf.info(p).frames >= 16000][:2]
    wave = torch.stack([torch.from_numpy(sf.read(p, dtype="float32")[0][:16000]) for p in speech])
    for label in ["conv1", "conv7"] + [str(i) for i in range(tiny.config.num_hidden_layers + 1)] + ["logits"]:
        layer = parse_layer(label, tiny.config)
        with torch.no_grad():
            exact = tiny(wave, layer)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                approx = tiny(wave, layer).float()
        assert ((approx - exact).norm() / exact.norm()) < 0.03, label


def test_a_ctc_checkpoint_saved_without_its_tokenizer_opens_with_logits_and_no_vocabulary(tmp_path):
    """A fine-tuned CTC model saved alone (save_pretrained, no vocab.json): transformers' CTC tokenizer fails on
    it with a TypeError; the model still opens, its logits are a layer, and transcribing says why it cannot."""
    from transformers import AutoModelForCTC

    from audiation.models.encoder import ModelSpec, load_encoder

    torch.manual_seed(0)
    AutoModelForCTC.from_config(AutoConfig.for_model("wav2vec2", vocab_size=5, **SMALL)).save_pretrained(tmp_path)
    encoder = load_encoder(ModelSpec(str(tmp_path)), "cpu")
    assert encoder.vocabulary is None
    wave = torch.randn(1, 8000)
    assert encoder(wave, Layer("logits")).shape[-1] == 5
    with pytest.raises(AudiationError, match="no CTC head and vocabulary"):
        encoder.transcribe(wave)


def test_an_ensemble_hears_the_mean_of_its_members_logits():
    """model.ensemble: the members' logits averaged frame by frame; greedy decoding reads the mean."""
    from transformers import AutoModelForCTC

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        config = AutoConfig.for_model("wav2vec2", vocab_size=5, **SMALL)
        member = Encoder(AutoModelForCTC.from_config(config), normalize=True, sample_rate=16000, name=f"m{seed}")
        member.vocabulary = ["<pad>", "|", "a", "b", "c"]
        members.append(member)
    ensemble = Ensemble(members)
    wave = torch.randn(2, 8000, requires_grad=True)
    logits = [member(wave, Layer("logits")) for member in members]
    mean = ensemble(wave, Layer("logits"))
    torch.testing.assert_close(mean, (logits[0] + logits[1]) / 2)
    assert not torch.allclose(logits[0], logits[1])  # two different models, so the mean is neither
    mean[:, :, 2].sum().backward()
    assert wave.grad.abs().sum() > 0
    expected = [[i for n, i in enumerate(row) if i and (n == 0 or i != row[n - 1])]
                for row in mean.argmax(-1).tolist()]
    assert ensemble.transcribe(wave) == ["".join(["<pad>", "|", "a", "b", "c"][i] for i in row).replace("|", " ")
                                         .strip() for row in expected]
    with pytest.raises(AudiationError, match="only the logits layer"):
        ensemble(wave, Layer("transformer", 1))


@pytest.mark.parametrize("offline,endpoint,asked", [("1", None, None), ("true", None, None), ("0", None, "huggingface.co"),
                                                    (None, None, "huggingface.co"),  # unset: online
                                                    ("", "https://hf.mirror.example:8443/x", "hf.mirror.example")])
def test_the_hub_is_tried_only_when_not_offline_and_at_its_endpoint(monkeypatch, offline, endpoint, asked):
    from audiation.models import encoder

    tried = []
    monkeypatch.setattr(encoder, "_can_connect", lambda host: tried.append(host) or True)
    if offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    if endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
    else:
        monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert encoder._hub_reachable() is (asked is not None) and tried == ([asked] if asked else [])


@pytest.mark.parametrize("model_type,config", [
    ("wav2vec2", SMALL),
    ("whisper", dict(d_model=32, encoder_layers=3, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=64,
                     pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)),
])
def test_compiling_wraps_each_transformer_layers_forward_and_leaves_the_convs_eager(monkeypatch, model_type, config):
    """`compile=true` (the GPU's path): every transformer layer, one shape, shares compiled code; the conv
    layers, a different shape each, and the model's __call__ with the hooks that cut it stay plain Python."""
    from audiation.models import encoder as encoders

    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.for_model(model_type, **config))
    encoder = Encoder(model, normalize=True, sample_rate=16000, name=model_type)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda forward: compiled.append(forward) or forward)
    encoders._compile_layers(encoder)
    layers = list((model.encoder if model_type == "wav2vec2" else model.get_encoder()).layers)
    assert len(layers) == 3 and [forward.__self__ for forward in compiled] == layers
    assert all(vars(layer)["forward"] is forward for layer, forward in zip(layers, compiled))  # the layer's own
    assert "forward" not in vars(model)


@pytest.mark.parametrize("model_type,family", [("wav2vec2", "wav2vec2"), ("hubert", "wav2vec2"),
                                               ("wavlm", "wav2vec2"), ("whisper", "whisper")])
def test_each_speech_config_finds_its_family(model_type, family):
    from audiation.models.families import family_of

    assert family_of(AutoConfig.for_model(model_type)).name == family


def test_a_config_of_no_family_is_refused_in_one_line_naming_the_families():
    from audiation.models.families import family_of

    with pytest.raises(AudiationError) as refused:
        family_of(AutoConfig.for_model("bert"))
    assert str(refused.value) == ("a bert model is not a speech encoder this project can audiate "
                                  "(families: whisper, wav2vec2)")
    with pytest.raises(AudiationError, match=r"^a \? model is not"):
        family_of(object())
