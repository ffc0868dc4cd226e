"""Faults a cluster user meets, through real subprocesses and signals: SIGTERM saves like Ctrl-C, a rerun
refuses other settings and keeps its history, one run per folder, a sweep is checked before its first
job, an optimisation that cannot move says so, and every bad input is one line, exit 2, no folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, child_env, compose, run_cli

from audiation import errors
from audiation.jobs.audiate_job import audiate_folder
from audiation.jobs.folder import FolderLock
from audiation.report import write_report

SMALL = ["model=random_small", "logger=none", "threads=1"]


def _start(*args: str, log) -> subprocess.Popen:
    env = child_env(TQDM_DISABLE=None,  # the test waits for the progress bar
                    PYTHONFAULTHANDLER="1")  # a process that hangs prints every thread's stack on SIGABRT
    return subprocess.Popen([sys.executable, "-m", "audiation.run", *args], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def _terminated_while_optimising(log_path, *args: str) -> str:
    """Start `python -m audiation.run *args`, send SIGTERM a second into its optimisation loop, expect exit
    143; returns what it printed."""
    with open(log_path, "w") as log:
        process = _start(*args, log=log)
        try:
            deadline = time.time() + 120
            while "step/s" not in log_path.read_text():  # the progress bar: the loop is running
                assert time.time() < deadline and process.poll() is None, log_path.read_text()[-2000:]
                time.sleep(0.2)
            time.sleep(1.0)
            process.send_signal(signal.SIGTERM)
            try:
                assert process.wait(timeout=120) == 143, log_path.read_text()[-3000:]
            except subprocess.TimeoutExpired:  # hung: where, thread by thread
                process.send_signal(signal.SIGABRT)
                process.wait(timeout=30)
                raise AssertionError(f"no exit 2 min after SIGTERM:\n{log_path.read_text()[-6000:]}") from None
        finally:
            process.kill()  # never left running (the jobs these tests start run 100000 steps)
    return log_path.read_text()


def test_sigterm_saves_the_running_batch_and_says_so(tmp_path):
    job = tmp_path / "job"
    out = _terminated_while_optimising(tmp_path / "log", *SMALL, "logger=wandb", "objective.unit=0:3", "steps=100000",
                                       f"hydra.run.dir={job}")
    assert ("audiation: terminated (SIGTERM); 0 target(s) complete and 3 saved as their last finite signal in" in out
            and "Traceback" not in out)
    for unit in range(3):
        signal_, rate = sf.read(job / "targets" / f"L2-U{unit}-unit" / "audio.wav")
        assert rate == 16000 and np.isfinite(signal_).all() and np.abs(signal_).max() > 0
        assert not (job / "targets" / f"L2-U{unit}-unit" / "target.json").exists()  # redone on resume
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["run"]["stopped"] == "interrupted" and all(t["steps"] > 0 for t in metrics["targets"])
    (run,) = (job / "wandb").glob("offline-run-*")
    summary = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(run)],
                             capture_output=True, text=True, check=True).stdout
    assert json.loads(summary)["state"] == "failed"  # finished by us with exit code 143, not left open ("crashed")
    assert list(run.glob("run-*.wandb"))


def test_a_rerun_with_other_settings_is_refused_before_any_work_unless_redo(tmp_path):
    assert run_cli(*SMALL, "steps=3", f"hydra.run.dir={tmp_path}").returncode == 0
    overrides = (tmp_path / ".hydra" / "overrides.yaml").read_text()
    metrics = (tmp_path / "metrics.json").read_text()
    refused = run_cli(*SMALL, "steps=3", "optimizer.lr=0.5", f"hydra.run.dir={tmp_path}")
    assert refused.returncode == 2
    assert ("1 target(s) in" in refused.stderr and "optimizer.lr: 0.05 -> 0.5" in refused.stderr
            and "redo=true" in refused.stderr)
    assert (tmp_path / ".hydra" / "overrides.yaml").read_text() == overrides  # nothing rewritten
    assert (tmp_path / "metrics.json").read_text() == metrics
    redone = run_cli(*SMALL, "steps=3", "optimizer.lr=0.5", "redo=true", f"hydra.run.dir={tmp_path}")
    assert redone.returncode == 0, redone.stderr
    record = json.loads((tmp_path / "targets" / "L2-U0-unit" / "target.json").read_text())
    assert record["settings"]["optimizer.lr"] == 0.5


def test_a_rerun_keeps_timing_and_every_targets_history_and_auto_batch_works_when_all_are_done(tmp_path):
    cfg = compose(*SMALL, "objective=channel", "objective.unit=0:4", "batch_size=2", "steps=3")
    first = audiate_folder(cfg, tmp_path)
    (tmp_path / "targets" / "L2-U3-channel" / "target.json").unlink()
    second = audiate_folder(cfg, tmp_path)
    assert second["run"]["audiated_now"] == 1 and second["run"]["runs"] == 2
    assert second["run"]["wall_seconds"] > first["run"]["wall_seconds"] and second["run"]["steps_per_second"] > 0
    with np.load(tmp_path / "history.npz") as history:
        assert list(history["names"]) == [f"L2-U{u}-channel" for u in range(4)]
        assert history["loss"].shape == (3, 4) and np.isfinite(history["loss"]).all()
    cfg.batch_size = "auto"
    third = audiate_folder(cfg, tmp_path)  # nothing to do: no batch size to choose, no crash
    assert third["run"]["audiated_now"] == 0 and third["run"]["wall_seconds"] >= second["run"]["wall_seconds"]


def test_a_folders_lock_refuses_a_second_holder_in_one_line_and_a_finished_run_leaves_no_file(tmp_path):
    job = tmp_path / "job"
    with FolderLock(job) as held:
        assert held.path == job / ".audiation.lock" and held.path.exists()
        with pytest.raises(errors.AudiationError) as busy:
            FolderLock(job).__enter__()
        assert str(busy.value) == f"{job} is in use by another run; wait for it or choose another folder"
    assert list(job.iterdir()) == []
    with FolderLock(job):
        pass


@pytest.mark.parametrize("replaced", [True, False])
def test_a_lock_file_removed_by_the_run_before_between_open_and_lock_is_not_the_one_held(tmp_path, monkeypatch,
                                                                                          replaced):
    import fcntl

    lock, calls = FolderLock(tmp_path), []
    real = fcntl.flock

    def flock(handle, how):
        calls.append(how)
        if len(calls) == 1:  # the run before ends now: it removes its file (and another run may make a new one)
            lock.path.unlink()
            if replaced:
                lock.path.write_text("")
        return real(handle, how)

    monkeypatch.setattr(fcntl, "flock", flock)
    with lock:
        assert len(calls) == 2 and os.fstat(lock.handle.fileno()).st_ino == os.stat(lock.path).st_ino


def test_a_folder_is_refused_only_when_it_holds_our_names_without_our_marks_or_our_content(tmp_path):
    from audiation.jobs.folder import refuse_foreign

    refuse_foreign(tmp_path / "new")  # nothing there yet
    for name in ("index.html", "metrics.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(errors.AudiationError) as refused:
        refuse_foreign(tmp_path)
    assert str(refused.value) == (f"{tmp_path} holds files audiation did not write (metrics.json, index.html) and "
                                  "would write over them; choose another folder")
    refuse_foreign(tmp_path, writes=("notes.txt",), marks=("notes.txt",))  # its own mark: ours
    seen = []
    refuse_foreign(tmp_path, ours=lambda folder: seen.append(folder) or True)  # told ours by its content
    assert seen == [tmp_path]
    with pytest.raises(errors.AudiationError, match=r"\(notes.txt\)"):
        refuse_foreign(tmp_path, writes=("notes.txt", "absent"), marks=(), ours=lambda folder: False)
    (tmp_path / "targets").mkdir()
    refuse_foreign(tmp_path)


def test_one_run_per_folder_and_a_dead_runs_lock_does_not_stick(tmp_path):
    with FolderLock(tmp_path):
        busy = run_cli(*SMALL, "steps=2", f"hydra.run.dir={tmp_path}")
    assert busy.returncode == 2 and "is in use by another run" in busy.stderr
    crashed = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys; h = open(sys.argv[1], 'a+'); "
                                "fcntl.flock(h, fcntl.LOCK_EX); os._exit(9)", str(tmp_path / ".audiation.lock")])
    assert crashed.wait() == 9
    assert run_cli(*SMALL, "steps=2", f"hydra.run.dir={tmp_path}").returncode == 0


def test_a_sweep_is_checked_before_its_first_job(tmp_path):
    result = run_cli("--multirun", "model=tiny", "logger=none", "model.layer=1,9,3", "steps=2",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 2
    assert "model.layer=9 is not a layer of this model" in result.stderr and "Traceback" not in result.stderr
    assert not [p for p in (tmp_path / "sweep").glob("*") if p.is_dir()]  # no job ran


def test_an_optimisation_that_cannot_move_says_so(tmp_path):
    # a step of 1e-30 on values about 0.01 is lost in float32: the signal stays exactly where it began
    result = run_cli(*SMALL, "steps=5", "optimizer.lr=1e-30", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0
    assert "did not move at all" in result.stderr
    assert json.loads((tmp_path / "targets" / "L2-U0-unit" / "target.json").read_text())["no_progress"] is True


def test_the_report_leaves_out_unfinished_targets_and_says_how_many(tmp_path):
    def record(unit, stopped=None):
        return {"name": f"L2-U{unit}-unit", "layer": "L2", "unit": unit, "final_activation": float(unit),
                "stopped": stopped}

    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": [
        record(1), record(2), record(3, "interrupted")]}))
    report = write_report(tmp_path).read_text()
    assert "| final_activation | L2 | 2 |" in report and "1 unfinished target(s)" in report


def test_a_report_of_only_unfinished_targets_says_so_in_one_line(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": [
        {"name": f"L2-U{unit}-unit", "layer": "L2", "unit": unit, "final_activation": 1.0, "stopped": "interrupted"}
        for unit in (1, 2)]}))
    with pytest.raises(errors.AudiationError, match=r"^no finished targets under .* \(2 unfinished\)$"):
        write_report(tmp_path)


@pytest.mark.parametrize("overrides,message", [
    (["objective.unit=1.5"], "objective.unit=1.5 is not a unit index"),
    (["log_every=0"], "log_every=0 must be > 0"),
    (["parameterization.seconds=1e6"], "needs about"),
    (["logger=wandb", "logger.mode=bogus"], "logger.mode=bogus is not one of auto, online, offline, disabled"),
    (["augmentation.max_shift_ms=-5"], "augmentation.max_shift_ms=-5 must be >= 0"),
    (["quality.draws=-1"], "quality.draws=-1 must be >= 0"),
    (["objective.unit=[1,1]"], "names unit 1 twice"),
    (["objective=channel", "objective.unit=0:999"], "objective.unit=0:999 runs past the last unit of layer L2"),
    (["quality.data=audiation/assets/speech-slice", "quality.cache_dir=/etc/passwd/cache"],
     "quality.cache_dir=/etc/passwd/cache cannot be a folder"),
    (["regularizer.power=nan"], "regularizer.power=nan must be a finite number"),
    (["parameterization.init=/no/such.wav"], "parameterization.init=/no/such.wav: no such audio file"),
    (["regularizer.stay_close=1"], "regularizer.stay_close needs parameterization.init"),
    (["model.layer=mlp9"], "model.layer=mlp9 is not a layer of this model (valid: 0..3, conv1..conv7, mlp1..mlp3)"),
    (["objective=text"], "objective=text needs a CTC model (*ForCTC); random_small has no CTC head"),
    (["model=tiny", "objective=text", "objective.text=[moon,m00n]"], "objective.text=m00n: '0' not in the vocabulary"),
    (["model=tiny", "objective=text", "objective.text=[moon,moon]"], "names a text twice"),
    (["samples=0"], "samples=0 must be > 0"),
    (["model=tiny", "model.layer=logits", "quality.listener=/no/such/model"],
     "quality.listener=/no/such/model: no such model folder"),
    (["model=tiny", "model.layer=logits", "model.ensemble=[/no/such/model]"],
     "model.ensemble=/no/such/model: no such model folder"),
    (["model=tiny", "model.layer=4", "model.ensemble=[audiation/assets/tiny-w2v2-espeak]"],
     "model.ensemble averages CTC logits: it needs model.layer=logits or objective=text"),
    (["model=tiny", "objective=text", "objective.text=supercalifragilistic", "parameterization.seconds=0.3"],
     "objective.text=supercalifragilistic needs 20 frames; 0.3 s has 14"),
    (["model=tiny", "objective=text", """objective.text=[don t,"don't"]"""], "two that make the same target name"),
    (["diversity=1"], "diversity=1 needs samples >= 2"),
    (["parameterization.floor_hz=0"], "parameterization.floor_hz=0 must be > 0"),
    (["parameterization.decay=-500"], "parameterization.decay=-500 with floor_hz=100 scales the spectrum over 10^952"),
    (["optimizer.lr=1e38"], "optimizer.lr=1e+38 must be at most 1000"),
    # each number of the loop bounded before the model loads (past these the signal or Adam's state overflows)
    (["regularizer.power=1e38"], "regularizer.power=1e+38 must be at most 1e+06"),
    (["regularizer.high_frequency=-1e38"], "regularizer.high_frequency=-1e+38 must be > -1e+06"),
    (["parameterization.rms=1e30"], "parameterization.rms=1e+30 must be at most 1000"),
    (["parameterization.init_std=1e30"], "parameterization.init_std=1e+30 must be at most 1000"),
    (["augmentation=strong", "augmentation.gain_db=1e30"], "augmentation.gain_db=1e+30 must be at most 40"),
    (["augmentation.max_shift_ms=5000"], "augmentation.max_shift_ms=5000 must be at most"),
    (["augmentation=strong", "augmentation.room_ms=1e9"], "augmentation.room_ms=1e+09 must be at most"),
    (["augmentation.noise_snr_db=-1000"], "augmentation.noise_snr_db=-1000 must be >= -100"),
    (["parameterization=speech", "parameterization.f0_hz=[300,70]"], "parameterization.f0_hz=[300.0, 70.0] must be"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_no_folder(tmp_path, overrides, message):
    job = tmp_path / "2026-01-01" / "job"
    result = run_cli(*SMALL, *overrides, f"hydra.run.dir={job}")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not job.exists() and not job.parent.exists()


@pytest.mark.parametrize("value,message", [("/etc/passwd/run", "cannot be a folder: /etc/passwd is a file"),
                                           ("", "hydra.run.dir is empty"),
                                           ("/etc/passwd/${now:%H}", "cannot be a folder: /etc/passwd is a file"),
                                           ("/proc/x", "hydra.run.dir=/proc/x is not writable (/proc: ")])
def test_an_unusable_job_folder_is_one_line(value, message):
    result = run_cli(*SMALL, f"hydra.run.dir={value}")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("where,args,message", [
    ("file", [], "hydra.run.dir=outputs cannot be a folder: outputs is a file (the default"),
    ("file", ["--multirun"], "hydra.sweep.dir=outputs cannot be a folder: outputs is a file"),
    ("/proc", [], "hydra.run.dir=outputs is not writable (.: ")])  # a current folder nothing can be written in
def test_a_default_output_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch, where, args, message):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # this checkout's package, from another current folder
    if where == "file":
        (tmp_path / "outputs").write_text("not a folder")
    result = run_cli(*args, *SMALL, "steps=1", cwd=tmp_path if where == "file" else where)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_console_is_quiet(tmp_path):
    result = run_cli("--multirun", *SMALL, "logger=wandb", "logger.mode=offline", "objective.unit=0,1", "steps=3",
                     f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith("wandb")], lines  # W&B's banner only when verbose
    assert len([line for line in lines if "step/s" not in line]) <= 10, lines


def test_an_interrupted_sweep_still_gets_its_gallery(tmp_path):
    sweep = tmp_path / "sweep"
    _terminated_while_optimising(tmp_path / "log", "--multirun", *SMALL, "objective.unit=0,1", "steps=100000",
                                 f"hydra.sweep.dir={sweep}")
    from test_gallery import data

    (card,) = data(sweep / "index.html")
    assert card["name"] == "L2-U0-unit" and card["stopped"] == "interrupted"


def test_a_writer_failure_stops_the_job_at_the_next_batch():
    from audiation.outputs.disk import Writer

    done = []
    with Writer() as writer:
        writer.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            writer.flush()
        writer.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):  # the failure surfaces at a later submit, not only at the end
            deadline = time.time() + 10
            while time.time() < deadline:
                writer.submit(lambda: done.append(1))
                time.sleep(0.01)
    assert done == []  # nothing queued after a failure is done


def test_an_option_added_since_a_run_is_a_changed_setting_only_when_switched_on():
    from audiation.outputs.results import settings_difference

    old = {"optimizer.lr": 0.05, "augmentation.stretch": 0.1}
    assert settings_difference(old, {**old, "augmentation.room_ms": 0.0, "model.ensemble": []}) == []
    assert settings_difference(old, {**old, "augmentation.room_ms": 150.0}) == ["augmentation.room_ms"]
    assert settings_difference(old, {**old, "optimizer.lr": 0.5}) == ["optimizer.lr"]
    assert settings_difference({**old, "augmentation.with_clean": True}, old) == ["augmentation.with_clean"]


def test_a_signal_while_a_batch_is_measured_keeps_the_batch(tmp_path, monkeypatch):
    from audiation.hearing import quality

    measure = quality.measure

    def interrupted_measure(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C once the steps are done
        return measure(*args, **kwargs)

    monkeypatch.setattr(quality, "measure", interrupted_measure)
    with pytest.raises(KeyboardInterrupt):
        audiate_folder(compose(*SMALL, "objective.unit=0:2", "steps=2"), tmp_path)
    assert all((tmp_path / "targets" / f"L2-U{u}-unit" / "target.json").is_file() for u in range(2))
    assert json.loads((tmp_path / "metrics.json").read_text())["run"]["complete"] == 2


def _interrupted_job_keeps_its_batch_whole(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        audiate_folder(compose(*SMALL, "objective.unit=0:2", "steps=2"), tmp_path)
    records = [json.loads((tmp_path / "targets" / f"L2-U{u}-unit" / "target.json").read_text()) for u in range(2)]
    assert [(r["steps"], r["stopped"]) for r in records] == [(2, None), (2, None)]  # whole, not "interrupted"
    assert json.loads((tmp_path / "metrics.json").read_text())["run"]["complete"] == 2


def test_a_signal_while_the_loop_makes_its_result_keeps_the_batch_whole(tmp_path, monkeypatch):
    from audiation.core import render

    evaluate, calls = render.evaluate, []

    def interrupted_evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the final numbers, after the last step: the batch is whole
            os.kill(os.getpid(), signal.SIGINT)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(render, "evaluate", interrupted_evaluate)
    _interrupted_job_keeps_its_batch_whole(tmp_path)


def test_a_signal_during_the_last_step_keeps_the_batch_whole(tmp_path, monkeypatch):
    from audiation.jobs import audiate_job

    make = audiate_job.progress_bar

    def bar(total, description):
        made = make(total, description)
        update = made.update

        def counted(n=1):
            update(n)
            if made.n == total:  # the last step is done; its fetch and the result are still to come
                os.kill(os.getpid(), signal.SIGINT)

        made.update = counted
        return made

    monkeypatch.setattr(audiate_job, "progress_bar", bar)
    _interrupted_job_keeps_its_batch_whole(tmp_path)


def test_natural_examples_that_fail_cost_only_themselves(tmp_path, monkeypatch):
    """A data file moved since its cache was built (its examples cannot be cut) leaves the batch's other files,
    records and every other target whole; the record says what is missing."""
    from audiation.jobs import subscribers

    def moved(*_args, **_kwargs):
        raise FileNotFoundError("000002.flac: no such file")

    monkeypatch.setattr(subscribers, "write_examples_of_unit", moved)
    slice_ = ROOT / "audiation" / "assets" / "speech-slice"
    audiate_folder(compose(*SMALL, "objective.unit=0:3", "steps=2", "batch_size=2", "examples.top_k=1",
                           f"quality.data={slice_}", f"quality.cache_dir={tmp_path / 'cache'}"), tmp_path / "run")
    records = [json.loads((tmp_path / "run" / "targets" / f"L2-U{u}-unit" / "target.json").read_text())
               for u in range(3)]
    assert all((tmp_path / "run" / "targets" / r["name"] / "audio_16bit.wav").is_file() for r in records)
    assert [r["measures_note"] for r in records] == [
        "the natural examples failed (FileNotFoundError: 000002.flac: no such file)"] * 3
    assert all(r["activation_ratio"] is not None and r["phone_lift"] is not None for r in records)


def test_a_folder_of_another_tool_is_never_written_over(tmp_path):
    theirs = {"metrics.json": '{"accuracy": 0.9}', "loss_curve.png": "their picture", ".hydra/config.yaml": "lr: 1\n"}
    for name, content in theirs.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(content)
    result = run_cli(*SMALL, "steps=2", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "holds files audiation did not write (metrics.json, loss_curve.png, .hydra)" in (
        result.stderr) and len(result.stderr.strip().splitlines()) == 1
    assert {name: (tmp_path / name).read_text() for name in theirs} == theirs and not (tmp_path / "targets").exists()
    (tmp_path / "metrics.json").unlink()  # a folder with other files of other names is fine
    (tmp_path / "loss_curve.png").unlink()
    (tmp_path / ".hydra" / "config.yaml").unlink()
    (tmp_path / ".hydra").rmdir()
    (tmp_path / "notes.txt").write_text("mine")
    assert run_cli(*SMALL, "steps=2", f"hydra.run.dir={tmp_path}").returncode == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_full_disk_while_a_wav_is_written_is_one_line(tmp_path):
    import resource

    def small_disk():  # files past 20 KB fail to grow, as on a full disk (EFBIG, not a signal)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    env = child_env()
    result = subprocess.run([sys.executable, "-m", "audiation.run", *SMALL, "steps=2", "quality.judges=false",
                             f"hydra.run.dir={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300, preexec_fn=small_disk)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "File too large (" in result.stderr and "targets/L2-U0-unit/audio.wav)" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "targets" / "L2-U0-unit" / "target.json").exists()


@pytest.mark.parametrize("overrides,rows", [(["samples=300"], 300), (["samples=3", "objective.unit=0:8", "batch_size=16"], 15),
                                            (["samples=3", "objective.unit=0:2", "batch_size=auto"], 3)])
def test_the_memory_check_sizes_the_batch_the_job_will_run(monkeypatch, overrides, rows):
    from audiation.config import builder, checks

    sized = []
    monkeypatch.setattr(checks, "check_memory", lambda samples, config, batch, *_: sized.append(batch))
    builder.plan(compose(*SMALL, *overrides))
    assert sized == [rows]  # a target's samples share one batch, whatever batch_size says


def test_a_failure_of_one_sweep_job_ends_that_job_alone_in_one_line(capsys, caplog):
    from audiation.errors import JobRefused, run_or_exit

    def broken():
        raise RuntimeError("value cannot be converted to type float without overflow\nmore")

    with pytest.raises(JobRefused, match="RuntimeError: value cannot be converted"):
        run_or_exit(broken, saved=lambda: "", in_sweep=True)  # the sweep notes it and goes on
    assert capsys.readouterr().err.count("\n") == 1
    # the line says "its traceback is in the job's log": the log file's record carries it (the console not)
    [logged] = [r for r in caplog.records if r.getMessage() == "the job failed"]
    assert logged.file_only and logged.exc_info[0] is RuntimeError and "in broken" in caplog.text
    with pytest.raises(RuntimeError):
        run_or_exit(broken, saved=lambda: "")  # alone: the traceback of a bug


def test_a_measure_that_fails_is_recorded_and_the_batch_is_saved(tmp_path, monkeypatch, caplog):
    from audiation.hearing import quality

    def out_of_memory(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(quality, "measure", out_of_memory)
    metrics = audiate_folder(compose(*SMALL, "objective.unit=0:2", "steps=2"), tmp_path)
    assert metrics["run"]["complete"] == 2 and metrics["run"]["stopped"] is None
    for record in metrics["targets"]:
        assert record["measures_note"] == ("the quality measures failed (RuntimeError: CUDA out of memory. Tried to "
                                           "allocate 2.00 GiB)") and record["activation_trace"]
        assert (tmp_path / record["files"]["wav"]).is_file() and "robust_activation" not in record
    assert "its signals are saved without them" in caplog.text


def test_a_failure_note_is_one_line_of_at_most_a_hundred_characters_of_its_error():
    from audiation.errors import failure_note

    assert failure_note("the judges", ValueError("x" * 100 + "yz\nsecond line")) == \
        f"the judges failed (ValueError: {'x' * 100})"
    assert failure_note("the judges", MemoryError()) == "the judges failed (MemoryError: )"  # no message at all


def test_a_page_that_cannot_be_written_is_one_warning_and_the_job_goes_on(tmp_path, monkeypatch, caplog):
    from audiation import run
    from audiation.browser import page

    def no_space(_job_dir):
        raise OSError("No space left on device")

    monkeypatch.setattr(page, "write_gallery", no_space)
    assert run.job_page(tmp_path) is None
    assert [r.getMessage() for r in caplog.records] == ["warning: no page written: No space left on device"]


THEIRS = {".hydra/config.yaml": "lr: 1\n"}


@pytest.mark.parametrize("job,theirs", [
    ("features", {**THEIRS, "features.json": '{"k": 1}'}),
    ("features", {"sae.safetensors": "their weights"}),
    ("directions", {**THEIRS, "direction.npy": "their direction"}),
    ("examples", {**THEIRS, "examples.json": '{"units": "theirs"}'}),  # a file of the job's own name is no mark
])
def test_no_job_writes_over_a_folder_of_another_tool(tmp_path, job, theirs):
    from audiation.config import job_plans
    from audiation.errors import AudiationError
    from audiation.jobs import directions_job, examples_job, features_job

    folder, slice_ = tmp_path / "theirs", ROOT / "audiation" / "assets" / "speech-slice"
    for name, content in theirs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    shared = ["model=random_small", "threads=1", f"data.cache_dir={tmp_path / 'cache'}"]
    if job == "features":
        run = lambda: features_job.features_job(job_plans.features_plan(  # noqa: E731
            compose(*shared, f"data.path={slice_}", "features=4", "k=1", config_name="features")), folder)
    elif job == "directions":
        high, low = ROOT / "audiation/assets/pitch-contrast/high", ROOT / "audiation/assets/pitch-contrast/low"
        run = lambda: directions_job.directions_job(job_plans.directions_plan(  # noqa: E731
            compose(*shared, f"positive={high}", f"negative={low}", config_name="directions"), folder), folder)
    else:
        run = lambda: examples_job.examples_job(job_plans.examples_plan(  # noqa: E731
            compose(*shared, f"data.path={slice_}", "units=0", config_name="examples")), folder)
    with pytest.raises(AudiationError, match="holds files audiation did not write"):
        run()
    assert {name: (folder / name).read_text() for name in theirs} == theirs
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(theirs)


def test_a_second_failure_of_a_target_adds_its_note_to_the_first():
    from audiation.jobs.subscribers import noted

    def missing():
        raise FileNotFoundError("a.flac moved")

    record = {}
    noted(record, "its examples", missing)
    noted(record, "its phone name", missing)
    noted(record, "nothing", lambda: None)
    assert record["measures_note"] == ("its examples failed (FileNotFoundError: a.flac moved); "
                                       "its phone name failed (FileNotFoundError: a.flac moved)")


@pytest.mark.parametrize("received,raised", [({signal.SIGTERM}, errors.Terminated),
                                             ({signal.SIGINT}, KeyboardInterrupt),
                                             ({signal.SIGINT, signal.SIGTERM}, errors.Terminated)])
def test_a_held_back_signal_is_raised_as_what_it_stands_for(monkeypatch, received, raised):
    monkeypatch.setattr(errors, "_received", set(received))
    with pytest.raises(BaseException) as caught, errors.Shielded() as shield:
        shield.came = True
        shield.raise_if_came()
    assert caught.type is raised  # exactly: a Ctrl-C raised as Terminated would exit 143, not 130


def test_a_shielded_stretch_off_the_main_thread_shields_nothing_and_ends_cleanly():
    import threading

    handlers, failed = {s: signal.getsignal(s) for s in errors.STOP_SIGNALS}, []

    def work():
        try:
            with errors.Shielded() as shield:
                assert shield.previous == {} and not shield.came
        except BaseException as error:  # whatever it is: a thread would only print it
            failed.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert failed == [] and {s: signal.getsignal(s) for s in errors.STOP_SIGNALS} == handlers


def test_a_value_in_an_error_line_is_shown_as_typed_or_quoted_when_it_does_not_print():
    assert errors.shown("L8:U3") == "L8:U3" and errors.shown(7) == "7"
    assert errors.shown("a\nb") == "'a\\nb'" and errors.shown("\x1b[2J") == "'\\x1b[2J'"


def test_the_first_stop_signal_interrupts_and_the_later_ones_are_only_remembered(monkeypatch):
    monkeypatch.setattr(errors, "_received", set())
    with pytest.raises(BaseException) as raised:  # BaseException: a wrong KeyboardInterrupt must fail, not stop pytest
        errors._stop(signal.SIGTERM, None)
    assert raised.type is errors.Terminated
    try:
        errors._stop(signal.SIGINT, None)  # Ctrl-C during the saving the first one started: it goes on
    except BaseException as error:
        pytest.fail(f"a second signal interrupted the saving: {error!r}")
    assert errors._received == {signal.SIGTERM, signal.SIGINT}
    monkeypatch.setattr(errors, "_received", set())
    with pytest.raises(BaseException) as raised:
        errors._stop(signal.SIGINT, None)
    assert raised.type is KeyboardInterrupt
