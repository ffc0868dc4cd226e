"""wav2vec2 and its kin (HuBERT, WavLM, data2vec-audio): a conv feature encoder on the raw waveform
(`feature_extractor.conv_layers`), then a transformer (`encoder.layers`); sizes read from the config."""

from __future__ import annotations

import torch
from torch import nn

from audiation.errors import AudiationError
from audiation.models.families.base import Family, FrameGrid, module_list
from audiation.models.layers import Layer

# Peak bytes of a forward+backward per input sample and first-conv channel: measured 3.9 GB for 64 x 1 s
# of wav2vec2-base at layer 12 on a GPU, i.e. ~2.4 KB per sample, ~4.7 per sample and channel; rounded up.
BYTES_PER_SAMPLE_AND_CHANNEL = 6
TRANSFORMER_LAYERS = "base_model.encoder.layers"  # the same path in every checkpoint class of the family


class Wav2Vec2(Family):
    name = "wav2vec2"

    def matches(self, config) -> bool:
        return bool(getattr(config, "conv_dim", None) and getattr(config, "num_hidden_layers", None))

    def depth(self, config) -> int:
        return config.num_hidden_layers

    def convs(self, config) -> int:
        return len(config.conv_dim)

    def has_ctc_head(self, config) -> bool:
        return any(arch.endswith("ForCTC") for arch in (config.architectures or []))

    def num_units(self, layer: Layer, config) -> int:
        if layer.kind == "conv":
            return config.conv_dim[layer.index - 1]
        if layer.kind == "mlp":
            return config.intermediate_size
        if layer.kind == "logits":
            return config.vocab_size
        return config.hidden_size

    def _convs_to(self, layer: Layer, config):
        """(kernel, stride) of the convs a layer's frames come through: all of them above the convs."""
        depth = layer.index if layer.kind == "conv" else self.convs(config)
        return list(zip(config.conv_kernel[:depth], config.conv_stride[:depth]))

    def frame_grid(self, layer: Layer, config) -> FrameGrid:
        """Transformer layers see the whole signal through attention; their frame grid is the last conv's."""
        hop, field = 1, 1
        for kernel, stride in self._convs_to(layer, config):
            field += (kernel - 1) * hop
            hop *= stride
        return FrameGrid(hop, field)

    def num_frames(self, layer: Layer, config, num_samples: int) -> int:
        length = num_samples
        for kernel, stride in self._convs_to(layer, config):
            length = (length - kernel) // stride + 1
        if length < 1:
            raise AudiationError(f"{num_samples} samples are too short for one frame at layer {layer.label}")
        return length

    def step_bytes(self, config, num_samples: int, batch: int, window: str = "cut") -> int:
        return BYTES_PER_SAMPLE_AND_CHANNEL * config.conv_dim[0] * num_samples * batch

    def load(self, config, pretrained: dict | None) -> nn.Module:
        from transformers import AutoModel, AutoModelForCTC

        if pretrained is None:
            return AutoModel.from_config(config)
        return (AutoModelForCTC if self.has_ctc_head(config) else AutoModel).from_pretrained(**pretrained)

    def preprocess(self, model: nn.Module, waveform: torch.Tensor, normalize: bool, window: str = "cut"):
        if not normalize:
            return waveform
        mean = waveform.mean(dim=-1, keepdim=True)
        var = waveform.var(dim=-1, keepdim=True, unbiased=False)
        return (waveform - mean) / torch.sqrt(var + 1e-7)

    def hook_point(self, model: nn.Module, layer: Layer) -> tuple[nn.Module, bool]:
        if layer.kind == "conv":
            return module_list(model, "base_model.feature_extractor.conv_layers")[layer.index - 1], False
        layers = module_list(model, TRANSFORMER_LAYERS)
        if layer.kind == "mlp":  # before the activation function: see audiation.models.layers
            return layers[layer.index - 1].get_submodule("feed_forward.intermediate_dense"), False
        if layer.index < len(layers):
            return layers[layer.index], True
        return layers[-1], False  # pre-LN models' final LayerNorm is not part of any layer's output

    def run(self, model: nn.Module, inputs: torch.Tensor) -> None:
        model.get_submodule("base_model")(inputs)

    def compiled_modules(self, model: nn.Module) -> list[nn.Module]:
        return list(module_list(model, TRANSFORMER_LAYERS))
