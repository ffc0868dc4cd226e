"""W&B at the unit level, read back from a sweep's offline files: one run per target (`logger.runs=target`)
is a row of the runs table with its own numeric unit and its own curve; every run, in either mode, has the
same keys with one type each (null where a run has no value); a job of several batches keeps each
target's curve on its own step axis; the `targets` table is not hidden by a number; W&B's media staging
stays in the job folder."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import child_env, run_module

SWEEP = ["--multirun", "model=random_small", "model.layer=1,2", "objective=channel", "objective.unit=0:3",
         "batch_size=2", "steps=4", "threads=1", "quality.draws=1", "logger.mode=offline"]


def _run(*args, home=None):
    env = child_env()
    if home is not None:  # W&B left to its defaults, with a home of its own to look into
        env.pop("WANDB_DATA_DIR", None)
        env["HOME"] = str(home)
    result = run_module("audiation.run", *args, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def _read(run_dir):
    """An offline run as W&B would upload it: its run record (config, group, job type), its summary with every
    update applied in order (nulls kept, as they are sent), and its history rows."""
    lines = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    run, summary, history = {}, {}, []
    for record in map(json.loads, lines):
        if record["type"] == "run":
            run = record["run"]
        elif record["type"] == "summary":
            summary.update(record["summary"]["update"])
        elif record["type"] == "history":
            history.append(record["history"]["item"])
    config = {k: v for k, v in run["config"]["update"].items() if k not in ("_wandb", "config")}
    return run, config, summary, history


def _kinds(values: dict) -> dict:
    return {k: "number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
            for k, v in values.items()}


def _measures(summary):
    return {k: v for k, v in summary.items() if not k.startswith(("_", "audio", "spectrogram", "targets",
                                                                    "activation/", "loss/", "optimisation_step"))}


def test_one_run_per_target_is_a_row_per_unit_with_its_own_curve(tmp_path):
    sweep = tmp_path / "sweep"
    _run(*SWEEP, "logger.runs=target", f"hydra.sweep.dir={sweep}")
    rows = []
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        joined = np.load(job / "history.npz")
        names = list(joined["names"])
        runs = sorted((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 3  # a run per target, none for the job
        for run_dir in runs:
            run, config, summary, history = _read(run_dir)
            name = config["target"]
            assert run["display_name"] == name and run["job_type"] == f"L{config['layer_index']}-U0..L{config['layer_index']}-U2-channel"
            assert [h["optimisation_step"] for h in history if "loss/mean" in h] == list(range(4))
            curve = [h["loss/mean"] for h in history if "loss/mean" in h]  # this target's own, not a mean of others
            assert curve == pytest.approx(joined["loss"][:, names.index(name)].tolist(), rel=1e-5)
            record = json.loads((job / "targets" / name / "target.json").read_text())
            assert summary["final_activation"] == pytest.approx(record["final_activation"])
            assert summary["target_count"] == 1
            rows.append((run, config, summary))
    assert len(rows) == 6
    assert sorted((c["layer_index"], c["unit"]) for _, c, _ in rows) == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    assert {c["unit_spec"] for _, c, _ in rows} == {"0:3"} and all(c["unit_min"] == c["unit"] == c["unit_max"]
                                                                   for _, c, _ in rows)
    assert len({run["run_group"] for run, _, _ in rows}) == 1  # the sweep
    assert len({run["job_type"] for run, _, _ in rows}) == 2  # one per job: L1-U0..L1-U2-channel, L2-...
    assert all(_kinds(c) == _kinds(rows[0][1]) for _, c, _ in rows)
    measures = [_measures(s) for _, _, s in rows]
    assert all(set(m) == set(measures[0]) for m in measures)
    assert measures[0]["selectivity"] is None  # a channel objective has none: null, not a missing key


def test_every_job_run_has_the_same_keys_and_types_and_its_curve_per_target_step(tmp_path):
    """One-unit jobs and three-unit jobs of two batches: `unit` a number or null, the spec a string; history
    on steps 0..3 whatever the batches; `targets` the table, `target_count` the number; media staged under
    the job folder, nothing under $HOME."""
    sweep, home = tmp_path / "sweep", tmp_path / "home"
    _run("--multirun", *SWEEP[1:3], "objective=channel", "objective.unit=1,0:3", *SWEEP[5:], f"hydra.sweep.dir={sweep}",
         home=home)
    jobs = ["0_model.layer=1,objective.unit=1", "1_model.layer=1,objective.unit=0:3",
            "2_model.layer=2,objective.unit=1", "3_model.layer=2,objective.unit=0:3"]
    read = [_read(next((sweep / job / "wandb").glob("offline-run-*"))) for job in jobs]
    configs = [config for _, config, _, _ in read]
    assert [(c["layer_index"], c["unit"], c["unit_spec"], c["targets"]) for c in configs] == [
        (1, 1, "1", 1), (1, None, "0:3", 3), (2, 1, "1", 1), (2, None, "0:3", 3)]
    assert all(set(c) == set(configs[0]) for c in configs)
    summaries = [summary for _, _, summary, _ in read]
    assert [s["target_count"] for s in summaries] == [1, 3, 1, 3]
    assert all(s["targets._type"] == "table-file" for s in summaries)  # the table, not hidden by a count
    assert all(s["selectivity"] is None for s in summaries)  # channel objectives have none: null, not missing
    kinds = [_kinds(_measures(s)) for s in summaries]
    assert all(set(k) == set(kinds[0]) for k in kinds)
    assert all(k[key] in ("number", "NoneType") for k in kinds for key in k if key not in ("phone", "text", "transcript"))
    for _, _, _, history in read:  # two batches (of 2 and 1) or one: the same steps
        assert [h["optimisation_step"] for h in history if "loss/mean" in h] == list(range(4))
    assert list((sweep / jobs[1] / "wandb" / "artifacts" / "staging").iterdir())
    assert not (home / ".local" / "share" / "wandb").exists()


def test_the_summary_is_every_measures_mean_and_median_and_a_lone_targets_words():
    from audiation.outputs import record_schema
    from audiation.outputs.tracking import summary_of

    rows = [{"final_activation": 1.0, "phone": "s"}, {"final_activation": 2}, {"final_activation": 6.0},
            {"final_activation": float("nan")}, {"final_activation": True}, {"final_activation": "7"}, {}]
    summary = summary_of(rows)  # NaN, a flag, a text and a missing value are no numbers to average
    assert summary["final_activation"] == 3.0 and summary["final_activation/median"] == 2.0
    assert summary["target_count"] == 7 and summary["phone"] is None  # words only for a run of one target
    assert set(summary) == {"target_count", "phone", "text", "transcript",
                            *record_schema.MEASURES, *(f"{m}/median" for m in record_schema.MEASURES)}
    lone = summary_of([{"phone": "s", "text": 4, "transcript": None, "final_activation": 2.5}])
    assert (lone["phone"], lone["text"], lone["transcript"]) == ("s", "4", None)
    assert lone["final_activation"] == lone["final_activation/median"] == 2.5 and lone["selectivity"] is None


def test_media_during_optimisation_are_the_first_targets_audio_and_spectrograms_under_fixed_keys():
    from types import SimpleNamespace

    from audiation.outputs import tracking

    logged = []
    tracker = object.__new__(tracking.WandbTracker)
    tracker.sample_rate, tracker.wandb = 16000, SimpleNamespace(
        Audio=lambda signal, sample_rate, caption: ("audio", caption, sample_rate, len(signal)),
        Image=lambda picture, caption: ("image", caption, picture.ndim, picture.shape[-1]))
    media = [(f"L1-U{u}-unit", np.random.default_rng(u).normal(size=1600).astype(np.float32) * 0.1) for u in range(6)]
    tracker._log_media(SimpleNamespace(log=logged.append), 7, media)
    [row] = logged
    assert set(row) == {"optimisation_step", "audio", "spectrogram"} and row["optimisation_step"] == 7
    names = [name for name, _ in media[:tracking.ROWS_LOGGED_APART]]
    assert row["audio"] == [("audio", name, 16000, 1600) for name in names]
    assert row["spectrogram"] == [("image", name, 3, 3) for name in names]  # RGB pictures


def test_a_run_is_finished_with_the_exit_code_the_console_ends_with():
    from audiation import errors
    from audiation.outputs.tracking import Tracker

    class Recorded(Tracker):
        def finish(self, exit_code=0):
            codes.append(exit_code)

    codes = []
    for raised in (None, errors.AudiationError, OSError, errors.JobRefused, KeyboardInterrupt, errors.Terminated,
                   ValueError):
        with contextlib.suppress(BaseException), Recorded():
            if raised is not None:
                raise raised()
    assert codes == [0, 2, 2, 2, 130, 143, 1]  # Ctrl-C, SIGTERM and a bug as run_or_exit exits


def test_loss_terms_line_up_on_each_targets_own_step_over_the_targets_that_reached_it():
    from audiation.outputs.tracking import history_records

    histories = {"a": {"loss": np.array([3.0, 2.0, 1.0]), "activation": np.array([0.5, 1.5, 2.5])},
                 "b": {"loss": np.array([5.0, 4.0])}, "c": {}}
    assert history_records(histories) == [
        {"optimisation_step": 0, "loss/mean": 4.0, "loss/min": 3.0, "loss/max": 5.0,
         "activation/mean": 0.5, "activation/min": 0.5, "activation/max": 0.5},
        {"optimisation_step": 1, "loss/mean": 3.0, "loss/min": 2.0, "loss/max": 4.0,
         "activation/mean": 1.5, "activation/min": 1.5, "activation/max": 1.5},
        {"optimisation_step": 2, "loss/mean": 1.0, "loss/min": 1.0, "loss/max": 1.0,
         "activation/mean": 2.5, "activation/min": 2.5, "activation/max": 2.5}]
    assert history_records({}) == [] and history_records({"c": {}}) == []


def test_every_run_has_one_unit_or_null_and_a_targets_run_its_own(monkeypatch, tmp_path):
    from audiation.outputs import tracking

    flat = {"layer_index": 8, "unit_min": 3, "unit_max": 3}
    assert tracking.run_config(flat, 3) == {**flat, "unit": 3, "unit_spec": "3", "target": None}
    several = {"layer_index": 8, "unit_min": 0, "unit_max": 63}
    assert tracking.run_config(several, "0:64") == {**several, "unit": None, "unit_spec": "0:64", "target": None}
    assert tracking.run_config(flat, None)["unit_spec"] is None
    assert tracking.target_config(tracking.run_config(several, "0:64"), {"name": "L8-U5-unit", "unit": 5}) == {
        **several, "unit": 5, "unit_min": 5, "unit_max": 5, "unit_spec": "0:64", "target": "L8-U5-unit"}
    monkeypatch.setenv("WANDB_API_KEY", "x")
    assert tracking.resolve_mode("auto") == "online" and tracking.resolve_mode("offline") == "offline"
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    assert tracking.resolve_mode("auto") == "offline"  # no key, no ~/.netrc
    (tmp_path / ".netrc").write_text("machine api.wandb.ai login user password key\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert tracking.logged_in() and tracking.resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org/sub")
    assert not tracking.logged_in()  # a key for another host
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai/v1/")
    assert tracking.logged_in()  # the host, not its path
    assert tracking.resolve_mode("disabled") == "disabled"


def test_w_and_bs_staging_folder_is_the_jobs_unless_the_user_chose_one(monkeypatch, tmp_path):
    import os

    from audiation.outputs import tracking

    monkeypatch.delenv("WANDB_DATA_DIR", raising=False)
    with tracking._data_dir(tmp_path / "job"):
        assert os.environ["WANDB_DATA_DIR"] == str((tmp_path / "job").resolve() / "wandb")
    assert "WANDB_DATA_DIR" not in os.environ
    monkeypatch.setenv("WANDB_DATA_DIR", "/mine")
    with tracking._data_dir(tmp_path / "job"):
        assert os.environ["WANDB_DATA_DIR"] == "/mine"
    assert os.environ["WANDB_DATA_DIR"] == "/mine"


def test_media_are_logged_for_the_first_batch_only_every_media_every_steps_and_at_its_end(tmp_path):
    from types import SimpleNamespace

    from audiation.jobs.subscribers import Tracking
    from audiation.outputs.tracking import Tracker

    class Recorded(Tracker):
        def wants_media(self, step):
            return step % 4 == 0

        def log_media(self, step, media):
            logged.append((step, [name for name, _ in media]))

    logged = []
    tracking = Tracking(Recorded(), tmp_path, steps=8)
    for batch in (["a", "b"], ["c"]):
        tracking.batch_started(batch)
        for first in (0, 2, 4, 6):  # the loop reports every 2 steps
            tracking.steps(first, {"loss": np.zeros(2)}, lambda: [np.zeros(3)] * len(batch))
        tracking.batch_done(SimpleNamespace(steps=8, signal=[np.zeros(3)] * len(batch)), [], [])
    assert logged == [(4, ["a", "b"]), (8, ["a", "b"])]  # the last step once: at the batch's end
