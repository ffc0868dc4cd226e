"""The config schema: the type of every key of every option, registered in Hydra's ConfigStore.

Each option's YAML (conf/<group>/<option>.yaml) starts from its schema (`defaults: - /<group>_<option>_schema@_here_`)
and the entry points' YAML from theirs (`audiation_run_schema`, ...), so when Hydra composes a config a
misspelt key (`optimizer.lrr=0.1`, or a typo in an option file) or a value of the wrong type
(`steps=many`) fails with Hydra's message, before the project's own value checks (builder). The values
themselves live only in the YAML: every field here is MISSING, so the two cannot disagree.

A number's allowed values are declared beside it, once (`ranged`: `steps: int = ranged(above=0)`), and
`checks.declared` checks each composed value against its declaration before any work, in one line that names
the option; a number with no range says why (`free`), so none is left out by oversight. Rules that read
two options (a shift at most the signal's length, k below the features) stay in the plans.

Why ~440 lines in one module: each option's types and ranges are stated once, beside each other, and the
walks that read them (`bounded`, `unknown_keys`) sit with the declarations they read.

Hydra lets `+key=value` append to any node, schema or not; `unknown_keys` finds such keys, and the entry
points refuse them before any work. An option file of the user's own without a schema is not checked.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from omegaconf import MISSING, DictConfig, OmegaConf

from audiation.core.kinds import TargetKind


def _required():
    return field(default=MISSING)


@dataclass(frozen=True)
class Range:
    """The values a number may take: above `minimum` (or at it, when not `strict`), at most `maximum` or below
    `below`; `finite` or not; whole when the field is an `int` (or `whole`, for a field typed `Any`); or one
    of `words` (threads=auto). `over`: what a value past the maximum is told instead of its maximum."""

    minimum: float = 0.0
    strict: bool = True
    maximum: float = math.inf
    below: float | None = None
    finite: bool = True
    whole: bool = False
    words: tuple[str, ...] = ()
    over: str | None = None


def ranged(*, above: float | None = None, at_least: float | None = None, at_most: float = math.inf,
           below: float | None = None, finite: bool = True, whole: bool = False, words: tuple[str, ...] = (),
           over: str | None = None) -> Any:
    """A number's field with its range (`above` or `at_least`, with `at_most` or `below`): checked by
    `checks.declared`; the value itself lives in the YAML."""
    if (above is None) == (at_least is None):
        raise ValueError("a range has one lower bound: above= or at_least=")
    minimum = above if above is not None else at_least
    limits = Range(float(minimum), above is not None, at_most, below, finite, whole, words, over)
    return field(default=MISSING, metadata={"range": limits})


def free(why: str) -> Any:
    """A number's field the schema does not bound, and why (checked elsewhere, or any value is meaningful)."""
    return field(default=MISSING, metadata={"free": why})


# Past these the loop's arithmetic overflows float32 or the signal clips (checked before any model loads).
MAX_LR = 1e3  # Adam steps each value by about lr (signals are about 0.1): past this its own arithmetic overflows
# A regulariser's weight past this drowns the objective (terms about 1) and its squared gradients overflow
# Adam's float32 state; a gain past 40 dB (100x) makes a 0.1-RMS signal clip at every sample.
MAX_WEIGHT = 1e6
MAX_GAIN_DB = 40.0
MAX_SIGNAL_SCALE = 1e3  # rms and init_std: a float32 signal this loud still squares (power, Adam) finitely
SEED_LIMIT = 2**32  # the random streams hash a 32-bit seed: a larger one would silently repeat a smaller one's


def _seed() -> Any:
    return ranged(at_least=0, at_most=SEED_LIMIT - 1, over=f"is too large: seeds are whole numbers 0..{SEED_LIMIT - 1}")


def _weight() -> Any:
    return ranged(above=-MAX_WEIGHT, at_most=MAX_WEIGHT)


_OBJECTIVE_TERMS = "the objective's weights: any value is meaningful, as written"


# --- groups ------------------------------------------------------------------------------------------------


@dataclass
class Model:
    name: str = MISSING
    random_init: bool = MISSING
    architecture: str = MISSING
    config: dict[str, Any] = _required()
    init_seed: int = free("any whole number seeds a random model's weights")
    normalize: bool = MISSING
    sample_rate: int = free("the model's own rate, as its option states it")
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
    frame: int | None = free("checked against the layer's frames in the plan (builder.plan)")
    neighbours: float = free(_OBJECTIVE_TERMS)
    silence: float = free(_OBJECTIVE_TERMS)
    silence_margin_ms: float = free(_OBJECTIVE_TERMS)


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
    frame: int | None = free("checked against the layer's frames in the plan (builder.plan)")
    neighbours: float = free(_OBJECTIVE_TERMS)
    silence: float = free(_OBJECTIVE_TERMS)
    silence_margin_ms: float = free(_OBJECTIVE_TERMS)


@dataclass
class Waveform:
    _target_: str = MISSING
    name: str = MISSING
    seconds: float = ranged(above=0)
    init_std: float = ranged(at_least=0, at_most=MAX_SIGNAL_SCALE)
    init: str | None = MISSING


@dataclass
class FFT(Waveform):
    decay: float = ranged(above=-math.inf)  # with floor_hz, bounded in the plan (builder.signal_options)
    floor_hz: float = ranged(above=0)
    rms: float = ranged(above=0, at_most=MAX_SIGNAL_SCALE)


@dataclass
class Speech:
    _target_: str = MISSING
    name: str = MISSING
    seconds: float = ranged(above=0)
    bands: int = ranged(at_least=2)
    f0_hz: list[float] = ranged(above=0)  # each; low < high in the plan
    frame_hz: int = ranged(above=0)
    harmonics: int = ranged(above=0)
    tilt_db: float = ranged(above=-math.inf)
    rms: float = ranged(above=0, at_most=MAX_SIGNAL_SCALE)
    init_std: float = ranged(at_least=0, at_most=MAX_SIGNAL_SCALE)


@dataclass
class NoAugmentation:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class Augmentation(NoAugmentation):
    max_shift_ms: float = ranged(at_least=0)  # at most the signal's length: in the plan
    noise_snr_db: float | None = ranged(at_least=-100)  # noise at most 100 dB above the signal
    stretch: float = ranged(at_least=0, below=1)
    gain_db: float = ranged(at_least=0, at_most=MAX_GAIN_DB)
    room_ms: float = ranged(at_least=0)  # at most the signal's length: in the plan
    with_clean: bool = MISSING


@dataclass
class Adam:
    _target_: str = MISSING
    lr: float = ranged(above=0, at_most=MAX_LR)


@dataclass
class NoLogger:
    enabled: bool = MISSING


@dataclass
class WandbLogger(NoLogger):
    project: str = MISSING
    entity: str | None = MISSING
    mode: str = MISSING
    runs: str = MISSING
    media_every: int = free("steps between media logs: not bounded (W&B's to take)")
    verbose: bool = MISSING


# --- entry points ------------------------------------------------------------------------------------------


@dataclass
class Shared:
    device: str = MISSING
    threads: Any = ranged(above=0, whole=True, words=("auto",))  # auto or a count


@dataclass
class Quality:
    draws: int = ranged(at_least=0)
    data: str | None = MISSING
    cache_dir: str = MISSING
    listener: str | None = MISSING
    judges: bool = MISSING
    whisper: bool = MISSING


@dataclass
class CardExamples:
    top_k: int = ranged(at_least=0)  # 0: no natural examples
    clip_seconds: float = ranged(above=0)
    min_gap_seconds: float = ranged(at_least=0, finite=False)  # inf: one example per file


@dataclass
class Regularizer:
    power: float = _weight()
    high_frequency: float = _weight()
    cutoff_hz: float = _weight()
    stay_close: float = _weight()
    speech: float = _weight()


@dataclass
class Run(Shared):
    """`python -m audiation.run` (conf/config.yaml)."""
    model: Any = MISSING
    objective: Any = MISSING
    parameterization: Any = MISSING
    augmentation: Any = MISSING
    optimizer: Any = MISSING
    logger: Any = MISSING
    seed: int = _seed()
    steps: int = ranged(above=0)
    log_every: int = ranged(above=0)
    batch_size: Any = ranged(above=0, whole=True, words=("auto",))  # a count or auto
    precision: str = MISSING
    tf32: bool = MISSING
    compile: bool = MISSING
    samples: int = ranged(above=0)
    diversity: float = ranged(at_least=0)
    redo: bool = MISSING
    dry_run: bool = MISSING
    quality: Quality = _required()
    examples: CardExamples = _required()
    regularizer: Regularizer = _required()


@dataclass
class Data:
    cache_dir: str = MISSING
    max_seconds: float = ranged(above=0)


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
    top_k: int = ranged(above=0)
    clip_seconds: float = ranged(above=0)
    min_gap_seconds: float = ranged(at_least=0, finite=False)  # inf: one example per file
    sae: str | None = MISSING  # a features job's folder: its features instead of the layer's units


@dataclass
class Directions(Shared):
    """`python -m audiation.directions` (conf/directions.yaml)."""
    model: Any = MISSING
    positive: str = MISSING
    negative: str = MISSING
    out: str | None = MISSING
    method: str = MISSING
    l2: float = ranged(at_least=0)
    held_out: float = ranged(above=0, below=1)
    seed: int = _seed()
    audiate: bool = MISSING
    audiate_steps: int = ranged(above=0)
    audiate_with: list[str] = field(default_factory=list)
    data: Data = _required()


@dataclass
class Features(Shared):
    """`python -m audiation.features` (conf/features.yaml)."""
    model: Any = MISSING
    data: ExamplesData = _required()
    features: int | None = ranged(above=1)  # null: 8 x the layer's units
    k: int = ranged(above=0)  # below features: in the plan
    steps: int = ranged(above=0)
    batch: int = ranged(above=0)
    lr: float = ranged(above=0)
    aux_k: int = ranged(at_least=0)
    aux_weight: float = ranged(at_least=0)
    dead_after: int = ranged(above=0)
    held_out: float = ranged(above=0, below=1)
    seed: int = _seed()
    memory_gb: float = ranged(above=0)


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


def number_kind(hint) -> type | None:
    """int or float for a field typed as a number (`int`, `float | None`, `list[float]`), else None."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        hint = next((h for h in typing.get_args(hint) if h is not type(None)), None)
    if typing.get_origin(hint) is list:
        (hint,) = typing.get_args(hint)
    return hint if hint in (int, float) else None


@functools.cache
def ranges(schema: type) -> dict[str, tuple[Range, Any]]:
    """The bounded fields of a schema by name: each one's Range and type."""
    hints = typing.get_type_hints(schema)
    return {f.name: (f.metadata["range"], hints[f.name]) for f in dataclasses.fields(schema) if "range" in f.metadata}


@functools.cache
def group_ranges(group: str) -> dict[str, tuple[Range, Any]]:
    """The ranges of a group's options by key: what an option file of the user's own, without a schema, is
    checked against (a key two options bound must be bounded alike)."""
    found: dict[str, tuple[Range, Any]] = {}
    for schema in OPTIONS[group].values():
        for name, declared in ranges(schema).items():
            if found.setdefault(name, declared) != declared:
                raise ValueError(f"{group}.{name} has two ranges in its options' schemas")
    return found


def bounded(cfg: DictConfig, prefix: str = "") -> list[tuple[str, Any, Range, type]]:
    """(dotted key, value, its Range, int or float) for each value of `cfg` that a schema bounds, in the
    config's order (a list's range bounds each item); a missing value, or a null the type allows, not at all."""
    schema = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        declared = ranges(schema)
    else:  # an option of the user's own: its group's ranges
        declared = group_ranges(prefix[:-1]) if prefix[:-1] in OPTIONS else {}
    found = []
    for key in cfg.keys():
        path, node = f"{prefix}{key}", cfg._get_node(key)
        if node is None or node._is_missing():
            continue
        if isinstance(node, DictConfig):
            if not node._is_none():
                found += bounded(node, f"{path}.")
            continue
        if str(key) not in declared:
            continue
        limits, hint = declared[str(key)]
        value = cfg[key]
        if value is None and type(None) in typing.get_args(hint):
            continue
        kind = int if limits.whole else number_kind(hint) or float
        found.append((path, value, limits, kind))
    return found
