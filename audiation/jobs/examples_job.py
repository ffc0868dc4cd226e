"""The examples job (`python -m audiation.examples`): each unit's top natural examples from a folder of audio,
as clips, spectrograms and `examples.json`, with each unit's phone name (`phones`); and the writing of one unit's examples, which audiation jobs
with `quality.data` share.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from audiation.config.job_plans import ExamplesPlan
from audiation.core import sae
from audiation.core.runtime import configure
from audiation.data import audio_files
from audiation.data.activations import (
    STATS,
    ActivationCache,
    Example,
    clip_around,
    derived_cache,
    open_cache,
    top_examples,
)
from audiation.hearing import phones, quality
from audiation.jobs.folder import json_holds, refuse_foreign
from audiation.models.encoder import load_encoder
from audiation.outputs import disk, tracking


def last_file_reader(sample_rate: int):
    """read(file) -> signal, keeping the last file: the same file often serves several units in a row."""
    last: dict[str, np.ndarray] = {}

    def read(file: str) -> np.ndarray:
        if file not in last:
            last.clear()
            last[file] = audio_files.read_audio(file, sample_rate)
        return last[file]

    return read


def write_examples_of_unit(job_dir: Path, cache: ActivationCache, unit: int, found: list[Example], label: str,
                           clip_seconds: float, read) -> dict:
    """One unit's clips, spectrograms and record (paths relative to the job folder)."""
    name = f"{label}-U{unit}"
    folder = job_dir / "examples" / name
    records = []
    for example in found:
        signal = read(example.file)
        clip = clip_around(signal, example.time_seconds, clip_seconds, cache.sample_rate)
        start = round(example.time_seconds * cache.sample_rate) - len(clip) // 2
        mark = example.time_seconds - start / cache.sample_rate
        wav, png = folder / f"{example.rank}.wav", folder / f"{example.rank}.png"
        disk.write_bytes(wav, disk.wav_bytes(np.clip(clip, -1, 1), cache.sample_rate, "PCM_16"))
        title = (f"{name} #{example.rank}: {Path(example.file).name} at {example.time_seconds:.2f} s "
                 f"({example.activation:.3g})")
        disk.write_spectrogram(png, clip, cache.sample_rate, title, mark)
        times, trace = cache.trace(unit, example.frame, clip_seconds)
        records.append({"rank": example.rank, "file": example.file, "time_seconds": round(example.time_seconds, 4),
                        "activation": example.activation, "clip": str(wav.relative_to(job_dir)),
                        "spectrogram": str(png.relative_to(job_dir)), "text": audio_files.transcript(example.file),
                        "clip_seconds": clip_seconds, "trace_seconds": times, "trace": trace})
    stats = {key: float(cache.stats[key][unit]) for key in STATS}
    return {"name": name, "layer": label, "unit": unit, "stats": stats, "examples": records}


def examples_job(plan: ExamplesPlan, job_dir: Path, group: str | None = None) -> dict:
    """The top natural examples of each unit into `job_dir` (the library call behind `audiation.examples`)."""
    spec, layer = plan.spec, plan.layer
    refuse_foreign(job_dir, ("examples.json", ".hydra", "wandb"), (),
                   lambda folder: json_holds(folder / "examples.json", {"units": list, "top_k": int}))
    configure(plan.device, plan.threads)
    cache = open_cache(spec, layer, plan.model_config, plan.files, plan.cache_dir, plan.device, plan.max_seconds)
    if plan.sae_folder is not None:  # the features' activations, from the layer's cache: the model does not run again
        dictionary = sae.load(plan.sae_folder)
        cache = derived_cache(cache, lambda x: dictionary.pre(torch.from_numpy(x)).numpy(),
                              f"sae-{sae.content_digest(plan.sae_folder)}", f"features of {plan.sae_folder}")
    read = last_file_reader(spec.sample_rate)
    frame_phones = phones.frame_labels(cache, read)
    understood = None if plan.sae_folder is not None else quality.cached_data_error_rate(
        cache.folder, lambda: load_encoder(spec, plan.device), plan.files)
    found = []
    for unit, values in cache.columns(plan.units):
        examples = top_examples(cache, unit, plan.top_k, plan.min_gap_seconds, values)
        found.append({**write_examples_of_unit(job_dir, cache, unit, examples, layer.label, plan.clip_seconds,
                                               read), **phones.name_unit(values, frame_phones)})
    gap = plan.min_gap_seconds
    summary = {
        "model": spec.short_name, "layer": layer.label, "data": str(plan.data),
        "cache": str(cache.folder), "files": len(cache.files), "skipped": cache.skipped, "frames": cache.num_frames,
        "audio_seconds": cache.meta["audio_seconds"], "sample_rate": spec.sample_rate, "top_k": plan.top_k,
        "clip_seconds": plan.clip_seconds,
        "min_gap_seconds": gap if math.isfinite(gap) else None,  # JSON has no infinity
        "sae": None if plan.sae_folder is None else str(plan.sae_folder),
        "model_cer": understood,  # the model's own CER on the data's transcribed files: are the names about speech?
        "units": found,
    }
    disk.write_json(job_dir / "examples.json", summary)
    rows = [{"unit": u["unit"], "rank": e["rank"], "audio": str(job_dir / e["clip"]),
             "spectrogram": str(job_dir / e["spectrogram"]), "file": e["file"], "time": e["time_seconds"],
             "activation": e["activation"], "text": e["text"]} for u in found for e in u["examples"]]
    config_ = {"layer": layer.label, "units": plan.units_given, "model": spec.short_name,
               "data": summary["data"], "top_k": summary["top_k"], "config": plan.config_record}
    with tracking.start(plan.logger, job_dir=job_dir, name=f"{layer.label}-examples", group=group, job_type="examples",
                        tags=[spec.short_name, "examples"], config=config_, sample_rate=spec.sample_rate) as tracker:
        tracker.log_examples(rows)
    return summary
