"""How long: the job's progress bar and ETA over all its batches, a sweep's "job k of n" and time left, the
seconds per target of the result line, and `dry_run=true`, which says all that before any work."""

from __future__ import annotations

import json

import pytest
from conftest import compose, run_cli
from omegaconf import OmegaConf

from audiation.config import builder
from audiation.console import duration
from audiation.core import render
from audiation.errors import AudiationError
from audiation.jobs import audiate_job, sweep_callbacks
from audiation.jobs.audiate_job import AudiationJob, audiate_folder
from audiation.run import dry_run, estimate_line, result_line

FAST = ("model=random_small", "logger=none", "objective=channel", "quality.judges=false", "threads=1")


def test_a_time_is_said_in_the_unit_people_use():
    assert [duration(s) for s in (0.4, 40, 89.4)] == ["0 s", "40 s", "89 s"]
    assert [duration(s) for s in (90, 210, 5399)] == ["1.5 min", "3.5 min", "90.0 min"]
    assert [duration(s) for s in (5400, 5580, 4.32e4)] == ["1.5 h", "1.6 h", "12.0 h"]


def test_one_bar_covers_every_batch_of_a_job(tmp_path, monkeypatch):
    """Five targets in batches of 2 (3 batches of 3 steps): one bar of 9 steps, all of them done; no batch
    shows a bar of its own (whose ETA would be the batch's)."""
    bars, make = [], render.progress_bar

    def recorded(total, description):
        bars.append(make(total, description))
        return bars[-1]

    monkeypatch.setattr(audiate_job, "progress_bar", recorded)
    monkeypatch.setattr(render, "progress_bar", recorded)
    audiate_folder(compose(*FAST, "objective.unit=0:5", "batch_size=2", "steps=3"), tmp_path)
    assert [(bar.total, bar.n) for bar in bars] == [(9, 9)]
    assert "[batch 3/3]" in bars[0].desc


def test_the_result_line_gives_seconds_per_target(tmp_path):
    metrics = audiate_folder(compose(*FAST, "objective.unit=0:4", "batch_size=2", "steps=2"), tmp_path)
    run = metrics["run"]
    assert run["seconds_per_target"] * 4 <= run["wall_seconds"] + 1e-9 and run["seconds_per_target"] > 0
    assert f"{run['seconds_per_target']:.2f} s per target" in result_line(metrics, tmp_path)


def test_the_result_line_says_the_mean_activation_before_and_after_and_what_to_open(tmp_path):
    run = {"targets": 2, "name": "unit", "wall_seconds": 3.26, "seconds_per_target": 1.5, "steps_per_second": 12.346}
    two = [{"initial_activation": 1.0, "final_activation": 5.0, "files": {"wav_16bit": "targets/a/audio_16bit.wav"}},
           {"initial_activation": 3.0, "final_activation": 9.0, "files": {"wav_16bit": "targets/b/audio_16bit.wav"}}]
    assert result_line({"run": run, "targets": two}, tmp_path) == (
        f"2 target(s) of unit in {tmp_path} (3.3 s, 1.50 s per target, 12.35 steps/s); activation 2 -> 7 (mean); "
        f"browse: python -m audiation.gallery {tmp_path}")
    assert result_line({"run": run, "targets": two[:1]}, tmp_path) == (
        f"2 target(s) of unit in {tmp_path} (3.3 s, 1.50 s per target, 12.35 steps/s); activation 1 -> 5; "
        f"listen: {tmp_path / 'targets/a/audio_16bit.wav'}")
    # nothing finished, nothing timed: no activation, no seconds per target, 0 steps/s; the page to open
    none = {"targets": 1, "name": "unit", "wall_seconds": 0.04, "steps_per_second": None}
    assert result_line({"run": none, "targets": [{"final_activation": None}]}, tmp_path, tmp_path / "index.html") == (
        f"1 target(s) of unit in {tmp_path} (0.0 s, 0.00 steps/s); page: {tmp_path / 'index.html'}")


def _sweep_config(**job):
    return OmegaConf.create({"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                                                   "params": None},
                                       "overrides": {"task": ["model.layer=1,2", "objective.unit=0,1,2", "steps=4"]},
                                       "job": {"num": job.get("num", 0)}},
                             **{k: v for k, v in job.items() if k != "num"}})


def test_a_sweep_says_which_job_of_how_many_and_the_time_left(capsys, monkeypatch):
    clock = iter([100.0, 130.0, 160.0])  # the sweep starts; two jobs later, 30 s each
    monkeypatch.setattr(sweep_callbacks.time, "monotonic", lambda: next(clock))
    progress = sweep_callbacks.SweepProgress()
    progress.on_multirun_start(_sweep_config())
    progress.on_job_start(_sweep_config(num=0))
    progress.on_job_end(_sweep_config(num=0))
    progress.on_job_start(_sweep_config(num=1))
    progress.on_job_end(_sweep_config(num=1))
    progress.on_job_start(_sweep_config(num=2))
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["audiation: job 1 of 6 of the sweep",
                     "audiation: job 2 of 6 of the sweep; 1 done in 30 s, about 2.5 min left",
                     "audiation: job 3 of 6 of the sweep; 2 done in 60 s, about 2.0 min left"]


def test_a_dry_run_says_targets_batches_and_time_and_writes_nothing(tmp_path):
    job = tmp_path / "2026-12-03" / "10-00-00"
    result = run_cli(*FAST, "objective.unit=0:5", "batch_size=2", "steps=300", "dry_run=true",
                     f"hydra.run.dir={job}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("dry run of L2-U0..L2-U4-channel: 5 of 5 target(s) to do, in 3 batch(es) of 2, 300 steps each; "
            "about ") in result.stdout
    assert result.stdout.rstrip().endswith(" s per step, timed on the first batch); nothing was written")
    assert "target(s) of" not in result.stdout
    assert not job.exists() and not job.parent.exists()


def test_a_sweeps_dry_run_sums_its_jobs_in_one_line_and_writes_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("--multirun", *FAST, "model.layer=1,2", "objective.unit=0:3", "batch_size=2", "steps=300",
                     "dry_run=true", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "audiation: dry run of the sweep: 2 job(s), 6 target(s) to do in 4 batch(es), about " in result.stdout
    assert result.stdout.rstrip().endswith("; nothing was written")
    assert not sweep.exists()  # not even Hydra's multirun.yaml
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("the sweep that ran: kept\n")
    result = run_cli("--multirun", *FAST, "model.layer=1", "steps=300", "dry_run=true", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in sweep.iterdir()] == ["multirun.yaml"]
    assert (sweep / "multirun.yaml").read_text() == "the sweep that ran: kept\n"


def test_a_dry_run_refused_before_its_log_exists_says_why_and_leaves_no_folder(tmp_path):
    job = tmp_path / "fresh"
    cfg = compose(*FAST, "augmentation.max_shift_ms=5000", "dry_run=true")  # longer than the 1-s signal
    # the refusal itself, not the missing log it never wrote
    with pytest.raises(AudiationError, match="augmentation.max_shift_ms=5000 must be at most 1000"):
        dry_run(cfg, job)
    assert not job.exists()


def test_a_dry_run_counts_only_what_a_rerun_still_has_to_do(tmp_path):
    audiate_folder(compose(*FAST, "objective.unit=0:2", "steps=2"), tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cfg = compose(*FAST, "objective.unit=0:5", "batch_size=2", "steps=2")
    with AudiationJob(builder.plan(cfg), tmp_path) as job:
        estimate = job.estimate()
    assert (estimate["targets"], estimate["todo"], estimate["batches"], estimate["batch_size"]) == (5, 3, 2, 2)
    # the loop (2 batches x 2 steps) and the measures between batches (4 draws each), at the timed rate
    assert estimate["seconds"] > 2 * (2 + 4) * estimate["seconds_per_step"] > 0
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert json.loads((tmp_path / "metrics.json").read_text())["run"]["runs"] == 1
    assert "3 of 5 target(s) to do, in 2 batch(es) of 2" in estimate_line(estimate)
