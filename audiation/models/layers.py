"""Layer names (`model.layer`), shared by every model family: what a user types and what target names show.

- `0`            the transformer's input (conv features, projected, plus positions)
- `1..L`         the output of transformer layer N (a final LayerNorm after the last layer is not part of it)
- `conv1..convK` the output of conv layer K of the front end (after its activation function)
- `mlp1..mlpL`   the feed-forward (MLP) neurons of layer N: their pre-activations, the input of the activation
                 function (a privileged basis, unlike `1..L`). Pre-activations, as Lucid audits `pre_relu`:
                 GELU is lowest at x ~ -0.75 and rises to 0 as x -> -inf, so maximising a neuron from below
                 its minimum drove it to -inf, "gaining" only up to 0
- `logits`       a CTC head's outputs (one unit per vocabulary entry), for CTC checkpoints only
- `output`       not typed by users: the encoder's output as a decoder reads it (Whisper's text objective)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from audiation.errors import AudiationError, shown


@dataclass(frozen=True)
class Layer:
    kind: str  # "transformer", "conv", "mlp", "logits" or "output"
    index: int = 0

    @property
    def label(self) -> str:
        """Short tag used in target and run names: L8, conv3, mlp8, logits."""
        return {"transformer": f"L{self.index}", "conv": f"conv{self.index}", "mlp": f"mlp{self.index}",
                "logits": "logits", "output": "output"}[self.kind]


def parse(spec, depth: int, convs: int, logits: bool, no_logits_why: str = "") -> Layer:
    """A `model.layer` value as a Layer of a model with `depth` transformer layers, `convs` conv layers and
    (when `logits`) a CTC head, or one line saying which values are valid."""
    valid = f"valid: 0..{depth}, conv1..conv{convs}, mlp1..mlp{depth}" + (", logits" if logits else "")
    text = str(spec).strip().lower()
    if re.fullmatch(r"-?\d{1,18}", text):  # at most 18 digits: Python refuses to read one of over 4,300
        if 0 <= int(text) <= depth:
            return Layer("transformer", int(text))
    elif match := re.fullmatch(r"conv(\d{1,18})", text):
        if 1 <= int(match.group(1)) <= convs:
            return Layer("conv", int(match.group(1)))
    elif match := re.fullmatch(r"mlp(\d{1,18})", text):
        if 1 <= int(match.group(1)) <= depth:
            return Layer("mlp", int(match.group(1)))
    elif text == "logits":
        if logits:
            return Layer("logits")
        if no_logits_why:
            raise AudiationError(f"model.layer=logits: {no_logits_why} ({valid})")
    raise AudiationError(f"model.layer={shown(spec)} is not a layer of this model ({valid})")
