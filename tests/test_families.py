"""The wav2vec2 family and the family protocol (`models.families`), from configs alone and a small random model:
sizes, frame grids and frame counts computed by hand, where each layer's activations are taken, the input
normalisation, and the one line for a model that is no family of ours."""

from __future__ import annotations

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
