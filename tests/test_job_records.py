"""What the audiation job makes of a batch's result (`jobs.audiate_job`), from a result made by hand: a target's
record, when it made no progress, the job's totals across reruns, and a batch's name."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose

from audiation.config import builder
from audiation.core.render import Result
from audiation.jobs.audiate_job import AudiationJob, batch_name
from audiation.outputs import disk, results

SMALL = ["model=random_small", "logger=none", "threads=1", "quality.draws=0"]


def _job(tmp_path, *overrides: str) -> AudiationJob:
    return AudiationJob(builder.plan(compose(*SMALL, *overrides)), tmp_path)


def _result(initial, final, stalled=None, stopped=None) -> Result:
    rows = len(initial)
    signal = np.tile(np.linspace(-0.5, 0.5, 16000, dtype=np.float32), (rows, 1))
    return Result(signal, {"activation": np.array(initial), "silence": np.arange(rows) + 0.5},
                  {"activation": np.array(final), "silence": np.arange(rows) + 1.5}, {}, steps=7, seconds=0.2,
                  stopped=stopped, stalled=None if stalled is None else np.array(stalled))


def test_a_targets_record_holds_its_numbers_labels_settings_and_files(tmp_path):
    job = _job(tmp_path, "objective=channel", "objective.unit=3:5")
    record = job._record(_result([0.5, 1.0], [2.0, 3.0]), 1, job.plan.targets[1], {"selectivity": 0.25})
    settings = record.pop("settings")
    assert record == {
        "name": "L2-U4-channel", "layer": "L2", "unit": 4, "text": None, "direction_index": None,
        "objective": "channel", "frame": None, "initial_activation": 1.0, "final_activation": 3.0,
        "initial_terms": {"activation": 1.0, "silence": 1.5}, "final_terms": {"activation": 3.0, "silence": 2.5},
        "sample": None, "group": "L2-U4-channel", "steps": 7, "stopped": None, "no_progress": False,
        "model": "random_small", "parameterization": "fft", "augmentation": "standard", "selectivity": 0.25,
        "waveform": disk.envelope(np.linspace(-0.5, 0.5, 16000, dtype=np.float32)),
        "files": results.target_files("L2-U4-channel")}
    assert settings == job.plan.result_settings and "objective.unit" not in settings  # which targets: not how
    two = _job(tmp_path, "objective=channel", "objective.unit=3", "samples=2")
    second = two._record(_result([0.5, 1.0], [2.0, 3.0]), 1, two.plan.targets[1], {})
    assert (second["name"], second["group"], second["sample"]) == ("L2-U3-channel-s1", "L2-U3-channel", 1)
    unit = _job(tmp_path, "objective.unit=2")
    assert unit._record(_result([0.0], [1.0]), 0, unit.plan.targets[0], {})["frame"] == 24


@pytest.mark.parametrize("layer,initial,final,stalled,no_progress", [
    ("2", -1.0, -0.5, None, False),
    ("2", 0.0, 1.0, [False], False),
    ("2", 0.0, 1.0, [True], True),  # the optimisation did not move the signal
    ("conv1", -0.5, -0.005, None, True),  # a GELU output that only rose to its asymptote 0 from below
    ("conv1", -0.5, -0.02, None, False),  # still clearly below it: it moved
    ("conv1", -0.5, 0.0, None, True),
    ("conv1", -0.5, 0.5, None, False),  # past 0: a real maximum
    ("conv1", -0.001, -0.002, None, False),  # fell: not a rise to the asymptote
    ("2", -0.5, -0.005, None, False)])  # a transformer unit has no asymptote at 0
def test_a_target_made_no_progress_when_it_did_not_move_or_only_rose_to_geluss_asymptote(
        tmp_path, layer, initial, final, stalled, no_progress):
    job = _job(tmp_path, f"model.layer={layer}", "objective=channel")
    assert job._record(_result([initial], [final], stalled), 0, job.plan.targets[0], {})["no_progress"] is no_progress


def test_the_jobs_totals_add_up_across_reruns(tmp_path):
    job = _job(tmp_path, "objective=channel", "objective.unit=0:3", "batch_size=2", "seed=5", "steps=9")
    job.data_cer = 0.25
    records = [{"name": "a", "stopped": None}, {"name": "b", "stopped": "interrupted"}, {"name": "c"}]
    first = job._metrics(records, {}, loop_seconds=2.0, target_steps=30, batch_steps=10, audiated=3, stopped=None,
                         wall_seconds=6.0)
    assert first["targets"] is records
    assert first["run"] == {
        "name": "L2-U0..L2-U2-channel", "group": None, "layer": "L2", "model": "random_small", "objective": "channel",
        "parameterization": "fft", "augmentation": "standard", "device": "cpu", "seed": 5, "steps": 9,
        "batch_size": 2, "targets": 3, "complete": 2, "audiated_now": 3, "runs": 1, "wall_seconds": 6.0,
        "loop_seconds": 2.0, "target_steps": 30, "batch_steps": 10, "target_steps_per_second": 15.0,
        "steps_per_second": 5.0, "seconds_per_target": 2.0, "stopped": None, "data_cer": 0.25}
    again = job._metrics(records, first["run"], loop_seconds=1.0, target_steps=15, batch_steps=5, audiated=1,
                         stopped="interrupted", wall_seconds=3.0)["run"]
    assert (again["runs"], again["wall_seconds"], again["loop_seconds"], again["target_steps"], again["batch_steps"]) == (
        2, 9.0, 3.0, 45, 15)
    assert (again["target_steps_per_second"], again["steps_per_second"], again["seconds_per_target"],
            again["stopped"], again["audiated_now"]) == (15.0, 5.0, 3.0, "interrupted", 1)
    idle = job._metrics(records, {}, 0.0, 0, 0, 0, None, 1.0)["run"]  # all done before: nothing was optimised
    assert (idle["target_steps_per_second"], idle["steps_per_second"], idle["seconds_per_target"]) == (None, None, None)


def test_a_batch_is_named_by_its_first_and_last_targets(tmp_path):
    targets = builder.plan(compose(*SMALL, "objective=channel", "objective.unit=0:32")).targets
    assert batch_name(targets) == "L2-U0..L2-U31-channel"
    assert batch_name(targets[5:6]) == "L2-U5-channel"
    texts = builder.plan(compose("model=tiny", "logger=none", "objective=text", "objective.text=[moon,star]")).targets
    assert batch_name(texts) == "text-moon..text-star"  # no shared suffix: both names whole
    mixed = [targets[0], texts[0]]
    assert batch_name(mixed) == "L2-U0-channel..text-moon"
    assert AudiationJob(builder.plan(compose(*SMALL, "objective.unit=[3,9]")), tmp_path).name == "L2-U3..L2-U9-unit"
