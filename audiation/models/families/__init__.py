"""Model families: one adapter per family of speech encoders (after TransformerLens), behind `Family`.

A family knows, from a transformers config alone, its layers (`audiation.models.layers` names them), how many
units and frames each has and where a frame sits in the input; and, given the loaded model, how raw
audio enters it and where each layer's activations are taken. Everything else in the project (objectives,
the loop, caches, judges, the page) sees only these answers. Adding a family is one module here and one
line in `FAMILIES`.
"""

from __future__ import annotations

from audiation.errors import AudiationError
from audiation.models.families.base import Family, FrameGrid
from audiation.models.families.wav2vec2 import Wav2Vec2
from audiation.models.families.whisper import Whisper

__all__ = ["Family", "FrameGrid", "FAMILIES", "family_of"]

FAMILIES: tuple[Family, ...] = (Whisper(), Wav2Vec2())


def family_of(config) -> Family:
    """The family of a transformers config, or one line saying the model is not a speech encoder we know."""
    for family in FAMILIES:
        if family.matches(config):
            return family
    raise AudiationError(f"a {getattr(config, 'model_type', '?')} model is not a speech encoder this project "
                         f"can audiate (families: {', '.join(f.name for f in FAMILIES)})")
