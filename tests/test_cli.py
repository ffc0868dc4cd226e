"""The command line as users type it: bad input fails fast with one line, a multirun makes one job
folder and one finished offline W&B run per job, in one group."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli

SMALL = ["model=random_small", "logger=none"]


@pytest.mark.parametrize("overrides,message", [
    (["model.layer=99"], "model.layer=99 is not a layer of this model (valid: 0..3, conv1..conv7, mlp1..mlp3)"),
    (["objective.unit=9999"], "objective.unit=9999 is out of range for layer L2 (valid: 0..31)"),
    (["objective=channel", "objective.unit=[1,40]"], "objective.unit=40 is out of range"),
    (["parameterization.seconds=0"], "parameterization.seconds=0 must be > 0"),
    (["steps=0"], "steps=0 must be > 0"),
    (["objective.frame=500"], "objective.frame=500 is out of range"),
    (["regularizer.power=loud"], "regularizer.power=loud must be a number"),
    (["model=wav2vec2_base", "model.name=/no/such/model"], "model.name=/no/such/model: no such model folder"),
    (["model=wav2vec2_base"], "model.name=facebook/wav2vec2-base is not in the Hugging Face cache and the hub "
                              "cannot be reached; use model=tiny"),
])
def test_bad_input_fails_fast_with_one_line_naming_the_value(tmp_path, overrides, message):
    result = run_cli(*SMALL, *overrides, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_unknown_group_option_is_hydras_error(tmp_path):
    result = run_cli(*SMALL, "objective=bogus", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0 and "bogus" in result.stderr


def test_nan_loss_names_the_step_and_saves_the_signal(tmp_path):
    # A signal of RMS 1e25 has a power of 1e50: infinite in float32.
    result = run_cli(*SMALL, "regularizer.power=1", "parameterization.rms=1e25", "steps=20", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "NaN/inf at step 1" in result.stderr and "last finite signal was saved" in result.stderr
    signal, rate = sf.read(tmp_path / "targets" / "L2-U0-unit" / "audio.wav")
    assert rate == 16000 and np.isfinite(signal).all()
    assert not (tmp_path / "targets" / "L2-U0-unit" / "target.json").exists()  # not complete: redone on resume


def _wandb_run(run_dir):
    """An offline run read back with W&B's own reader: its summary, and its history records."""
    inspect = [sys.executable, "-m", "wandb", "leet", "inspect", "--json"]
    summary = json.loads(subprocess.run(inspect[:-1] + ["--summary", "--json", str(run_dir)],
                                        capture_output=True, text=True, check=True).stdout)
    records = subprocess.run(inspect + [str(run_dir)], capture_output=True, text=True, check=True).stdout
    history = [json.loads(line)["history"]["item"] for line in records.splitlines() if '"type":"history"' in line]
    return summary, history


def test_multirun_makes_a_job_folder_and_an_offline_wandb_run_per_job_in_one_group(tmp_path):
    sweep = tmp_path / "my-sweep"
    result = run_cli("--multirun", "model=random_small", "objective.unit=0,1,2", "steps=12",
                     "logger.media_every=5", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    for job, unit in (("0", 0), ("1", 1), ("2", 2)):
        folder = sweep / job
        metrics = json.loads((folder / "metrics.json").read_text())
        assert [t["unit"] for t in metrics["targets"]] == [unit]
        assert (folder / "targets" / f"L2-U{unit}-unit" / "audio_16bit.wav").is_file()
        runs = list((folder / "wandb").glob("offline-run-*"))
        assert len(runs) == 1  # each job its own run, never the previous job's
        summary, history = _wandb_run(runs[0])
        assert summary["state"] == "finished" and summary["name"] == f"L2-U{unit}-unit"
        assert summary["config"]["unit"] == unit and summary["config"]["layer"] == "L2"
        assert [h["optimisation_step"] for h in history if "loss/mean" in h] == list(range(12))
        media = [h["optimisation_step"] for h in history if f"audio/L2-U{unit}-unit.path" in h]
        assert media == [10, 12]  # every media_every steps (at the next fetch) and at the end
        assert all(f"spectrogram/L2-U{unit}-unit.path" in h for h in history if f"audio/L2-U{unit}-unit.path" in h)
        assert list((runs[0] / "files" / "media" / "table").glob("targets_*.table.json"))
    groups = {json.loads(line)["run"]["run_group"] for job in ("0", "1", "2")
              for line in subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json",
                                          str(next((sweep / job / "wandb").glob("offline-run-*")))],
                                         capture_output=True, text=True).stdout.splitlines()
              if '"type":"run"' in line}
    assert groups == {"my-sweep"}
