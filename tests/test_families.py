"""The wav2vec2 family and the family protocol (`models.families`), from configs alone and a small random model:
sizes, frame grids and frame counts computed by hand, where each layer's activations are taken, the input
normalisation, and the one line for a model that is no family of ours."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import Wav2Vec2Config

from audiation.errors import AudiationError
from audiation.models.families import Wav2Vec2, family_of
from audiation.models.families.base import FrameGrid
from audiation.models.layers import Layer

FAMILY = Wav2Vec2()
# Three convs of other sizes than wav2vec2-base's, so that each number below is its own.
CONFIG = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                        conv_dim=(8, 12, 10), conv_kernel=(5, 3, 2), conv_stride=(4, 2, 3), vocab_size=11,
                        num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)


def test_what_the_config_says_of_each_layer():
    assert FAMILY.matches(CONFIG) and (FAMILY.depth(CONFIG), FAMILY.convs(CONFIG)) == (2, 3)
    assert not FAMILY.matches(SimpleNamespace(conv_dim=[8])) and not FAMILY.matches(SimpleNamespace(num_hidden_layers=2))
    assert not FAMILY.has_ctc_head(CONFIG)
    assert FAMILY.has_ctc_head(Wav2Vec2Config(architectures=["Wav2Vec2ForCTC"]))
    assert not FAMILY.has_ctc_head(Wav2Vec2Config(architectures=["Wav2Vec2ForPreTraining"]))
    units = {label: FAMILY.num_units(layer, CONFIG) for label, layer in (
        ("conv1", Layer("conv", 1)), ("conv2", Layer("conv", 2)), ("conv3", Layer("conv", 3)), ("L0", Layer("transformer", 0)),
        ("L2", Layer("transformer", 2)), ("mlp1", Layer("mlp", 1)), ("logits", Layer("logits")))}
    assert units == {"conv1": 8, "conv2": 12, "conv3": 10, "L0": 16, "L2": 16, "mlp1": 24, "logits": 11}
    assert [FAMILY.layer_index(layer, CONFIG) for layer in (Layer("conv", 1), Layer("conv", 3), Layer("transformer", 0),
                                                            Layer("mlp", 2), Layer("logits"), Layer("output"))] == [
        -3, -1, 0, 2, 3, 3]


def test_the_frame_grid_and_the_frame_count_of_each_layer_by_hand():
    # hop: the strides' product so far; field: 1 + sum of (kernel - 1) x the hop before each conv
    assert FAMILY.frame_grid(Layer("conv", 1), CONFIG) == FrameGrid(4, 5)
    assert FAMILY.frame_grid(Layer("conv", 2), CONFIG) == FrameGrid(8, 5 + 2 * 4)
    assert FAMILY.frame_grid(Layer("conv", 3), CONFIG) == FrameGrid(24, 13 + 1 * 8)
    assert FAMILY.frame_grid(Layer("transformer", 1), CONFIG) == FrameGrid(24, 21)  # the last conv's grid
    # 1000 samples: (1000 - 5) // 4 + 1 = 249, (249 - 3) // 2 + 1 = 124, (124 - 2) // 3 + 1 = 41
    assert [FAMILY.num_frames(Layer("conv", k), CONFIG, 1000) for k in (1, 2, 3)] == [249, 124, 41]
    assert FAMILY.num_frames(Layer("mlp", 2), CONFIG, 1000) == 41
    assert FAMILY.num_frames(Layer("conv", 1), CONFIG, 5) == 1
    with pytest.raises(AudiationError, match=r"^4 samples are too short for one frame at layer conv1$"):
        FAMILY.num_frames(Layer("conv", 1), CONFIG, 4)
    assert FAMILY.num_frames(Layer("transformer", 0), CONFIG, 21) == 1
    with pytest.raises(AudiationError, match=r"^20 samples are too short for one frame at layer L0$"):
        FAMILY.num_frames(Layer("transformer", 0), CONFIG, 20)
    assert FAMILY.step_bytes(CONFIG, 1000, 3) == 6 * 8 * 1000 * 3


def test_the_input_is_normalised_per_row_when_asked():
    waveform = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0]])
    assert FAMILY.preprocess(None, waveform, normalize=False) is waveform
    normalised = FAMILY.preprocess(None, waveform, normalize=True)
    row = torch.tensor([1.0, 2.0, 3.0, 6.0])
    assert torch.allclose(normalised[0], (row - 3.0) / torch.sqrt(row.var(unbiased=False) + 1e-7))
    assert torch.equal(normalised[1], torch.zeros(4))  # silence stays silence, not NaN


def test_each_layer_is_taken_where_its_name_says():
    torch.manual_seed(0)
    model = FAMILY.load(CONFIG, None)
    encoder = model.base_model.encoder
    assert FAMILY.hook_point(model, Layer("conv", 2)) == (model.base_model.feature_extractor.conv_layers[1], False)
    assert FAMILY.hook_point(model, Layer("transformer", 0)) == (encoder.layers[0], True)  # the first layer's input
    assert FAMILY.hook_point(model, Layer("transformer", 1)) == (encoder.layers[1], True)
    assert FAMILY.hook_point(model, Layer("transformer", 2)) == (encoder.layers[1], False)  # the last one's output
    assert FAMILY.hook_point(model, Layer("mlp", 2)) == (encoder.layers[1].feed_forward.intermediate_dense, False)
    assert FAMILY.compiled_modules(model) == list(encoder.layers)
    caught = []
    handle = encoder.layers[1].register_forward_hook(lambda module, args, output: caught.append(output))
    FAMILY.run(model, torch.zeros(1, 1000))
    handle.remove()
    (output,) = caught
    assert (output[0] if isinstance(output, tuple) else output).shape == (1, 41, 16)
    conv = torch.zeros(2, 10, 41)
    assert FAMILY.finish(conv, Layer("conv", 3), 1000, CONFIG).shape == (2, 41, 10)  # channels last, as every layer
    assert FAMILY.finish(conv, Layer("transformer", 1), 1000, CONFIG) is conv


def test_a_model_of_no_family_of_ours_is_one_line():
    from transformers import BertConfig

    assert family_of(CONFIG).name == "wav2vec2"
    with pytest.raises(AudiationError, match=r"^a bert model is not a speech encoder this project can audiate "
                                             r"\(families: whisper, wav2vec2\)$"):
        family_of(BertConfig())


@pytest.mark.parametrize("spec,message", [
    ("13", "model.layer=13 is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)"),
    (-1, "model.layer=-1 is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)"),
    ("conv0", "model.layer=conv0 is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)"),
    ("conv8", "model.layer=conv8 is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)"),
    ("mlp0", "model.layer=mlp0 is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)"),
    ("mlp13", "model.layer=mlp13 is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)"),
    ("logits", "model.layer=logits is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)"),
    ("1" * 19, f"model.layer={'1' * 19} is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)"),
    ("L8", "model.layer=L8 is not a layer of this model (valid: 0..12, conv1..conv7, mlp1..mlp12)")])
def test_a_layer_that_the_model_does_not_have_is_refused_with_the_valid_ones(spec, message):
    from audiation.models import layers

    with pytest.raises(AudiationError) as refused:
        layers.parse(spec, 12, 7, False)
    assert str(refused.value) == message


def test_layer_names_as_typed_and_as_shown():
    from audiation.models import layers

    assert [layers.parse(spec, 12, 7, True) for spec in (" 8 ", "CONV3", "Mlp12", "logits", 0, "conv7", "mlp1", 12)] == [
        Layer("transformer", 8), Layer("conv", 3), Layer("mlp", 12), Layer("logits"), Layer("transformer", 0),
        Layer("conv", 7), Layer("mlp", 1), Layer("transformer", 12)]
    assert [Layer(*kind).label for kind in (("transformer", 8), ("conv", 3), ("mlp", 2), ("logits",), ("output",))] == [
        "L8", "conv3", "mlp2", "logits", "output"]
    with pytest.raises(AudiationError) as refused:
        layers.parse("logits", 4, 2, False, "Whisper has no CTC head")
    assert str(refused.value) == "model.layer=logits: Whisper has no CTC head (valid: 0..4, conv1..conv2, mlp1..mlp4)"
    with pytest.raises(AudiationError) as refused:
        layers.parse("99", 4, 2, True)
    assert str(refused.value) == "model.layer=99 is not a layer of this model (valid: 0..4, conv1..conv2, mlp1..mlp4, logits)"


# --- Whisper, from its config alone ---------------------------------------------------------------------

def _whisper_config(**changes):
    from transformers import WhisperConfig

    return WhisperConfig(**{**dict(d_model=32, encoder_layers=3, encoder_attention_heads=2, encoder_ffn_dim=48,
                                   decoder_layers=1, max_source_positions=1500), **changes})


def test_whispers_sizes_frame_grids_and_frame_counts():
    from audiation.models.families import Whisper

    family, config = Whisper(), _whisper_config()
    assert family.matches(config) and not family.matches(CONFIG) and family.convs(config) == 2
    assert [family.num_units(layer, config) for layer in (Layer("conv", 1), Layer("transformer", 3), Layer("mlp", 1),
                                                          Layer("output"))] == [32, 32, 48, 32]
    # conv1 sees 3 mel frames of 400 samples, 160 apart; conv2 5 of them, 320 apart; both centred, so offset
    assert family.frame_grid(Layer("conv", 1), config) == FrameGrid(160, 720, -360)
    assert family.frame_grid(Layer("conv", 2), config) == FrameGrid(320, 1040, -520)
    assert family.frame_grid(Layer("mlp", 2), config) == FrameGrid(320, 1040, -520)
    assert [family.num_frames(Layer("conv", 1), config, n) for n in (160, 479, 48000)] == [1, 2, 300]
    assert [family.num_frames(Layer("transformer", 1), config, n) for n in (160, 479, 480, 48000)] == [1, 1, 2, 150]
    assert family.num_frames(Layer("transformer", 1), config, 480000) == 1500  # the whole 30-s window
    with pytest.raises(AudiationError, match=r"^159 samples are too short for one frame at layer conv1$"):
        family.num_frames(Layer("conv", 1), config, 159)
    with pytest.raises(AudiationError, match=r"^30.01 s is longer than Whisper's 30 s window$"):
        family.num_frames(Layer("transformer", 1), config, 480160)
    short = _whisper_config(max_source_positions=500)  # a model of a 10-s window
    assert family.max_seconds(short) == 10.0 and family.max_seconds(config) == 30.0
    with pytest.raises(AudiationError, match=r"^10.01 s is longer than Whisper's 10 s window$"):
        family.num_frames(Layer("conv", 2), short, 160160)
    assert [family.layer_index(layer, config) for layer in (Layer("conv", 1), Layer("conv", 2), Layer("output"))] == [
        -2, -1, 4]


def test_whispers_memory_grows_with_the_square_of_its_window():
    from audiation.models.families import Whisper

    family, config = Whisper(), _whisper_config()
    frames = 50  # 1 s at 50 Hz
    per_row = 4 * 3 * (frames * frames * 2 * 3 + frames * (32 * 12 + 48 * 3))
    assert family.step_bytes(config, 16000, 4, "cut") == 2 * per_row * 4
    full = 4 * 3 * (1500 * 1500 * 2 * 3 + 1500 * (32 * 12 + 48 * 3))
    assert family.step_bytes(config, 16000, 1, "full") == 2 * full
    assert family.step_bytes(config, 16000, 1, "2.5") == family.step_bytes(config, 40000, 1, "cut")


@pytest.mark.parametrize("window,seconds", [(None, None), ("cut", None), ("auto", None), ("full", 30.0), ("2.5", 2.5),
                                            (7, 7.0)])
def test_a_window_as_the_seconds_a_signal_is_padded_to(window, seconds):
    from audiation.models.families import whisper

    assert whisper.window_seconds(window) == seconds


@pytest.mark.parametrize("window,ok", [("auto", True), ("cut", True), ("full", True), ("1", True), ("30", True),
                                       ("0.5", False), ("31", False), ("wide", False), ("nan", False)])
def test_a_window_is_auto_cut_full_or_seconds_from_the_signals_length_to_30(window, ok):
    from audiation.models.families import whisper

    if ok:
        whisper.check_window(window, 1.0)
        return
    with pytest.raises(AudiationError) as refused:
        whisper.check_window(window, 1.0)
    assert str(refused.value) == (f"model.window={window} is not auto, cut, full or a number of seconds from the "
                                  "signal's 1 to 30")


def test_a_short_signal_is_padded_with_silence_to_its_window():
    import torch as t

    from audiation.models.families import whisper

    padded = whisper.pad_to_window(t.ones(2, 100), 0.01)
    assert padded.shape == (2, 160) and padded[:, :100].eq(1).all() and not padded[:, 100:].any()
    assert whisper.pad_to_window(t.ones(1, 500), 0.01).shape == (1, 500)  # never cut


class _Tokenizer:
    def __init__(self, vocab):
        self.vocab = vocab

    def get_vocab(self):
        return self.vocab

    def encode(self, text, add_special_tokens):
        assert not add_special_tokens
        return [ord(c) for c in text]

    def decode(self, ids):
        return " " + "".join(chr(i) for i in ids) + " "


def test_whispers_special_tokens_for_an_english_and_a_multilingual_vocabulary():
    from audiation.models.families import whisper

    english = whisper.Tokens(_Tokenizer({"<|endoftext|>": 500, "<|startoftranscript|>": 501, "<|notimestamps|>": 606,
                                         "<|nocaptions|>": 605}), _whisper_config(vocab_size=51864))
    assert (english.end, english.start, english.no_timestamps, english.no_speech, english.first_special) == (
        500, 501, 606, 605, 501)
    assert english.prompt == [501, 606]
    assert english.encode("  hi ") == [ord(" "), ord("h"), ord("i")]  # a word starts with its space
    assert english.decode([104, 105, 500, 600, 33]) == "hi!"  # specials and timestamps left out
    many = whisper.Tokens(_Tokenizer({"<|endoftext|>": 700, "<|startoftranscript|>": 701, "<|en|>": 702,
                                      "<|transcribe|>": 760, "<|notimestamps|>": 810, "<|nospeech|>": 800}),
                          _whisper_config(vocab_size=51865))
    assert (many.prompt, many.no_speech) == ([701, 702, 760, 810], 800)
    # an English-only vocabulary that names <|en|> all the same: the prompt names no language
    english_too = whisper.Tokens(_Tokenizer({"<|startoftranscript|>": 701, "<|en|>": 702, "<|transcribe|>": 760,
                                             "<|notimestamps|>": 810}), _whisper_config(vocab_size=51864))
    assert english_too.prompt == [701, 810]
    bare = whisper.Tokens(_Tokenizer({}), _whisper_config(eos_token_id=9, decoder_start_token_id=10))
    assert (bare.end, bare.start, bare.no_timestamps, bare.no_speech, bare.prompt) == (9, 10, 115, 114, [10, 115])


def test_converted_models_are_kept_where_the_environment_says(monkeypatch, tmp_path):
    from audiation.models.families import whisper

    monkeypatch.setenv("AUDIATION_MODEL_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert whisper.converted_models() == tmp_path / "mine"
    monkeypatch.delenv("AUDIATION_MODEL_CACHE")
    assert whisper.converted_models() == tmp_path / "xdg" / "audiation"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert whisper.converted_models() == Path("~/.cache/audiation").expanduser()
    assert whisper.offline_folder("openai/whisper-base") is None  # only what the offline package holds
