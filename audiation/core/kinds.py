"""What each target (row) of an objective is, apart from the objectives themselves: the config schema types
`objective.kind` with it, and imports no torch (`import audiation` stays fast)."""

from __future__ import annotations

from enum import Enum


class TargetKind(str, Enum):
    """What each target (row) of an objective is. Each objective's YAML names its kind (`kind:`, typed by the
    config schema), and the rows, their tensors, the target frame, the measures and the names follow it."""

    unit = "unit"  # one unit at one frame: the target frame
    channel = "channel"  # one unit over every frame
    layer = "layer"  # the whole layer: one target
    direction = "direction"  # a vector of the layer's space
    text = "text"  # a text the CTC head (or Whisper's decoder) reads

    @property
    def of_units(self) -> bool:
        return self in (TargetKind.unit, TargetKind.channel)

    @property
    def key(self) -> str | None:
        """The objective's key that says which targets a job has (`objective.unit=0:3`); None for the layer."""
        return "unit" if self.of_units else None if self is TargetKind.layer else self.value
