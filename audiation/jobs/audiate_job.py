"""The audiation job (`python -m audiation.run`): plan -> optimise -> measure -> record, batch by batch.

`audiate_folder` checks everything before any work (`builder.plan`, reading only the model's config file);
`AudiationJob` gets only that plan (never the config), takes the folder's lock and decides which targets
are still to do (`folder`); then it loads the model,
optimises each batch (`render.audiate`), measures it (`quality`) and makes each target's record (whose
fields `record_schema` defines). What becomes of the records is its subscribers' business (`subscribers`:
files, W&B): they hear each batch start, its steps and its end, and the job's end.

Why ~360 lines in one module: the steps share one folder lock, one set of loaded models and one writer
thread for the whole job; split, each would pass all three back and forth.
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from pathlib import Path
from typing import NamedTuple

import torch
from omegaconf import DictConfig

from audiation import errors
from audiation.config import builder
from audiation.core import sae
from audiation.core.objectives import Target
from audiation.core.render import LoopSettings, Result, audiate, fastest_batch, progress_bar
from audiation.core.runtime import configure
from audiation.data.activations import ActivationCache, derived_cache, open_cache
from audiation.errors import AudiationError
from audiation.hearing import judges, phones, quality, verdicts
from audiation.jobs.examples_job import last_file_reader
from audiation.jobs.folder import (
    FolderLock,
    asked_measures,
    refuse_foreign,
    target_settings,
    targets_to_do,
)
from audiation.jobs.subscribers import Files, Subscriber, Tracking
from audiation.models.encoder import Encoder, load_encoder
from audiation.outputs import disk, results, tracking

log = logging.getLogger(__name__)

PROBE_STEPS = 5  # optimisation steps a dry run times to estimate a job
FILED_TARGET_SECONDS, JUDGED_TARGET_SECONDS = 0.02, 0.07  # a target's files, and with the judges, on CPU
ASYMPTOTE_MARGIN = 0.01  # a GELU output within this of 0 from below, after rising: it went to x -> -inf


class Models(NamedTuple):
    """What a job loads once, after every check: the model, the dataset cache and its frames' phones, the
    quality settings."""
    encoder: Encoder
    cache: ActivationCache | None
    phones: phones.FramePhones | None
    quality: quality.QualitySettings


class AudiationJob:
    """One audiation job in one folder: `with AudiationJob(builder.plan(cfg), folder) as job: job.run()`.

    Entering takes the folder's lock and decides which targets to audiate; any problem is an AudiationError
    before anything is written."""

    def __init__(self, plan: builder.Plan, job_dir: Path, group: str | None = None):
        self.plan, self.job_dir, self.group = plan, Path(job_dir), group
        self.lock = FolderLock(self.job_dir)
        self.batch_size = self.plan.batch_size  # "auto" until the model is loaded and a size is chosen
        self.data_cer = None  # the model's own CER on quality.data's transcribed files, once loaded

    def __enter__(self):
        refuse_foreign(self.job_dir)
        self.lock.__enter__()
        try:
            self.todo = targets_to_do(self.plan.targets, self.plan.result_settings, self.job_dir, self.plan.redo,
                                      asked_measures(self.plan))
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)

    @property
    def name(self) -> str:
        """`L8-U42-channel` for one target, `L8-U0..L8-U63-channel` for several."""
        return batch_name(self.plan.targets)

    def run(self) -> dict:
        plan = self.plan
        started = time.perf_counter()
        configure(plan.device, plan.threads, plan.tf32)
        earlier = results.read_metrics(self.job_dir) or {}
        order = [*(r.get("name") for r in earlier.get("targets", []) if isinstance(r, dict)),
                 *(t.name for t in plan.targets)]
        joined_before = results.read_history(self.job_dir)  # targets made before they had their own history file
        loop_seconds, target_steps, batch_steps, stopped, fresh, histories = 0.0, 0, 0, None, {}, {}
        tracker = tracking.Tracker()
        if self.todo:
            # A sweep's runs share its group; a single run is a group of its own.
            group = self.group or f"{self.job_dir.parent.name}_{self.job_dir.name}"
            tracker = tracking.start(plan.logger, job_dir=self.job_dir, name=self.name, group=group,
                                     job_type=plan.objective,
                                     tags=[plan.labels["model"], plan.labels["parameterization"]],
                                     config={"job": self.job_dir.name, **plan.run_config},
                                     sample_rate=plan.geometry.sample_rate)
        with tracker, disk.Writer() as writer:
            models = self._load() if self.todo else None
            subscribers = [Files(self.job_dir, plan, writer, self.name, models and models.cache,
                                 models and models.phones, judges.chosen(plan.quality.judges, plan.quality.whisper)),
                           Tracking(tracker, self.job_dir, plan.settings.steps)]
            try:
                for result, batch, records in self._batches(models, subscribers):
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
                for subscriber in subscribers:
                    subscriber.flush()
                complete = {r["name"]: r for r in results.folder_records(self.job_dir, order)}
                stopped_now = [r for name, r in fresh.items() if name not in complete]  # their last signal, no record
                records = [*complete.values(), *stopped_now]
                for name in complete:
                    if name not in histories:
                        histories[name] = results.read_target_history(self.job_dir, name) or joined_before.get(name)
                histories = {name: histories[name] for name in (r["name"] for r in records) if histories.get(name)}
                metrics = self._metrics(records, earlier.get("run", {}), loop_seconds, target_steps, batch_steps,
                                        len(fresh), stopped, time.perf_counter() - started)
                # every verdict beside its chance rate: needs the whole job's audiations, so it is made here
                metrics["run"]["verdicts"] = verdicts.annotate(metrics["targets"])
                for subscriber in subscribers:
                    subscriber.job_done(metrics, histories)
            stopped = "interrupted" if shield.came or stopped == "interrupted" else stopped
            if stopped == "interrupted":
                raise KeyboardInterrupt
            if stopped:
                raise AudiationError(f"job {self.name}: {stopped}; the last finite signal was saved in "
                                     f"{self.job_dir / 'targets'}")
        return metrics

    def _load(self) -> Models:
        """The model, the dataset cache of `quality.data` (ratios and examples are per unit), the listener,
        and the batch size (`auto`: the fastest that fits, measured now)."""
        plan = self.plan
        encoder, dictionary = self._encoder()
        cache = None
        if plan.quality.data and plan.kind.of_units:
            cache = open_cache(plan.spec, plan.layer, plan.model_config, plan.data_files, plan.quality.cache_dir,
                               plan.device)
            if dictionary is not None:  # the features' activations on the data, from the layer's cache
                cache = derived_cache(cache, lambda x: dictionary.pre(torch.from_numpy(x).to(plan.device)).cpu().numpy(),
                                      f"sae-{self.plan.result_settings['objective.sae_sha256']}", f"features of {plan.sae}")
        # each unit's phone name comes from the phones of its top frames on the data
        frame_phones = None if cache is None else phones.frame_labels(cache, last_file_reader(plan.geometry.sample_rate))
        # how well the model hears the data its units are named on: what the names rest on
        self.data_cer = None if frame_phones is None or plan.sae is not None else quality.cached_data_error_rate(
            cache.folder, lambda: encoder, plan.data_files)
        listener = None if plan.listener is None else load_encoder(plan.listener, plan.device)
        configure(plan.device, plan.threads, plan.tf32, autotune=True)  # the caches are built
        self._choose_batch_size(encoder)
        quality_settings = quality.QualitySettings(plan.quality.draws, plan.seed,
                                                   None if cache is None else cache.stats, listener)
        return Models(encoder, cache, frame_phones, quality_settings)

    def _encoder(self):
        """The model (for objective=feature seen through its SAE, features as its units), and the SAE."""
        plan = self.plan
        encoder = load_encoder(plan.spec, plan.device, plan.compile)
        dictionary = None if plan.sae is None else sae.load(plan.sae, plan.device)
        return (encoder if dictionary is None else sae.FeatureView(encoder, dictionary)), dictionary

    def _choose_batch_size(self, encoder) -> None:
        """`batch_size`, or with `auto` the fastest that fits (measured now); a target's samples share one batch."""
        plan, size = self.plan, self.plan.batch_size
        if size == "auto":
            size = fastest_batch(encoder, plan.layer, plan.geometry.num_samples, len(self.todo), plan.device,
                                 plan.settings.precision)
            log.info("batch_size=auto chose %d", size)
        self.batch_size = builder.batch_rows(size, plan.samples)

    def estimate(self, probe_steps: int = PROBE_STEPS) -> dict:
        """What a run would do, without doing it or writing anything: the targets still to do, their
        batches, and about how long they take, from `probe_steps` optimisation steps of the first batch
        timed now (the model is loaded; a `quality.data` cache is not built)."""
        plan = self.plan
        estimate = {"name": self.name, "targets": len(plan.targets), "todo": len(self.todo), "batches": 0,
                    "batch_size": self.batch_size, "steps": plan.settings.steps, "device": plan.device,
                    "seconds_per_step": None, "seconds": 0.0}
        if not self.todo:
            return estimate
        configure(plan.device, plan.threads, plan.tf32, autotune=True)
        encoder, _ = self._encoder()
        self._choose_batch_size(encoder)
        batch = builder.build_batch(plan, self.todo[:self.batch_size], encoder)
        timed = audiate(encoder, plan.layer, batch, LoopSettings(probe_steps, probe_steps, plan.settings.precision),
                        description="timing one batch")
        per_step = timed.seconds / (probe_steps + 2)  # and its two clean evaluations, about a step each
        batches = -(-len(self.todo) // self.batch_size)
        # Between batches: the quality measures (about a step per augmentation draw) and, per target, its files
        # and the judges (measured around the loop on CPU: experiments/RESULTS.md).
        around = batches * plan.quality.draws * per_step + len(self.todo) * (
            JUDGED_TARGET_SECONDS if plan.quality.judges else FILED_TARGET_SECONDS)
        return {**estimate, "batches": batches, "batch_size": self.batch_size, "seconds_per_step": per_step,
                "seconds": batches * plan.settings.steps * per_step + around}

    def _batches(self, models: Models, subscribers: list[Subscriber]):
        """Optimise, measure and record the targets to do, batch by batch: yields (result, targets, records)
        once every subscriber has heard the batch's end."""
        plan = self.plan
        if not self.todo:
            return
        chunks = [self.todo[i:i + self.batch_size] for i in range(0, len(self.todo), self.batch_size)]
        with closing(progress_bar(len(chunks) * plan.settings.steps, self.name)) as bar:  # the job's ETA
            for number, targets in enumerate(chunks, 1):
                batch = builder.build_batch(plan, targets, models.encoder)
                for subscriber in subscribers:
                    subscriber.batch_started(batch.names)

                def on_log(first_step, terms, current_signal):
                    for subscriber in subscribers:
                        subscriber.steps(first_step, terms, current_signal)

                result = audiate(models.encoder, plan.layer, batch, plan.settings, on_log,
                                 f"{self.name} [batch {number}/{len(chunks)}]", bar)
                # The batch's steps are done: a signal while it is measured waits, or the whole batch is lost.
                with errors.Shielded() as shield:
                    records = self._measure(models, batch, result, targets)
                    for subscriber in subscribers:
                        subscriber.batch_done(result, targets, records)
                yield result, targets, records
                if result.stop_asked:  # it came while the loop made the result: the batch is saved, now stop
                    errors.raise_stop()
                shield.raise_if_came()

    def _measure(self, models: Models, batch, result: Result, targets: list[Target]) -> list[dict]:
        """Each target's record: the optimisation's numbers, the quality measures, and for units their
        activation over time on the audiation (and for CTC outputs, the character)."""
        plan, encoder = self.plan, models.encoder
        notes = []

        def measured(what: str, measure, otherwise):
            """`measure()`, or `otherwise` and a note: a batch's signals are saved whatever a measure does (a
            GPU out of memory, a listener that fails), and its records say what is missing and why."""
            try:
                return measure()
            except Exception as error:
                notes.append(errors.failure_note(what, error))
                return otherwise

        scores = measured("the quality measures", lambda: quality.measure(
            encoder, plan.layer, batch, result.signal, result.final, plan.geometry, plan.frame, models.quality),
            [{}] * len(targets))
        records = [self._record(result, i, t, scores[i]) for i, t in enumerate(targets)]
        if plan.kind.of_units:  # each unit over time on its audiation, for the page
            traces = measured("the activation traces", lambda: quality.unit_traces(
                encoder, plan.layer, result.signal, [t.unit for t in targets], plan.device), [])
            for record, trace in zip(records, traces):
                record["activation_trace"] = [round(float(v), 3) for v in trace]
                record["trace_hop_seconds"] = plan.geometry.hop / plan.geometry.sample_rate
                record["trace_offset_seconds"] = plan.geometry.frame_centre_seconds(0)
        if plan.sae is not None:  # what the features job measured of each feature
            summary = sae.read_summary(plan.sae)
            for record in records:
                record["firing_frequency"] = summary["firing_frequency"][record["unit"]]
                record["nearest_features"] = summary["nearest_features"][record["unit"]]
        if encoder.vocabulary is not None and plan.layer.kind == "logits":
            for record in records:  # the character a CTC output unit stands for
                record["character"] = encoder.vocabulary[record["unit"]] if plan.kind.of_units else None
        if notes:
            log.warning("warning: %s for %s; its signals are saved without them (redo=true measures them again)",
                        "; ".join(notes), batch_name(targets))
            for record in records:
                record["measures_note"] = "; ".join(notes)
        stalled = [r["name"] for r in records if r["no_progress"]]
        if stalled:
            log.warning("warning: %d target(s) made no progress (%s): they did not move at all (the optimiser's "
                        "state overflowed or the objective has no gradient: check the regularizer weights), or a "
                        "GELU output only rose to its asymptote at 0 from below", len(stalled),
                        ", ".join(stalled[:3]) + (" ..." if len(stalled) > 3 else ""))
        return records

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
            "settings": target_settings(self.plan.result_settings, target),
            "waveform": disk.envelope(result.signal[row]),
            "files": results.target_files(target.name),
        }

    def _metrics(self, records, previous: dict, loop_seconds: float, target_steps: int, batch_steps: int,
                 audiated: int, stopped: str | None, wall_seconds: float) -> dict:
        plan = self.plan
        loop_total = previous.get("loop_seconds", 0.0) + loop_seconds
        steps_total = previous.get("target_steps", 0) + target_steps
        batch_steps_total = previous.get("batch_steps", 0) + batch_steps
        run = {"name": self.name, "group": self.group, "layer": plan.layer.label, **plan.labels,
               "device": plan.device, "seed": plan.seed, "steps": plan.settings.steps,
               "batch_size": self.batch_size, "targets": len(plan.targets), "complete": sum(
                   r.get("stopped") is None for r in records),
               "audiated_now": audiated, "runs": previous.get("runs", 0) + 1,
               "wall_seconds": previous.get("wall_seconds", 0.0) + wall_seconds, "loop_seconds": loop_total,
               "target_steps": steps_total, "batch_steps": batch_steps_total,
               "target_steps_per_second": steps_total / loop_total if loop_total else None,
               "steps_per_second": batch_steps_total / loop_total if loop_total else None,  # of the loop
               "seconds_per_target": wall_seconds / audiated if audiated else None,  # this run's, loading included
               "stopped": stopped, "data_cer": self.data_cer}
        return {"run": run, "targets": records}



def batch_name(targets: list[Target]) -> str:
    """`L8-U0..L8-U63-unit` for units, `text-moon..text-star` for texts, the name itself for one target."""
    first, last = targets[0].name, targets[-1].name
    if len(targets) == 1:
        return first
    stem, _, suffix = first.rpartition("-")
    return f"{stem}..{last}" if last.endswith(f"-{suffix}") else f"{first}..{last}"


def audiate_folder(cfg: DictConfig, job_dir: Path, group: str | None = None) -> dict:
    """Check `cfg` (`builder.plan`), run its job into `job_dir` and return its metrics (the library call behind
    `audiation.run`): the config goes no further than the plan."""
    with AudiationJob(builder.plan(cfg), job_dir, group) as job:
        return job.run()
