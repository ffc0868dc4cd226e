"""The notebook entry: one call audiates, and returns what the command line writes."""

from __future__ import annotations

import numpy as np
import pytest

import audiation
from audiation.api import target_overrides
from audiation.errors import AudiationError


def test_one_call_audiates_and_returns_signals_records_and_files(tmp_path):
    result = audiation.audiate("random_small", "L2:0:2", objective="channel", steps=3, folder=tmp_path,
                               quality__judges=False, options={"parameterization.seconds": 0.5})
    assert result.signal.shape == (2, 8000) and result.sample_rate == 16000
    assert [r["unit"] for r in result.records] == [0, 1] and all(r["layer"] == "L2" for r in result.records)
    assert all(f["wav"].is_file() and f["spectrogram"].is_file() for f in result.files)
    assert np.abs(result.signal).max() > 0 and result.signal.dtype == np.float32
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize("target,overrides", [
    ("L6:125", ["model.layer=6", "objective.unit=125"]), ("6:0:8", ["model.layer=6", "objective.unit=0:8"]),
    ("mlp4:12", ["model.layer=mlp4", "objective.unit=12"]), ("logits:22", ["model.layer=logits", "objective.unit=22"]),
    ("L3", ["model.layer=3"]), ("conv2:1", ["model.layer=conv2", "objective.unit=1"])])
def test_targets_read_like_lucents(target, overrides):
    assert target_overrides(target) == overrides


def test_a_bad_target_is_one_line():
    with pytest.raises(AudiationError, match="is not <layer>"):
        target_overrides(":3")


def test_without_a_folder_the_call_writes_into_a_new_temporary_one(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp makes it
    result = audiation.audiate("random_small", "L2:0", objective="channel", steps=2, quality__judges=False,
                               options={"parameterization.seconds": 0.25})
    assert result.folder.parent == tmp_path and result.folder.name.startswith("audiation-")
    assert (result.folder / "metrics.json").is_file() and result.files[0]["wav"].parent.is_relative_to(result.folder)


def test_the_calls_defaults_groups_and_lists_reach_the_config_as_documented(tmp_path, monkeypatch):
    import audiation.config.configs
    import audiation.jobs.audiate_job

    asked = []
    monkeypatch.setattr(audiation.config.configs, "compose", lambda *overrides: asked.append(list(overrides)))
    monkeypatch.setattr(audiation.jobs.audiate_job, "audiate_folder", lambda cfg, folder: None)  # completes nothing
    with pytest.raises(AudiationError, match=rf"^no target was completed in {tmp_path}$"):
        audiation.audiate(folder=tmp_path, logger="wandb", objective__unit=[0, 31])
    # the README's call: unit 125 of tiny's layer 6, a channel, 200 steps; `logger` a config group, before the values
    assert asked == [["model=tiny", "objective=channel", "logger=wandb", "model.layer=6", "objective.unit=125",
                      "steps=200", "objective.unit=[0,31]"]]
