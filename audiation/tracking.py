"""Weights & Biases: one run per job, loss terms per step, media and a per-target table at the end.

Every run has the same keys, whatever its batch size or targets (history: `<term>/mean|min|max`,
`audio`, `spectrogram`; summary: `summary_of`; config: numeric `layer_index`, `unit_min`, `unit_max`),
so runs compare column by column in W&B's runs table, parallel coordinates and scatter plots.

W&B is a second copy, never the only one: callers write local files first, and any W&B failure here is
reported once as a warning and then ignored, so it can never lose a result or stop a sweep. The run is
always finished (with the job's exit code), so the next job of a multirun never writes into it.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

import numpy as np

from audiation import record_schema

log = logging.getLogger(__name__)

ROWS_LOGGED_APART = 4  # the audio and spectrograms of this many targets are logged during optimisation


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

    step = 0  # optimisation steps of every batch in this job so far: the x-axis of the run

    def log_steps(self, first_step: int, terms: dict[str, np.ndarray]) -> None: ...

    def log_media(self, step: int, media: list[tuple[str, np.ndarray]]) -> None: ...

    def wants_media(self, step: int) -> bool:
        return False

    def log_targets(self, rows: list[dict]) -> None: ...

    def log_examples(self, rows: list[dict]) -> None: ...

    def finish(self, exit_code: int = 0) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _traceback):
        self.finish(0 if kind is None else 130 if issubclass(kind, KeyboardInterrupt) else 1)
        return False


class WandbTracker(Tracker):
    def __init__(self, logger_cfg, job_dir: Path, name: str, group: str | None, job_type: str,
                 tags: list[str], config: dict, sample_rate: int):
        import wandb

        self.wandb = wandb
        self.sample_rate = sample_rate
        self.media_every = logger_cfg.media_every
        self.run = None
        self._guard(lambda: self._init(logger_cfg, job_dir, name, group, job_type, tags, config))

    def _init(self, logger_cfg, job_dir, name, group, job_type, tags, config):
        verbose = bool(logger_cfg.get("verbose", False))
        self.run = self.wandb.init(
            project=logger_cfg.project, entity=logger_cfg.entity, dir=str(job_dir),
            mode=resolve_mode(logger_cfg.mode), name=name, group=group, job_type=job_type, tags=tags,
            config=config, reinit="finish_previous",
            # W&B's banner is ~25 lines per run; its console capture would also copy every progress bar.
            settings=self.wandb.Settings(silent=not verbose, console="auto" if verbose else "off"),
        )
        self.run.define_metric("optimisation_step")
        self.run.define_metric("*", step_metric="optimisation_step")

    def _guard(self, action):
        """Run a W&B call; on failure warn once and stop using W&B for this job."""
        if self.wandb is None:
            return
        try:
            action()
        except Exception as error:  # noqa: BLE001 - any W&B failure must leave the local results alone
            log.warning("warning: W&B disabled for this job (%s: %s); local files are unaffected",
                        type(error).__name__, error)
            self.wandb = None

    def log_steps(self, first_step, terms):
        def log():  # the same keys whatever the batch size, so runs compare column by column
            for offset in range(len(next(iter(terms.values())))):
                record = {"optimisation_step": first_step + offset}
                for name, values in terms.items():
                    row = values[offset]
                    record[f"{name}/mean"] = float(row.mean())
                    record[f"{name}/min"], record[f"{name}/max"] = float(row.min()), float(row.max())
                self.run.log(record)

        self._guard(log)

    def wants_media(self, step):
        return self.wandb is not None and self.media_every > 0 and step % self.media_every == 0

    def log_media(self, step, media):
        def log():  # one key each, the targets as captions: the same keys in every run
            shown = media[:ROWS_LOGGED_APART]
            self.run.log({"optimisation_step": step,
                          "audio": [self.wandb.Audio(signal, sample_rate=self.sample_rate, caption=name)
                                    for name, signal in shown],
                          "spectrogram": [self.wandb.Image(spectrogram_image(signal, self.sample_rate), caption=name)
                                          for name, signal in shown]})

        self._guard(log)

    def log_targets(self, rows):
        """The table a user sorts and listens through: one row per target, media from the local files."""

        def log():
            media = ("audio", "spectrogram", "examples")
            examples = max(len(row.get("examples") or []) for row in rows)  # natural examples, one column each
            columns = [c for c in rows[0] if c not in media] + ["audio", "spectrogram"]
            table = self.wandb.Table(columns=columns + [f"example_{k + 1}" for k in range(examples)])
            for row in rows:
                clips = [self.wandb.Audio(path) for path in row.get("examples") or []]
                table.add_data(*[row.get(c) for c in columns[:-2]], self.wandb.Audio(row["audio"]),
                               self.wandb.Image(row["spectrogram"]), *clips, *[None] * (examples - len(clips)))
            self.run.log({"targets": table})
            self.run.summary.update(summary_of(rows))

        if rows:
            self._guard(log)

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


def summary_of(rows: list[dict]) -> dict:
    """The run's summary: the same flat keys in every run for every measure its targets have, so W&B's
    runs table, parallel coordinates and scatter plots compare runs column by column: `<measure>` is the
    mean over the run's targets (one target: its value), `<measure>/median` the median."""
    summary = {"targets": len(rows)}
    for measure in record_schema.MEASURES:
        values = [float(r[measure]) for r in rows if isinstance(r.get(measure), (int, float))
                  and not isinstance(r.get(measure), bool) and np.isfinite(r[measure])]
        if values:
            summary[measure], summary[f"{measure}/median"] = float(np.mean(values)), float(np.median(values))
    return summary


def spectrogram_image(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """An RGB picture of the log spectrogram (low frequencies at the bottom), cheap enough to log often."""
    import torch

    from audiation.outputs import palette, spectrogram_indices

    indices, _hop = spectrogram_indices(torch.from_numpy(np.asarray(signal, dtype=np.float32))[None], sample_rate)
    colours = np.array(palette(), dtype=np.uint8).reshape(-1, 3)
    return colours[indices[0]]


def start(logger_cfg, **kwargs) -> Tracker:
    """The job's tracker: W&B when the `logger` group is enabled, else the no-op one."""
    if logger_cfg is None or not logger_cfg.get("enabled", False):
        return Tracker()
    return WandbTracker(logger_cfg, **kwargs)
