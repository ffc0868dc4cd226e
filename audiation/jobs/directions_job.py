"""The directions job (`python -m audiation.directions`): a direction at one layer that separates two folders
of speech, fitted and scored by `audiation.core.probes` (on held-out clips, and on held-out speakers), written as
a unit-length .npy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from audiation.config.job_plans import DirectionsPlan
from audiation.core import probes
from audiation.core.runtime import configure
from audiation.data import audio_files
from audiation.data.activations import open_cache
from audiation.data.splits import held_out
from audiation.errors import AudiationError
from audiation.hearing import judges
from audiation.jobs.folder import json_holds, refuse_foreign
from audiation.outputs import disk

log = logging.getLogger(__name__)
SUMMARY = "directions.json"
Audiate = Callable[[Path, Path], list[dict]]  # (directions file, folder) -> the audiation job's target records


def directions_job(plan: DirectionsPlan, job_dir: Path, audiate: Audiate | None = None) -> dict:
    """A direction at one layer that separates `positive` from `negative` clips: both methods fitted on
    the training clips and scored (AUC) on the held-out ones; the chosen one written as a unit-length .npy.
    `audiate(directions_file, folder)`, when given, audiates it both ways and returns the targets' records."""
    spec, layer, device = plan.spec, plan.layer, plan.device
    writes = (SUMMARY, "both_ways.npy", "audiated", ".hydra",  # and the direction, where it goes into the folder
              *([plan.out.name] if plan.out.parent.resolve() == Path(job_dir).resolve() else []))
    refuse_foreign(job_dir, writes, (), lambda folder: json_holds(folder / SUMMARY, {"held_out_auc": dict}))
    configure(device, plan.threads)
    vectors = {}
    clip_files = {}
    for side, files in plan.files.items():
        cache = open_cache(spec, layer, plan.model_config, files, plan.cache_dir, device, plan.max_seconds)
        clip_files[side], vectors[side] = probes.clip_vectors(cache)
    splits = {side: held_out(len(v), plan.held_out, plan.seed) for side, v in vectors.items()}
    train = {side: vectors[side][splits[side][0]] for side in vectors}
    test = {side: vectors[side][splits[side][1]] for side in vectors}
    fitted = {"mean": probes.mean_difference(train["positive"], train["negative"]),
              "probe": probes.logistic_probe(train["positive"], train["negative"], plan.l2)}
    chosen = fitted[plan.method]
    if not np.all(np.isfinite(chosen)) or not np.linalg.norm(chosen) > 0:
        raise AudiationError(f"no {plan.method} direction could be fitted at layer {layer.label}: the two sides' "
                             "activations do not differ (are they the same clips?)")
    scores = {method: probes.auc(test["positive"] @ d, test["negative"] @ d) for method, d in fitted.items()}
    speakers = {side: [audio_files.speaker(f, plan.folders[side]) for f in files] for side, files in clip_files.items()}
    by_speaker, why_not = probes.leave_one_speaker_out(vectors["positive"], vectors["negative"],
                                                       speakers["positive"], speakers["negative"], plan.l2)
    if why_not:
        log.warning("warning: no leave-one-speaker-out AUC: %s", why_not)
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    with disk.atomic(plan.out) as temporary, open(temporary, "wb") as handle:
        np.save(handle, chosen)
    summary = {"model": spec.short_name, "layer": layer.label, "method": plan.method, "out": str(plan.out),
               "held_out_auc": scores, "leave_one_speaker_out_auc": by_speaker, "leave_one_speaker_out_note": why_not,
               "clips": {s: len(v) for s, v in vectors.items()},
               "held_out_clips": {s: len(splits[s][1]) for s in splits}, "l2": plan.l2,
               "positive": plan.folders["positive"], "negative": plan.folders["negative"]}
    if audiate is not None:
        summary["audiated"] = audiate_both_ways(audiate, chosen, job_dir)
    disk.write_json(job_dir / SUMMARY, summary)
    return summary


def audiate_both_ways(audiate: Audiate, direction: np.ndarray, job_dir: Path) -> list[dict]:
    """The direction audiated towards each side (+ towards positive, - towards negative) in <job>/audiated;
    per way, what the judges (Praat's F0 first) hear."""
    both = job_dir / "both_ways.npy"
    with disk.atomic(both) as temporary, open(temporary, "wb") as handle:
        np.save(handle, np.stack([direction, -direction]))
    targets = audiate(both, job_dir / "audiated")
    keep = ("name", "final_activation", *judges.FIELDS, "judges_note")
    return [{"way": way, **{k: t.get(k) for k in keep},
             "audio": str(job_dir / "audiated" / t["files"]["wav_16bit"])}
            for way, t in zip(("towards positive", "towards negative"), targets)]
