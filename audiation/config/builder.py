"""The config boundary: a composed Hydra config in, checked values and plain objects out.

Everything below this module (models, objectives, parameterizations, augmentations, render, quality)
takes plain objects and never sees a config; the command lines (`run`, `examples`), the jobs and the
benchmark build through here, so each option means the same thing everywhere.

- `plan(cfg)` checks every value of an audiation job, reading only the model's config file (no
  weights), and says what is wrong in one line (AudiationError); its `Plan` holds every checked value
  the job needs, so the config ends here: the job, its folder, its subscribers and W&B see only the Plan;
- `build_batch(plan, targets)` makes one batch's objects: random streams, signal, augmentation,
  objective, optimizer;
- `model_spec`: a model option as a plain spec, which the other entry points share; single values are
  checked in `checks`.

Why ~530 lines in one module: the plan's cross-option rules read each other (the layer decides the
objective's tensors, the model's family the text's tokens); kept together, a rule is found in one place,
and every key a job reads is read here, once.

Group options are called through their `_target_` with the node's plain values plus the live objects
the callable asks for by name (`streams`, `sample_rate`, `geometry`, `unit`, ...). Hydra's `instantiate`
would turn live objects (tensors, streams) into config nodes. A node's `name` is its label in target
names and W&B, never passed on; an objective's `kind` (what its targets are) decides its live objects and is
passed on, like them, only to a callable that names it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import math
import zlib
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from audiation.config import checks
from audiation.core import objectives, sae
from audiation.core.kinds import TargetKind
from audiation.core.objectives import Geometry, Objective, Target
from audiation.core.randomness import Streams
from audiation.core.render import Batch, LoopSettings
from audiation.core.runtime import resolve_device
from audiation.errors import AudiationError
from audiation.hearing import judges
from audiation.models.encoder import (
    Layer,
    ModelSpec,
    frame_grid,
    has_ctc_head,
    layer_index,
    load_config,
    num_frames,
    num_units,
    parse_layer,
    text_tokens,
    vocabulary,
    weights_digest,
)
from audiation.models.families import family_of
from audiation.outputs import tracking

log = logging.getLogger(__name__)

def construct(node: dict, *args, **live):
    """Call `node._target_` with the node's values (minus its `name` label) plus those of `live` that
    the callable's signature names."""
    values = dict(node)
    values.pop("name", None)
    target = get_method(values.pop("_target_"))
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature: give them everything
        parameters = live
    return target(*args, **values, **{k: v for k, v in live.items() if k in parameters})


def model_spec(model_cfg: DictConfig) -> ModelSpec:
    """The `model` group minus `layer` (the layer is the target's, not the model's)."""
    values = OmegaConf.to_container(model_cfg, resolve=True)
    values.pop("layer", None)
    return ModelSpec(name=str(values["name"]), random_init=bool(values.get("random_init", False)),
                     architecture=values.get("architecture", "wav2vec2"), config=values.get("config") or {},
                     init_seed=int(values.get("init_seed", 0)), normalize=bool(values.get("normalize", True)),
                     sample_rate=int(values.get("sample_rate", 16000)),
                     ensemble=tuple(str(name) for name in _as_list(values.get("ensemble"))),
                     window=values.get("window"))


def _as_list(value) -> list:
    return [] if value is None or value == "" else [value] if isinstance(value, (str, int, float)) else list(value)


def with_samples(targets: list[Target], samples: int) -> list[Target]:
    """K signals per target (samples=K), side by side; sample 0 keeps the target's own stream, so it is
    what samples=1 gives."""
    if samples == 1:
        return targets
    return [replace(t, sample=s, key=t.key if s == 0 else zlib.crc32(f"{t.key}-s{s}".encode()))  # own streams
            for t in targets for s in range(samples)]


def target_kind(objective_cfg: DictConfig) -> TargetKind:
    """What each target of the objective is, as its option declares (`kind:`; typed by the schema, but an
    option file of the user's own has none)."""
    try:
        return TargetKind(objective_cfg.get("kind"))
    except ValueError:
        raise AudiationError(f"objective.kind={objective_cfg.get('kind')} is not one of "
                             f"{', '.join(kind.value for kind in TargetKind)}") from None


def expand_targets(objective_cfg: DictConfig, layer: Layer, count: int, texts: list[str] = ()) -> list[Target]:
    """The rows of a job, as the objective's kind says: one per unit, per direction, per text (parsed by
    `parse_texts`), or the one whole-layer target."""
    label, kind = str(objective_cfg.name), target_kind(objective_cfg)
    if kind is TargetKind.text:
        return [Target(label, layer, key=zlib.crc32(text.encode()), kind=kind, text=text) for text in texts]
    if kind.of_units:
        units = checks.parse_units(objective_cfg.unit, count, f"layer {layer.label}")
        return [Target(label, layer, key=u, kind=kind, unit=u) for u in units]
    if kind is TargetKind.direction:
        vectors = checks.parse_directions(objective_cfg.direction, count)
        return [Target(label, layer, key=i, kind=kind, vector=v, index=i) for i, v in enumerate(vectors)]
    return [Target(label, layer, key=0, kind=kind)]


# What a value left `???` in an objective's option file is asked for with.
REQUIRED_HINTS = {"unit": "an int, a list, a range 0:8 or all", "direction": "a .npy path or an inline list",
                  "text": "a text or a list of them"}


# --- the job plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """The options one batch's objects are built from (`build_batch`), as plain values."""

    objective: dict
    parameterization: dict
    augmentation: dict
    optimizer: dict
    regularizer: dict
    diversity: float


@dataclass(frozen=True)
class QualityOptions:
    """`quality`: which measures and judges a job asks for, and the data its units are measured and named on."""

    draws: int
    judges: bool
    whisper: bool
    data: Path | None = None  # quality.data's folder (its files: Plan.data_files)
    cache_dir: Path | None = None  # where quality.data's activation cache is kept


@dataclass(frozen=True)
class ExampleOptions:
    """`examples`: each unit's natural examples beside its audiation (with quality.data)."""

    top_k: int
    clip_seconds: float
    min_gap_seconds: float


@dataclass
class Plan:
    """A checked audiation job: everything decided before the model's weights are loaded, and every value
    the job reads (the job never sees the config)."""

    spec: ModelSpec
    layer: Layer
    targets: list[Target]
    geometry: Geometry
    frame: int | None  # the target frame of unit audiation, else None
    device: str
    batch_size: int | str  # "auto": chosen once the model is loaded
    settings: LoopSettings
    labels: dict = field(default_factory=dict)  # what runs are filtered and compared by
    token_ids: dict[str, list[int]] = field(default_factory=dict)  # objective=text: each text's CTC ids
    blank: int = 0  # the CTC blank (pad) id
    initial: torch.Tensor | None = None  # parameterization.init: the clip, at the model's rate and length
    listener: ModelSpec | None = None  # quality.listener: a second CTC model with the same vocabulary
    data_files: list[Path] = field(default_factory=list)  # quality.data: its audio files, listed once
    sae: Path | None = None  # objective=feature: the SAE's folder; its features are the layer's units here
    _: KW_ONLY
    recipe: Recipe
    model_config: object  # the model's config (transformers'), loaded once per job
    seed: int
    threads: int | None  # None: torch's default
    samples: int  # signals per target
    tf32: bool
    compile: bool
    redo: bool
    quality: QualityOptions
    examples: ExampleOptions | None  # with quality.data only
    logger: tracking.Settings
    run_config: dict  # the W&B run's config, bar the job folder's name
    result_settings: dict  # what makes a target's result (`result_settings`)

    @property
    def objective(self) -> str:
        return self.targets[0].objective

    @property
    def kind(self) -> TargetKind:
        return self.targets[0].kind


def labels(cfg: DictConfig, spec: ModelSpec) -> dict:
    """The options a user filters and compares runs by, from the options' own `name` labels (the objective's
    is part of every target's folder name, so each is checked to be safe as one)."""
    return {"model": spec.short_name,
            **{group: checks.safe_name(cfg[group].name, f"{group}.name")
               for group in ("objective", "parameterization", "augmentation")}}


def plan(cfg: DictConfig) -> Plan:
    """Check every user-facing value, reading only the model's config file. Raises AudiationError."""
    checked = checks.declared(cfg)  # every number in the range its schema declares
    spec = model_spec(cfg.model)
    labels_ = labels(cfg, spec)
    seed, steps, seconds = checked["seed"], checked["steps"], checked["parameterization.seconds"]
    settings = LoopSettings(steps=steps, log_every=checked["log_every"], precision=str(cfg.precision))
    lr = checked["optimizer.lr"]
    seconds_ms = 1000 * float(seconds)  # a shift or a room's tail longer than the signal leaves nothing of it
    for key in ("max_shift_ms", "room_ms"):
        value = checked.get(f"augmentation.{key}")
        if value is not None and value > seconds_ms:
            raise AudiationError(f"augmentation.{key}={value:g} must be at most {seconds_ms:g}")
    batch_size = checked["batch_size"]
    if cfg.precision not in ("fp32", "bf16"):
        raise AudiationError(f"precision={cfg.precision} is not one of fp32, bf16")
    if cfg.regularizer.get("speech") and spec.sample_rate != judges.SAMPLE_RATE:
        raise AudiationError(f"regularizer.speech needs a {judges.SAMPLE_RATE} Hz model (silero-vad's rate)")
    if cfg.regularizer.get("stay_close") and not cfg.parameterization.get("init"):
        raise AudiationError("regularizer.stay_close needs parameterization.init=<audio file> to stay close to")
    quality = QualityOptions(checked["quality.draws"], bool(cfg.quality.judges), bool(cfg.quality.whisper))
    data_files, examples = [], None
    if cfg.quality.data:
        from audiation.data import audio_files

        if not Path(cfg.quality.data).expanduser().is_dir():
            raise AudiationError(f"quality.data={cfg.quality.data} is not a folder")
        data_files = audio_files.list_audio(cfg.quality.data, name="quality.data")
        quality = replace(quality, data=Path(cfg.quality.data).expanduser(),
                          cache_dir=checks.writable_folder(cfg.quality.cache_dir, "quality.cache_dir"))
        examples = ExampleOptions(checked["examples.top_k"], checked["examples.clip_seconds"],
                                  checked["examples.min_gap_seconds"])
    logger = logger_settings(cfg.logger)
    threads = checks.threads(checked["threads"])
    device = resolve_device(cfg.device)
    signal_options(checked, spec.sample_rate)
    initial = initial_clip(cfg, spec.sample_rate, round(seconds * spec.sample_rate))  # read once, checked now
    config = load_config(spec)
    if family_of(config).name == "whisper":
        from audiation.models.families import whisper

        whisper.check_window(spec.window, seconds)
    token_ids, kind = {}, target_kind(cfg.objective)
    if kind.key is not None:  # `in` on a DictConfig is False for a key left `???`; keys() has it
        if kind.key not in cfg.objective.keys():  # an option file of the user's own
            raise AudiationError(f"objective.kind={kind.value} needs objective.{kind.key}: which targets")
        if OmegaConf.is_missing(cfg.objective, kind.key):
            raise AudiationError(f"objective.{kind.key} is required: which targets ({REQUIRED_HINTS[kind.key]})")
    if kind is TargetKind.text:  # a text is read by the CTC head or the decoder, whatever model.layer says
        texts = OmegaConf.to_container(cfg.objective, resolve=True)["text"]
        if family_of(config).name == "whisper":  # the decoder reads the encoder's output
            tokens = text_tokens(spec, config)
            if tokens is None:
                raise AudiationError(f"objective=text needs the model's tokenizer; {spec.short_name} has none "
                                     "(a random model)")
            layer = Layer("output")
            if spec.window in (None, "auto"):  # a text is heard only as Whisper hears it: in its 30-s window
                spec = replace(spec, window="full")
            token_ids = dict(checks.parse_texts(texts, None, spec.short_name, encode=tokens.encode))
        else:
            if not has_ctc_head(config):
                raise AudiationError(f"objective=text needs a CTC model (*ForCTC); {spec.short_name} has no CTC head "
                                     "(or a Whisper, whose decoder reads texts)")
            layer = Layer("logits")
            token_ids = dict(checks.parse_texts(texts, vocabulary(spec, config.vocab_size), spec.short_name))
    else:
        layer = parse_layer(cfg.model.layer, config)
    if cfg.objective.get("log_softmax") and layer.kind != "logits":
        raise AudiationError(f"objective.log_softmax is for CTC outputs (model.layer=logits), not layer {layer.label}")
    if spec.ensemble and layer.kind != "logits":
        raise AudiationError(f"model.ensemble averages CTC logits: it needs model.layer=logits or objective=text "
                             f"(units of layer {layer.label} are not the same unit in another model)")
    for name in spec.ensemble:
        ctc_peer("model.ensemble", name, spec, config, same_frames=True)
    sae_folder, units = None, num_units(layer, config)
    if "sae" in cfg.objective.keys():  # the layer seen through a sparse autoencoder: its features are the units
        if OmegaConf.is_missing(cfg.objective, "sae") or not cfg.objective.sae:
            raise AudiationError("objective.sae is required: a features job's folder (python -m audiation.features)")
        if not kind.of_units:
            raise AudiationError(f"objective.kind={kind.value}: an SAE's features are units, so a unit or a channel")
        refuse_sae_on_logits(layer)
        sae_folder, units = feature_dictionary(cfg.objective.sae, "objective.sae", spec, layer)
    samples = round(seconds * spec.sample_rate)
    per_target = checked["samples"]
    targets = with_samples(expand_targets(cfg.objective, layer, units, list(token_ids)), per_target)
    diversity = checked["diversity"]
    if diversity and per_target < 2:
        raise AudiationError(f"diversity={cfg.diversity:g} needs samples >= 2 to push apart")
    checks.check_memory(samples, config, min(batch_rows(1 if batch_size == "auto" else batch_size, per_target),
                                             len(targets)), device, seconds, spec.window or "cut")
    grid = frame_grid(layer, config)
    geometry = Geometry(samples, num_frames(layer, config, samples), units, grid.hop, grid.field, spec.sample_rate,
                        grid.offset)
    for text, ids in token_ids.items():
        if layer.kind == "logits" and checks.frames_needed(ids) > geometry.num_frames:  # CTC: a frame per letter
            raise AudiationError(f"objective.text={text} needs {checks.frames_needed(ids)} frames; {seconds:g} s has "
                                 f"{geometry.num_frames} (set parameterization.seconds higher)")
    frame = None
    if kind is TargetKind.unit:
        frame = geometry.middle_frame() if cfg.objective.get("frame") is None else int(cfg.objective.frame)
        if not 0 <= frame < geometry.num_frames:
            raise AudiationError(f"objective.frame={frame} is out of range ({seconds:g} s at layer "
                                 f"{layer.label} has frames 0..{geometry.num_frames - 1})")
    listener = listener_spec(cfg, spec, config, layer)
    units_ = [t.unit for t in targets] if targets[0].kind.of_units else []
    flat = {"layer": layer.label, "layer_index": layer_index(layer, config), "unit_min": min(units_, default=None),
            "unit_max": max(units_, default=None), **labels_, "steps": steps, "lr": lr, "seconds": seconds,
            "seed": seed, "targets": len(targets)}
    unit_spec = OmegaConf.to_container(cfg.objective).get("unit") if units_ else None
    groups = {group: OmegaConf.to_container(cfg[group], resolve=True)
              for group in ("objective", "parameterization", "augmentation", "optimizer", "regularizer")}
    return Plan(spec, layer, targets, geometry, frame, device, batch_size, settings, labels_, token_ids,
                config.pad_token_id or 0, initial, listener, data_files, sae_folder,
                recipe=Recipe(**groups, diversity=diversity), model_config=config, seed=seed, threads=threads,
                samples=per_target, tf32=bool(cfg.tf32), compile=bool(cfg.compile), redo=bool(cfg.redo),
                quality=quality, examples=examples, logger=logger,
                run_config={**tracking.run_config(flat, unit_spec), "config": OmegaConf.to_container(cfg, resolve=True)},
                result_settings=result_settings(cfg, spec))


def logger_settings(logger_cfg: DictConfig | None) -> tracking.Settings:
    """The `logger` group, checked, as plain values (`logger=none`: off)."""
    checks.check_logger(logger_cfg)
    if logger_cfg is None or not logger_cfg.get("enabled", False):
        return tracking.Settings()
    runs = logger_cfg.get("runs", "job")
    if runs not in tracking.RUNS:
        raise AudiationError(f"logger.runs={runs} is not one of {', '.join(tracking.RUNS)}")
    return tracking.Settings(True, str(logger_cfg.mode), str(runs), logger_cfg.project, logger_cfg.entity,
                             int(logger_cfg.media_every), bool(logger_cfg.get("verbose", False)))


# Config keys that shape a target's result; the rest (device, logging, batch size, quality) do not.
RESULT_KEYS = ("model", "objective", "parameterization", "augmentation", "optimizer", "steps", "seed",
               "regularizer", "precision", "samples", "diversity")
# Options of the project's own functions: settings name them by their `name` (an objective also by its `kind`)
# and values, never by their Python path (`_target_`), so that a module renamed keeps every folder resumable.
NAMED_OPTIONS = ("objective", "parameterization", "augmentation")


def result_settings(cfg: DictConfig, spec: ModelSpec) -> dict:
    """Everything that shapes a target's result, flattened to dotted keys (`optimizer.lr`); a start clip
    by its content, not only its path (what a rerun into the same folder compares: `jobs.folder`)."""
    values = OmegaConf.to_container(OmegaConf.masked_copy(cfg, list(RESULT_KEYS)), resolve=True, enum_to_str=True)
    values["objective"].pop(target_kind(cfg.objective).key, None)  # which targets, not how each is made
    for group in NAMED_OPTIONS:
        values[group].pop("_target_", None)
    values["model"].pop("listener", None)  # who judges the result, not how it is made
    flat = {}

    def walk(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = node

    walk("", values)
    digests = [weights_digest(member) for member in spec.members()]
    if any(digests):  # a local folder's weights, by content: replaced in place they are another model
        flat["model.weights_sha256"] = digests[0] if len(digests) == 1 else digests
    if flat.get("objective.sae"):  # an SAE retrained into the same folder is another objective
        flat["objective.sae_sha256"] = sae.content_digest(Path(str(flat["objective.sae"])).expanduser())
    if flat.get("parameterization.init"):
        path = Path(str(flat["parameterization.init"])).expanduser()
        flat["parameterization.init_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return flat


MAX_SPECTRUM_DECADES = 15  # the fft signal's spectral scale may span 10^15 (300 dB): float32 holds 10^±38


def signal_options(checked: dict, sample_rate: int) -> None:
    """The signal's rules that read two numbers, each already in its range (`checks.declared`), so that the
    signal stays finite (`decay=-500` would make every sample NaN, saved as the "last finite signal")."""
    name = "parameterization"
    f0 = checked.get(f"{name}.f0_hz")
    if f0 is not None and (len(f0) != 2 or f0[0] >= f0[1]):
        raise AudiationError(f"{name}.f0_hz={f0} must be [low, high] with low < high")
    decay = checked.get(f"{name}.decay")
    if decay is not None:
        floor_hz = checked[f"{name}.floor_hz"]
        decades = abs(decay) * math.log10(max(sample_rate / 2 / floor_hz, 1.0))
        if decades > MAX_SPECTRUM_DECADES:
            raise AudiationError(f"{name}.decay={decay:g} with floor_hz={floor_hz:g} scales the spectrum over "
                                 f"10^{decades:.0f}, past what a float32 signal holds (|decay| x log10(Nyquist / "
                                 f"floor_hz) must be at most {MAX_SPECTRUM_DECADES})")


def batch_rows(batch_size: int, samples: int) -> int:
    """The rows of a batch: whole targets' samples, which share one batch, so never fewer than `samples`."""
    return max(samples, batch_size // samples * samples)


def refuse_sae_on_logits(layer: Layer) -> None:
    """An SAE is for a layer inside the model. The CTC outputs are letters already, and features there would
    be measured and judged as if each were the letter of its index."""
    if layer.kind == "logits":
        raise AudiationError("model.layer=logits: the CTC outputs are letters already; an SAE's features are for "
                             "a layer inside the model (e.g. model.layer=6)")


def feature_dictionary(value, option: str, spec: ModelSpec, layer: Layer) -> tuple[Path, int]:
    """An SAE folder given as `option`: (the folder, its number of features), checked whole and made from
    this model and layer, reading no weights."""
    folder = Path(str(value)).expanduser()
    try:
        summary = sae.read_summary(folder)
    except ValueError as error:
        raise AudiationError(f"{option}={value}: {error}") from None
    made_from = summary.get("model") or {}
    if made_from != sae.identity(spec) or summary.get("layer") != layer.label:
        raise AudiationError(f"{option}={value} is an SAE of {made_from.get('name')} layer {summary.get('layer')}; "
                             f"this run is {spec.short_name} layer {layer.label} (set model and model.layer to the SAE's)")
    return folder, int(summary["features"])


def listener_spec(cfg: DictConfig, spec: ModelSpec, config, layer: Layer) -> ModelSpec | None:
    """`quality.listener`, for targets a CTC model can hear (logits and texts); None for the others."""
    name = cfg.quality.get("listener")
    if not name or layer.kind != "logits":
        return None
    same = {str(Path(str(member)).expanduser().resolve()) for member in (spec.name, *spec.ensemble)}
    if str(Path(str(name)).expanduser().resolve()) in same:
        log.warning("quality.listener=%s is one of the models audiated: it cannot judge them, so no listener "
                    "numbers for this run", name)
        return None
    return ctc_peer("quality.listener", name, spec, config)


def ctc_peer(option: str, name, spec: ModelSpec, config, same_frames: bool = False) -> ModelSpec:
    """Another CTC model with the model's own vocabulary, so a letter is the same unit in both; for an
    ensemble also the same conv geometry, so their frames line up."""
    own = spec.members()[0]
    peer = own.peer(name)
    try:
        peer_config = load_config(peer)
    except AudiationError as error:
        raise AudiationError(f"{option}={name}: {str(error).split(': ', 1)[-1]}") from None
    if not has_ctc_head(peer_config):
        raise AudiationError(f"{option}={name} has no CTC head: it cannot transcribe")
    if vocabulary(peer, peer_config.vocab_size) != vocabulary(own, config.vocab_size):
        raise AudiationError(f"{option}={name} does not share {own.short_name}'s vocabulary")
    if same_frames and (list(peer_config.conv_kernel), list(peer_config.conv_stride)) != (
            list(config.conv_kernel), list(config.conv_stride)):
        raise AudiationError(f"{option}={name} has another frame grid (conv kernels and strides) than "
                             f"{own.short_name}: their logits cannot be averaged frame by frame")
    return peer


def initial_clip(cfg: DictConfig, sample_rate: int, num_samples: int | None = None) -> torch.Tensor | None:
    """`parameterization.init`: the audio file to start from, mono at the model's rate, cut or zero-padded
    to `num_samples`; None when the signal starts from noise."""
    path = cfg.parameterization.get("init")
    if not path:
        return None
    from audiation.data import audio_files

    if not Path(str(path)).expanduser().is_file():
        raise AudiationError(f"parameterization.init={path}: no such audio file")
    try:
        clip = audio_files.read_audio(Path(str(path)).expanduser(), sample_rate)
    except audio_files.UnreadableAudio as error:
        raise AudiationError(f"parameterization.init={path} could not be read: {error}") from None
    if num_samples is not None:
        clip = np.pad(clip[:num_samples], (0, max(0, num_samples - len(clip))))
    return torch.from_numpy(clip)


def build_objective(plan_: Plan, targets: list[Target], encoder=None) -> Objective:
    """The target's objective minus the regularisers, its index tensors made on the device once. `encoder`
    (the loaded model) is needed only where a decoder reads the layer (objective=text on Whisper)."""
    device, geometry, kind = plan_.device, plan_.geometry, targets[0].kind
    live = {"geometry": geometry, "kind": kind}  # the kind only to an objective that names it (feature)
    if kind is TargetKind.unit:
        live["frame"] = plan_.frame
    if kind is TargetKind.text:
        ids = [plan_.token_ids[t.text] for t in targets]
        live["tokens"] = torch.tensor([i + [0] * (max(map(len, ids)) - len(i)) for i in ids], device=device)
        live["lengths"] = torch.tensor([len(i) for i in ids], device=device)
        live["blank"] = plan_.blank
        if plan_.layer.kind == "output":
            if encoder is None:
                raise ValueError("objective=text on Whisper is built with the loaded encoder (its decoder reads it)")
            live["decoder"] = encoder.text_log_likelihood
    elif kind.of_units:
        live["unit"] = torch.tensor([t.unit for t in targets], device=device)
    elif kind is TargetKind.direction:
        live["direction"] = torch.from_numpy(np.stack([t.vector for t in targets])).to(device)
    recipe = plan_.recipe
    node = {k: v for k, v in recipe.objective.items() if k not in (kind.key, "kind", "frame", "sae")}
    objective = construct(node, **live)
    regularizer = recipe.regularizer
    if regularizer["power"]:
        objective = objective - regularizer["power"] * objectives.power()
    if regularizer["high_frequency"]:
        objective = objective - regularizer["high_frequency"] * objectives.high_frequency(
            geometry, regularizer["cutoff_hz"], device)
    if recipe.diversity:  # the plan asks for samples >= 2 with it
        groups = {name: i for i, name in enumerate(dict.fromkeys(t.group for t in targets))}
        ids = torch.tensor([groups[t.group] for t in targets], device=device)
        objective = objective - recipe.diversity * objectives.diversity(ids)
    if regularizer.get("speech"):
        objective = objective + regularizer["speech"] * objectives.speech(functools.partial(judges.speech_log_probability, judges.shared_vad()))
    if regularizer.get("stay_close"):
        clip = plan_.initial.to(device)
        objective = objective - regularizer["stay_close"] * objectives.stay_close(clip.expand(len(targets), -1))
    return objective


def build_augment(plan_: Plan):
    return construct(plan_.recipe.augmentation, sample_rate=plan_.geometry.sample_rate).to(plan_.device)


def build_batch(plan_: Plan, targets: list[Target], encoder=None) -> Batch:
    """Everything one batch of targets needs in the loop, one row per target (`encoder`: see build_objective)."""
    streams = Streams(plan_.seed, [t.key for t in targets], plan_.device)
    geometry, clip = plan_.geometry, plan_.initial
    node = {k: v for k, v in plan_.recipe.parameterization.items() if k != "init"}
    parameterization = construct(node, streams=streams, sample_rate=geometry.sample_rate,
                                 initial=None if clip is None else clip.expand(len(targets), -1))
    optimizer = construct(plan_.recipe.optimizer, parameterization.parameters())
    return Batch(targets, streams, parameterization, build_augment(plan_),
                 build_objective(plan_, targets, encoder), optimizer)
