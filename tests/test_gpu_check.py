"""The GPU check must work the day a GPU is lent: its CPU dry run runs every check in CI's slow tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_the_gpu_checks_cpu_dry_run_passes_every_check(tmp_path):
    result = subprocess.run([sys.executable, "experiments/gpu_check.py", "--device", "cpu", "--steps", "2"], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"},
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "20 passed, 0 failed" in result.stdout


def test_the_gpu_sessions_sweep_runs_every_layer_and_summarises_its_jobs(tmp_path):
    """The prepared call of a lent GPU (experiments/gpu_session.sh), its sweep part dry-run here: a sweep over
    two layers, then one summary row per job, from the jobs' own metrics."""
    env = {**os.environ, "OUT": str(tmp_path / "out"), "SWEEP": str(tmp_path / "sweep"), "PY": sys.executable,
           "DEVICE": "cpu", "QUICK": "1", "WHEELS": "none", "BOX": "400", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "experiments/gpu_session.sh", "sweep"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=450)
    assert done.returncode == 0 and "== sweep: exit 0" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    jobs = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [(job["layer"], job["targets"], job["steps"], job["audiated_now"]) for job in jobs] == [("L1", 4, 2, 4),
                                                                                                 ("L2", 4, 2, 4)]
    assert (tmp_path / "out" / "report.md").is_file()


def test_a_judge_that_cannot_load_is_named_by_the_benchmark_not_fatal(monkeypatch):
    sys.path.insert(0, str(ROOT / "experiments"))
    import benchmark

    from audiation.hearing import judges

    def load(device):
        raise ModuleNotFoundError("No module named 'parselmouth'")

    monkeypatch.setattr(judges, "JUDGES", (judges.Judge("praat", ("f0_hz",), load),))
    assert benchmark.unavailable_judges("cpu") == {"praat": "ModuleNotFoundError: No module named 'parselmouth'"}
