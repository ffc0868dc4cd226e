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

import torch

from audiation.config.job_plans import FeaturesPlan
from audiation.core import sae
from audiation.core.runtime import configure
from audiation.data.activations import open_cache
from audiation.data.splits import held_out
from audiation.errors import AudiationError
from audiation.jobs.folder import refuse_foreign


def features_job(plan: FeaturesPlan, job_dir: Path) -> dict:
    """Train the SAE of `plan` into `job_dir`; returns `features.json`'s content."""
    started = time.perf_counter()
    spec, layer, settings, device = plan.spec, plan.layer, plan.settings, plan.device
    refuse_foreign(job_dir, (sae.WEIGHTS, sae.SUMMARY, ".hydra", "wandb"), (), sae.written_here)
    configure(device, plan.threads)
    cache = open_cache(spec, layer, plan.model_config, plan.files, plan.cache_dir, device, plan.max_seconds)
    names = sorted(cache.files)
    train_rows, held_rows = held_out(len(names), plan.held_out, settings.seed)
    held = {names[row] for row in held_rows}
    train_frames = sae.frame_ranges(cache.pieces, {names[row] for row in train_rows})
    held_frames = sae.frame_ranges(cache.pieces, held)
    try:
        model, numbers = sae.train(cache.activations, train_frames, held_frames, settings, device,
                                   f"SAE {layer.label} {settings.features}x{settings.k}")
    except ValueError as error:  # too little data for one batch
        raise AudiationError(f"data.path={plan.data_given}: {error}; use more audio or a smaller batch") from None
    summary = {
        "model": sae.identity(spec), "layer": layer.label, "units": plan.units, "features": settings.features,
        "k": settings.k, "data": str(plan.data), "cache": str(cache.folder),
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
