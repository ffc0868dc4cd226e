"""Sweeps: one model load per process, resumable jobs, parallel launchers."""

from __future__ import annotations

import json

import pytest

from audiation.run import run_job
from conftest import compose, run_cli


def test_multirun_loads_the_model_once_per_process(tmp_path):
    result = run_cli("--multirun", "model=random_small", "objective.unit=0,1,2", "optimizer.steps=3",
                     "logger=none", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("audiation: loading model") == 1
    assert all((tmp_path / job / "metrics.json").is_file() for job in ("0", "1", "2"))


def test_a_rerun_redoes_only_unfinished_targets(tmp_path):
    cfg = compose("model=random_small", "logger=none", "objective=channel", "objective.unit=0:4",
                  "batch_size=2", "optimizer.steps=3")
    first = run_job(cfg, tmp_path, None)
    assert first["run"]["audiated_now"] == 4
    # As if the job had been killed while the batch holding unit 3 ran: its record never got written.
    (tmp_path / "targets" / "L2-U3-channel" / "target.json").unlink()
    kept = (tmp_path / "targets" / "L2-U0-channel" / "audio.wav").stat().st_mtime_ns
    second = run_job(cfg, tmp_path, None)
    assert second["run"]["audiated_now"] == 1
    assert [t["unit"] for t in second["targets"]] == [0, 1, 2, 3]
    assert (tmp_path / "targets" / "L2-U0-channel" / "audio.wav").stat().st_mtime_ns == kept
    assert json.loads((tmp_path / "targets" / "L2-U3-channel" / "target.json").read_text())["unit"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["local_processes", "submitit_local"])
def test_parallel_launchers_run_a_two_job_sweep(tmp_path, launcher):
    result = run_cli("--multirun", f"hydra/launcher={launcher}", "model=random_small", "objective.unit=0,1",
                     "optimizer.steps=3", "threads=1", "logger=none", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    units = [json.loads((tmp_path / job / "metrics.json").read_text())["targets"][0]["unit"] for job in ("0", "1")]
    assert units == [0, 1]
