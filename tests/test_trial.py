"""The second adversarial trial (issue 19): names that would leave the job folder, folders that gain
targets, models changed in place, damaged files, deleted files, odd seeds, a full disk, bad inputs of every
entry point, several Ctrl-C, kill -9, a refused sweep job. Each case fails on its bug; none prints a
traceback. (The page's escaping is in test_gallery.py, MLP neurons and ensembles in test_tiny_model.py.)"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, child_env, compose, run_cli, run_module

from audiation.browser.page import write_gallery
from audiation.config import builder
from audiation.config.job_plans import directions_plan
from audiation.errors import AudiationError, run_or_exit
from audiation.jobs.audiate_job import AudiationJob, audiate_folder
from audiation.jobs.directions_job import directions_job
from audiation.outputs import disk, results
from audiation.report import write_report

SMALL = ["model=random_small", "logger=none", "threads=1", "quality.draws=0"]
TINY = ROOT / "audiation" / "assets" / "tiny-w2v2-espeak"
SLICE = ROOT / "audiation" / "assets" / "speech-slice"


def one_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The command failed with `code` and said why in one line, no traceback."""
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("audiation: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


# --- 1. names stay inside the job folder ------------------------------------------------------------------


def test_a_name_that_would_leave_the_job_folder_is_one_line_and_writes_nothing(tmp_path):
    victim = tmp_path / "victim" / "targets" / "L2-U0-unit"
    victim.mkdir(parents=True)
    (victim / "audio.wav").write_bytes(b"finished")
    job = tmp_path / "a" / "b"
    result = run_cli(*SMALL, "steps=1", "objective.name=../../victim/targets/L2-U0-unit", f"hydra.run.dir={job}")
    assert "objective.name='../../victim/targets/L2-U0-unit' cannot be part of a file name" in one_line(result)
    assert (victim / "audio.wav").read_bytes() == b"finished" and not job.exists()


@pytest.mark.parametrize("group,name", [("objective", "x\" onerror=\"alert(1)"), ("objective", ".hidden"),
                                        ("parameterization", "a/b"), ("augmentation", "<script>")])
def test_every_option_name_is_a_safe_file_name(group, name):
    with pytest.raises(AudiationError, match=f"{group}.name=.* cannot be part of a file name"):
        builder.plan(compose(*SMALL, f"{group}.name='{name}'"))


def test_a_record_cannot_name_a_folder_outside_targets(tmp_path):
    for name in ("../x", "..", "a/b", ""):
        with pytest.raises(AudiationError, match="not a target name"):
            results.target_folder(tmp_path, name)


# --- 3, 8, 11, 21: what a folder holds is what it reports ---------------------------------------------------


def test_adding_units_to_a_folder_keeps_the_earlier_ones_in_metrics_history_and_page(tmp_path):
    audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:2"), tmp_path)
    metrics = audiate_folder(compose(*SMALL, "steps=2", "objective.unit=2:3"), tmp_path)
    names = ["L2-U0-unit", "L2-U1-unit", "L2-U2-unit"]
    assert [t["name"] for t in metrics["targets"]] == names
    assert [t["name"] for t in json.loads((tmp_path / "metrics.json").read_text())["targets"]] == names
    assert sorted(results.read_history(tmp_path)) == names
    assert len(json.loads(write_gallery(tmp_path).read_text().split('id="data">')[1].split("</script>")[0])) == 3


def test_a_target_whose_files_were_deleted_is_audiated_again(tmp_path):
    audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:2"), tmp_path)
    (tmp_path / "targets" / "L2-U1-unit" / "audio.wav").unlink()
    assert results.read_record(tmp_path, "L2-U1-unit") is None
    metrics = audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:2"), tmp_path)
    assert metrics["run"]["audiated_now"] == 1 and (tmp_path / "targets" / "L2-U1-unit" / "audio.wav").is_file()


def _damage_record(job: Path):
    (job / "targets" / "L2-U1-unit" / "target.json").write_text("[]")
    return job / "targets" / "L2-U1-unit" / "target.json.corrupt"


def _truncate_history(job: Path):
    path = job / "history.npz"
    path.write_bytes(path.read_bytes()[:40])
    return job / "history.npz.corrupt"


def _empty_target_history(job: Path):
    (job / "targets" / "L2-U0-unit" / "history.npz").write_bytes(b"")
    return job / "targets" / "L2-U0-unit" / "history.npz.corrupt"


def _damage_metrics(job: Path):
    (job / "metrics.json").write_text('{"run": ')
    return job / "metrics.json.corrupt"


@pytest.mark.parametrize("damage", [_damage_record, _truncate_history, _empty_target_history, _damage_metrics],
                         ids=["record-holds-a-list", "history-truncated", "target-history-empty", "metrics-cut"])
def test_a_damaged_file_is_set_aside_in_one_line_and_the_rerun_goes_on(tmp_path, damage, caplog):
    audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:2"), tmp_path)
    aside = damage(tmp_path)
    metrics = audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:2"), tmp_path)
    assert aside.is_file() and f"set aside as {aside.name}" in caplog.text
    assert [t["name"] for t in metrics["targets"]] == ["L2-U0-unit", "L2-U1-unit"]
    assert all(t["stopped"] is None for t in metrics["targets"])
    assert sorted(results.read_history(tmp_path)) == ["L2-U0-unit", "L2-U1-unit"]


def test_a_damaged_activation_cache_is_set_aside_and_built_again(tmp_path, caplog):
    cfg = compose("model=tiny", "model.layer=2", "logger=none", "threads=1", "quality.draws=0", "steps=1",
                  "objective.unit=0", f"quality.data={SLICE}", f"quality.cache_dir={tmp_path / 'cache'}",
                  "examples.top_k=0")
    audiate_folder(cfg, tmp_path / "a")
    (cache,) = [path for path in (tmp_path / "cache").iterdir() if path.is_dir()]  # beside it: its phone labels
    (cache / "stats.npz").write_bytes(b"PK\x03\x04 not a zip")
    metrics = audiate_folder(cfg, tmp_path / "b")
    assert metrics["targets"][0]["activation_ratio"] is not None
    assert (tmp_path / "cache" / f"{cache.name}.corrupt").is_dir() and "is damaged" in caplog.text
    (cache / "meta.json").write_text("{")
    audiate_folder(cfg, tmp_path / "c")
    assert (cache / "meta.json").is_file() and json.loads((cache / "meta.json").read_text())["frames"] > 0


def test_each_finished_batch_keeps_its_loss_history_when_the_run_is_killed(tmp_path):
    job = tmp_path / "job"
    args = [*SMALL, "objective.unit=0:4", "batch_size=2", "steps=400", f"hydra.run.dir={job}"]
    process = subprocess.Popen([sys.executable, "-m", "audiation.run", *args], cwd=ROOT,
                               env=child_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not (job / "targets" / "L2-U1-unit" / "target.json").is_file():
            assert time.time() < deadline and process.poll() is None
            time.sleep(0.05)
        process.kill()  # kill -9: no wrap-up at all
        process.wait(timeout=30)
    finally:
        process.kill()
    assert not (job / "history.npz").exists()
    rerun = run_cli(*args[:-3], "objective.unit=0:2", "batch_size=2", "steps=400", f"hydra.run.dir={job}")
    assert rerun.returncode == 0 and "2 of 2 targets already complete" in rerun.stderr, rerun.stderr[-2000:]
    history = results.read_history(job)
    assert sorted(history) == ["L2-U0-unit", "L2-U1-unit"]
    assert all(len(h["loss"]) == 400 and np.isfinite(h["loss"]).all() for h in history.values())


# --- 4. a model changed in place ----------------------------------------------------------------------------


def test_weights_replaced_in_the_same_folder_are_another_model(tmp_path):
    from safetensors.numpy import load_file, save_file

    model = tmp_path / "model"
    shutil.copytree(TINY, model)
    cfg = compose("model=tiny", f"model.name={model}", "model.listener=null", "logger=none", "threads=1",
                  "quality.draws=0", "steps=1", "objective.unit=0")
    audiate_folder(cfg, tmp_path / "job")
    with AudiationJob(builder.plan(cfg), tmp_path / "job") as same:
        assert same.todo == []  # unchanged: complete
    weights = load_file(model / "model.safetensors")
    first = sorted(weights)[0]
    weights[first] = weights[first] + 1e-3
    save_file(weights, model / "model.safetensors")
    with pytest.raises(AudiationError, match=r"model\.weights_sha256: [0-9a-f]{16} -> [0-9a-f]{16}"):
        AudiationJob(builder.plan(cfg), tmp_path / "job").__enter__()


OLD_PATHS = {"objective._target_": "audiation.objectives.unit",  # before the package moved into folders
             "parameterization._target_": "audiation.parameterizations.FFT",
             "augmentation._target_": "audiation.augmentations.Augment"}


def test_a_folder_whose_records_name_python_paths_of_before_the_package_moved_still_resumes(tmp_path):
    """Records written before the settings named options by their kind and name hold the functions' Python
    paths: renaming a module must not make every such folder refuse to resume."""
    cfg = compose(*SMALL, "steps=1", "objective.unit=0:2")
    audiate_folder(cfg, tmp_path / "job")
    for path in (tmp_path / "job" / "targets").glob("*/target.json"):
        record = json.loads(path.read_text())
        settings = {k: v for k, v in record["settings"].items() if k != "objective.kind"}  # not in older records
        path.write_text(json.dumps({**record, "settings": {**settings, **OLD_PATHS}}))
    with AudiationJob(builder.plan(cfg), tmp_path / "job") as resumed:
        assert [t.name for t in resumed.plan.targets] == ["L2-U0-unit", "L2-U1-unit"] and resumed.todo == []
    with pytest.raises(AudiationError, match=r"2 target\(s\) .* other settings \(objective.neighbours: 0.5 -> 0.25\)"):
        AudiationJob(builder.plan(compose(*SMALL, "steps=1", "objective.unit=0:2", "objective.neighbours=0.25")),
                     tmp_path / "job").__enter__()


# --- 9, 13: seeds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,message", [(2**32, "seed=4294967296 is too large"), (2**70, "is too large"),
                                          (-1, "seed=-1 must be >= 0")])
def test_a_seed_the_streams_cannot_use_is_one_line(seed, message):
    with pytest.raises(AudiationError, match=message):
        builder.plan(compose(*SMALL, f"seed={seed}"))


def test_the_largest_seed_is_its_own_stream():
    from audiation.core.randomness import Streams

    assert builder.plan(compose(*SMALL, f"seed={2**32 - 1}")).targets
    assert not np.allclose(Streams(2**32 - 1, [0]).normal(64), Streams(0, [0]).normal(64))


def test_a_sweep_with_a_bad_seed_stops_before_its_first_job(tmp_path):
    result = run_cli("--multirun", *SMALL, "steps=1", "seed=0,abc", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert "seed=abc" in one_line(result) and "could not be converted to Integer" in one_line(result)
    assert not list((tmp_path / "sweep").glob("*/metrics.json"))


# --- 12. a full disk ----------------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_exit_2_and_nothing_half_written_is_complete(tmp_path, monkeypatch, capsys):
    def full(path, *_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(disk, "write_wav", full)
    with pytest.raises(SystemExit) as stop:
        run_or_exit(audiate_folder, compose(*SMALL, "steps=2", "objective.unit=0:2"), tmp_path, saved=lambda: "")
    assert stop.value.code == 2
    said = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.startswith("audiation")]
    assert len(said) == 1 and said[0].startswith("audiation: error: No space left on device ("), said
    assert not list(tmp_path.glob("targets/*/target.json"))


# --- 14, 15, 17, 18: bad inputs of every entry point, before any work ---------------------------------------


def _bert(folder: Path):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))


def _config_only(folder: Path):
    folder.mkdir()
    shutil.copy(TINY / "config.json", folder)


def _corrupt_weights(folder: Path):
    shutil.copytree(TINY, folder)
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100_000])


@pytest.mark.parametrize("make,message", [(_bert, "is a bert model, not a wav2vec2-family speech encoder"),
                                          (_config_only, "has a config but no weights"),
                                          (_corrupt_weights, "model.safetensors is damaged")],
                         ids=["bert", "config-only", "truncated-safetensors"])
def test_a_model_folder_that_cannot_load_is_one_line_before_any_folder(tmp_path, make, message):
    make(tmp_path / "model")
    with pytest.raises(AudiationError, match=message):
        builder.plan(compose("model=tiny", f"model.name={tmp_path / 'model'}", "logger=none"))
    if make is _corrupt_weights:
        result = run_cli("model=tiny", f"model.name={tmp_path / 'model'}", "logger=none",
                         f"hydra.run.dir={tmp_path / 'job'}")
        assert message in one_line(result) and not (tmp_path / "job").exists()


def test_a_direction_file_that_is_not_one_array_of_numbers_is_one_line(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.ones(32, dtype=np.float32))
    np.save(tmp_path / "s.npy", np.array(["a"] * 32))
    for spec, message in ((tmp_path / "d.npz", "is an .npz archive"), (tmp_path / "s.npy", "is not numbers"),
                          ("[a,b]", "is not numbers")):
        with pytest.raises(AudiationError, match=message):
            builder.plan(compose(*SMALL, "objective=direction", f"objective.direction={spec}"))


def _directions(tmp_path, *overrides):
    return compose("model=tiny", "model.layer=2", f"data.cache_dir={tmp_path / 'cache'}", "threads=1",
                   *overrides, config_name="directions")


def test_directions_from_one_folder_on_both_sides_or_into_a_folder_are_one_line(tmp_path):
    with pytest.raises(AudiationError, match="positive and negative share 160 audio file"):
        directions_job(directions_plan(_directions(tmp_path, f"positive={SLICE}", f"negative={SLICE}"), tmp_path / "job"),
                       tmp_path / "job")
    high, low = ROOT / "audiation/assets/pitch-contrast/high", ROOT / "audiation/assets/pitch-contrast/low"
    with pytest.raises(AudiationError, match="is a folder; give the .npy file"):
        directions_plan(_directions(tmp_path, f"positive={high}", f"negative={low}", f"out={tmp_path}"), tmp_path / "j")
    result = run_module("audiation.directions", "model=tiny", f"positive={SLICE}", f"negative={SLICE}",
                        f"hydra.run.dir={tmp_path / 'cli'}", timeout=120)
    assert "share" in one_line(result) and not list(tmp_path.rglob("direction.npy"))


def test_quality_data_without_audio_is_one_line_naming_the_option_and_leaves_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    job = tmp_path / "job"
    result = run_cli(*SMALL, f"quality.data={tmp_path / 'empty'}", f"hydra.run.dir={job}")
    assert f"quality.data={tmp_path / 'empty'} contains no audio files" in one_line(result)
    assert not job.exists()


def test_text_outside_ascii_says_how_to_quote_it_and_quoted_it_reaches_the_vocabulary_check():
    result = run_cli("model=tiny", "objective=text", "objective.text=[café,moon]")
    assert """write 'objective.text=["café","moon"]'""" in one_line(result)
    with pytest.raises(AudiationError, match="'é' not in the vocabulary"):
        builder.plan(compose("model=tiny", "objective=text", 'objective.text=["café","moon"]'))


@pytest.mark.parametrize("argv", [["objective.text=café", "steps=3"], ["objective.text=café", "hydra.run.dir=/tmp/x"],
                                  ["model.name=/data/naïve", "objective.text=moon"]])
def test_text_outside_ascii_is_said_in_one_line_wherever_it_stands_among_the_overrides(argv):
    from audiation.config.checks import check_output_overrides

    bad = next(a for a in argv if not a.isascii())
    key, _, value = bad.partition("=")
    with pytest.raises(AudiationError) as refused:
        check_output_overrides(argv)
    assert str(refused.value) == f"""{bad}: Hydra reads letters outside ASCII only inside quotes; write '{key}="{value}"'"""
    check_output_overrides([f'{key}="{value}"', *[a for a in argv if a != bad]])  # quoted: Hydra reads it


# --- 16. the page and the report read only what is ours ------------------------------------------------------


def test_gallery_and_report_skip_what_is_not_ours_and_name_it_once(tmp_path, caplog):
    audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:2"), tmp_path / "ours")
    metrics = json.loads((tmp_path / "ours" / "metrics.json").read_text())
    metrics["targets"] += [{"name": "L2-U9-unit"}, ["not", "a", "record"], "text"]
    (tmp_path / "ours" / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "targets": "all"}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{")
    page = write_gallery(tmp_path)
    assert page.read_text().count('"name":"L2-U') == 2
    report = write_report(tmp_path)
    assert report.is_file()
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert warnings and all("3 record(s) of" in w and "other" in w and "broken" in w for w in warnings)
    for command in ("audiation.gallery", "audiation.report"):
        result = run_module(command, str(tmp_path), timeout=120)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.count("warning: skipped") == 1


# --- 20. Ctrl-C pressed again and again ------------------------------------------------------------------------


def test_ctrl_c_four_times_still_writes_metrics_and_history(tmp_path):
    job = tmp_path / "job"
    process = subprocess.Popen([sys.executable, "-m", "audiation.run", *SMALL, "objective.unit=0:3", "steps=100000",
                                f"hydra.run.dir={job}"], cwd=ROOT, env=child_env(TQDM_DISABLE=None),
                               stdout=subprocess.PIPE, stderr=open(tmp_path / "log", "w"), text=True)
    try:
        deadline = time.time() + 120
        while "step/s" not in (tmp_path / "log").read_text():
            assert time.time() < deadline and process.poll() is None, (tmp_path / "log").read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(1.0)
        for _ in range(4):
            process.send_signal(signal.SIGINT)
            time.sleep(0.02)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
    log = (tmp_path / "log").read_text()
    assert "audiation: interrupted; 0 target(s) complete and 3 saved" in log and "Traceback" not in log, log[-2000:]
    assert len(json.loads((job / "metrics.json").read_text())["targets"]) == 3
    assert sorted(results.read_history(job)) == ["L2-U0-unit", "L2-U1-unit", "L2-U2-unit"]


# --- 5. a GELU output that only rises to its asymptote is no progress ----------------------------------------


@pytest.mark.parametrize("layer,flagged", [("conv3", True), ("2", False)])
def test_a_gelu_output_that_rose_only_to_zero_from_below_is_no_progress(tmp_path, layer, flagged):
    from audiation.core.render import Result

    job = AudiationJob(builder.plan(compose(*SMALL, f"model.layer={layer}", "objective=channel", "objective.unit=0:2")),
                       tmp_path)
    result = Result(signal=np.ones((2, 16000), dtype=np.float32), steps=10, seconds=1.0, history={},
                    initial={"activation": np.array([-0.1, -0.1])}, final={"activation": np.array([-0.001, 0.5])},
                    stalled=np.array([False, False]))
    records = [job._record(result, row, target, {}) for row, target in enumerate(job.plan.targets)]
    assert [r["no_progress"] for r in records] == [flagged, False]
