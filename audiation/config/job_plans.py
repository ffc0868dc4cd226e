"""The plans of the jobs beside audiation (examples, features, directions): a composed config in, every value
the job reads checked once and held as plain objects, so the jobs below never see a config (as
`builder.plan` does for the audiation job)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from audiation.config import builder, checks
from audiation.config.configs import compose
from audiation.core import sae
from audiation.core.runtime import resolve_device
from audiation.data import audio_files
from audiation.errors import AudiationError
from audiation.models.encoder import ModelSpec, load_config, num_units, parse_layer
from audiation.models.layers import Layer
from audiation.outputs import tracking

EXPANSION = 8  # features per unit of the layer when `features` is not given (whisper-sae and Gao et al. use 8-32)


def model_and_layer(cfg: DictConfig) -> tuple[ModelSpec, object, Layer]:
    """The job's model as a spec, its config (read from its file, no weights) and the layer parsed against it."""
    spec = builder.model_spec(cfg.model)
    config = load_config(spec)
    return spec, config, parse_layer(cfg.model.layer, config)


@dataclass(frozen=True)
class ExamplesPlan:
    spec: ModelSpec
    model_config: object  # the model's transformers config (read from its file, no weights)
    layer: Layer
    units: list[int]
    files: list[Path]
    data: Path  # the folder searched, resolved
    device: torch.device
    threads: int | None  # None: torch chooses
    cache_dir: str | None
    max_seconds: float
    top_k: int
    clip_seconds: float
    min_gap_seconds: float  # inf: one example per file
    sae_folder: Path | None  # an SAE's features instead of the layer's units
    logger: tracking.Settings
    units_given: object  # `units` as written, for W&B's config
    config_record: dict  # the whole config, resolved, for W&B's config


def examples_plan(cfg: DictConfig) -> ExamplesPlan:
    """Check an examples job's values, reading only the model's config file and listing the data."""
    checked = checks.declared(cfg)  # every number in the range its schema declares
    threads = checks.threads(checked["threads"])
    logger = builder.logger_settings(cfg.logger)
    if OmegaConf.is_missing(cfg.data, "path") or cfg.data.path in (None, ""):
        raise AudiationError("data.path is required: the folder of audio files to search (data.path=/path/to/audio)")
    checks.writable_folder(cfg.data.cache_dir, "data.cache_dir")
    device = resolve_device(cfg.device)
    spec, config, layer = model_and_layer(cfg)
    folder, count = None, num_units(layer, config)
    if cfg.sae:
        folder, count = builder.feature_dictionary(cfg.sae, "sae", spec, layer)
    units = checks.parse_units(cfg.units, count, f"layer {layer.label}", name="units")
    files = audio_files.list_audio(cfg.data.path)
    return ExamplesPlan(spec=spec, model_config=config, layer=layer, units=units, files=files,
                        data=Path(cfg.data.path).expanduser().resolve(), device=device, threads=threads,
                        cache_dir=cfg.data.cache_dir, max_seconds=checked["data.max_seconds"], top_k=checked["top_k"],
                        clip_seconds=checked["clip_seconds"], min_gap_seconds=checked["min_gap_seconds"], sae_folder=folder,
                        logger=logger, units_given=OmegaConf.to_container(cfg).get("units"),
                        config_record=OmegaConf.to_container(cfg, resolve=True))


@dataclass(frozen=True)
class FeaturesPlan:
    spec: ModelSpec
    model_config: object
    layer: Layer
    units: int  # the layer's width
    settings: sae.TrainSettings
    files: list[Path]
    data: Path  # the folder trained on, resolved
    data_given: str  # as written, for messages
    device: torch.device
    threads: int | None
    cache_dir: str | None
    max_seconds: float
    held_out: float  # the share of files held out


def features_plan(cfg: DictConfig) -> FeaturesPlan:
    """Check a features job's values, reading only the model's config file and listing the data."""
    checked = checks.declared(cfg)  # every number in the range its schema declares
    if OmegaConf.is_missing(cfg.data, "path") or cfg.data.path in (None, ""):
        raise AudiationError("data.path is required: the folder of audio to train on (data.path=/path/to/audio)")
    checks.writable_folder(cfg.data.cache_dir, "data.cache_dir")
    threads = checks.threads(checked["threads"])
    device = resolve_device(cfg.device)
    spec, config, layer = model_and_layer(cfg)
    builder.refuse_sae_on_logits(layer)
    units = num_units(layer, config)
    settings = settings_of(cfg, units)
    files = audio_files.list_audio(cfg.data.path)
    if len(files) < 2:
        raise AudiationError(f"data.path={cfg.data.path} has {len(files)} audio file; at least 2 are needed "
                             "(files, not frames, are held out)")
    return FeaturesPlan(spec=spec, model_config=config, layer=layer, units=units, settings=settings, files=files,
                        data=Path(cfg.data.path).expanduser().resolve(), data_given=str(cfg.data.path), device=device,
                        threads=threads, cache_dir=cfg.data.cache_dir, max_seconds=checked["data.max_seconds"],
                        held_out=checked["held_out"])


def settings_of(cfg: DictConfig, units: int) -> sae.TrainSettings:
    """The training settings, each checked in one line; the dictionary must fit in `memory_gb`."""
    checked = checks.declared(cfg)  # also when called on its own (the features job has checked them already)
    features = EXPANSION * units if cfg.features is None else checked["features"]
    k = checked["k"]
    if k >= features:
        raise AudiationError(f"k={k} must be below features={features}: TopK keeps k of them on")
    settings = sae.TrainSettings(
        features=features, k=k, steps=checked["steps"], batch=checked["batch"], lr=checked["lr"],
        aux_k=checked["aux_k"], aux_weight=checked["aux_weight"], dead_after=checked["dead_after"],
        seed=checked["seed"])
    # Weights, their gradients and Adam's two moments (2 matrices each), and a batch's codes and their grads.
    need = 4 * (4 * 2 * features * units + 4 * settings.batch * features)
    if need > checked["memory_gb"] * 2**30:
        raise AudiationError(f"features={features} at {units} units needs about {need / 2**30:.1f} GiB to train "
                             f"(more than memory_gb={cfg.memory_gb:g}); choose fewer features or a smaller batch")
    return settings


@dataclass(frozen=True)
class DirectionsPlan:
    spec: ModelSpec
    model_config: object
    layer: Layer
    method: str  # probe or mean
    l2: float
    held_out: float
    seed: int
    folders: dict[str, str]  # positive and negative, as given
    files: dict[str, list[Path]]
    out: Path  # the .npy written
    device: torch.device
    threads: int | None
    cache_dir: str | None
    max_seconds: float


def directions_plan(cfg: DictConfig, job_dir: Path) -> DirectionsPlan:
    """Check a directions job's values, reading only the model's config file and listing both folders."""
    checked = checks.declared(cfg)  # every number in the range its schema declares
    if cfg.method not in ("probe", "mean"):
        raise AudiationError(f"method={cfg.method} is not one of probe, mean")
    checks.writable_folder(cfg.data.cache_dir, "data.cache_dir")
    files = {}
    for side in ("positive", "negative"):
        if OmegaConf.is_missing(cfg, side) or not cfg[side]:
            raise AudiationError(f"{side} is required: a folder of audio ({side}=/path/to/folder)")
        files[side] = audio_files.list_audio(cfg[side], name=side)
        if len(files[side]) < 2:
            raise AudiationError(f"{side}={cfg[side]} has {len(files[side])} audio file; at least 2 are needed")
    shared = set(files["positive"]) & set(files["negative"])
    if shared:
        raise AudiationError(f"positive and negative share {len(shared)} audio file(s) (e.g. {min(shared)}): a "
                             "direction needs two different sets of clips")
    out = Path(str(cfg.out)).expanduser() if cfg.out else job_dir / "direction.npy"
    if out.is_dir():
        raise AudiationError(f"out={cfg.out} is a folder; give the .npy file to write (e.g. out={out / 'direction.npy'})")
    threads = checks.threads(checked["threads"])
    device = resolve_device(cfg.device)
    spec, config, layer = model_and_layer(cfg)
    return DirectionsPlan(spec=spec, model_config=config, layer=layer, method=str(cfg.method), l2=checked["l2"],
                          held_out=checked["held_out"], seed=checked["seed"],
                          folders={side: str(cfg[side]) for side in files}, files=files, out=out, device=device,
                          threads=threads, cache_dir=cfg.data.cache_dir, max_seconds=checked["data.max_seconds"])


def direction_run(cfg: DictConfig, directions_file: Path) -> DictConfig:
    """The audiation run of a directions job's `audiate`: the directions in `directions_file` with the run's
    defaults, `audiate_steps`, the judges on and the overrides `audiate_with`, on the job's model and device."""
    run = compose("objective=direction", f"objective.direction={directions_file}", f"steps={int(cfg.audiate_steps)}",
                  "logger=none", "quality.judges=true", *cfg.audiate_with)
    run.model, run.device, run.threads = cfg.model, cfg.device, cfg.threads
    return run
