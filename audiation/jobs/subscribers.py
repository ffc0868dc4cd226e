"""The outputs of an audiation job, as subscribers to its events. None knows the others; each reads the
records (whose fields `record_schema` defines) and the results the job hands it.

The job tells every subscriber, in order: `batch_started` (the batch's target names), `steps` (each
`log_every` steps: the loss terms, and a way to fetch the current signal), `batch_done` (the batch's
result and records), `flush` (wait until everything so far is safe), and `job_done` (the job's metrics
and every target's loss history).

- `Files`: the local files, which are never lost: each target's audio, spectrogram, history and record
  as its batch ends (on a background thread while the next batch optimises), the job's metrics, history
  and loss curve at the end. The judges (`quality.judges`, `quality.whisper`) hear each target once its files
  are written (`judges.Panel`: neural judges on that thread, CPU judges in worker processes); its record
  waits for them.
- `Tracking`: the W&B run (or a run per target), a second copy: loss terms per step, media, the
  per-target table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from audiation import errors
from audiation.config.builder import Plan
from audiation.core.objectives import Target
from audiation.core.render import Result
from audiation.data.activations import ActivationCache, top_examples
from audiation.hearing import judges, phones
from audiation.jobs.examples_job import last_file_reader, write_examples_of_unit
from audiation.outputs import disk, results, tracking


class Subscriber:
    """Does nothing; subscribers override the events they care about."""

    def batch_started(self, names: list[str]) -> None: ...

    def steps(self, first_step: int, terms: dict[str, np.ndarray], current_signal) -> None: ...

    def batch_done(self, result: Result, targets: list[Target], records: list[dict]) -> None: ...

    def flush(self) -> None: ...

    def job_done(self, metrics: dict, histories: dict[str, dict[str, np.ndarray]]) -> None: ...


def noted(record: dict, what: str, work: Callable[[], object]) -> None:
    """`work()`, or a note in the record of what failed: a unit's name or examples (from data files that may
    have moved since the cache was built) cost only themselves, never the batch's other files."""
    try:
        work()
    except Exception as error:
        record["measures_note"] = "; ".join(filter(None, [record.get("measures_note"),
                                                          errors.failure_note(what, error)]))


class Files(Subscriber):
    """Every file of the job folder. With a dataset cache (`quality.data`), each unit's natural examples
    are written beside its audiation and put in its record, with its phone name (`phones`)."""

    def __init__(self, job_dir: Path, plan: Plan, writer: disk.Writer, title: str,
                 cache: ActivationCache | None = None, frame_phones: phones.FramePhones | None = None,
                 judged: tuple[judges.Judge, ...] = ()):
        self.job_dir, self.plan, self.writer, self.title = Path(job_dir), plan, writer, title
        self.cache, self.frame_phones = cache, frame_phones
        self.read = last_file_reader(plan.geometry.sample_rate)
        # Started now, so the judges' workers load while the first batch optimises; the loop's threads
        # (one on a GPU) are the cores they leave alone.
        self.judges = judges.panel(plan.device, torch.get_num_threads() if plan.device == "cpu" else 1, judged) \
            if judged else None

    def batch_done(self, result, targets, records):
        """Queue one batch's files: spectrograms computed here for the whole batch on the device, the
        encoding and writing on the writer's thread. The judges hear each target once its files are
        written, and its record comes last (it marks it complete), with their verdicts."""
        plan, job_dir = self.plan, self.job_dir
        rate = plan.geometry.sample_rate
        indices, hop = disk.spectrogram_indices(torch.from_numpy(result.signal).to(plan.device))
        disk.palette()  # imports matplotlib here: an import racing between two threads leaves it half-made
        mark = None if plan.frame is None else plan.geometry.frame_centre_seconds(plan.frame)

        judged = self.judges is not None and result.stopped is None  # a stopped target is redone: never judged
        hearing = self.judges.hear(result.signal, rate, [judges.About(mark, t.text) for t in targets],
                                   lambda row, verdict: finish(records[row], verdict)) if judged else None

        def write(row: int, record: dict):  # every file first: nothing that may fail on a signal comes before
            files = record["files"]
            disk.write_wav(job_dir / files["wav"], result.signal[row], rate, "FLOAT")
            disk.write_wav(job_dir / files["wav_16bit"], result.signal[row], rate, "PCM_16")
            disk.write_bytes(job_dir / files["spectrogram"], disk.spectrogram_png(
                indices[row], hop, result.signal.shape[1], rate, record["name"], mark))
            units = self.plan.kind.of_units
            if self.frame_phones is not None and units:  # the unit's name
                noted(record, "the unit's name", lambda: record.update(
                    phones.name_unit(self.cache.column(record["unit"]), self.frame_phones)))
            if self.cache is not None and units and plan.examples.top_k:
                noted(record, "the natural examples", lambda: record.update(examples=self._examples(record["unit"])))
            if result.stopped is None:
                results.write_target_history(job_dir, record["name"], {k: v[:, row] for k, v in result.history.items()})
            if hearing is None:
                finish(record)
            else:
                hearing.written(row)  # the CPU judges start on it while the next rows are written

        def finish(record: dict, verdict: dict | None = None):  # the record last: it marks the target complete
            if verdict is not None:
                record.update(verdict)
            if self.frame_phones is not None and self.plan.kind.of_units:  # is the unit's phone heard?
                record["heard_as_label"] = phones.heard_as_label(record)
            if result.stopped is None:  # only a finished target counts as complete when a job resumes
                results.write_record(job_dir, record)
            else:
                (results.target_folder(job_dir, record["name"]) / results.RECORD).unlink(missing_ok=True)

        for row, record in enumerate(records):
            self.writer.submit(lambda row=row, record=record: write(row, record))
        if hearing is not None:
            self.writer.submit(hearing.all_written)  # the neural judges, on the whole batch

    def _examples(self, unit: int) -> list[dict]:
        """The unit's top natural examples, their clips and pictures written into the job folder."""
        examples = self.plan.examples
        found = top_examples(self.cache, unit, examples.top_k, examples.min_gap_seconds)
        return write_examples_of_unit(self.job_dir, self.cache, unit, found, self.plan.layer.label,
                                      examples.clip_seconds, self.read)["examples"]

    def flush(self):
        self.writer.flush()  # every file, and every signal handed to the judges
        if self.judges is not None:
            self.judges.wait()  # every verdict, and with it every record

    def job_done(self, metrics, histories):
        results.write_metrics(self.job_dir, metrics)
        if histories:
            joined = results.write_history(self.job_dir, histories)
            disk.write_loss_curve(self.job_dir / "loss_curve.png", joined, self.title)


class Tracking(Subscriber):
    """The job's W&B run (or runs, or nothing, with `logger=none`): the media of the first batch's first
    targets as they optimise (every `media_every` steps) and at its end; at the job's end, every target's
    loss terms and table row."""

    def __init__(self, tracker: tracking.Tracker, job_dir: Path, steps: int):
        self.tracker, self.job_dir, self.steps_per_batch = tracker, Path(job_dir), steps
        self.batches, self.names = 0, []

    def batch_started(self, names):
        self.batches, self.names = self.batches + 1, names

    def steps(self, first_step, terms, current_signal):
        last_step = first_step + len(terms["loss"])
        if self.batches == 1 and last_step < self.steps_per_batch and self.tracker.wants_media(last_step):
            self.tracker.log_media(last_step, list(zip(self.names, current_signal())))  # the end: batch_done

    def batch_done(self, result, targets, records):
        if self.batches == 1:
            self.tracker.log_media(result.steps, list(zip(self.names, result.signal)))

    def job_done(self, metrics, histories):
        self.tracker.log_job([results.table_row(self.job_dir, r) for r in metrics["targets"]], histories)
