"""The W&B trackers (`outputs.tracking`) against a stand-in `wandb` module that writes down every call: what each
run is started with, what it logs and when, its tables, its summary, its finish, and a failure that turns W&B
off for the job and nothing else. (Real offline runs, read back from their files, are in test_wandb.py.)"""

from __future__ import annotations

import logging
import os
import sys
import types

import numpy as np
import pytest

from audiation.outputs import tracking


class Run:
    def __init__(self, calls: list, **init):
        self.calls, self.init, self.logged, self.finished = calls, init, [], None
        self.summary = types.SimpleNamespace(update=lambda values: calls.append(("summary", init["name"], values)))

    def define_metric(self, *args, **kwargs):
        self.calls.append(("define_metric", args, kwargs))

    def log(self, values):
        self.logged.append(values)

    def finish(self, exit_code=0):
        self.finished = exit_code


class Table:
    def __init__(self, columns):
        self.columns, self.data = columns, []

    def add_data(self, *values):
        assert len(values) == len(self.columns)
        self.data.append(values)


def _fake_wandb(monkeypatch, fail_on: str | None = None):
    calls, runs = [], []

    def init(**kwargs):
        if fail_on == "init":
            raise RuntimeError("no network")
        runs.append(Run(calls, **kwargs))
        calls.append(("data_dir", os.environ.get("WANDB_DATA_DIR")))
        return runs[-1]

    module = types.SimpleNamespace(
        init=init, Table=Table, Settings=lambda **kwargs: ("Settings", kwargs),
        Audio=lambda data, sample_rate=None, caption=None: ("Audio", data if isinstance(data, str) else len(data),
                                                            sample_rate, caption),
        Image=lambda data, caption=None: ("Image", data if isinstance(data, str) else data.shape[-1], caption))
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_DATA_DIR", raising=False)
    return calls, runs


SETTINGS = tracking.Settings(True, "offline", "job", "proj", "team", media_every=5)


def _tracker(tmp_path, settings=SETTINGS, **changes):
    options = dict(job_dir=tmp_path, name="job-name", group="sweep", job_type="the-job", tags=["L2"],
                   config={"layer": "L2", "unit": None}, sample_rate=16000)
    return tracking.start(settings, **{**options, **changes})


def test_a_jobs_run_is_started_with_its_names_in_the_jobs_folder_and_quiet(tmp_path, monkeypatch):
    calls, runs = _fake_wandb(monkeypatch)
    tracker = _tracker(tmp_path)
    assert isinstance(tracker, tracking.WandbTracker) and not isinstance(tracker, tracking.TargetRuns)
    (run,) = runs
    assert run.init == dict(project="proj", entity="team", dir=str(tmp_path), mode="offline", name="job-name",
                            group="sweep", job_type="the-job", tags=["L2"], config={"layer": "L2", "unit": None},
                            reinit="finish_previous", settings=("Settings", {"silent": True, "console": "off"}))
    assert calls[:3] == [("data_dir", str(tmp_path.resolve() / "wandb")),  # W&B stages its media in the job's folder
                         ("define_metric", ("optimisation_step",), {}),
                         ("define_metric", ("*",), {"step_metric": "optimisation_step"})]
    assert "WANDB_DATA_DIR" not in os.environ  # only while W&B is called
    verbose = tracking.Settings(True, "offline", "job", media_every=5, verbose=True)
    _tracker(tmp_path, verbose)
    assert runs[-1].init["settings"] == ("Settings", {"silent": False, "console": "auto"})
    assert isinstance(tracking.start(tracking.Settings()), tracking.Tracker)
    assert type(tracking.start(tracking.Settings())) is tracking.Tracker  # off: nothing is logged


def test_media_are_logged_every_media_every_steps_for_the_first_targets(tmp_path, monkeypatch):
    _, runs = _fake_wandb(monkeypatch)
    tracker = _tracker(tmp_path, sample_rate=8000)
    assert [step for step in range(12) if tracker.wants_media(step)] == [0, 5, 10]
    signals = [(f"L2-U{unit}", np.zeros(16000, np.float32)) for unit in range(6)]
    tracker.log_media(5, signals)
    (logged,) = runs[0].logged
    assert logged["optimisation_step"] == 5
    assert logged["audio"] == [("Audio", 16000, 8000, f"L2-U{unit}") for unit in range(tracking.ROWS_LOGGED_APART)]
    assert logged["spectrogram"] == [("Image", 3, f"L2-U{unit}") for unit in range(tracking.ROWS_LOGGED_APART)]
    never = _tracker(tmp_path, tracking.Settings(True, "offline", "job", media_every=0))
    assert not any(never.wants_media(step) for step in range(12))


def test_the_jobs_end_logs_every_step_the_table_with_its_examples_and_the_summary(tmp_path, monkeypatch):
    calls, runs = _fake_wandb(monkeypatch)
    tracker = _tracker(tmp_path)
    rows = [{"name": "b", "final_activation": 3.0, "audio": "b.wav", "spectrogram": "b.png", "examples": []},
            {"name": "a", "final_activation": 1.0, "audio": "a.wav", "spectrogram": "a.png", "examples": ["x.wav"]}]
    tracker.log_job(rows, {"a": {"loss": np.array([2.0, 1.0])}, "b": {"loss": np.array([4.0])}})  # aligned by step
    *steps, (table,) = [list(values.values()) if "targets" in values else values for values in runs[0].logged]
    assert steps == [{"optimisation_step": 0, "loss/mean": 3.0, "loss/min": 2.0, "loss/max": 4.0},
                     {"optimisation_step": 1, "loss/mean": 1.0, "loss/min": 1.0, "loss/max": 1.0}]
    assert table.columns == ["name", "final_activation", "audio", "spectrogram", "example_1"]
    assert table.data == [("b", 3.0, ("Audio", "b.wav", None, None), ("Image", "b.png", None), None),
                          ("a", 1.0, ("Audio", "a.wav", None, None), ("Image", "a.png", None), ("Audio", "x.wav", None,
                                                                                                 None))]
    (summary,) = [c for c in calls if c[0] == "summary"]
    assert summary[2] == tracking.summary_of(rows) and summary[2]["final_activation"] == 2.0
    tracker.log_job([], {})
    assert len(runs[0].logged) == 3  # nothing for a job with no rows


def test_an_examples_jobs_table_has_a_row_per_unit_and_rank(tmp_path, monkeypatch):
    calls, runs = _fake_wandb(monkeypatch)
    tracker = _tracker(tmp_path)
    rows = [{"unit": unit, "rank": rank, "audio": f"{unit}-{rank}.wav", "spectrogram": f"{unit}-{rank}.png",
             "file": "f.flac", "time": 1.5, "activation": 2.0, "text": "hi"} for unit in (3, 7) for rank in (1, 2)]
    tracker.log_examples(rows)
    (logged,) = runs[0].logged
    table = logged["examples"]
    assert table.columns == ["unit", "rank", "audio", "spectrogram", "file", "time", "activation", "text"]
    assert table.data[1] == (3, 2, ("Audio", "3-2.wav", None, None), ("Image", "3-2.png", None), "f.flac", 1.5, 2.0,
                             "hi")
    assert len(table.data) == 4
    assert ("summary", "job-name", {"units": 2, "example_rows": 4}) in calls
    tracker.log_examples([])
    assert len(runs[0].logged) == 1


def test_a_run_is_finished_once_with_the_jobs_exit_code(tmp_path, monkeypatch):
    _, runs = _fake_wandb(monkeypatch)
    with pytest.raises(KeyboardInterrupt), _tracker(tmp_path):
        raise KeyboardInterrupt
    assert runs[0].finished == 130
    tracker = _tracker(tmp_path)
    tracker.finish()
    tracker.finish(2)
    assert runs[1].finished == 0 and tracker.run is None


def test_a_failing_wandb_is_one_warning_and_then_left_alone(tmp_path, monkeypatch, caplog):
    _fake_wandb(monkeypatch, fail_on="init")
    with caplog.at_level(logging.WARNING):
        tracker = _tracker(tmp_path)
        assert not tracker.wants_media(0)
        tracker.log_media(0, [("a", np.zeros(100))])
        tracker.log_job([{"name": "a", "audio": "a.wav", "spectrogram": "a.png"}], {})
        tracker.log_examples([{"unit": 1}])
        tracker.finish()
    assert caplog.messages == ["warning: W&B disabled for this job (RuntimeError: no network); local files are "
                               "unaffected"]


def test_a_run_per_target_is_made_at_the_jobs_end_from_its_files(tmp_path, monkeypatch):
    calls, runs = _fake_wandb(monkeypatch)
    settings = tracking.Settings(True, "offline", "target", "proj", media_every=5)
    tracker = _tracker(tmp_path, settings, job_type="not-this")  # a target's run is of its job, by the job's name
    assert isinstance(tracker, tracking.TargetRuns) and not runs  # nothing while the job optimises
    assert not tracker.wants_media(0)
    tracker.log_media(0, [("a", np.zeros(100))])
    rows = [{"name": "L2-U1", "unit": 1, "audio": "1.wav", "spectrogram": "1.png", "phone": "S"},
            {"name": "L2-U2", "unit": 2, "audio": "2.wav", "spectrogram": "2.png"}]
    tracker.log_job(rows, {"L2-U1": {"loss": np.array([2.0, 1.0])}})
    assert [(r.init["name"], r.init["group"], r.init["job_type"], r.init["config"]) for r in runs] == [
        ("L2-U1", "sweep", "job-name", {"layer": "L2", "unit": 1, "unit_min": 1, "unit_max": 1, "target": "L2-U1"}),
        ("L2-U2", "sweep", "job-name", {"layer": "L2", "unit": 2, "unit_min": 2, "unit_max": 2, "target": "L2-U2"})]
    assert runs[0].logged == [{"optimisation_step": 0, "loss/mean": 2.0, "loss/min": 2.0, "loss/max": 2.0},
                              {"optimisation_step": 1, "loss/mean": 1.0, "loss/min": 1.0, "loss/max": 1.0},
                              {"optimisation_step": 2, "audio": [("Audio", "1.wav", None, "L2-U1")],
                               "spectrogram": [("Image", "1.png", "L2-U1")]}]
    assert runs[1].logged == [{"optimisation_step": 0, "audio": [("Audio", "2.wav", None, "L2-U2")],
                               "spectrogram": [("Image", "2.png", "L2-U2")]}]
    assert [r.finished for r in runs] == [0, 0]
    summaries = [c[2] for c in calls if c[0] == "summary"]
    assert [s["phone"] for s in summaries] == ["S", None] and [s["target_count"] for s in summaries] == [1, 1]


def test_the_job_type_is_cut_to_wandbs_64_characters(tmp_path, monkeypatch):
    _, runs = _fake_wandb(monkeypatch)
    tracker = tracking.start(tracking.Settings(True, "offline", "target"), job_dir=tmp_path, name="j" * 70, group=None,
                             job_type="t", tags=[], config={}, sample_rate=16000)
    tracker.log_job([{"name": "a", "audio": "a.wav", "spectrogram": "a.png"}], {})
    assert runs[0].init["job_type"] == "j" * 64 and runs[0].init["group"] is None
