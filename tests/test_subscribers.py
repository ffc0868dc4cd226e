"""The job's local files as a subscriber (`jobs.subscribers.Files`), driven directly with a batch's result: every
row's own files, the record last and only for a finished target, the judges' verdicts in it, a unit's name and
examples, the job's own files at its end. (Its W&B twin, `Tracking`, is in test_wandb.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from conftest import compose

from audiation.config import builder
from audiation.core.render import Result
from audiation.hearing import judges
from audiation.jobs import subscribers
from audiation.outputs import disk, results

SMALL = ["model=random_small", "logger=none", "threads=1", "quality.draws=0"]


def _plan(*overrides: str):
    return builder.plan(compose(*SMALL, "objective=channel", "objective.unit=0:2", *overrides))


def _result(stopped: str | None = None) -> Result:
    signal = (np.random.default_rng(0).standard_normal((2, 16000)) * 0.1).astype(np.float32)
    history = {"loss": np.array([[1, 10], [2, 20], [3, 30]], np.float32),
               "activation": np.array([[4, 40], [5, 50], [6, 60]], np.float32)}
    return Result(signal, {}, {}, history, steps=3, seconds=0.1, stopped=stopped)


def _records(plan) -> list[dict]:
    return [{"name": t.name, "unit": t.unit, "files": results.target_files(t.name)} for t in plan.targets]


def _write(tmp_path, plan, result, **files_options) -> list[dict]:
    records = _records(plan)
    with disk.Writer() as writer:
        files = subscribers.Files(tmp_path, plan, writer, "a job", **files_options)
        files.batch_done(result, plan.targets, records)
        files.flush()
    return records


def test_each_row_gets_its_own_files_and_its_record_last(tmp_path, monkeypatch):
    plan, result = _plan(), _result()
    written = []

    def write_record(job_dir, record):  # the record marks the target complete: every file is there before it
        assert all((job_dir / path).is_file() for path in record["files"].values())
        written.append(record["name"])
        results.write_json(results.target_folder(job_dir, record["name"]) / results.RECORD, record)

    monkeypatch.setattr(results, "write_record", write_record)
    records = _write(tmp_path, plan, result)
    assert written == ["L2-U0-channel", "L2-U1-channel"]
    for row, record in enumerate(records):
        files = {key: tmp_path / path for key, path in record["files"].items()}
        audio, rate = soundfile.read(files["wav"], dtype="float32")
        assert rate == 16000 and np.array_equal(audio, result.signal[row])
        assert soundfile.info(files["wav_16bit"]).subtype == "PCM_16"
        assert files["spectrogram"].read_bytes().startswith(b"\x89PNG")
        history = results.read_target_history(tmp_path, record["name"])
        assert {k: v.tolist() for k, v in history.items()} == {"loss": [[1, 2, 3], [10, 20, 30]][row],
                                                                "activation": [[4, 5, 6], [40, 50, 60]][row]}
        assert json.loads((files["wav"].parent / results.RECORD).read_text()) == record


def test_a_stopped_batch_keeps_its_audio_but_is_never_complete(tmp_path):
    plan = _plan()
    stale = results.target_folder(tmp_path, "L2-U0-channel") / results.RECORD
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # a record of an earlier run, now being redone
    records = _write(tmp_path, plan, _result(stopped="interrupted"))
    assert not stale.exists() and not list(tmp_path.rglob(results.RECORD))
    assert all((tmp_path / r["files"]["wav"]).is_file() for r in records)
    assert not list(tmp_path.rglob("history.npz"))  # a stopped target's history is not its result


def _loud(seen: list):
    def load(device):
        def hear(signals, abouts):
            seen.append([a.target_seconds for a in abouts])
            return [{"loudness": round(float(row.abs().max()), 3)} for row in signals]
        return hear
    return judges.Judge("loud", ("loudness",), load, batched=True)


def test_the_judges_verdicts_are_in_each_record_and_a_stopped_batch_is_never_judged(tmp_path):
    seen = []
    judge = _loud(seen)
    plan = builder.plan(compose(*SMALL, "objective.unit=[0,1]"))  # one frame each: the judge is told where
    records = _write(tmp_path, plan, _result(), judged=(judge,))
    assert seen == [[plan.geometry.frame_centre_seconds(24)] * 2]
    assert [r["loudness"] for r in records] == [0.5, 0.5]  # the judges hear a signal at a peak of 0.5
    assert records[0]["judges_note"] is None and records[0]["whisper_transcript"] is None  # every judge's field
    assert json.loads((tmp_path / records[1]["files"]["wav"]).with_name(results.RECORD).read_text()) == records[1]
    _write(tmp_path / "stopped", plan, _result(stopped="interrupted"), judged=(judge,))
    assert len(seen) == 1


def test_a_units_name_and_examples_are_in_its_record_and_a_failure_costs_only_them(tmp_path, monkeypatch):
    plan = builder.plan(compose(*SMALL, "objective=channel", "objective.unit=0:2", "quality.data=audiation/assets/"
                                "speech-slice", f"quality.cache_dir={tmp_path / 'cache'}", "examples.top_k=2",
                                "examples.clip_seconds=0.5", "examples.min_gap_seconds=2"))
    columns = {0: np.array([1.0]), 1: np.array([2.0])}

    class Cache:
        def column(self, unit):
            return columns[unit]

    def name_unit(values, frame_phones):
        if values[0] == 2.0:
            raise ValueError("no phone")
        return {"phone": frame_phones, "phone_lift": 3.0}

    monkeypatch.setattr(subscribers.phones, "name_unit", name_unit)
    monkeypatch.setattr(subscribers.phones, "heard_as_label", lambda record: record.get("phone") == "AA")
    monkeypatch.setattr(subscribers, "top_examples", lambda cache, unit, top_k, gap: [(unit, top_k, gap)])
    monkeypatch.setattr(subscribers, "write_examples_of_unit",
                        lambda job_dir, cache, unit, found, label, clip, read: {"examples": [found, label, clip]})
    first, second = _write(tmp_path, plan, _result(), cache=Cache(), frame_phones="AA")
    assert (first["phone"], first["phone_lift"], first["heard_as_label"]) == ("AA", 3.0, True)
    assert first["examples"] == [[(0, 2, 2.0)], "L2", 0.5] and second["examples"] == [[(1, 2, 2.0)], "L2", 0.5]
    assert second["measures_note"] == "the unit's name failed (ValueError: no phone)" and "phone" not in second
    assert second["heard_as_label"] is False
    assert (tmp_path / second["files"]["wav"]).with_name(results.RECORD).is_file()  # the rest of it was kept
    none = builder.plan(compose(*SMALL, "objective=channel", "objective.unit=0:2", "quality.data=audiation/assets/"
                                "speech-slice", f"quality.cache_dir={tmp_path / 'cache'}", "examples.top_k=0"))
    assert all("examples" not in r for r in _write(tmp_path / "none", none, _result(), cache=Cache(), frame_phones="AA"))


def test_a_layer_or_a_direction_has_no_units_name_or_examples(tmp_path, monkeypatch):
    plan = builder.plan(compose(*SMALL, "objective=layer", "quality.data=audiation/assets/speech-slice",
                                f"quality.cache_dir={tmp_path / 'cache'}"))
    monkeypatch.setattr(subscribers.phones, "name_unit", lambda *a: pytest.fail("a layer has no unit to name"))
    monkeypatch.setattr(subscribers, "top_examples", lambda *a: pytest.fail("a layer has no unit's examples"))
    result = _result()
    result.signal = result.signal[:1]
    result.history = {k: v[:, :1] for k, v in result.history.items()}
    (record,) = _write(tmp_path, plan, result, cache=object(), frame_phones="AA")
    assert set(record) == {"name", "unit", "files"}


def test_the_jobs_own_files_at_its_end(tmp_path):
    plan = _plan()
    with disk.Writer() as writer:
        files = subscribers.Files(tmp_path, plan, writer, "a job")
        files.job_done({"run": {}, "targets": []}, {})
        assert json.loads((tmp_path / results.METRICS).read_text()) == {"run": {}, "targets": []}
        assert not (tmp_path / results.HISTORY).exists() and not (tmp_path / "loss_curve.png").exists()
        files.job_done({"run": {}, "targets": []}, {"L2-U0-channel": {"loss": np.array([3.0, 2.0])}})
    assert results.read_history(tmp_path)["L2-U0-channel"]["loss"].tolist() == [3.0, 2.0]
    assert (tmp_path / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
