"""The GPU check must work the day a GPU is lent: its CPU dry run runs every check in CI's slow tests."""

from __future__ import annotations

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
