"""The protocol every model family implements (`audiation.models.families` lists the families)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from audiation.models import layers
from audiation.models.layers import Layer


def module_list(model: nn.Module, path: str) -> nn.ModuleList:
    """The list of modules at dotted `path` ("base_model.encoder.layers"): families find a model's parts by
    their names, which torch types as `Tensor | Module` (and `get_submodule` as a plain Module)."""
    return cast(nn.ModuleList, model.get_submodule(path))


@dataclass(frozen=True)
class FrameGrid:
    """Where a layer's frames sit in the input, in samples: frame t sees [t * hop + offset, + field)."""

    hop: int
    field: int
    offset: int = 0  # negative where the front end pads (Whisper's centred STFT and padded convs)


class Family:
    """The layout and the forward of one model family. Subclasses override what differs."""

    name = "family"

    # --- from the config alone (checks before any weights load) ---
    def matches(self, config) -> bool:
        raise NotImplementedError

    def check(self, config, name: str) -> None:
        """Raise AudiationError when a checkpoint of this family cannot be audiated (a part missing)."""

    def depth(self, config) -> int:
        raise NotImplementedError

    def convs(self, config) -> int:
        raise NotImplementedError

    def has_ctc_head(self, config) -> bool:
        return False

    def parse_layer(self, spec, config) -> Layer:
        return layers.parse(spec, self.depth(config), self.convs(config), self.has_ctc_head(config))

    def layer_index(self, layer: Layer, config) -> int:
        """A layer's depth as one number, to plot and sort runs by: conv layers below 0 (the first of K is -K),
        0..L the transformer (mlpN with layer N), logits and output L + 1."""
        if layer.kind == "conv":
            return layer.index - self.convs(config) - 1
        if layer.kind in ("logits", "output"):
            return self.depth(config) + 1
        return layer.index

    def num_units(self, layer: Layer, config) -> int:
        raise NotImplementedError

    def frame_grid(self, layer: Layer, config) -> FrameGrid:
        raise NotImplementedError

    def num_frames(self, layer: Layer, config, num_samples: int) -> int:
        raise NotImplementedError

    def max_seconds(self, config) -> float | None:
        """The longest input the encoder takes at once (None: any); longer audio goes through in windows."""
        return None

    def step_bytes(self, config, num_samples: int, batch: int, window: str) -> int:
        """Peak bytes of one forward+backward of a batch (a rough upper bound, for the memory check)."""
        raise NotImplementedError

    # --- with the loaded model ---
    def load(self, config, pretrained: dict | None) -> nn.Module:
        """The model from `pretrained` (from_pretrained's keyword arguments) or, when None, random weights."""
        raise NotImplementedError

    def preprocess(self, model: nn.Module, waveform: torch.Tensor, normalize: bool, window: str):
        """What the model's feature extractor does to raw audio, differentiably and per row (`normalize`:
        zero mean and unit variance; `window`: see the Whisper family; each family's default is "cut")."""
        raise NotImplementedError

    def hook_point(self, model: nn.Module, layer: Layer) -> tuple[nn.Module, bool]:
        """The module whose output (or, when the flag is True, whose input) is the layer's activation."""
        raise NotImplementedError

    def run(self, model: nn.Module, inputs: torch.Tensor) -> None:
        """The whole forward; `Encoder` cuts it with a hook at the layer it wants."""
        raise NotImplementedError

    def finish(self, activations: torch.Tensor, layer: Layer, num_samples: int, config) -> torch.Tensor:
        """(batch, frames, units) from what the hook caught."""
        return activations.transpose(1, 2) if layer.kind == "conv" else activations

    def compiled_modules(self, model: nn.Module) -> list[nn.Module]:
        """The transformer layers (one shape, so they share compiled code)."""
        raise NotImplementedError
