"""The features job (`python -m audiation.features`): a TopK sparse autoencoder trained on one layer's
cached activations over a folder of audio (`audiation.core.sae`), written as `sae.safetensors` and
`features.json` into the job folder, which `objective=feature objective.sae=<folder>` then audiates.

`features.json` says where the SAE came from (the model, by name and weights, the layer, the data and its
cache), how good it is on held-out *files* (fraction of variance explained, mean L0, the share of dead
features), each feature's firing frequency and its nearest features by decoder cosine.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from audiation.config import builder, checks
from audiation.core import sae
from audiation.core.runtime import configure, resolve_device
from audiation.data import audio_files
from audiation.data.activations import open_cache
from audiation.errors import AudiationError
from audiation.models.encoder import load_config, num_units, parse_layer

EXPANSION = 8  # features per unit of the layer when `features` is not given (whisper-sae and Gao et al. use 8-32)


def settings_of(cfg: DictConfig, units: int) -> sae.TrainSettings:
    """The training settings, each checked in one line; the dictionary must fit in `memory_gb`."""
    checks.known_keys(cfg)
    features = EXPANSION * units if cfg.features is None else checks.number(cfg.features, "features", int, minimum=1)
    k = checks.number(cfg.k, "k", int)
    if k >= features:
        raise AudiationError(f"k={k} must be below features={features}: TopK keeps k of them on")
    held_out = checks.number(cfg.held_out, "held_out")
    if held_out >= 1:
        raise AudiationError(f"held_out={cfg.held_out:g} must be below 1")
    settings = sae.TrainSettings(
        features=features, k=k, steps=checks.number(cfg.steps, "steps", int), batch=checks.number(cfg.batch, "batch", int),
        lr=checks.number(cfg.lr, "lr"), aux_k=checks.number(cfg.aux_k, "aux_k", int, strict=False),
        aux_weight=checks.number(cfg.aux_weight, "aux_weight", strict=False),
        dead_after=checks.number(cfg.dead_after, "dead_after", int), seed=checks.seed(cfg.seed))
    # Weights, their gradients and Adam's two moments (2 matrices each), and a batch's codes and their grads.
    need = 4 * (4 * 2 * features * units + 4 * settings.batch * features)
    if need > checks.number(cfg.memory_gb, "memory_gb") * 2**30:
        raise AudiationError(f"features={features} at {units} units needs about {need / 2**30:.1f} GiB to train "
                             f"(more than memory_gb={cfg.memory_gb:g}); choose fewer features or a smaller batch")
    return settings


def features_job(cfg: DictConfig, job_dir: Path) -> dict:
    """Train the SAE of `cfg` into `job_dir`; returns `features.json`'s content."""
    started = time.perf_counter()
    checks.known_keys(cfg)
    if OmegaConf.is_missing(cfg.data, "path") or cfg.data.path in (None, ""):
        raise AudiationError("data.path is required: the folder of audio to train on (data.path=/path/to/audio)")
    checks.writable_folder(cfg.data.cache_dir, "data.cache_dir")
    threads = checks.threads(cfg.threads)
    device = resolve_device(cfg.device)
    spec = builder.model_spec(cfg.model)
    config = load_config(spec)
    layer = parse_layer(cfg.model.layer, config)
    units = num_units(layer, config)
    settings = settings_of(cfg, units)
    files = audio_files.list_audio(cfg.data.path)
    if len(files) < 2:
        raise AudiationError(f"data.path={cfg.data.path} has {len(files)} audio file; at least 2 are needed "
                             "(files, not frames, are held out)")
    configure(device, threads)
    cache = open_cache(spec, layer, config, files, cfg.data.cache_dir, device, cfg.data.max_seconds)
    names = sorted(cache.files)
    rng = np.random.default_rng(settings.seed)
    held = {str(f) for f in rng.choice(names, size=max(1, round(float(cfg.held_out) * len(names))), replace=False)}
    train_frames = sae.frame_ranges(cache.pieces, set(names) - held)
    held_frames = sae.frame_ranges(cache.pieces, held)
    try:
        model, numbers = sae.train(cache.activations, train_frames, held_frames, settings, device,
                                   f"SAE {layer.label} {settings.features}x{settings.k}")
    except ValueError as error:  # too little data for one batch
        raise AudiationError(f"data.path={cfg.data.path}: {error}; use more audio or a smaller batch") from None
    summary = {
        "model": sae.identity(spec), "layer": layer.label, "units": units, "features": settings.features,
        "k": settings.k, "data": str(Path(cfg.data.path).expanduser().resolve()), "cache": str(cache.folder),
        "train_files": len(names) - len(held), "held_out_files": sorted(held), "train_frames": int(len(train_frames)),
        **{key: numbers[key] for key in ("held_out_frames", "variance_explained", "mean_l0", "dead_share")},
        "settings": {key: getattr(settings, key) for key in settings.__dataclass_fields__},
        "device": device, "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - started, 1),
        "loss_every_50_steps": numbers["loss_every_50_steps"],
        "firing_frequency": numbers["firing_frequency"],
        "nearest_features": sae.nearest_by_decoder(model),
    }
    model.save(Path(job_dir), summary)
    return summary
