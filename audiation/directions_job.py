"""The directions job (`python -m audiation.directions`): a direction at one layer that separates two folders
of speech, fitted and scored by `audiation.probes`, written as a unit-length .npy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from audiation import builder, checks, data, outputs, probes
from audiation.activations import open_cache
from audiation.errors import AudiationError
from audiation.model import load_config, parse_layer
from audiation.runtime import configure, resolve_device


def directions_job(cfg: DictConfig, job_dir: Path) -> dict:
    """A direction at one layer that separates `positive` from `negative` clips: both methods fitted on
    the training clips and scored (AUC) on the held-out ones; the chosen one written as a unit-length .npy."""
    checks.known_keys(cfg)
    if cfg.method not in ("probe", "mean"):
        raise AudiationError(f"method={cfg.method} is not one of probe, mean")
    fraction = checks.number(cfg.held_out, "held_out")
    if fraction >= 1:
        raise AudiationError(f"held_out={cfg.held_out:g} must be below 1")
    l2 = checks.number(cfg.l2, "l2", strict=False)
    checks.writable_folder(cfg.data.cache_dir, "data.cache_dir")
    folders = {}
    for side in ("positive", "negative"):
        if OmegaConf.is_missing(cfg, side) or not cfg[side]:
            raise AudiationError(f"{side} is required: a folder of audio ({side}=/path/to/folder)")
        folders[side] = data.list_audio(cfg[side], name=side)
        if len(folders[side]) < 2:
            raise AudiationError(f"{side}={cfg[side]} has {len(folders[side])} audio file; at least 2 are needed")
    shared = set(folders["positive"]) & set(folders["negative"])
    if shared:
        raise AudiationError(f"positive and negative share {len(shared)} audio file(s) (e.g. {min(shared)}): a "
                             "direction needs two different sets of clips")
    out = Path(str(cfg.out)).expanduser() if cfg.out else job_dir / "direction.npy"
    if out.is_dir():
        raise AudiationError(f"out={cfg.out} is a folder; give the .npy file to write (e.g. out={out / 'direction.npy'})")
    device = resolve_device(cfg.device)
    configure(device, checks.threads(cfg.threads))
    spec = builder.model_spec(cfg.model)
    config = load_config(spec)
    layer = parse_layer(cfg.model.layer, config)
    vectors = {}
    for side, files in folders.items():
        cache = open_cache(spec, layer, config, files, cfg.data.cache_dir, device, cfg.data.max_seconds)
        vectors[side] = probes.clip_vectors(cache)[1]
    splits = {side: probes.held_out(len(v), fraction, int(cfg.seed)) for side, v in vectors.items()}
    train = {side: vectors[side][splits[side][0]] for side in vectors}
    test = {side: vectors[side][splits[side][1]] for side in vectors}
    fitted = {"mean": probes.mean_difference(train["positive"], train["negative"]),
              "probe": probes.logistic_probe(train["positive"], train["negative"], l2)}
    chosen = fitted[cfg.method]
    if not np.all(np.isfinite(chosen)) or not np.linalg.norm(chosen) > 0:
        raise AudiationError(f"no {cfg.method} direction could be fitted at layer {layer.label}: the two sides' "
                             "activations do not differ (are they the same clips?)")
    scores = {method: probes.auc(test["positive"] @ d, test["negative"] @ d) for method, d in fitted.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    with outputs.atomic(out) as temporary, open(temporary, "wb") as handle:
        np.save(handle, chosen)
    summary = {"model": spec.short_name, "layer": layer.label, "method": cfg.method, "out": str(out),
               "held_out_auc": scores, "clips": {s: len(v) for s, v in vectors.items()},
               "held_out_clips": {s: len(splits[s][1]) for s in splits}, "l2": l2,
               "positive": str(cfg.positive), "negative": str(cfg.negative)}
    outputs.write_json(job_dir / "directions.json", summary)
    return summary
