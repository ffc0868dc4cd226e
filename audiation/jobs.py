"""Jobs: what a command does with a folder, below the command lines and above the core.

`AudiationJob` (for `python -m audiation.run`) checks everything before any work, takes the folder's
lock, then audiates its targets batch by batch; each batch's files are written by a background thread
while the next batch optimises, and the job's metrics, history, loss curve and W&B run come at the end.
`examples_job` (for `python -m audiation.examples`) writes the top natural examples of units.

A rerun into the same folder skips targets that are complete with the same settings, refuses (before any
work) targets made with other settings unless `redo=true`, and keeps the earlier runs' timing and loss
histories.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from omegaconf import DictConfig, OmegaConf

from audiation import builder, data, errors, outputs, quality, results, tracking
from audiation.activations import STATS, ActivationCache, Example, clip_around, open_cache, top_examples
from audiation.errors import AudiationError
from audiation.model import layer_index, load_config, load_encoder, num_units, parse_layer, weights_digest
from audiation.objectives import Target
from audiation.runtime import configure
from audiation.trainer import Result, audiate, fastest_batch

log = logging.getLogger(__name__)

# Config keys that shape a target's result; the rest (device, logging, batch size, quality) do not.
RESULT_KEYS = ("model", "objective", "parameterization", "augmentation", "optimizer", "steps", "seed",
               "regularizer", "precision", "samples", "diversity")


ASYMPTOTE_MARGIN = 0.01  # a GELU output within this of 0 from below, after rising: it went to x -> -inf


class FolderLock:
    """An exclusive lock on a job folder: a second run into it stops at once. The operating system drops
    the lock when the process ends, however it ends, so a crashed run never leaves it stuck; a run that
    ends removes the file too, so a finished folder holds only results."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".audiation.lock"
        self.handle = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise AudiationError(f"{self.path.parent} is in use by another run; wait for it or choose another "
                                     "folder") from None
            try:  # the run before us may have removed the file between our open and our lock: lock the new one
                if os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino:
                    self.handle = handle
                    return self
            except FileNotFoundError:
                pass
            handle.close()

    def __exit__(self, *_exc):
        self.path.unlink(missing_ok=True)  # while still holding it: the next run locks a file of its own
        self.handle.close()
        return False


def result_settings(cfg: DictConfig) -> dict:
    """Everything that shapes a target's result, flattened to dotted keys (`optimizer.lr`); a start clip
    by its content, not only its path."""
    values = OmegaConf.to_container(OmegaConf.masked_copy(cfg, list(RESULT_KEYS)), resolve=True)
    for key in ("unit", "direction", "text"):  # which target a row is, not how it is made
        values["objective"].pop(key, None)
    values["model"].pop("listener", None)  # who judges the result, not how it is made
    flat = {}

    def walk(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = node

    walk("", values)
    digests = [weights_digest(member) for member in builder.model_spec(cfg.model).members()]
    if any(digests):  # a local folder's weights, by content: replaced in place they are another model
        flat["model.weights_sha256"] = digests[0] if len(digests) == 1 else digests
    if flat.get("parameterization.init"):
        path = Path(str(flat["parameterization.init"])).expanduser()
        flat["parameterization.init_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return flat


def target_settings(settings: dict, target: Target) -> dict:
    if target.vector is None:
        return settings
    return {**settings, "objective.direction": hashlib.sha256(target.vector.tobytes()).hexdigest()[:16]}


class AudiationJob:
    """One audiation job in one folder: `with AudiationJob(cfg, folder) as job: job.run()`.

    Entering checks the config (reading only the model's config file), takes the folder's lock and
    decides which targets to audiate; any problem is an AudiationError before anything is written."""

    def __init__(self, cfg: DictConfig, job_dir: Path, group: str | None = None):
        self.cfg, self.job_dir, self.group = cfg, Path(job_dir), group
        self.plan = builder.plan(cfg)
        self.settings = result_settings(cfg)
        self.lock = FolderLock(self.job_dir)
        self.batch_size = self.plan.batch_size  # "auto" until the model is loaded and a size is chosen
        self.cache = None  # the dataset activations of quality.data, once opened

    def __enter__(self):
        self.lock.__enter__()
        try:
            self.todo = self._todo()
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)

    def _todo(self) -> list[Target]:
        """The targets to audiate now; refuses targets that are complete with other settings."""
        todo, differing = [], {}
        for target in self.plan.targets:
            record = results.read_record(self.job_dir, target.name)
            if record is None:
                todo.append(target)
                continue
            changed = results.settings_difference(record.get("settings") or {}, target_settings(self.settings, target))
            if changed:
                differing[target.name] = (changed, record.get("settings") or {})
                if self.cfg.redo:
                    todo.append(target)
        if todo and todo[0].sample is not None:  # a target's samples are optimised together, or not at all
            redo = {t.group for t in todo}
            todo = [t for t in self.plan.targets if t.group in redo]
        if differing and not self.cfg.redo:
            (name, (keys, old)), *_ = differing.items()
            new = target_settings(self.settings, next(t for t in self.plan.targets if t.name == name))
            shown = ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys[:4])
            shown += " ..." if len(keys) > 4 else ""
            raise AudiationError(f"{len(differing)} target(s) in {self.job_dir} were made with other settings "
                                 f"({shown}); use a new folder, or redo=true to audiate them again")
        done = len(self.plan.targets) - len(todo)
        if done:
            log.info("%d of %d targets already complete in %s; audiating the other %d", done, len(self.plan.targets),
                     self.job_dir, len(todo))
        return todo

    @property
    def name(self) -> str:
        """`L8-U42-channel` for one target, `L8-U0..L8-U63-channel` for several."""
        return batch_name(self.plan.targets)

    def run(self) -> dict:
        cfg, plan = self.cfg, self.plan
        started = time.perf_counter()
        configure(plan.device, builder.threads(cfg.threads), cfg.tf32)
        earlier = results.read_metrics(self.job_dir) or {}
        previous = earlier.get("run", {})
        order = [*(r.get("name") for r in earlier.get("targets", []) if isinstance(r, dict)),
                 *(t.name for t in plan.targets)]
        joined_before = results.read_history(self.job_dir)  # targets made before they had their own history file
        loop_seconds, target_steps, batch_steps, stopped, fresh, histories = 0.0, 0, 0, None, {}, {}
        tracker = tracking.Tracker()
        if self.todo:
            # A sweep's runs share its folder's name as their group; a single run is a group of its own.
            group = self.group or f"{self.job_dir.parent.name}_{self.job_dir.name}"
            tracker = tracking.start(cfg.logger, job_dir=self.job_dir, name=self.name, group=group,
                                     job_type=plan.objective,
                                     tags=[plan.labels["model"], plan.labels["parameterization"]],
                                     config=self._tracker_config(), sample_rate=plan.geometry.sample_rate)
        with tracker, outputs.Writer() as writer:
            try:
                for result, batch, records in self._batches(tracker, writer):
                    loop_seconds += result.seconds
                    target_steps += result.steps * len(batch)
                    batch_steps += result.steps
                    fresh.update({r["name"]: r for r in records})
                    histories.update({t.name: {k: v[:, i] for k, v in result.history.items()}
                                      for i, t in enumerate(batch)})
                    if result.stopped:
                        stopped = result.stopped
                        break
            except KeyboardInterrupt:  # between batches (quality numbers, files): what is finished is kept
                stopped = "interrupted"
            with errors.Shielded() as shield:  # the wrap-up must finish: a SIGTERM now waits for its end
                writer.flush()
                complete = {r["name"]: r for r in results.folder_records(self.job_dir, order)}
                stopped_now = [r for name, r in fresh.items() if name not in complete]  # their last signal, no record
                records = [*complete.values(), *stopped_now]
                for name in complete:
                    if name not in histories:
                        histories[name] = results.read_target_history(self.job_dir, name) or joined_before.get(name)
                histories = {name: histories[name] for name in (r["name"] for r in records) if histories.get(name)}
                metrics = self._metrics(records, previous, loop_seconds, target_steps, batch_steps, len(fresh),
                                        stopped, time.perf_counter() - started)
                results.write_metrics(self.job_dir, metrics)
                if histories:
                    joined = results.write_history(self.job_dir, histories)
                    outputs.write_loss_curve(self.job_dir / "loss_curve.png", joined, self.name)
                tracker.log_targets([results.table_row(self.job_dir, r) for r in records])
            stopped = "interrupted" if shield.came or stopped == "interrupted" else stopped
            if stopped == "interrupted":
                raise KeyboardInterrupt
            if stopped:
                raise AudiationError(f"job {self.name}: {stopped}; the last finite signal was saved in "
                                     f"{self.job_dir / 'targets'}")
        return metrics

    def _tracker_config(self) -> dict:
        cfg, plan = self.cfg, self.plan
        units = [t.unit for t in plan.targets if t.unit is not None]
        flat = {"layer": plan.layer.label, "layer_index": layer_index(plan.layer, load_config(plan.spec)),
                "unit": OmegaConf.to_container(cfg.objective).get("unit"),
                "unit_min": min(units, default=None), "unit_max": max(units, default=None),
                **plan.labels, "steps": plan.settings.steps, "lr": cfg.optimizer.lr,
                "seconds": cfg.parameterization.seconds, "seed": cfg.seed, "targets": len(plan.targets)}
        return {**flat, "config": OmegaConf.to_container(cfg, resolve=True)}

    def _batches(self, tracker: tracking.Tracker, writer: outputs.Writer):
        """Audiate the targets to do, batch by batch: yields (result, targets, records); each batch's files
        are queued on the writer before the next batch starts."""
        cfg, plan = self.cfg, self.plan
        if not self.todo:
            return
        encoder = load_encoder(plan.spec, plan.device, cfg.compile)
        if cfg.quality.data and plan.targets[0].unit is not None:  # ratios and examples are per unit
            self.cache = open_cache(plan.spec, plan.layer, load_config(plan.spec), plan.data_files,
                                    cfg.quality.cache_dir, plan.device)
        listener = None if plan.listener is None else load_encoder(plan.listener, plan.device)
        settings = quality.QualitySettings(int(cfg.quality.draws), int(cfg.seed),
                                           None if self.cache is None else self.cache.stats, listener)
        configure(plan.device, builder.threads(cfg.threads), cfg.tf32, autotune=True)  # the caches are built
        size = plan.batch_size
        if size == "auto":
            size = fastest_batch(encoder, plan.layer, plan.geometry.num_samples, len(self.todo), plan.device,
                                 plan.settings.precision)
            log.info("batch_size=auto chose %d", size)
        per_target = int(cfg.samples)
        size = max(per_target, size // per_target * per_target)  # a target's samples share one batch
        self.batch_size = size
        chunks = [self.todo[i:i + size] for i in range(0, len(self.todo), size)]
        for number, targets in enumerate(chunks, 1):
            batch = builder.build_batch(cfg, plan, targets)
            offset, names = tracker.step, batch.names

            def on_log(first_step, terms, current_signal, offset=offset, names=names):
                tracker.log_steps(offset + first_step, terms)
                last_step = first_step + len(terms["loss"])
                if last_step < plan.settings.steps and tracker.wants_media(last_step):  # the end is logged below
                    tracker.log_media(offset + last_step, list(zip(names, current_signal())))

            label = f"{batch_name(targets)} [{number}/{len(chunks)}]"
            result = audiate(encoder, plan.layer, batch, plan.settings, on_log, label)
            tracker.step = offset + result.steps
            tracker.log_media(tracker.step, list(zip(names, result.signal)))
            scores = quality.measure(encoder, plan.layer, batch, result.signal, result.final, plan.geometry,
                                     plan.frame, settings)
            records = [self._record(result, i, t, scores[i]) for i, t in enumerate(targets)]
            if targets[0].unit is not None:  # each unit over time on its audiation, for the page
                traces = quality.unit_traces(encoder, plan.layer, result.signal, [t.unit for t in targets], plan.device)
                for record, trace in zip(records, traces):
                    record["activation_trace"] = [round(float(v), 3) for v in trace]
                    record["trace_hop_seconds"] = plan.geometry.hop / plan.geometry.sample_rate
                    record["trace_offset_seconds"] = plan.geometry.field / 2 / plan.geometry.sample_rate
            if encoder.vocabulary is not None and plan.layer.kind == "logits":
                for record in records:  # the character a CTC output unit stands for
                    record["character"] = encoder.vocabulary[record["unit"]] if record["unit"] is not None else None
            self._write_files(result, records, writer)
            yield result, targets, records

    def _record(self, result: Result, row: int, target: Target, scores: dict) -> dict:
        plan = self.plan
        initial, final = float(result.initial["activation"][row]), float(result.final["activation"][row])
        # Conv units are GELU outputs: from below GELU's minimum a maximiser drives the input to -inf, where
        # the output only "rises" to its asymptote 0. That is no progress either.
        to_asymptote = plan.layer.kind == "conv" and initial < final <= 0 and final > -ASYMPTOTE_MARGIN
        stalled = bool(result.stalled is not None and result.stalled[row]) or to_asymptote
        return {
            "name": target.name, "layer": target.layer.label, "unit": target.unit, "text": target.text,
            "direction_index": target.index,
            "objective": target.objective, "frame": plan.frame,
            "initial_activation": initial, "final_activation": final,
            "initial_terms": {k: float(v[row]) for k, v in result.initial.items()},
            "final_terms": {k: float(v[row]) for k, v in result.final.items()},
            "sample": target.sample, "group": target.group,
            "steps": result.steps, "stopped": result.stopped, "no_progress": stalled,
            **plan.labels, **scores,
            "settings": target_settings(self.settings, target),
            "waveform": outputs.envelope(result.signal[row]),
            "files": results.target_files(target.name),
        }

    def _write_files(self, result: Result, records: list[dict], writer: outputs.Writer) -> None:
        """Queue one batch's files: spectrograms computed here for the whole batch on the device, the
        encoding and writing on the writer's thread, each target's record last (it marks it complete)."""
        plan, job_dir = self.plan, self.job_dir
        rate = plan.geometry.sample_rate
        signal = torch.from_numpy(result.signal).to(plan.device)
        indices, hop = outputs.spectrogram_indices(signal, rate)
        outputs.palette()  # imports matplotlib here: an import racing between two threads leaves it half-made
        mark = None if plan.frame is None else plan.geometry.frame_centre_seconds(plan.frame)
        stalled = [r["name"] for r in records if r["no_progress"]]
        if stalled:
            log.warning("warning: %d target(s) made no progress (%s): they did not move at all (the optimiser's "
                        "state overflowed or the objective has no gradient: check the regularizer weights), or a "
                        "GELU output only rose to its asymptote at 0 from below", len(stalled),
                        ", ".join(stalled[:3]) + (" ..." if len(stalled) > 3 else ""))

        read = _last_file_reader(rate)

        def write(row: int, record: dict):
            folder, files = results.target_folder(job_dir, record["name"]), record["files"]
            if self.cache is not None and record["unit"] is not None and self.cfg.examples.top_k:  # natural examples
                cfg = self.cfg.examples
                found = top_examples(self.cache, record["unit"], int(cfg.top_k), float(cfg.min_gap_seconds))
                record["examples"] = write_examples_of_unit(job_dir, self.cache, record["unit"], found,
                                                            plan.layer.label, float(cfg.clip_seconds), read)["examples"]
            outputs.write_wav(job_dir / files["wav"], result.signal[row], rate, "FLOAT")
            outputs.write_wav(job_dir / files["wav_16bit"], result.signal[row], rate, "PCM_16")
            outputs.write_bytes(job_dir / files["spectrogram"], outputs.spectrogram_png(
                indices[row], hop, result.signal.shape[1], rate, record["name"], mark))
            if result.stopped is None:  # only a finished target counts as complete when a job resumes
                results.write_target_history(job_dir, record["name"], {k: v[:, row] for k, v in result.history.items()})
                results.write_record(job_dir, record)
            else:
                (folder / results.RECORD).unlink(missing_ok=True)

        for row, record in enumerate(records):
            writer.submit(lambda row=row, record=record: write(row, record))

    def _metrics(self, records, previous: dict, loop_seconds: float, target_steps: int, batch_steps: int,
                 audiated: int, stopped: str | None, wall_seconds: float) -> dict:
        plan = self.plan
        loop_total = previous.get("loop_seconds", 0.0) + loop_seconds
        steps_total = previous.get("target_steps", 0) + target_steps
        batch_steps_total = previous.get("batch_steps", 0) + batch_steps
        run = {"name": self.name, "group": self.group, "layer": plan.layer.label, **plan.labels,
               "device": plan.device, "seed": self.cfg.seed, "steps": plan.settings.steps,
               "batch_size": self.batch_size, "targets": len(plan.targets), "complete": sum(
                   r.get("stopped") is None for r in records),
               "audiated_now": audiated, "runs": previous.get("runs", 0) + 1,
               "wall_seconds": previous.get("wall_seconds", 0.0) + wall_seconds, "loop_seconds": loop_total,
               "target_steps": steps_total, "batch_steps": batch_steps_total,
               "target_steps_per_second": steps_total / loop_total if loop_total else None,
               "steps_per_second": batch_steps_total / loop_total if loop_total else None,  # of the loop
               "stopped": stopped}
        return {"run": run, "targets": records}


def batch_name(targets: list[Target]) -> str:
    """`L8-U0..L8-U63-unit` for units, `text-moon..text-star` for texts, the name itself for one target."""
    first, last = targets[0].name, targets[-1].name
    if len(targets) == 1:
        return first
    stem, _, suffix = first.rpartition("-")
    return f"{stem}..{last}" if last.endswith(f"-{suffix}") else f"{first}..{last}"


def audiate_folder(cfg: DictConfig, job_dir: Path, group: str | None = None) -> dict:
    """Run one audiation job into `job_dir` and return its metrics (the library call behind `audiation.run`)."""
    with AudiationJob(cfg, job_dir, group) as job:
        return job.run()


# --- dataset examples --------------------------------------------------------------------------------------


def examples_plan(cfg: DictConfig):
    """Check an examples job's values, reading only the model's config file and listing the data."""
    builder.known_keys(cfg)
    builder.number(cfg.top_k, "top_k", int)
    builder.number(cfg.clip_seconds, "clip_seconds")
    builder.number(cfg.min_gap_seconds, "min_gap_seconds", strict=False, finite=False)  # inf: one per file
    builder.number(cfg.data.max_seconds, "data.max_seconds")
    builder.threads(cfg.threads)
    builder.check_logger(cfg.logger)
    if OmegaConf.is_missing(cfg.data, "path") or cfg.data.path in (None, ""):
        raise AudiationError("data.path is required: the folder of audio files to search (data.path=/path/to/audio)")
    builder.writable_folder(cfg.data.cache_dir, "data.cache_dir")
    device = builder.resolve_device(cfg.device)
    spec = builder.model_spec(cfg.model)
    config = load_config(spec)
    layer = parse_layer(cfg.model.layer, config)
    units = builder.parse_units(cfg.units, num_units(layer, config), f"layer {layer.label}", name="units")
    files = data.list_audio(cfg.data.path)
    return spec, config, layer, units, files, device


def _last_file_reader(sample_rate: int):
    """read(file) -> signal, keeping the last file: the same file often serves several units in a row."""
    last: dict[str, np.ndarray] = {}

    def read(file: str) -> np.ndarray:
        if file not in last:
            last.clear()
            last[file] = data.read_audio(file, sample_rate)
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
        with outputs.atomic(wav) as temporary:
            sf.write(temporary, np.clip(clip, -1, 1), cache.sample_rate, subtype="PCM_16", format="WAV")
        title = (f"{name} #{example.rank}: {Path(example.file).name} at {example.time_seconds:.2f} s "
                 f"({example.activation:.3g})")
        outputs.write_spectrogram(png, clip, cache.sample_rate, title, mark)
        times, trace = cache.trace(unit, example.frame, clip_seconds)
        records.append({"rank": example.rank, "file": example.file, "time_seconds": round(example.time_seconds, 4),
                        "activation": example.activation, "clip": str(wav.relative_to(job_dir)),
                        "spectrogram": str(png.relative_to(job_dir)), "text": data.transcript(example.file),
                        "clip_seconds": clip_seconds, "trace_seconds": times, "trace": trace})
    stats = {key: float(cache.stats[key][unit]) for key in STATS}
    return {"name": name, "layer": label, "unit": unit, "stats": stats, "examples": records}


def examples_job(cfg: DictConfig, job_dir: Path, group: str | None = None) -> dict:
    """The top natural examples of each unit into `job_dir` (the library call behind `audiation.examples`)."""
    spec, config, layer, units, files, device = examples_plan(cfg)
    configure(device, builder.threads(cfg.threads))
    cache = open_cache(spec, layer, config, files, cfg.data.cache_dir, device, cfg.data.max_seconds)
    read = _last_file_reader(spec.sample_rate)
    found = []
    for unit, values in cache.columns(units):
        examples = top_examples(cache, unit, int(cfg.top_k), float(cfg.min_gap_seconds), values)
        found.append(write_examples_of_unit(job_dir, cache, unit, examples, layer.label, float(cfg.clip_seconds), read))
    gap = float(cfg.min_gap_seconds)
    summary = {
        "model": spec.short_name, "layer": layer.label, "data": str(Path(cfg.data.path).expanduser().resolve()),
        "cache": str(cache.folder), "files": len(cache.files), "skipped": cache.skipped, "frames": cache.num_frames,
        "audio_seconds": cache.meta["audio_seconds"], "sample_rate": spec.sample_rate, "top_k": int(cfg.top_k),
        "clip_seconds": float(cfg.clip_seconds),
        "min_gap_seconds": gap if math.isfinite(gap) else None,  # JSON has no infinity
        "units": found,
    }
    outputs.write_json(job_dir / "examples.json", summary)
    rows = [{"unit": u["unit"], "rank": e["rank"], "audio": str(job_dir / e["clip"]),
             "spectrogram": str(job_dir / e["spectrogram"]), "file": e["file"], "time": e["time_seconds"],
             "activation": e["activation"], "text": e["text"]} for u in found for e in u["examples"]]
    config_ = {"layer": layer.label, "units": OmegaConf.to_container(cfg).get("units"), "model": spec.short_name,
               "data": summary["data"], "top_k": summary["top_k"], "config": OmegaConf.to_container(cfg, resolve=True)}
    with tracking.start(cfg.logger, job_dir=job_dir, name=f"{layer.label}-examples", group=group, job_type="examples",
                        tags=[spec.short_name, "examples"], config=config_, sample_rate=spec.sample_rate) as tracker:
        tracker.log_examples(rows)
    return summary


# --- paralinguistic directions -----------------------------------------------------------------------------


def directions_job(cfg: DictConfig, job_dir: Path) -> dict:
    """A direction at one layer that separates `positive` from `negative` clips: both methods fitted on
    the training clips and scored (AUC) on the held-out ones; the chosen one written as a unit-length .npy."""
    from audiation import probes

    builder.known_keys(cfg)
    if cfg.method not in ("probe", "mean"):
        raise AudiationError(f"method={cfg.method} is not one of probe, mean")
    fraction = builder.number(cfg.held_out, "held_out")
    if fraction >= 1:
        raise AudiationError(f"held_out={cfg.held_out} must be below 1")
    l2 = builder.number(cfg.l2, "l2", strict=False)
    builder.writable_folder(cfg.data.cache_dir, "data.cache_dir")
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
    device = builder.resolve_device(cfg.device)
    configure(device, builder.threads(cfg.threads))
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
