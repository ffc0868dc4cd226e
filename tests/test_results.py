"""The results format and the resume fingerprint, tested directly (no audiation runs): what a rerun compares,
what counts as complete, how histories join, the W&B row, and spectrograms that compare on one scale."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import ROOT, compose
from omegaconf import OmegaConf

from audiation.config import builder
from audiation.core.kinds import TargetKind
from audiation.core.objectives import Target
from audiation.errors import AudiationError
from audiation.jobs.audiate_job import audiate_folder
from audiation.jobs.folder import asked_measures, json_holds, settings_as_named_now, target_settings
from audiation.models.encoder import Layer
from audiation.outputs import record_schema, results

SMALL = ["model=random_small", "logger=none", "threads=1", "quality.draws=0"]
CLIP = ROOT / "audiation" / "assets" / "speech-slice" / "000002.flac"


def result_settings(cfg) -> dict:
    """What a rerun compares: the settings the job's plan holds (`builder.plan(cfg).result_settings`),
    made without the plan's checks so that any value can be changed alone."""
    return builder.result_settings(cfg, builder.model_spec(cfg.model))


# Top-level settings that only schedule, log or judge a run; every other one must shape the fingerprint
NOT_SHAPING = {"device", "threads", "logger", "log_every", "batch_size", "tf32", "compile", "redo", "dry_run",
               "quality", "examples"}
# Which target a row is (its own fingerprint is its name) and who judges it: not how it is made
TARGET_IDENTITY = {"objective.unit", "objective.direction", "objective.text", "model.listener"}
# Our own options are named by their name (and an objective by its kind), not by the Python path that builds
# them, so a moved module never changes a fingerprint; torch's optimizer keeps its path
BY_NAME = {"objective._target_", "parameterization._target_", "augmentation._target_"}


def test_every_top_level_setting_shapes_the_result_or_is_named_as_not():
    assert set(compose(*SMALL)) == set(builder.RESULT_KEYS) | NOT_SHAPING and not set(builder.RESULT_KEYS) & NOT_SHAPING


def _leaves(node, prefix=""):
    if not isinstance(node, dict):
        yield prefix, node
        return
    for key, value in node.items():
        yield from _leaves(value, f"{prefix}.{key}" if prefix else key)


def _another(key, value):
    """A different value of the same kind (what a user would change it to)."""
    if key == "parameterization.init":
        return str(CLIP)
    if key == "objective.kind":  # an enum: another of its values
        return "channel" if value != "channel" else "unit"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, value[-1] if value else "x"]
    assert value is None, key
    return 3


@pytest.mark.parametrize("options", [[], ["objective=channel"], ["objective=layer"], ["objective=direction"],
                                     ["model=tiny", "objective=text", "objective.text=moon"], ["model=random_whisper"],
                                     ["parameterization=speech"], ["parameterization=waveform"],
                                     ["augmentation=strong"]])
def test_every_setting_that_shapes_a_result_is_in_its_fingerprint(options):
    """Each setting under RESULT_KEYS, read from the composed config (not listed here), changed alone."""
    cfg = compose(*SMALL, *options)
    before = result_settings(cfg)
    shaping = OmegaConf.to_container(OmegaConf.masked_copy(cfg, list(builder.RESULT_KEYS)), resolve=True)
    for key, value in _leaves(shaping):
        if key in TARGET_IDENTITY or key in BY_NAME:
            continue
        changed = cfg.copy()
        OmegaConf.update(changed, key, _another(key, value))
        assert key in results.settings_difference(before, result_settings(changed)), key


@pytest.mark.parametrize("override", ["logger=wandb", "log_every=1", "batch_size=3", "quality.draws=9", "threads=2",
                                      "device=cpu", "redo=true", "tf32=false", "objective.unit=5"])
def test_what_only_logs_or_schedules_is_not_in_the_fingerprint(override):
    assert results.settings_difference(result_settings(compose(*SMALL)), result_settings(compose(*SMALL, override))) == []


def test_settings_name_no_path_of_the_package_and_records_that_did_are_read_as_named_now():
    settings = result_settings(compose(*SMALL))
    assert settings["objective.kind"] == "unit" and settings["parameterization.name"] == "fft"
    assert not [key for key, value in settings.items() if str(value).startswith("audiation.")]  # renamed: still so
    old_feature = {"objective._target_": "audiation.objectives.feature", "objective.form": "unit",
                   "objective.name": "feature", "parameterization._target_": "audiation.parameterizations.FFT",
                   "augmentation._target_": "audiation.augmentations.Augment", "optimizer._target_": "torch.optim.Adam"}
    assert settings_as_named_now(old_feature) == {"objective.kind": "unit", "objective.name": "feature",
                                                  "optimizer._target_": "torch.optim.Adam"}
    assert settings_as_named_now({"objective._target_": "audiation.objectives.channel"}) == {"objective.kind": "channel"}
    assert settings_as_named_now(settings) == settings
    # a record that names its kind already keeps it; one with neither (hand-written) is left as it is
    both = {"objective._target_": "audiation.objectives.channel", "objective.kind": "unit"}
    assert settings_as_named_now(both) == {"objective.kind": "unit"}
    assert settings_as_named_now({"model.name": "tiny"}) == {"model.name": "tiny"}
    assert settings_as_named_now({"objective._target_": "audiation.objectives.feature"}) == {"objective.kind": None}


def test_the_measures_a_run_asks_for_are_each_named_by_a_field_only_it_adds():
    def asked(*overrides):
        return asked_measures(builder.plan(compose(*SMALL, *overrides)))

    assert asked("quality.judges=false") == {}
    assert asked("quality.judges=true", "quality.draws=2") == {"quality.judges": "speech_probability",
                                                               "quality.draws": "robust_activation"}
    assert asked("quality.judges=false", "quality.data=" + str(ROOT / "audiation/assets/speech-slice")) == {
        "quality.data": "activation_ratio"}
    tiny = ["model=tiny", *SMALL[1:], "quality.judges=false"]  # a model with a listener, heard at its logits
    assert asked_measures(builder.plan(compose(*tiny, "model.layer=logits"))) == {
        "quality.listener": "listener_transcript"}
    data = "quality.data=" + str(ROOT / "audiation/assets/speech-slice")  # a ratio to the data: for units only
    assert asked_measures(builder.plan(compose(*tiny, "objective=text", "objective.text=moon", data))) == {
        "quality.listener": "listener_transcript"}


def test_a_summary_is_ours_only_when_it_is_json_with_our_keys_of_their_types(tmp_path):
    path = tmp_path / "examples.json"
    assert not json_holds(path, {"units": list})  # missing
    path.write_text('{"units": [], "top_k": 3}')
    assert json_holds(path, {"units": list, "top_k": int})
    assert not json_holds(path, {"units": dict}) and not json_holds(path, {"held_out_auc": dict})
    path.write_text('{"units": [')
    assert not json_holds(path, {"units": list})  # damaged
    path.write_text("[1]")
    assert not json_holds(path, {})  # not an object


def test_a_direction_and_a_start_clip_are_fingerprinted_by_content(tmp_path):
    settings = result_settings(compose(*SMALL))
    target = Target("direction", Layer("transformer", 2), 0, TargetKind.direction, vector=np.ones(4, dtype=np.float32),
                    index=0)
    other = replace(target, vector=np.arange(4, dtype=np.float32))
    assert results.settings_difference(target_settings(settings, target), target_settings(settings, other)) == [
        "objective.direction"]
    copy = tmp_path / "clip.flac"
    copy.write_bytes(CLIP.read_bytes())
    same = result_settings(compose(*SMALL, f"parameterization.init={copy}"))
    assert same["parameterization.init_sha256"] == result_settings(
        compose(*SMALL, f"parameterization.init={CLIP}"))["parameterization.init_sha256"]


def test_settings_differ_by_value_and_a_new_key_only_when_switched_on():
    assert results.settings_difference({"a": 1, "b": 2}, {"a": 1, "b": 3}) == ["b"]
    assert results.settings_difference({"a": 1}, {"a": 1, "room_ms": 0}) == []
    assert results.settings_difference({"a": 1}, {"a": 1, "room_ms": 150}) == ["room_ms"]
    assert results.settings_difference({"a": 1, "z": True, "y": 1}, {"a": 2}) == ["a", "y", "z"]


def test_a_rerun_that_changes_only_logging_is_skipped_not_refused(tmp_path):
    audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:2"), tmp_path)
    again = audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:2", "log_every=1", "batch_size=1",
                                   "logger=wandb", "logger.mode=disabled"), tmp_path)
    assert again["run"]["audiated_now"] == 0 and again["run"]["runs"] == 2


def test_batch_size_chunks_the_targets(tmp_path):
    metrics = audiate_folder(compose(*SMALL, "steps=2", "objective.unit=0:5", "batch_size=2"), tmp_path)
    assert metrics["run"]["batch_size"] == 2 and metrics["run"]["batch_steps"] == 3 * 2  # batches of 2, 2, 1
    assert metrics["run"]["target_steps"] == 5 * 2


def _record(job, name, **files):
    folder = results.target_folder(job, name)
    folder.mkdir(parents=True)
    for file in files.get("present", results.TARGET_FILES.values()):
        (folder / file).write_bytes(b"x")
    record = {"name": name, "layer": "L1", "files": results.target_files(name)}
    results.write_record(job, record)
    return record


def test_complete_means_the_record_and_every_file_it_names(tmp_path):
    whole = _record(tmp_path, "L1-U0-unit")
    _record(tmp_path, "L1-U1-unit", present=["audio.wav"])
    assert results.read_record(tmp_path, "L1-U0-unit") == whole
    assert results.read_record(tmp_path, "L1-U1-unit") is None
    assert results.read_record(tmp_path, "L1-U2-unit") is None
    assert [r["name"] for r in results.folder_records(tmp_path)] == ["L1-U0-unit"]
    _record(tmp_path, "L1-U10-unit")
    _record(tmp_path, "L1-U2-unit")
    assert [r["name"] for r in results.folder_records(tmp_path, ["L1-U10-unit"])] == [
        "L1-U10-unit", "L1-U0-unit", "L1-U2-unit"]  # the given order first, then natural order


def test_histories_join_nan_padded_and_read_back(tmp_path):
    joined = results.write_history(tmp_path, {"a": {"loss": np.array([1.0, 2.0, 3.0])},
                                              "b": {"loss": np.array([4.0]), "power": np.array([5.0])}})
    np.testing.assert_array_equal(joined["loss"], [[1, 4], [2, np.nan], [3, np.nan]])
    np.testing.assert_array_equal(joined["power"], [[np.nan, 5], [np.nan, np.nan], [np.nan, np.nan]])
    back = results.read_history(tmp_path)
    assert sorted(back) == ["a", "b"]
    np.testing.assert_array_equal(back["a"]["loss"], [1, 2, 3])
    results.target_folder(tmp_path, "a").mkdir(parents=True)
    results.write_target_history(tmp_path, "a", {"loss": np.array([7.0, 8.0])})
    np.testing.assert_array_equal(results.read_target_history(tmp_path, "a")["loss"], [7, 8])
    assert results.read_target_history(tmp_path, "b") is None


def test_a_table_row_has_every_column_and_the_media_paths(tmp_path):
    record = {"name": "L1-U0-unit", "layer": "L1", "unit": 0, "final_activation": 2.5,
              "examples": [{"clip": "examples/L1-U0/1.wav"}]}
    (tmp_path / "examples/L1-U0").mkdir(parents=True)
    (tmp_path / "examples/L1-U0/1.wav").write_bytes(b"x")
    row = results.table_row(tmp_path, record)
    assert set(record_schema.TABLE_COLUMNS) <= set(row) and row["final_activation"] == 2.5 and row["cer"] is None
    assert row["audio"] == str(tmp_path / "targets/L1-U0-unit/audio_16bit.wav")
    assert row["spectrogram"] == str(tmp_path / "targets/L1-U0-unit/spectrogram.png")
    assert row["examples"] == [str(tmp_path / "examples/L1-U0/1.wav")]


def test_no_reader_follows_a_records_path_out_of_its_job_folder(tmp_path):
    job, outside = tmp_path / "job", tmp_path / "secret.wav"
    outside.write_bytes(b"x")
    record = _record(job, "L1-U0-unit")
    (job / "targets/L1-U0-unit/audio.wav").unlink()
    (job / "targets/L1-U0-unit/audio.wav").symlink_to(outside)  # a symlink out counts as outside
    assert results.read_record(job, "L1-U0-unit") is None  # not complete: audiated again
    results.write_record(job, {**record, "files": {**record["files"], "wav": "../secret.wav"}})
    assert results.read_record(job, "L1-U0-unit") is None
    row = results.table_row(job, {**record, "examples": [{"clip": "../secret.wav"}, {"clip": str(outside)}]})
    assert row["examples"] == [] and "secret" not in json.dumps(row)  # W&B copies what the row names


def test_natural_order_reads_digits_as_numbers():
    assert sorted(["L10", "L2", "conv3", "L1"], key=results.natural_key) == ["conv3", "L1", "L2", "L10"]


def test_a_shared_colour_scale_puts_a_quiet_target_low_on_it(tmp_path):
    """Two audiations 40 dB apart: on the shared scale (80 dB) the quiet one's loudest bin is about halfway
    up the colour map; on its own scale it reaches the top."""
    from PIL import Image

    from audiation.browser.page import write_gallery
    from audiation.outputs.disk import COLOURS, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, write_wav

    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    records = []
    for name, level in (("L1-U0-unit", 1.0), ("L1-U1-unit", 0.01)):
        write_wav(results.target_folder(tmp_path, name) / "audio.wav", noise * level, 16000)
        write_wav(results.target_folder(tmp_path, name) / "audio_16bit.wav", noise * level, 16000, "PCM_16")
        records.append({"name": name, "layer": "L1", "unit": int(name[4]), "final_activation": 1.0})
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    write_gallery(tmp_path, tmp_path / "page.html", shared_scale=True)
    tops = []
    for number in (0, 1):
        image = np.asarray(Image.open(tmp_path / "page.shared" / f"{number:05d}.png"))
        picture = image[MARGIN_TOP:MARGIN_TOP + 201, MARGIN_LEFT:image.shape[1] - MARGIN_RIGHT - 1]
        tops.append(int(picture[picture < COLOURS].max()))
    assert tops[0] == COLOURS - 1 and abs(tops[1] - (COLOURS - 1) / 2) <= 3, tops


@pytest.mark.parametrize("content,why", [("{", "Expecting property name"), ("[]", "not a target record"),
                                         ('{"name": "L1-U9-unit", "layer": "L1"}', "not a target record"),
                                         ('{"name": "L1-U0-unit"}', "not a target record"),
                                         ('{"name": "L1-U0-unit", "layer": "L1", "unit": 1.5, "waveform": "x"}',
                                          "not a target record: unit, waveform does not fit")])
def test_a_damaged_record_is_set_aside_with_its_reason(tmp_path, caplog, content, why):
    folder = results.target_folder(tmp_path, "L1-U0-unit")
    folder.mkdir(parents=True)
    (folder / "target.json").write_text(content)
    assert results.read_record(tmp_path, "L1-U0-unit") is None
    assert (folder / "target.json.corrupt").read_text() == content and not (folder / "target.json").exists()
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"warning: {folder / 'target.json'} is damaged ({why}")
    assert message.endswith("set aside as target.json.corrupt")


@pytest.mark.parametrize("damage,why", [
    (lambda m: m["run"].update(loop_seconds="3 s", runs=1.5), "run's runs, loop_seconds not of its kind"),
    (lambda m: m.update(targets="x"), "not a job's metrics: targets must be a list"),
    (lambda m: m.update(run=[1]), "not a job's metrics: targets must be a list and run an object")],
    ids=["totals", "targets", "run"])
def test_metrics_that_do_not_fit_are_set_aside_and_the_next_run_rewrites_them(tmp_path, caplog, damage, why):
    cfg = compose("model=random_small", "logger=none", "threads=1", "steps=2", "quality.draws=0")
    audiate_folder(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    damage(metrics)
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    rerun = audiate_folder(cfg, tmp_path)
    assert rerun["run"]["runs"] == 1 and json.loads((tmp_path / "metrics.json").read_text())["run"]["runs"] == 1
    assert json.loads((tmp_path / "metrics.json.corrupt").read_text()) == metrics and why in caplog.text


def test_damaged_metrics_and_histories_are_set_aside_and_read_as_none(tmp_path, caplog):
    (tmp_path / "metrics.json").write_text("{")
    assert results.read_metrics(tmp_path) is None and (tmp_path / "metrics.json.corrupt").is_file()
    for content in ('{"targets": {}}', '{"targets": [], "run": []}', "[1]"):  # in a folder of ours: damaged
        (tmp_path / "metrics.json").write_text(content)
        assert results.read_metrics(tmp_path) is None and not (tmp_path / "metrics.json").exists()
        assert (tmp_path / "metrics.json.corrupt").read_text() == content
    (tmp_path / "metrics.json").write_text('{"targets": [], "run": {"runs": 1}}')
    assert results.read_metrics(tmp_path) == {"targets": [], "run": {"runs": 1}}
    assert results.read_metrics(tmp_path / "nowhere") is None
    (tmp_path / "history.npz").write_bytes(b"PK\x03\x04 cut")
    assert results.read_history(tmp_path) == {} and (tmp_path / "history.npz.corrupt").is_file()
    np.savez(tmp_path / "history.npz", loss=np.ones((2, 1)))  # no names: not a history
    assert results.read_history(tmp_path) == {}
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "pickled.npy").rename(tmp_path / "history.npz")
    assert results.read_history(tmp_path) == {}  # never unpickled
    assert len([r for r in caplog.records if "is damaged" in r.getMessage()]) == 6


@pytest.mark.parametrize("name,ok", [("L1-U0-unit", True), ("text-moon", True), ("a/b", False), ("a\\b", False),
                                     ("..", False), (".", False), ("", False), (None, False), (3, False)])
def test_a_target_name_is_one_folder_inside_targets(name, ok, tmp_path):
    assert results.is_target_name(name) is ok
    if ok:
        assert results.target_folder(tmp_path, name) == tmp_path / "targets" / name
    else:
        with pytest.raises(AudiationError) as refused:
            results.target_folder(tmp_path, name)
        assert str(refused.value) == f"{name!r} is not a target name: it would leave {tmp_path / 'targets'}"


def test_a_record_without_a_files_dict_is_not_ours_and_a_cut_history_says_why(tmp_path, caplog):
    folder = results.target_folder(tmp_path, "L1-U0-unit")
    folder.mkdir(parents=True)
    (folder / "target.json").write_text(json.dumps({"name": "L1-U0-unit", "layer": "L1", "files": ["a.wav"]}))
    assert results.read_record(tmp_path, "L1-U0-unit") is None
    (folder / "history.npz").write_bytes(b"PK\x03\x04 cut")
    assert results.read_target_history(tmp_path, "L1-U0-unit") is None
    record, history = [r.getMessage() for r in caplog.records]
    assert "target.json is damaged (not a target record: files does not fit)" in record
    assert "history.npz is damaged (File is not a zip file); set aside as history.npz.corrupt" in history


def test_read_jobs_keeps_only_our_records_and_names_the_rest_once(tmp_path, caplog):
    good = {"name": "L1-U0-unit", "layer": "L1"}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.json").write_text(json.dumps({"run": {}, "targets": [good, {"name": "x"}, 5]}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.json").write_text(json.dumps({"targets": {}}))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "metrics.json").write_text("{")
    jobs = results.read_jobs(tmp_path)
    assert jobs == [(tmp_path / "a", {"run": {}, "targets": [good]})]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message == (f"warning: skipped 2 record(s) of {tmp_path / 'a' / 'metrics.json'} "
                       "(layer, record: missing or not of the record schema's kind); "
                       f"{tmp_path / 'b' / 'metrics.json'} (not an audiation job's); {tmp_path / 'c' / 'metrics.json'} "
                       "(Expecting property name enclosed in double quotes: line 1 co)")  # 60 characters of the error


def test_records_need_a_name_and_a_layer_and_folders_list_in_natural_order(tmp_path):
    assert results.record_misfits({"name": "L1-U0-unit", "layer": "L1"}) == []
    assert results.record_misfits({"name": "L1-U0-unit"}) == ["layer"] and results.record_misfits({"layer": "L1"})
    assert results.record_misfits(["name", "layer"]) and results.record_misfits({"name": "../x", "layer": "L1"})
    for name in ("L1-U10-unit", "L1-U2-unit", "L1-U0-unit"):
        _record(tmp_path, name)
    assert [r["name"] for r in results.folder_records(tmp_path)] == ["L1-U0-unit", "L1-U2-unit", "L1-U10-unit"]
    assert sorted(["B", "_a"], key=results.natural_key) == ["_a", "B"]  # case-blind: "_" sorts before letters


def test_an_empty_history_and_a_table_row_takes_the_layouts_files_not_the_records(tmp_path):
    assert results.write_history(tmp_path, {}) == {}
    joined = results.write_history(tmp_path, {"a": {"loss": np.array([1.0])}})
    assert joined["loss"].dtype == np.float32
    row = results.table_row(tmp_path, {"name": "n", "layer": "L1", "files": {"wav_16bit": "x/a.wav",
                                                                              "spectrogram": "x/a.png"}})
    assert row["audio"] == str(tmp_path / "targets/n/audio_16bit.wav")  # the layout's, never the record's


def test_read_jobs_reads_every_folder_in_natural_order_past_a_broken_one_and_counts_the_rest(tmp_path, caplog):
    for job in ("10", "2", "3", "4", "5"):
        (tmp_path / job).mkdir()
        (tmp_path / job / "metrics.json").write_text(json.dumps({"run": {}, "targets": [
            {"name": f"L1-U{job}-unit", "layer": "L1"}]}))
    assert [p.name for p, _ in results.read_jobs(tmp_path)] == ["2", "3", "4", "5", "10"]
    assert not caplog.records  # nothing skipped, nothing said
    for job in ("1", "11", "12", "13", "14"):
        (tmp_path / job).mkdir()
        (tmp_path / job / "metrics.json").write_text("{")
    assert [p.name for p, _ in results.read_jobs(tmp_path)] == ["2", "3", "4", "5", "10"]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.count("metrics.json (Expecting") == 3 and message.endswith("; and 2 more")
    assert str(tmp_path / "1" / "metrics.json") in message
    (tmp_path / "14" / "metrics.json").write_text(json.dumps({"run": {}, "targets": []}))  # four broken ones left
    caplog.clear()
    results.read_jobs(tmp_path)
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.count("metrics.json (Expecting") == 3 and message.endswith("; and 1 more")


def test_damaged_metrics_say_why(tmp_path, caplog):
    (tmp_path / "metrics.json").write_text("")
    assert results.read_metrics(tmp_path) is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert "is damaged (Expecting value: line 1 column 1 (char 0)); set aside as metrics.json.corrupt" in message


def test_json_written_is_standard_json_a_number_that_is_not_finite_is_null(tmp_path):
    from audiation.outputs.disk import write_json

    write_json(tmp_path / "a.json", {"ratio": float("nan"), "trace": [1.0, np.float32("inf")], "x": np.array([-np.inf]),
                                     "pair": (1, np.float64(2.5))})
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=pytest.fail) == {
        "ratio": None, "trace": [1.0, None], "x": [None], "pair": [1, 2.5]}
    write_json(tmp_path / "b.json", {"frames": np.int64(7), "voiced": np.bool_(True), "top": [np.uint8(3)]})
    assert json.loads((tmp_path / "b.json").read_text()) == {"frames": 7, "voiced": True, "top": [3]}
    with pytest.raises(TypeError, match="cannot write set to JSON"):
        write_json(tmp_path / "c.json", {"names": {"a"}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # nothing half-written


def test_measures_added_to_a_finished_folder_are_said_and_redo_adds_them(tmp_path, caplog):
    base = [*SMALL, "steps=2", "quality.judges=false"]
    audiate_folder(compose(*base, "quality.draws=0"), tmp_path)
    again = audiate_folder(compose(*base, "quality.draws=1"), tmp_path)
    assert again["run"]["audiated_now"] == 0
    assert "1 target(s) lack quality.draws's measures" in caplog.text and "add redo=true" in caplog.text
    redone = audiate_folder(compose(*base, "quality.draws=1", "redo=true"), tmp_path)
    assert redone["run"]["audiated_now"] == 1 and redone["targets"][0]["robust_activation"] is not None
    assert audiate_folder(compose(*base, "quality.draws=1", "redo=true"), tmp_path)["run"]["audiated_now"] == 0


def test_examples_jobs_are_read_with_their_misfit_units_and_foreign_files_named(tmp_path, caplog):
    unit = {"name": "L6-U125", "layer": "L6", "unit": 125, "stats": {"mean": 0.1}, "examples": []}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "examples.json").write_text(json.dumps({"units": [unit, {**unit, "stats": "x"}], "top_k": 1}))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "examples.json").write_text(json.dumps({"units": {"L6": unit}}))
    (tmp_path / "b" / "metrics.json").write_text(json.dumps({"units": [unit]}))  # another job's file: not read
    jobs = results.read_examples_jobs(tmp_path)
    assert jobs == [(tmp_path / "b", {"units": [unit], "top_k": 1})]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert f"{tmp_path / 'a' / 'examples.json'} (not an examples job's)" in warning
    assert f"1 unit(s) of {tmp_path / 'b' / 'examples.json'} (stats: missing or not" in warning


def _settings_changed(settings: dict, keys: list[str]) -> dict:
    return {**settings, **{key: f"{settings[key]}-changed" for key in keys}}


def test_a_rerun_skips_what_is_complete_refuses_what_was_made_otherwise_and_says_each_in_one_line(tmp_path, caplog):
    from audiation.jobs.folder import targets_to_do

    caplog.set_level("INFO", logger="audiation.jobs.folder")
    cfg = compose(*SMALL, "steps=1", "quality.judges=false", "objective.unit=0:6")
    audiate_folder(cfg, tmp_path)
    plan = builder.plan(cfg)
    targets, settings = plan.targets, plan.result_settings
    names = [t.name for t in targets]
    caplog.clear()
    assert targets_to_do(targets, settings, tmp_path, redo=False) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"6 of 6 targets already complete in {tmp_path}; audiating the other 0"]

    (tmp_path / "targets" / names[4] / "target.json").unlink()
    caplog.clear()
    assert [t.name for t in targets_to_do(targets, settings, tmp_path, redo=False)] == [names[4]]
    assert [r.getMessage() for r in caplog.records] == [
        f"5 of 6 targets already complete in {tmp_path}; audiating the other 1"]

    shaping = sorted(key for key, value in settings.items() if isinstance(value, str))[:5]
    assert len(shaping) == 5
    for changed, more in ((shaping, " ..."), (shaping[:4], "")):
        shown = ", ".join(f"{key}: {settings[key]} -> {settings[key]}-changed" for key in changed[:4])
        with pytest.raises(AudiationError) as refused:
            targets_to_do(targets, _settings_changed(settings, changed), tmp_path, redo=False)
        assert str(refused.value) == (f"5 target(s) in {tmp_path} were made with other settings ({shown}{more}); "
                                      "use a new folder, or redo=true to audiate them again")
    caplog.clear()
    redone = targets_to_do(targets, _settings_changed(settings, shaping[:1]), tmp_path, redo=True)
    assert [t.name for t in redone] == names and [r.getMessage() for r in caplog.records] == []

    measures = {"quality.draws": "robust_activation", "quality.listener": "listener_transcript"}
    caplog.clear()
    assert [t.name for t in targets_to_do(targets, settings, tmp_path, False, measures)] == [names[4]]
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: in {tmp_path}, 5 target(s) lack quality.draws's measures, 5 target(s) lack "
        "quality.listener's measures (made without them); add redo=true to audiate them again with them",
        f"5 of 6 targets already complete in {tmp_path}; audiating the other 1"]
    caplog.clear()
    assert [t.name for t in targets_to_do(targets, settings, tmp_path, True, measures)] == names
    assert [r.getMessage() for r in caplog.records] == []
    assert targets_to_do(targets, settings, tmp_path, True, {"quality.draws": "steps"}) == [targets[4]]  # all have it
    for name in names[:4]:
        (tmp_path / "targets" / name / "target.json").unlink()
    caplog.clear()
    assert targets_to_do(targets, settings, tmp_path, redo=False) == targets[:5]
    assert [r.getMessage() for r in caplog.records] == [
        f"1 of 6 targets already complete in {tmp_path}; audiating the other 5"]


def test_a_targets_samples_are_redone_together_or_not_at_all(tmp_path):
    from audiation.jobs.folder import targets_to_do

    cfg = compose(*SMALL, "steps=1", "quality.judges=false", "objective.unit=0:3", "samples=2")
    audiate_folder(cfg, tmp_path)
    plan = builder.plan(cfg)
    names = [t.name for t in plan.targets]
    assert len(names) == 6 and targets_to_do(plan.targets, plan.result_settings, tmp_path, redo=False) == []
    (tmp_path / "targets" / names[3] / "target.json").unlink()  # the second sample of the second unit
    todo = targets_to_do(plan.targets, plan.result_settings, tmp_path, redo=False)
    assert [t.name for t in todo] == names[2:4] and todo[0].group == todo[1].group
