"""Hydra callbacks of a multirun (registered under `hydra.callbacks` in conf/config.yaml).

- `CheckSweep`: before the first job runs, compose and check the sweep's jobs (each swept value at
  least once), reading only model config files; a bad one stops the sweep with one line, exit 2.
- `SweepProgress`: before each job, which job of how many and how long the rest will take; a dry run's
  estimates added up at the end.
- `Gallery`: write the sweep's report (`sweep_report`) and then `<sweep dir>/index.html`, which links it, when
  the multirun ends; then, if any job failed with one line (the others went on), say so and exit 2.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

from hydra.core.utils import JobStatus
from hydra.errors import ConfigCompositionException
from hydra.experimental.callback import Callback

from audiation.browser import page
from audiation.config import builder, configs
from audiation.console import duration
from audiation.errors import AudiationError
from audiation.jobs import sweep_report

log = logging.getLogger(__name__)


def _parsed(overrides: list[str], params: dict | None = None):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in (params or {}).items()] + list(overrides))


def sweep_jobs(overrides: list[str], params: dict | None = None) -> list[list[str]]:
    """Override lists that cover every swept value at least once: the first job, then each other value
    of each swept key with the rest as in the first job (a sum over keys, not their product)."""
    choices = []
    for override in _parsed(overrides, params):
        key = override.get_key_element()
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        choices.append([f"{key}={value}" for value in values])
    first = [values[0] for values in choices]
    jobs = [first]
    for i, values in enumerate(choices):
        jobs += [first[:i] + [value] + first[i + 1:] for value in values[1:]]
    return jobs


def first_lines(error: Exception) -> str:
    """An error in one line; Hydra's composition errors with the first line of their cause (the type or key
    that failed)."""
    cause = error.__cause__ if isinstance(error, ConfigCompositionException) else None
    line = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{line}: {str(cause).splitlines()[0]}" if cause is not None and str(cause) else line


def sweep_group(folder_name: str, started: str) -> str:
    """The W&B group of a sweep: its folder's name, which by default is its start time; a named folder
    (`outputs/demo`, swept into again and again) gets the start time added, so sweeps never merge."""
    return folder_name if folder_name[:1].isdigit() else f"{folder_name}_{started}"


def swept_keys(overrides: list[str], params: dict | None = None) -> list[str]:
    """The keys a sweep varies (`model.layer=1,6,12`, or in `hydra.sweeper.params`), in order."""
    return list(dict.fromkeys(o.get_key_element().lstrip("+~") for o in _parsed(overrides, params)
                              if o.is_sweep_override()))


def sweep_size(overrides: list[str], params: dict | None = None) -> int:
    """How many jobs the basic sweeper makes: the product of the swept keys' numbers of values."""
    return math.prod(len(list(o.sweep_string_iterator())) for o in _parsed(overrides, params) if o.is_sweep_override())


def basic_sweep_size(config) -> int | None:
    """The number of jobs of this multirun, when its sweeper is Hydra's basic one (others choose as they go)."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    return sweep_size(list(config.hydra.overrides.task), dict(config.hydra.sweeper.get("params") or {}))


class CheckSweep(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        # Said to the jobs (which inherit the environment): the W&B group, and the keys that name job folders.
        os.environ[configs.GROUP] = sweep_group(Path(config.hydra.sweep.dir).name, time.strftime("%Y-%m-%d_%H-%M-%S"))
        os.environ[configs.SWEPT] = ""
        if basic_sweep_size(config) is None:
            return  # other sweepers choose their jobs as they go
        params = dict(config.hydra.sweeper.get("params") or {})
        jobs = sweep_jobs(list(config.hydra.overrides.task), params)
        os.environ[configs.SWEPT] = ",".join(swept_keys(list(config.hydra.overrides.task), params))
        for overrides in jobs:
            try:
                builder.plan(configs.compose(*overrides, config_name=config.hydra.job.config_name))
            except (AudiationError, ConfigCompositionException) as error:
                print(f"audiation: error: in the job {' '.join(overrides)}: {first_lines(error)}", file=sys.stderr)
                sys.exit(2)
        log.info("checked %d job configs covering every value of the sweep", len(jobs))


class SweepProgress(Callback):
    """Where a sweep stands, said before each job: `job 3 of 6 of the sweep; 2 done in 4.1 min, about 8.2 min
    left` (the mean of the jobs done so far in this process, so parallel launchers give no time left).
    A dry run's estimates (the jobs' return values) are added up when the sweep ends, and the sweep's folder
    is left as it was: Hydra writes its `multirun.yaml` there even for a dry run."""

    def __init__(self):
        self.started = None  # a single run (not a multirun) starts its job too: it gets no line

    def on_multirun_start(self, config, **kwargs) -> None:
        self.total, self.done, self.started, self.estimates = basic_sweep_size(config), 0, time.monotonic(), []
        self.dry_run = bool(config.get("dry_run"))
        if self.dry_run:  # Hydra writes it after this callback
            written = Path(config.hydra.sweep.dir) / "multirun.yaml"
            self.multirun_yaml = written.read_bytes() if written.is_file() else None

    def on_job_start(self, config, **kwargs) -> None:
        if self.started is None:
            return
        number = int(config.hydra.job.num) + 1
        line = f"job {number} of {self.total} of the sweep" if self.total else f"job {number} of the sweep"
        if self.done and self.total and not config.get("dry_run"):
            spent = time.monotonic() - self.started
            line += (f"; {self.done} done in {duration(spent)}, about "
                     f"{duration(spent / self.done * (self.total - self.done))} left")
        print(f"audiation: {line}")

    def on_job_end(self, config, job_return=None, **kwargs) -> None:
        if self.started is None:
            return
        self.done += 1
        if (config.get("dry_run") and job_return is not None and job_return.status == JobStatus.COMPLETED
                and isinstance(job_return.return_value, dict)):
            self.estimates.append(job_return.return_value)

    def on_multirun_end(self, config, **kwargs) -> None:
        if self.started is None or not self.dry_run:
            return
        sweep = Path(config.hydra.sweep.dir)
        if self.multirun_yaml is not None:
            (sweep / "multirun.yaml").write_bytes(self.multirun_yaml)
        else:
            (sweep / "multirun.yaml").unlink(missing_ok=True)
            configs.discard_if_empty(sweep)
        if self.estimates:
            print(f"audiation: dry run of the sweep: {len(self.estimates)} job(s), "
                  f"{sum(e['todo'] for e in self.estimates)} target(s) to do in "
                  f"{sum(e['batches'] for e in self.estimates)} batch(es), about "
                  f"{duration(sum(e['seconds'] for e in self.estimates))}; nothing was written")


class Gallery(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        if config.get("dry_run"):
            return  # nothing was audiated
        sweep = Path(config.hydra.sweep.dir)
        written = {}
        for what, write in (("report", sweep_report.write_report), ("gallery", page.write_gallery)):
            try:
                written[what] = write(sweep)  # the report first: the page links it
            except Exception as error:
                log.warning("warning: no %s written: %s", what, error)
        if written:  # one line for both: the console stays quiet
            print("audiation: " + ", ".join(f"{what} in {path}" for what, path in reversed(written.items())))
        failed = sweep / configs.FAILED_JOBS
        if failed.is_file():  # jobs that stopped with one line while the others went on
            lines = failed.read_text().splitlines()
            print(f"audiation: error: {len(lines)} job(s) of the sweep failed (listed in {failed})", file=sys.stderr)
            sys.exit(2)
