"""Weights & Biases: one run per job (or, with `logger.runs=target`, one per target), its loss terms per
step, media, and a per-target table.

Every run has the same keys and types, whatever its batch size, targets or mode, so runs compare column by
column in W&B's runs table, parallel coordinates and scatter plots: config (`run_config`: numeric
`layer_index` and `unit`, null when a run has several units, the unit as given in `unit_spec`), history
(`<term>/mean|min|max` at `optimisation_step`, the step within a target's own optimisation, so a job of
three batches and one of a single batch line up; `audio`, `spectrogram`), summary (`summary_of`: every
measure, null where a run's targets have none).

W&B is a second copy, never the only one: callers write local files first, and any W&B failure here is
reported once as a warning and then ignored, so it can never lose a result or stop a sweep. A run is
always finished (with the job's exit code), so the next job of a multirun never writes into it. W&B's own
files, the staging copies of table media included, go under the job folder's `wandb/` (not $HOME), unless
WANDB_DATA_DIR says otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import netrc
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiation.errors import exit_code
from audiation.outputs import record_schema

log = logging.getLogger(__name__)

ROWS_LOGGED_APART = 4  # the audio and spectrograms of this many targets are logged during optimisation
RUNS = ("job", "target")  # logger.runs: one W&B run per job, or one per target
LABELS = ("phone", "text", "transcript")  # a one-target run's words, in its summary (else null)


@dataclass(frozen=True)
class Settings:
    """The `logger` group as checked plain values (`builder.logger_settings`); off by default (`logger=none`)."""

    enabled: bool = False
    mode: str = "disabled"
    runs: str = "job"  # one of RUNS
    project: str | None = None
    entity: str | None = None
    media_every: int = 0
    verbose: bool = False


def logged_in() -> bool:
    """True when W&B has an API key: in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = (os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").split("://")[-1].split("/")[0]
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    if mode == "auto":
        return "online" if logged_in() else "offline"
    return mode


class Tracker:
    """The no-op tracker (`logger=none`); WandbTracker overrides what it records."""

    def log_media(self, step: int, media: list[tuple[str, np.ndarray]]) -> None: ...

    def wants_media(self, step: int) -> bool:
        return False

    def log_job(self, rows: list[dict], histories: dict[str, dict[str, np.ndarray]]) -> None:
        """At the job's end: every target's table row (`results.table_row`) and loss terms per step."""

    def log_examples(self, rows: list[dict]) -> None: ...

    def finish(self, exit_code: int = 0) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _traceback):
        self.finish(exit_code(kind))
        return False


@contextlib.contextmanager
def _data_dir(job_dir: Path):
    """W&B stages a table's media in WANDB_DATA_DIR (default ~/.local/share/wandb): the job's folder instead."""
    if os.environ.get("WANDB_DATA_DIR"):
        yield
        return
    os.environ["WANDB_DATA_DIR"] = str(Path(job_dir).resolve() / "wandb")
    try:
        yield
    finally:
        os.environ.pop("WANDB_DATA_DIR", None)


class WandbTracker(Tracker):
    """One W&B run for the job: media of its first targets as they optimise, and at the end the loss terms
    of all its targets, step by step, the `targets` table and the summary."""

    def __init__(self, settings: Settings, job_dir: Path, name: str, group: str | None, job_type: str,
                 tags: list[str], config: dict, sample_rate: int):
        import wandb

        self.wandb, self.settings, self.job_dir = wandb, settings, Path(job_dir)
        self.sample_rate = sample_rate
        self.media_every = settings.media_every
        self.run = None
        self._guard(lambda: setattr(self, "run", self._init(name, group, job_type, tags, config)))

    def _init(self, name, group, job_type, tags, config):
        verbose = self.settings.verbose
        run = self.wandb.init(
            project=self.settings.project, entity=self.settings.entity, dir=str(self.job_dir),
            mode=resolve_mode(self.settings.mode), name=name, group=group, job_type=job_type, tags=tags,
            config=config, reinit="finish_previous",
            # W&B's banner is ~25 lines per run; its console capture would also copy every progress bar.
            settings=self.wandb.Settings(silent=not verbose, console="auto" if verbose else "off"),
        )
        run.define_metric("optimisation_step")
        run.define_metric("*", step_metric="optimisation_step")
        return run

    def _guard(self, action):
        """Run a W&B call (with its staging folder in the job's); on failure warn once and stop using W&B
        for this job."""
        if self.wandb is None:
            return
        try:
            with _data_dir(self.job_dir):
                action()
        except Exception as error:
            log.warning("warning: W&B disabled for this job (%s: %s); local files are unaffected",
                        type(error).__name__, error)
            self.wandb = None

    def wants_media(self, step):
        return self.wandb is not None and self.media_every > 0 and step % self.media_every == 0

    def log_media(self, step, media):
        self._guard(lambda: self._log_media(self.run, step, media))

    def _log_media(self, run, step, media):
        """One key each, the targets as captions: the same keys in every run."""
        shown = media[:ROWS_LOGGED_APART]
        run.log({"optimisation_step": step,
                 "audio": [self.wandb.Audio(signal, sample_rate=self.sample_rate, caption=name)
                           for name, signal in shown],
                 "spectrogram": [self.wandb.Image(spectrogram_image(signal), caption=name)
                                 for name, signal in shown]})

    def log_job(self, rows, histories):
        def log():
            for record in history_records(histories):
                self.run.log(record)
            self._log_table(rows)
            self.run.summary.update(summary_of(rows))

        if rows:
            self._guard(log)

    def _log_table(self, rows):
        """The table a user sorts and listens through: one row per target, media from the local files."""
        media = ("audio", "spectrogram", "examples")
        examples = max(len(row.get("examples") or []) for row in rows)  # natural examples, one column each
        columns = [c for c in rows[0] if c not in media] + ["audio", "spectrogram"]
        table = self.wandb.Table(columns=columns + [f"example_{k + 1}" for k in range(examples)])
        for row in rows:
            clips = [self.wandb.Audio(path) for path in row.get("examples") or []]
            table.add_data(*[row.get(c) for c in columns[:-2]], self.wandb.Audio(row["audio"]),
                           self.wandb.Image(row["spectrogram"]), *clips, *[None] * (examples - len(clips)))
        self.run.log({"targets": table})

    def log_examples(self, rows):
        """The `examples` table of `audiation.examples`: one row per (unit, rank) with its clip."""

        def log():
            columns = ["unit", "rank", "audio", "spectrogram", "file", "time", "activation", "text"]
            table = self.wandb.Table(columns=columns)
            for row in rows:
                table.add_data(row["unit"], row["rank"], self.wandb.Audio(row["audio"]),
                               self.wandb.Image(row["spectrogram"]), row["file"], row["time"], row["activation"],
                               row["text"])
            self.run.log({"examples": table})
            self.run.summary.update({"units": len({r["unit"] for r in rows}), "example_rows": len(rows)})

        if rows:
            self._guard(log)

    def finish(self, exit_code=0):
        if self.run is not None:
            run, self.run = self.run, None
            self._guard(lambda: run.finish(exit_code=exit_code))


class TargetRuns(WandbTracker):
    """`logger.runs=target`: one W&B run per target, made at the job's end from its files, each a row of the
    runs table with the target's own unit, curve, media and numbers; grouped by the sweep (`group`) and
    the job (`job_type`: the job's name, cut to W&B's 64 characters). Nothing is logged while the job
    optimises."""

    def __init__(self, settings: Settings, job_dir: Path, name: str, group: str | None, job_type: str,
                 tags: list[str], config: dict, sample_rate: int):
        import wandb

        self.wandb, self.settings, self.job_dir, self.sample_rate = wandb, settings, Path(job_dir), sample_rate
        self.run, self.job, self.group, self.tags, self.config = None, name, group, tags, config

    def wants_media(self, step):
        return False

    def log_media(self, step, media):
        pass  # each target's run gets its media from its files

    def log_job(self, rows, histories):
        for row in rows:
            def log(row=row):
                run = self._init(row["name"], self.group, self.job[:64], self.tags, target_config(self.config, row))
                try:
                    records = history_records({row["name"]: histories.get(row["name"]) or {}})
                    for record in records:
                        run.log(record)
                    run.log({"optimisation_step": len(records),  # the same keys as a job's run, from its files
                             "audio": [self.wandb.Audio(row["audio"], caption=row["name"])],
                             "spectrogram": [self.wandb.Image(row["spectrogram"], caption=row["name"])]})
                    run.summary.update(summary_of([row]))
                finally:
                    run.finish()

            self._guard(log)


def run_config(flat: dict, unit_spec) -> dict:
    """The config keys every run has, with one type each: `unit` a number or null, the unit as given
    (`0:64`, `all`, `[1, 2]`, `125`) a string in `unit_spec`."""
    one = flat.get("unit_min") if flat.get("unit_min") == flat.get("unit_max") else None
    return {**flat, "unit": one, "unit_spec": None if unit_spec is None else str(unit_spec), "target": None}


def target_config(config: dict, row: dict) -> dict:
    """A job's run config narrowed to one of its targets."""
    unit = row.get("unit")
    return {**config, "unit": unit, "unit_min": unit, "unit_max": unit, "target": row["name"]}


def history_records(histories: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """The loss terms of every target, step by step, aligned on the step within each target's own
    optimisation (a job's batches run one after the other, but each target's step 0 is step 0):
    `<term>/mean|min|max` over the targets that reached that step."""
    histories = list(histories.values())
    steps = max((len(v) for h in histories for v in h.values()), default=0)
    terms = list(dict.fromkeys(term for h in histories for term in h))
    records = []
    for step in range(steps):
        record = {"optimisation_step": step}
        for term in terms:
            values = np.array([h[term][step] for h in histories if term in h and len(h[term]) > step], dtype=float)
            if len(values):
                record[f"{term}/mean"] = float(values.mean())
                record[f"{term}/min"], record[f"{term}/max"] = float(values.min()), float(values.max())
        records.append(record)
    return records


def summary_of(rows: list[dict]) -> dict:
    """The run's summary: the same flat keys in every run, null where its targets have no value, so W&B's
    runs table, parallel coordinates and scatter plots compare runs column by column: `<measure>` is the
    mean over the run's targets (one target: its value), `<measure>/median` the median; `target_count`;
    and for a run of one target its words (`LABELS`: the unit's phone name, its text, what the model heard).
    (`targets` is the per-target table's key: a number there would hide it.)"""
    summary = {"target_count": len(rows)}
    for measure in record_schema.MEASURES:
        values = [float(r[measure]) for r in rows if isinstance(r.get(measure), (int, float))
                  and not isinstance(r.get(measure), bool) and np.isfinite(r[measure])]
        summary[measure] = float(np.mean(values)) if values else None
        summary[f"{measure}/median"] = float(np.median(values)) if values else None
    for label in LABELS:
        value = rows[0].get(label) if len(rows) == 1 else None
        summary[label] = None if value is None else str(value)
    return summary


def spectrogram_image(signal: np.ndarray) -> np.ndarray:
    """An RGB picture of the log spectrogram (low frequencies at the bottom), cheap enough to log often."""
    import torch

    from audiation.outputs.disk import palette, spectrogram_indices

    indices, _hop = spectrogram_indices(torch.from_numpy(np.asarray(signal, dtype=np.float32))[None])
    colours = np.array(palette(), dtype=np.uint8).reshape(-1, 3)
    return colours[indices[0]]


def start(settings: Settings, **kwargs) -> Tracker:
    """The job's tracker: W&B when `settings` are enabled (one run, or with `runs="target"` one per target),
    else the no-op one."""
    if not settings.enabled:
        return Tracker()
    return (TargetRuns if settings.runs == "target" else WandbTracker)(settings, **kwargs)
