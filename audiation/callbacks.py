"""Hydra callbacks of a multirun (registered under `hydra.callbacks` in conf/config.yaml).

- `CheckSweep`: before the first job runs, compose and check the sweep's jobs (each swept value at
  least once), reading only model config files; a bad one stops the sweep with one line, exit 2.
- `Gallery`: write `<sweep dir>/index.html` when the multirun ends; then, if any job failed with one line
  (the others went on), say so and exit 2.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from hydra.errors import ConfigCompositionException
from hydra.experimental.callback import Callback

from audiation import builder, configs, page
from audiation.errors import AudiationError

log = logging.getLogger(__name__)


def sweep_jobs(overrides: list[str], params: dict | None = None) -> list[list[str]]:
    """Override lists that cover every swept value at least once: the first job, then each other value
    of each swept key with the rest as in the first job (a sum over keys, not their product)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides))
    choices = []
    for override in parsed:
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
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides))
    return list(dict.fromkeys(o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()))


class CheckSweep(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        # Said to the jobs (which inherit the environment): the W&B group, and the keys that name job folders.
        os.environ[configs.GROUP] = sweep_group(Path(config.hydra.sweep.dir).name, time.strftime("%Y-%m-%d_%H-%M-%S"))
        os.environ[configs.SWEPT] = ""
        sweeper = str(config.hydra.sweeper.get("_target_", ""))
        if not sweeper.endswith("BasicSweeper"):
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


class Gallery(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        try:
            print(f"audiation: gallery in {page.write_gallery(sweep)}")
        except Exception as error:  # noqa: BLE001 - the results are safe on disk; a missing page must not fail
            log.warning("warning: no gallery written: %s", error)
        failed = sweep / configs.FAILED_JOBS
        if failed.is_file():  # jobs that stopped with one line while the others went on
            lines = failed.read_text().splitlines()
            print(f"audiation: error: {len(lines)} job(s) of the sweep failed (listed in {failed})", file=sys.stderr)
            sys.exit(2)
