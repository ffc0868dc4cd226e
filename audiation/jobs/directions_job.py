"""The directions job (`python -m audiation.directions`): a direction at one layer that separates two folders
of speech, fitted and scored by `audiation.core.probes` (on held-out clips, and on held-out speakers), written as
a unit-length .npy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from audiation.config import builder, checks
from audiation.config.configs import compose
from audiation.core import probes
from audiation.core.runtime import configure, resolve_device
from audiation.data import audio_files
from audiation.data.activations import open_cache
from audiation.errors import AudiationError
from audiation.hearing import judges
from audiation.jobs.audiate_job import audiate_folder
from audiation.models.encoder import load_config, parse_layer
from audiation.outputs import disk

log = logging.getLogger(__name__)


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
    checks.number(cfg.audiate_steps, "audiate_steps", int)
    checks.writable_folder(cfg.data.cache_dir, "data.cache_dir")
    folders = {}
    for side in ("positive", "negative"):
        if OmegaConf.is_missing(cfg, side) or not cfg[side]:
            raise AudiationError(f"{side} is required: a folder of audio ({side}=/path/to/folder)")
        folders[side] = audio_files.list_audio(cfg[side], name=side)
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
    clip_files = {}
    for side, files in folders.items():
        cache = open_cache(spec, layer, config, files, cfg.data.cache_dir, device, cfg.data.max_seconds)
        clip_files[side], vectors[side] = probes.clip_vectors(cache)
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
    speakers = {side: [audio_files.speaker(f, cfg[side]) for f in files] for side, files in clip_files.items()}
    by_speaker, why_not = probes.leave_one_speaker_out(vectors["positive"], vectors["negative"],
                                                       speakers["positive"], speakers["negative"], l2)
    if why_not:
        log.warning("warning: no leave-one-speaker-out AUC: %s", why_not)
    out.parent.mkdir(parents=True, exist_ok=True)
    with disk.atomic(out) as temporary, open(temporary, "wb") as handle:
        np.save(handle, chosen)
    summary = {"model": spec.short_name, "layer": layer.label, "method": cfg.method, "out": str(out),
               "held_out_auc": scores, "leave_one_speaker_out_auc": by_speaker, "leave_one_speaker_out_note": why_not,
               "clips": {s: len(v) for s, v in vectors.items()},
               "held_out_clips": {s: len(splits[s][1]) for s in splits}, "l2": l2,
               "positive": str(cfg.positive), "negative": str(cfg.negative)}
    if cfg.audiate:
        summary["audiated"] = audiate_both_ways(cfg, chosen, job_dir)
    disk.write_json(job_dir / "directions.json", summary)
    return summary


def audiate_both_ways(cfg: DictConfig, direction: np.ndarray, job_dir: Path) -> list[dict]:
    """The direction audiated towards each side (+ towards positive, - towards negative) with the run's defaults,
    `audiate_steps` and the run overrides `audiate_with`, in <job>/audiated; per way, what the judges (Praat's
    F0 first) hear."""
    both = job_dir / "both_ways.npy"
    with disk.atomic(both) as temporary, open(temporary, "wb") as handle:
        np.save(handle, np.stack([direction, -direction]))
    run = compose("objective=direction", f"objective.direction={both}", f"steps={int(cfg.audiate_steps)}",
                  "logger=none", "quality.judges=true", *cfg.audiate_with)
    run.model, run.device, run.threads = cfg.model, cfg.device, cfg.threads
    targets = audiate_folder(run, job_dir / "audiated")["targets"]
    keep = ("name", "final_activation", *judges.FIELDS, "judges_note")
    return [{"way": way, **{k: t.get(k) for k in keep},
             "audio": str(job_dir / "audiated" / t["files"]["wav_16bit"])}
            for way, t in zip(("towards positive", "towards negative"), targets)]
