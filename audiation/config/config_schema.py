"""The config schema: the type of every key of every option, registered in Hydra's ConfigStore.

Each option's YAML (conf/<group>/<option>.yaml) starts from its schema (`defaults: - /<group>_<option>_schema@_here_`)
and the entry points' YAML from theirs (`audiation_run_schema`, ...), so when Hydra composes a config a
misspelt key (`optimizer.lrr=0.1`, or a typo in an option file) or a value of the wrong type
(`steps=many`) fails with Hydra's message, before the project's own value checks (builder). The values
themselves live only in the YAML: every field here is MISSING, so the two cannot disagree.

Hydra lets `+key=value` append to any node, schema or not; `unknown_keys` finds such keys, and the entry
points refuse them before any work. An option file of the user's own without a schema is not checked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from audiation.core.kinds import TargetKind


def _required():
    return field(default=MISSING)


# --- groups ------------------------------------------------------------------------------------------------


@dataclass
class Model:
    name: str = MISSING
    random_init: bool = MISSING
    architecture: str = MISSING
    config: dict[str, Any] = _required()
    init_seed: int = MISSING
    normalize: bool = MISSING
    sample_rate: int = MISSING
    ensemble: list[str] = _required()
    listener: str | None = MISSING
    layer: Any = MISSING  # an index, conv1..K, mlp1..N or logits


@dataclass
class WhisperModel(Model):
    window: str = MISSING  # cut or full: how a short signal meets Whisper's 30-s window



@dataclass
class Objective:
    _target_: str = MISSING
    name: str = MISSING
    kind: TargetKind = MISSING  # what each target is: the option's declaration (feature: unit or channel)


@dataclass
class UnitObjective(Objective):
    unit: Any = MISSING  # an int, a list, a range "0:768" or "all"
    frame: int | None = MISSING
    neighbours: float = MISSING
    silence: float = MISSING
    silence_margin_ms: float = MISSING


@dataclass
class ChannelObjective(Objective):
    unit: Any = MISSING
    log_softmax: bool = MISSING


@dataclass
class LayerObjective(Objective):
    pass


@dataclass
class TextObjective(Objective):
    text: Any = MISSING  # a word or a list of words


@dataclass
class DirectionObjective(Objective):
    direction: Any = MISSING  # a .npy path or an inline list


@dataclass
class FeatureObjective(Objective):
    sae: str = MISSING  # the features job's folder
    unit: Any = MISSING
    frame: int | None = MISSING
    neighbours: float = MISSING
    silence: float = MISSING
    silence_margin_ms: float = MISSING


@dataclass
class Waveform:
    _target_: str = MISSING
    name: str = MISSING
    seconds: float = MISSING
    init_std: float = MISSING
    init: str | None = MISSING


@dataclass
class FFT(Waveform):
    decay: float = MISSING
    floor_hz: float = MISSING
    rms: float = MISSING


@dataclass
class Speech:
    _target_: str = MISSING
    name: str = MISSING
    seconds: float = MISSING
    bands: int = MISSING
    f0_hz: list[float] = MISSING
    frame_hz: int = MISSING
    harmonics: int = MISSING
    tilt_db: float = MISSING
    rms: float = MISSING
    init_std: float = MISSING


@dataclass
class NoAugmentation:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class Augmentation(NoAugmentation):
    max_shift_ms: float = MISSING
    noise_snr_db: float | None = MISSING
    stretch: float = MISSING
    gain_db: float = MISSING
    room_ms: float = MISSING
    with_clean: bool = MISSING


@dataclass
class Adam:
    _target_: str = MISSING
    lr: float = MISSING


@dataclass
class NoLogger:
    enabled: bool = MISSING


@dataclass
class WandbLogger(NoLogger):
    project: str = MISSING
    entity: str | None = MISSING
    mode: str = MISSING
    runs: str = MISSING
    media_every: int = MISSING
    verbose: bool = MISSING


# --- entry points ------------------------------------------------------------------------------------------


@dataclass
class Shared:
    device: str = MISSING
    threads: Any = MISSING  # auto or a count


@dataclass
class Quality:
    draws: int = MISSING
    data: str | None = MISSING
    cache_dir: str = MISSING
    listener: str | None = MISSING
    judges: bool = MISSING
    whisper: bool = MISSING


@dataclass
class CardExamples:
    top_k: int = MISSING
    clip_seconds: float = MISSING
    min_gap_seconds: float = MISSING


@dataclass
class Regularizer:
    power: float = MISSING
    high_frequency: float = MISSING
    cutoff_hz: float = MISSING
    stay_close: float = MISSING
    speech: float = MISSING


@dataclass
class Run(Shared):
    """`python -m audiation.run` (conf/config.yaml)."""
    model: Any = MISSING
    objective: Any = MISSING
    parameterization: Any = MISSING
    augmentation: Any = MISSING
    optimizer: Any = MISSING
    logger: Any = MISSING
    seed: int = MISSING
    steps: int = MISSING
    log_every: int = MISSING
    batch_size: Any = MISSING  # a count or auto
    precision: str = MISSING
    tf32: bool = MISSING
    compile: bool = MISSING
    samples: int = MISSING
    diversity: float = MISSING
    redo: bool = MISSING
    dry_run: bool = MISSING
    quality: Quality = _required()
    examples: CardExamples = _required()
    regularizer: Regularizer = _required()


@dataclass
class Data:
    cache_dir: str = MISSING
    max_seconds: float = MISSING


@dataclass
class ExamplesData(Data):
    path: str = MISSING


@dataclass
class Examples(Shared):
    """`python -m audiation.examples` (conf/examples.yaml)."""
    model: Any = MISSING
    logger: Any = MISSING
    data: ExamplesData = _required()
    units: Any = MISSING
    top_k: int = MISSING
    clip_seconds: float = MISSING
    min_gap_seconds: float = MISSING
    sae: str | None = MISSING  # a features job's folder: its features instead of the layer's units


@dataclass
class Directions(Shared):
    """`python -m audiation.directions` (conf/directions.yaml)."""
    model: Any = MISSING
    positive: str = MISSING
    negative: str = MISSING
    out: str | None = MISSING
    method: str = MISSING
    l2: float = MISSING
    held_out: float = MISSING
    seed: int = MISSING
    audiate: bool = MISSING
    audiate_steps: int = MISSING
    audiate_with: list[str] = field(default_factory=list)
    data: Data = _required()


@dataclass
class Features(Shared):
    """`python -m audiation.features` (conf/features.yaml)."""
    model: Any = MISSING
    data: ExamplesData = _required()
    features: int | None = MISSING  # null: 8 x the layer's units
    k: int = MISSING
    steps: int = MISSING
    batch: int = MISSING
    lr: float = MISSING
    aux_k: int = MISSING
    aux_weight: float = MISSING
    dead_after: int = MISSING
    held_out: float = MISSING
    seed: int = MISSING
    memory_gb: float = MISSING


OPTIONS = {
    "model": {"wav2vec2": Model, "whisper": WhisperModel},
    "objective": {"unit": UnitObjective, "channel": ChannelObjective, "layer": LayerObjective,
                  "text": TextObjective, "direction": DirectionObjective, "feature": FeatureObjective},
    "parameterization": {"fft": FFT, "waveform": Waveform, "speech": Speech},
    "augmentation": {"none": NoAugmentation, "augment": Augmentation},
    "optimizer": {"adam": Adam},
    "logger": {"none": NoLogger, "wandb": WandbLogger},
}
ENTRY_POINTS = {"audiation_run_schema": Run, "audiation_examples_schema": Examples,
                "audiation_directions_schema": Directions, "audiation_features_schema": Features}


def register() -> None:
    """Put every schema in Hydra's ConfigStore (idempotent: storing again replaces)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, options in OPTIONS.items():
        for name, schema in options.items():  # not in a group: --help and tab completion list groups
            store.store(name=f"{group}_{name}_schema", node=schema)
    for name, schema in ENTRY_POINTS.items():
        store.store(name=name, node=schema)


def unknown_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Keys of `cfg` that no schema declares: what `+key=value` appended (a dotted path each)."""
    found = []
    schema = OmegaConf.get_type(cfg)
    declared = ({f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None)
    for key in cfg.keys():
        path = f"{prefix}{key}"
        if declared is not None and key not in declared:
            found.append(path)
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            found += unknown_keys(node, f"{path}.")
    return found
