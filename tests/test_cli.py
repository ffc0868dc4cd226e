"""The command line as users type it: bad input fails fast with one line, a multirun makes one job
folder and one finished offline W&B run per job, in one group."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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


def test_nan_loss_names_the_step_and_saves_the_signal(tmp_path, monkeypatch, capsys):
    # The plan bounds every number of the loop, so no option makes the loss NaN any more; a model or a
    # precision still can: here the power regulariser is made to give NaN from the first step.
    import torch
    from conftest import compose

    from audiation.core import objectives
    from audiation.errors import run_or_exit
    from audiation.jobs.audiate_job import audiate_folder

    monkeypatch.setattr(objectives, "power", lambda: objectives.Objective(
        "power", lambda _acts, signal: signal.pow(2).mean(dim=1) * torch.tensor(float("nan"))))
    with pytest.raises(SystemExit) as stop:
        run_or_exit(audiate_folder, compose(*SMALL, "regularizer.power=1", "steps=20"), tmp_path, saved=lambda: "")
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "NaN/inf at step 1" in error and "last finite signal was saved" in error
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
    jobs = [f"{n}_objective.unit={n}" for n in range(3)]  # named after the swept values
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == jobs
    for job, unit in zip(jobs, range(3)):
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
        media = [h for h in history if "audio.captions" in h]
        assert [h["optimisation_step"] for h in media] == [10, 12]  # every media_every steps (at the next fetch) and the end
        assert all(h["audio.captions"] == [f"L2-U{unit}-unit"] and "spectrogram.captions" in h for h in media)
        assert list((runs[0] / "files" / "media" / "table").glob("targets_*.table.json"))
    groups = {json.loads(line)["run"]["run_group"] for job in jobs
              for line in subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json",
                                          str(next((sweep / job / "wandb").glob("offline-run-*")))],
                                         capture_output=True, text=True).stdout.splitlines()
              if '"type":"run"' in line}
    (group,) = groups  # one group: the sweep folder's name with the sweep's start time (named folders are reused)
    assert re.fullmatch(r"my-sweep_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", group), group


def test_a_layers_by_units_sweep_compares_column_by_column_in_wandb(tmp_path):
    """A conv and an MLP layer x (one unit, a batch of three): every run has the same summary keys, history
    keys and numeric config columns, whatever its layer or batch size, so W&B's runs table and plots need
    no custom code; a run's measure is its targets' mean and `/median` their median (three, so they differ)."""
    sweep = tmp_path / "sweep"
    result = run_cli("--multirun", "model=random_small", "model.layer=conv2,mlp2", "objective.unit=0,0:3", "steps=4",
                     "threads=1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = ["0_model.layer=conv2,objective.unit=0", "1_model.layer=conv2,objective.unit=0:3",
            "2_model.layer=mlp2,objective.unit=0", "3_model.layer=mlp2,objective.unit=0:3"]
    runs = [_wandb_run(next((sweep / job / "wandb").glob("offline-run-*"))) for job in jobs]
    summaries = [summary["summary"] for summary, _ in runs]
    assert all(set(s) == set(summaries[0]) for s in summaries)
    for key in ("final_activation", "final_activation/median", "gain", "selectivity", "robust_activation", "target_count"):
        assert all(isinstance(s[key], (int, float)) for s in summaries), key
    history_keys = [{k for h in history for k in h if not k.startswith(("_", "targets"))} for _, history in runs]
    assert all(keys == history_keys[0] for keys in history_keys)
    configs = [summary["config"] for summary, _ in runs]
    assert [(c["layer_index"], c["unit_min"], c["unit_max"], c["targets"]) for c in configs] == [
        (-6, 0, 0, 1), (-6, 0, 2, 3), (2, 0, 0, 1), (2, 0, 2, 3)]  # conv2 of 7 convs is 2 - 7 - 1
    for (summary, _), job in zip(runs, jobs):
        finals = [t["final_activation"] for t in json.loads((sweep / job / "metrics.json").read_text())["targets"]]
        assert summary["summary"]["final_activation"] == pytest.approx(np.mean(finals))
        assert summary["summary"]["final_activation/median"] == pytest.approx(np.median(finals))
        if len(finals) == 3:  # else the test could not tell a mean from a median
            assert abs(np.mean(finals) - np.median(finals)) > 1e-3 * np.ptp(finals), finals


def test_a_single_run_is_a_wandb_group_of_its_own(tmp_path):
    job = tmp_path / "2026-12-02" / "10-00-00"
    assert run_cli("model=random_small", "steps=2", "threads=1", f"hydra.run.dir={job}").returncode == 0
    lines = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json",
                            str(next((job / "wandb").glob("offline-run-*")))], capture_output=True, text=True).stdout
    groups = {json.loads(line)["run"]["run_group"] for line in lines.splitlines() if '"type":"run"' in line}
    assert groups == {"2026-12-02_10-00-00"}


def test_every_job_ends_with_its_result_line_in_run_log_and_leaves_no_lock(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("--multirun", "model=random_small", "objective.unit=0,0:2", "steps=2", "threads=1",
                     "logger=none", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = ["0_objective.unit=0", "1_objective.unit=0:2"]
    single = json.loads((sweep / jobs[0] / "metrics.json").read_text())["targets"][0]
    line = (f"activation {single['initial_activation']:.3g} -> {single['final_activation']:.3g}; listen: "
            f"{sweep / jobs[0] / 'targets' / 'L2-U0-unit' / 'audio_16bit.wav'}")
    assert line in result.stdout
    assert f"(mean); browse: python -m audiation.gallery {sweep / jobs[1]}" in result.stdout
    for job in jobs:
        assert "target(s) of" in (sweep / job / "run.log").read_text().splitlines()[-1]
        assert not (sweep / job / ".audiation.lock").exists()


def test_help_is_the_projects_own_and_the_console_scripts_complete():
    result = run_cli("--help")
    assert result.returncode == 0
    for said in ("audiation-run: optimise audio that drives", "== Examples ==", "model=tiny is the project's own",
                 "objective: channel, direction, feature, layer, text, unit"):
        assert said in result.stdout, result.stdout
    assert "Powered by Hydra" not in result.stdout and "_target_" not in result.stdout  # no YAML dump
    assert "schema" not in result.stdout  # the config schemas are not options
    scripts = Path(sys.executable).parent
    for name in ("audiation-run", "audiation-examples", "audiation-features", "audiation-directions", "audiation-gallery",
                 "audiation-report"):
        assert (scripts / name).is_file(), name
    completion = subprocess.run([str(scripts / "audiation-run"), "--shell-completion", "install=bash"],
                                capture_output=True, text=True, timeout=60)
    assert completion.returncode == 0
    assert "complete -o nospace -o default -F hydra_bash_completion audiation-run" in completion.stdout


@pytest.mark.parametrize("command", ["gallery", "report"])
def test_a_commands_help_says_its_whole_first_paragraph(command, capsys):
    module = __import__(f"audiation.{command}", fromlist=["main"])
    with pytest.raises(SystemExit):
        module.main(["--help"])
    said = " ".join(capsys.readouterr().out.split())  # argparse rewraps the description
    assert " ".join(module.__doc__.split("\n\n")[0].split()) in said
    assert said.startswith(f"usage: python -m audiation.{command} ")  # the command as it is typed
    assert " ".join(module.__doc__.split("\n\n")[1].split()) not in said  # the first paragraph alone


@pytest.mark.parametrize("command,argv,what,called,helps", [
    ("gallery", ["a", "b", "--out", "x.html", "--embed", "--shared-scale"], "write_gallery",
     ([Path("a"), Path("b")], Path("x.html"), True, True),
     ["sweep, job or examples folders (searched recursively)",
      "the HTML file to write (default: <first folder>/index.html)",
      "put audio and images inside the page (small runs)",
      "draw every audiation's spectrogram on one dB scale, so colours compare across cards"]),
    ("report", ["sweep"], "write_report", (Path("sweep"),), ["a sweep or run folder"]),
])
def test_a_commands_options_reach_its_core_as_paths_and_each_says_what_it_is(command, argv, what, called, helps,
                                                                             monkeypatch, capsys, tmp_path):
    module = __import__(f"audiation.{command}", fromlist=["main"])
    calls = []
    page = tmp_path / "page"
    page.write_text("")
    monkeypatch.setattr(module, what, lambda *args: calls.append(args) or page)
    module.main(argv)
    assert calls == [called]  # paths, not strings; every folder given, not the first alone
    with pytest.raises(SystemExit):
        module.main(["--help"])
    said = " ".join(capsys.readouterr().out.split())  # argparse rewraps the help
    for help_ in helps:
        assert help_ in said


@pytest.mark.parametrize("command,what,saved", [("gallery", "write_gallery", "no page was written"),
                                                ("report", "write_report", "no report was written")])
def test_ctrl_c_in_a_command_says_what_was_not_written(command, what, saved, tmp_path, monkeypatch, capsys):
    module = __import__(f"audiation.{command}", fromlist=["main"])

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, what, interrupted)
    with pytest.raises(SystemExit) as stopped:
        module.main([str(tmp_path)])
    assert stopped.value.code == 130 and capsys.readouterr().err == f"audiation: interrupted; {saved}\n"
