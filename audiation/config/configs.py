"""Where the Hydra configs are, and the little Hydra plumbing the entry points share.

`conf/` sits at the top of the checkout (the design card asks for it) and is shipped inside the wheel as
`audiation/conf` (pyproject.toml maps it there), so an installed package finds its configs from any folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from audiation.config import config_schema

PACKAGE = Path(__file__).resolve().parents[1]  # audiation/, which holds assets/ (and conf/ in a wheel)
ASSETS = PACKAGE / "assets"
# The config groups, by absolute path: installed (in the wheel) or in a checkout (editable install).
CONF = str(PACKAGE / "conf" if (PACKAGE / "conf" / "config.yaml").is_file() else PACKAGE.parent / "conf")

# `${asset:name}` in a config is a folder shipped inside the package (the project's own model and data),
# found wherever the package is installed.
OmegaConf.register_new_resolver("asset", lambda name: str(ASSETS / name), replace=True)
config_schema.register()  # the option files' `defaults` name these schemas

# A sweep's job folders are named after the values swept: `3_model.layer=6,objective.unit=42`. The keys that
# vary are known to the sweep's start (callbacks.CheckSweep), which says them in this variable; the jobs,
# in this process or launched from it, inherit it.
SWEPT = "AUDIATION_SWEPT"
GROUP = "AUDIATION_GROUP"  # the sweep's W&B group, chosen once at its start (callbacks.sweep_group)
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,:+-]+")


def swept_values(overrides) -> str:
    """`_key=value,key=value` of a job's overrides whose keys the sweep varies ('' when none is known),
    made safe as part of a folder name."""
    keys = [k for k in os.environ.get(SWEPT, "").split(",") if k]
    chosen = [str(o) for o in overrides if str(o).split("=", 1)[0].lstrip("+~") in keys]
    text = ",".join(chosen).replace("\\", "")  # Hydra writes `0:2` back as `0\:2`
    return "_" + _UNSAFE.sub("_", text)[:120] if chosen else ""


OmegaConf.register_new_resolver("swept", swept_values, replace=True)


def compose(*overrides: str, config_name: str = "config"):
    """The config exactly as `python -m audiation.run <overrides>` (or `examples`) composes it, without
    running anything: for tests, benchmarks and notebooks."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a running Hydra app (a sweep's callback)
        return hydra_compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def hydra_job_folder() -> tuple[Path, str | None]:
    """The running Hydra job's output folder, and in a multirun its W&B group: the sweep folder's name (with
    its start time when the name is not one), chosen once at the sweep's start and inherited by every job
    whatever the launcher (a `${now:}` name would differ from job to job)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    group = None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        group = os.environ.get(GROUP) or Path(hydra_cfg.sweep.dir).name
    return Path(hydra_cfg.runtime.output_dir), group


FAILED_JOBS = "failed_jobs.txt"


def note_failed_job(error: Exception) -> None:
    """A line in `<sweep dir>/failed_jobs.txt` for a sweep's job that stopped with one line (its siblings go
    on; the sweep's end reads the file): `<job number> <overrides>: <error>`."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.sweep.dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / FAILED_JOBS, "a") as handle:  # one short append per job: atomic enough across processes
        handle.write(f"{hydra_cfg.job.num} {' '.join(hydra_cfg.overrides.task)}: {error}\n")


def save_job_config(job_dir: Path, cfg) -> None:
    """`.hydra/config.yaml` and `.hydra/overrides.yaml`, written by the job once its config has been
    checked (Hydra's own copy is turned off: it would overwrite a finished job's with a refused rerun's)."""
    from hydra.core.hydra_config import HydraConfig

    folder = Path(job_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(HydraConfig.get().overrides.task)), folder / "overrides.yaml")


def run_job(cfg, work: Callable[[Path, str | None], dict], saved: Callable[[Path], str]) -> tuple[dict, Path]:
    """`work(job_dir, group)` in the running Hydra job's folder (`group`: its sweep's, see `hydra_job_folder`), as the examples, features and directions commands
    run it: the config saved once the work is done, a folder left empty removed, and a failure said in one
    line (`errors.run_or_exit`, with `saved(job_dir)`: what is kept). Returns (its summary, the folder)."""
    from audiation.errors import run_or_exit

    job_dir, group = hydra_job_folder()

    def job():
        try:
            summary = work(job_dir, group)
        except BaseException:
            discard_if_empty(job_dir)
            raise
        save_job_config(job_dir, cfg)
        return summary

    return run_or_exit(job, saved=lambda: saved(job_dir)), job_dir


def command_line(main: Callable[[], object]) -> None:
    """A console script: the job folders given on the command line checked before Hydra makes them, then
    Hydra's `main`."""
    import sys

    from audiation.config.checks import check_output_overrides
    from audiation.errors import run_or_exit

    run_or_exit(check_output_overrides, sys.argv[1:], saved=lambda: "nothing was written")
    main()


def discard_if_empty(job_dir: Path) -> None:
    """Remove a job folder that a failed or refused job left empty (but for its lock file), and its date
    folder (`outputs/runs/<date>`) if that is empty too."""
    import fcntl

    job_dir = Path(job_dir)
    try:
        if {p.name for p in job_dir.iterdir()} == {".audiation.lock"}:
            with open(job_dir / ".audiation.lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while another run holds it: keep it
                (job_dir / ".audiation.lock").unlink()
        job_dir.rmdir()  # only ever removes an empty folder
        if job_dir.parent.name[:1].isdigit():
            job_dir.parent.rmdir()
    except OSError:
        pass
