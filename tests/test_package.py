"""The package as a user installs it: a wheel built from the checkout, installed into a fresh virtual
environment, runs `python -m audiation.run` from a folder outside the checkout (its configs come with it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_environment_and_runs_from_any_folder(tmp_path):
    def run(*args, **kwargs):
        result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
        return result

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("audiation-*.whl")
    run(sys.executable, "-m", "venv", tmp_path / "env")
    python = tmp_path / "env" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    where = run(python, "-c", "import audiation.config.configs as c; print(c.__file__); print(c.CONF)", cwd=elsewhere, env=env)
    assert str(tmp_path / "env") in where.stdout and "audiation/conf" in where.stdout.splitlines()[1]
    result = run(python, "-m", "audiation.run", "model=random_small", "steps=2", "logger=none", cwd=elsewhere, env=env)
    assert "1 target(s) of L2-U0-unit" in result.stdout
    assert list(elsewhere.glob("outputs/runs/*/*/targets/L2-U0-unit/target.json"))


def test_the_wheel_builds_without_a_warning_and_ships_the_data(tmp_path):
    """`make demo`'s set-up starts quiet: setuptools warned in a box of ~40 lines per data folder it saw
    as an unlisted package (assets, static, each config group)."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                             str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stdout + result.stderr, (result.stdout + result.stderr)[:3000]
    import zipfile

    (wheel,) = tmp_path.glob("audiation-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("audiation/conf/model/tiny.yaml", "audiation/conf/hydra/help/audiation.yaml",
                    "audiation/browser/static/page.js", "audiation/assets/tiny-w2v2-espeak/model.safetensors"):
        assert shipped in names, shipped
