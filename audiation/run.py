"""`python -m audiation.run`: one Hydra job = one layer, one objective, one or many targets.

    python -m audiation.run objective=channel model.layer=8
    python -m audiation.run objective=unit model.layer=3 objective.unit=42
    python -m audiation.run --multirun model.layer=1,6,12 objective.unit=0,1,2
    python -m audiation.run model.layer=8 objective.unit=0:768 batch_size=64   # the fast path

The work is `audiation.jobs.audiate_job.AudiationJob`; this module only composes, runs it and reports.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from audiation.config import configs
from audiation.console import FILE_ONLY, duration
from audiation.errors import JobRefused, run_or_exit

log = logging.getLogger(__name__)


@hydra.main(config_path=configs.CONF, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    """Run the job, or with `dry_run=true` only estimate it and return the estimate (a sweep adds them up)."""
    # Imported here, not at the top: each Tab of shell completion imports this module, and torch takes seconds
    from audiation.browser import page
    from audiation.config import builder
    from audiation.jobs.audiate_job import AudiationJob
    from audiation.outputs.results import RECORD, TARGET_FILES

    job_dir, group = configs.hydra_job_folder()

    def job():
        if cfg.dry_run:
            return dry_run(cfg, job_dir)
        try:
            with AudiationJob(builder.plan(cfg), job_dir, group) as audiation_job:
                configs.save_job_config(job_dir, cfg)  # only now that the job is valid and the folder is ours
                return audiation_job.run()
        except BaseException:
            configs.discard_if_empty(job_dir)
            raise

    def saved() -> str:
        if cfg.dry_run:
            return "nothing was written"
        complete = sum(1 for _ in job_dir.glob(f"targets/*/{RECORD}"))
        started = sum(1 for _ in job_dir.glob(f"targets/*/{TARGET_FILES['wav']}")) - complete
        return (f"{complete} target(s) complete and {started} saved as their last finite signal in {job_dir}; "
                f"rerun with hydra.run.dir={job_dir} to finish")

    def gallery_of_sweep():  # an interrupted sweep still gets the page of what it finished
        if group is not None:
            try:
                page.write_gallery(job_dir.parent)
            except Exception:
                pass

    try:
        metrics = run_or_exit(job, saved=saved, on_stop=gallery_of_sweep, in_sweep=group is not None)
    except JobRefused as refused:  # its siblings go on; the sweep's end says so and exits 2 (callbacks.Gallery)
        configs.note_failed_job(refused)
        return None
    if cfg.dry_run:
        print(f"audiation: {estimate_line(metrics)}")
        return metrics
    line = result_line(metrics, job_dir, None if group is not None else job_page(job_dir))
    print(f"audiation: {line}")
    log.info(line, extra=FILE_ONLY)  # every job's run.log ends with its result
    return None


def dry_run(cfg: DictConfig, job_dir: Path) -> dict:
    """What the job would do and about how long it would take (`AudiationJob.estimate`), leaving no folder
    (no tracker starts, so a sweep's group plays no part)."""
    from audiation.config import builder
    from audiation.jobs.audiate_job import AudiationJob

    fresh = not job_dir.is_dir() or not any(job_dir.iterdir())
    try:
        with AudiationJob(builder.plan(cfg), job_dir) as audiation_job:
            estimate = audiation_job.estimate()
    finally:
        if fresh:  # only the log of the model's loading is in it
            (job_dir / "run.log").unlink(missing_ok=True)
            configs.discard_if_empty(job_dir)
    return estimate


def estimate_line(estimate: dict) -> str:
    line = (f"dry run of {estimate['name']}: {estimate['todo']} of {estimate['targets']} target(s) to do, in "
            f"{estimate['batches']} batch(es) of {estimate['batch_size']}, {estimate['steps']} steps each")
    if estimate["seconds_per_step"] is not None:
        line += (f"; about {duration(estimate['seconds'])} on {estimate['device']} "
                 f"({estimate['seconds_per_step']:.3f} s per step, timed on the first batch)")
    return line + "; nothing was written"


def job_page(job_dir: Path) -> Path | None:
    """A single job's page (`index.html` in its folder; a sweep's is written when it ends), or None if it
    could not be written: the results are safe on disk either way."""
    from audiation.browser import page

    try:
        return page.write_gallery(job_dir)
    except Exception as error:
        log.warning("warning: no page written: %s", error)
        return None


def result_line(metrics: dict, job_dir, page_file: Path | None = None) -> str:
    """What a job did, in one line: targets, folder, time (and per target audiated now), the activation
    before -> after (the mean over a batch) and the file to open: the audio of one target, the job's page
    (or for a sweep's job, the command that writes one)."""
    run, targets = metrics["run"], [t for t in metrics["targets"] if t.get("final_activation") is not None]
    per_target = f"{run['seconds_per_target']:.2f} s per target, " if run.get("seconds_per_target") else ""
    line = (f"{run['targets']} target(s) of {run['name']} in {job_dir} "
            f"({run['wall_seconds']:.1f} s, {per_target}{run['steps_per_second'] or 0:.2f} steps/s)")
    if targets:
        before = sum(t["initial_activation"] for t in targets) / len(targets)
        after = sum(t["final_activation"] for t in targets) / len(targets)
        line += f"; activation {before:.3g} -> {after:.3g}{' (mean)' if len(targets) > 1 else ''}"
        line += (f"; listen: {job_dir / targets[0]['files']['wav_16bit']}" if len(targets) == 1 else
                 "" if page_file else f"; browse: python -m audiation.gallery {job_dir}")
    return line + (f"; page: {page_file}" if page_file else "")


def cli() -> None:
    """The `audiation-run` console script and `python -m audiation.run`: the job folders given on the command
    line are checked before Hydra makes them, then Hydra runs `main`."""
    configs.command_line(main)


if __name__ == "__main__":
    # Call the copy of `cli` (and `main`) in the importable module `audiation.run`, not this `__main__` one:
    # parallel launchers (joblib, submitit) pickle the task function, and only an importable one pickles by name.
    from audiation.run import cli as importable_cli

    importable_cli()
