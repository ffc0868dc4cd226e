"""Sweeps: one model load per process, resumable jobs, parallel launchers."""

from __future__ import annotations

import json
import os

import pytest
from conftest import compose, run_cli

from audiation.jobs.audiate_job import audiate_folder


def test_multirun_loads_the_model_once_per_process(tmp_path):
    result = run_cli("--multirun", "model=random_small", "objective.unit=0,1,2", "steps=3",
                     "logger=none", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("audiation: loading model") == 1
    assert all((tmp_path / f"{n}_objective.unit={n}" / "metrics.json").is_file() for n in range(3))


def test_a_rerun_redoes_only_unfinished_targets(tmp_path):
    cfg = compose("model=random_small", "logger=none", "objective=channel", "objective.unit=0:4",
                  "batch_size=2", "steps=3")
    first = audiate_folder(cfg, tmp_path, None)
    assert first["run"]["audiated_now"] == 4
    # As if the job had been killed while the batch holding unit 3 ran: its record never got written.
    (tmp_path / "targets" / "L2-U3-channel" / "target.json").unlink()
    kept = (tmp_path / "targets" / "L2-U0-channel" / "audio.wav").stat().st_mtime_ns
    second = audiate_folder(cfg, tmp_path, None)
    assert second["run"]["audiated_now"] == 1
    assert [t["unit"] for t in second["targets"]] == [0, 1, 2, 3]
    assert (tmp_path / "targets" / "L2-U0-channel" / "audio.wav").stat().st_mtime_ns == kept
    assert json.loads((tmp_path / "targets" / "L2-U3-channel" / "target.json").read_text())["unit"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["local_processes", "submitit_local"])
def test_parallel_launchers_run_a_two_job_sweep(tmp_path, launcher):
    result = run_cli("--multirun", f"hydra/launcher={launcher}", "model=random_small", "objective.unit=0,1",
                     "steps=3", "threads=1", "logger=none", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = ("0_objective.unit=0", "1_objective.unit=1")  # named after the swept value, whichever launcher
    units = [json.loads((tmp_path / job / "metrics.json").read_text())["targets"][0]["unit"] for job in jobs]
    assert units == [0, 1]


def test_a_batched_job_writes_every_targets_files_and_one_table_row_each(tmp_path):
    metrics = audiate_folder(compose("model=random_small", "logger.mode=offline", "objective=channel",
                              "objective.unit=0:8", "batch_size=8", "steps=3"), tmp_path, None)
    assert metrics["run"]["targets"] == 8
    for target in metrics["targets"]:
        assert all((tmp_path / "targets" / target["name"] / f).is_file()
                   for f in ("audio.wav", "audio_16bit.wav", "spectrogram.png", "target.json"))
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (table,) = (run / "files" / "media" / "table").glob("targets_*.table.json")
    data = json.loads(table.read_text())
    assert len(data["data"]) == 8
    assert {"layer", "unit", "final_activation", "audio", "spectrogram"} <= set(data["columns"])
    assert sorted(row[data["columns"].index("unit")] for row in data["data"]) == list(range(8))


def test_a_failing_wandb_never_costs_the_local_files(tmp_path, monkeypatch, capsys):
    import wandb

    def broken(*args, **kwargs):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", broken)
    metrics = audiate_folder(compose("model=random_small", "logger.mode=offline", "steps=3"), tmp_path, None)
    assert "W&B disabled for this job (RuntimeError: no W&B today)" in capsys.readouterr().err
    assert (tmp_path / "metrics.json").is_file()
    assert (tmp_path / "targets" / metrics["targets"][0]["name"] / "audio_16bit.wav").is_file()


def _refused_sibling(tmp_path, *overrides: str):
    """A sweep whose two jobs share one folder (`hydra.sweep.subdir=same`): one of them is refused."""
    return run_cli("--multirun", *overrides, "model=random_small", "threads=1", "logger=none", "quality.draws=0",
                   "hydra.sweep.subdir=same", f"hydra.sweep.dir={tmp_path}")


def _one_refused_the_other_whole(result, tmp_path, reason: str):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and reason in result.stderr, result.stderr[-2000:]
    failed = (tmp_path / "failed_jobs.txt").read_text().splitlines()
    assert len(failed) == 1 and reason in failed[0]
    assert "audiation: error: 1 job(s) of the sweep failed" in result.stderr
    metrics = json.loads((tmp_path / "same" / "metrics.json").read_text())
    assert len(metrics["targets"]) == 1 and metrics["targets"][0]["stopped"] is None
    assert (tmp_path / "index.html").is_file()


def test_a_refused_job_of_a_sweep_ends_alone_and_the_sweep_exits_2_at_its_end(tmp_path):
    result = _refused_sibling(tmp_path, "steps=2", "optimizer.lr=0.05,0.5")
    _one_refused_the_other_whole(result, tmp_path, "made with other settings")


@pytest.mark.slow
def test_a_refused_parallel_job_does_not_kill_its_running_sibling(tmp_path):
    result = _refused_sibling(tmp_path, "hydra/launcher=local_processes", "steps=300", "objective.unit=0,1")
    _one_refused_the_other_whole(result, tmp_path, "is in use by another run")


def test_a_job_folder_is_named_after_the_swept_values_only_and_safely(monkeypatch):
    from audiation.config.configs import SWEPT, swept_values
    from audiation.jobs.sweep_callbacks import swept_keys

    assert swept_keys(["model=tiny", "model.layer=1,6", "steps=3"], {"objective": "unit,channel"}) == [
        "objective", "model.layer"]
    monkeypatch.setenv(SWEPT, "model.layer,objective.unit,model.name")
    assert swept_values(["model=tiny", "model.layer=6", "objective.unit=0\\:2", "steps=3"]) == \
        "_model.layer=6,objective.unit=0:2"
    assert swept_values(["model.name=/data/my model/../x"]) == "_model.name=_data_my_model_.._x"  # no "/" in a name
    monkeypatch.setenv(SWEPT, "")
    assert swept_values(["model.layer=6"]) == ""  # nothing known to be swept: the job number alone


def test_a_named_sweep_folder_gets_its_start_time_in_the_wandb_group():
    from audiation.jobs.sweep_callbacks import sweep_group

    assert sweep_group("2026-12-02_10-00-00", "2026-12-02_10-00-01") == "2026-12-02_10-00-00"
    assert sweep_group("demo", "2026-12-02_10-00-01") == "demo_2026-12-02_10-00-01"


BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _multirun(tmp_path, task, params=None, sweeper=BASIC, **top):
    from omegaconf import OmegaConf

    return OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}, "job": {"config_name": "config"},
                                       "sweeper": {"_target_": sweeper, "params": params},
                                       "overrides": {"task": task}}, **top})


def test_a_sweep_is_checked_on_one_job_per_swept_value_not_on_their_product(tmp_path):
    from audiation.jobs.sweep_callbacks import basic_sweep_size, sweep_jobs, sweep_size

    task = ["a=1,2", "b=x", "c=3,4,5"]
    assert sweep_jobs(task) == [["a=1", "b=x", "c=3"], ["a=2", "b=x", "c=3"], ["a=1", "b=x", "c=4"],
                                ["a=1", "b=x", "c=5"]]
    assert sweep_jobs(["b=x"], {"d": "p,q"}) == [["d=p", "b=x"], ["d=q", "b=x"]]  # the sweeper's params first
    assert sweep_size(task) == 6 and sweep_size(task, {"d": "p,q"}) == 12 and sweep_size(["b=x"]) == 1
    assert basic_sweep_size(_multirun(tmp_path, task, {"d": "p,q"})) == 12
    assert basic_sweep_size(_multirun(tmp_path, task, sweeper="hydra_plugins.optuna.OptunaSweeper")) is None


def test_an_error_in_one_line_keeps_hydras_cause():
    from hydra.errors import ConfigCompositionException

    from audiation.jobs.sweep_callbacks import first_lines

    assert first_lines(ValueError("the line\nand more")) == "the line" and first_lines(KeyError()) == "KeyError"
    composed = ConfigCompositionException("Error merging override x=1\nmore")
    assert first_lines(composed) == "Error merging override x=1"
    composed.__cause__ = ValueError("Value 'x' is not an int\n    full_key: x")
    assert first_lines(composed) == "Error merging override x=1: Value 'x' is not an int"
    composed.__cause__ = ValueError("")
    assert first_lines(composed) == "Error merging override x=1"
    plain = ValueError("line")
    plain.__cause__ = ValueError("not said: only Hydra's causes are")
    assert first_lines(plain) == "line"


def test_a_bad_job_stops_the_sweep_before_it_starts_in_one_line(tmp_path, monkeypatch, capsys, caplog):
    from audiation.config import configs
    from audiation.jobs.sweep_callbacks import CheckSweep

    caplog.set_level("INFO", logger="audiation.jobs.sweep_callbacks")
    for name in (configs.GROUP, configs.SWEPT):
        monkeypatch.setenv(name, "")  # restored after the test
    good = ["model=random_small", "logger=none", "objective.unit=0,1", "model.layer=1,2"]
    CheckSweep().on_multirun_start(_multirun(tmp_path, good))
    assert os.environ[configs.SWEPT] == "objective.unit,model.layer" and os.environ[configs.GROUP].startswith("sweep_")
    assert [r.getMessage() for r in caplog.records] == ["checked 3 job configs covering every value of the sweep"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        CheckSweep().on_multirun_start(_multirun(tmp_path, ["model=random_small", "objective.unit=0,1.5"]))
    assert stopped.value.code == 2 and capsys.readouterr().err == (
        "audiation: error: in the job model=random_small objective.unit=1.5: objective.unit=1.5 is not a unit index (valid: 0..31)\n")
    CheckSweep().on_multirun_start(_multirun(tmp_path, ["objective.unit=1.5,2"], sweeper="other.Sweeper"))
    assert os.environ[configs.SWEPT] == ""  # another sweeper chooses as it goes: nothing checked, nothing named


def test_a_finished_sweep_says_where_its_report_and_page_are_and_fails_when_a_job_did(tmp_path, capsys):
    from audiation.config import configs
    from audiation.jobs.sweep_callbacks import Gallery

    sweep = tmp_path / "sweep"
    audiate_folder(compose("model=random_small", "logger=none", "threads=1", "steps=1", "quality.judges=false",
                           "quality.draws=0"), sweep / "0")
    capsys.readouterr()
    Gallery().on_multirun_end(_multirun(tmp_path, [], dry_run=True))
    assert not (sweep / "index.html").exists()  # a dry run audiated nothing
    Gallery().on_multirun_end(_multirun(tmp_path, []))
    assert capsys.readouterr().out == f"audiation: gallery in {sweep / 'index.html'}, report in {sweep / 'report.md'}\n"
    (sweep / configs.FAILED_JOBS).write_text("job 1: a\njob 2: b\n")
    with pytest.raises(SystemExit) as stopped:
        Gallery().on_multirun_end(_multirun(tmp_path, []))
    assert stopped.value.code == 2 and capsys.readouterr().err == (
        f"audiation: error: 2 job(s) of the sweep failed (listed in {sweep / configs.FAILED_JOBS})\n")


def test_a_dry_sweep_that_never_wrote_its_multirun_yaml_leaves_no_folder_and_no_error(tmp_path, capsys):
    from audiation.jobs.sweep_callbacks import SweepProgress

    progress = SweepProgress()
    progress.on_multirun_start(_multirun(tmp_path, ["objective.unit=0,1"], dry_run=True))
    (tmp_path / "sweep").mkdir()  # made, but Hydra stopped before its multirun.yaml
    progress.on_multirun_end(_multirun(tmp_path, [], dry_run=True))
    assert not (tmp_path / "sweep").exists() and capsys.readouterr().out == ""
