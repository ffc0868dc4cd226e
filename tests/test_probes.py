"""Directions that separate two sets of speech: the probe maths on synthetic data, and
`python -m audiation.directions` on the shipped espeak-ng pitch contrast set with the shipped model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import ROOT, run_cli, run_module

from audiation.core import probes

CONTRAST = ROOT / "audiation" / "assets" / "pitch-contrast"


def test_auc_counts_ordered_pairs_and_ties_half():
    assert probes.auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert probes.auc(np.array([1.0]), np.array([2.0])) == 0.0
    assert probes.auc(np.array([1.0, 3.0]), np.array([1.0, 2.0])) == pytest.approx(0.625)


def test_the_probe_finds_the_separating_dimension_where_the_mean_difference_is_misled():
    rng = np.random.default_rng(0)
    # Dimension 0 separates the sets a little and varies little; dimension 1 differs more on average but
    # is so noisy within each set that it separates worse: the probe should weigh dimension 0.
    def sample(shift, count):
        return np.stack([shift * 1.0 + 0.3 * rng.standard_normal(count),
                         shift * 3.0 + 30 * rng.standard_normal(count)], axis=1)

    positive, negative = sample(1, 400), sample(-1, 400)
    mean, probe = probes.mean_difference(positive, negative), probes.logistic_probe(positive, negative, l2=0.1)
    assert np.linalg.norm(probe) == pytest.approx(1.0) and np.linalg.norm(mean) == pytest.approx(1.0)
    test_positive, test_negative = sample(1, 400), sample(-1, 400)
    score = lambda d: probes.auc(test_positive @ d, test_negative @ d)  # noqa: E731
    assert score(probe) > 0.99 and score(probe) > score(mean) + 0.1


def test_leaving_each_speaker_out_scores_the_contrast_on_voices_never_fitted():
    rng = np.random.default_rng(0)
    voices = {f"v{i}": rng.standard_normal(4) * 3 for i in range(5)}

    def clips(side, per_voice=20):
        rows, names = [], []
        for name, voice in voices.items():  # each voice its own offset; dimension 0 carries the contrast
            x = voice + 0.3 * rng.standard_normal((per_voice, 4))
            x[:, 0] += side
            rows.append(x)
            names += [name] * per_voice
        return np.concatenate(rows), names

    (positive, pos_names), (negative, neg_names) = clips(+1), clips(-1)
    held, note = probes.leave_one_speaker_out(positive, negative, pos_names, neg_names, 1.0)
    assert note is None and held["speakers"] == 5 and held["probe"] > 0.95 and held["mean"] > 0.95
    # each speaker on one side only: there is no speaker to test on both sides
    only, note = probes.leave_one_speaker_out(positive, negative, ["a"] * len(positive), ["b"] * len(negative), 1.0)
    assert only is None and "at least two speakers on both sides" in note and "found 0" in note
    # each voice marks the contrast in a dimension of its own: nothing carries over to an unseen voice
    own = {name: 4 + i for i, name in enumerate(voices)}

    def private(side, per_voice=20):
        rows = []
        for name in voices:
            x = 0.3 * rng.standard_normal((per_voice, 10))
            x[:, own[name]] += 2 * side
            rows.append(x)
        return np.concatenate(rows)

    held, _ = probes.leave_one_speaker_out(private(+1), private(-1), pos_names, neg_names, 1.0)
    assert held["probe"] < 0.75 and held["mean"] < 0.75
    missing, note = probes.leave_one_speaker_out(positive, negative, [None] * len(positive), neg_names, 1.0)
    assert missing is None and f"{len(positive)} clip(s) have no speaker" in note


def test_a_clip_is_the_mean_of_all_its_frames_over_its_pieces_in_float64():
    from types import SimpleNamespace

    from audiation.data.activations import Piece

    rows = np.array([[1, 60000], [3, 60000], [5, 60000], [7, 60000], [9, 60000], [-2, 4]], dtype=np.float16)
    pieces = [Piece("a.wav", 0.0, 0, 2, 3.0), Piece("b.wav", 0.0, 5, 1, 1.0), Piece("a.wav", 1.0, 2, 3, 3.0)]
    cache = SimpleNamespace(files=["b.wav", "a.wav"], num_units=2, pieces=pieces, activations=rows)
    files, vectors = probes.clip_vectors(cache)
    assert files == ["b.wav", "a.wav"] and vectors.dtype == np.float32
    # a's five frames weigh alike (the mean of its pieces' means would be 3.5); in float16 the sum overflows
    assert vectors.tolist() == [[-2.0, 4.0], [5.0, 60000.0]]


def test_the_probe_with_a_strong_penalty_points_along_the_standardised_mean_difference_over_the_scale():
    """As l2 grows the weights shrink to the loss's gradient at zero: the standardised features' mean
    difference; mapped back to raw coordinates that is (mean+ - mean-) / scale**2."""
    rng = np.random.default_rng(1)
    scale = np.array([0.5, 2.0, 8.0])
    positive = rng.standard_normal((60, 3)) * scale + [1.0, 1.0, -1.0] + 10
    negative = rng.standard_normal((40, 3)) * scale - [1.0, 0.5, 2.0] + 10
    both = np.concatenate([positive, negative])
    expected = (positive.mean(0) - negative.mean(0)) / (both.std(0) + 1e-6) ** 2
    got = probes.logistic_probe(positive, negative, l2=1e6)
    assert got.dtype == np.float32 and np.allclose(got, expected / np.linalg.norm(expected), atol=1e-4)
    weak = probes.logistic_probe(positive, negative, l2=1e-3)
    assert not np.allclose(weak, got, atol=1e-2)  # the penalty is l2, not a constant
    assert np.allclose(probes.logistic_probe(positive, negative, l2=1e-3, steps=1000), weak, atol=1e-5)  # converged
    # the penalty is per clip against a mean loss: twice the clips weigh as half the penalty does
    twice = probes.logistic_probe(np.concatenate([positive] * 2), np.concatenate([negative] * 2), l2=20)
    half = probes.logistic_probe(positive, negative, l2=10)
    assert np.allclose(twice, half, atol=1e-5) and not np.allclose(half, probes.logistic_probe(positive, negative, l2=20), atol=1e-3)


def test_the_probe_is_the_penalised_logistic_optimum_with_its_bias_on_unbalanced_shifted_classes():
    """Newton's method on the same loss (mean cross-entropy + l2 |w|^2 / n, the bias free) is the reference: a
    bias held at 0, or L-BFGS's default 20 steps (1 - cos 1.2e-5 here, against 6e-9), still separates these clips
    but points elsewhere."""
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((40, 40))  # 40 correlated features: 20 steps are not enough
    positive = rng.standard_normal((60, 40)) @ mix + rng.standard_normal(40)
    negative = rng.standard_normal((180, 40)) @ mix * 1.3
    features = np.concatenate([positive, negative])
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    x = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
    y = np.r_[np.ones(60), np.zeros(180)]
    l2, n = 1.0, len(y)
    penalty = np.diag([2 * l2 / n] * 40 + [0.0])
    theta = np.zeros(41)
    for _ in range(60):
        p = 1 / (1 + np.exp(-x @ theta))
        theta -= np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]) / n + penalty, x.T @ (p - y) / n + penalty @ theta)
    assert abs(theta[40]) > 1  # the optimum's bias is far from 0
    expected = theta[:40] / scale / np.linalg.norm(theta[:40] / scale)
    assert 1 - float(probes.logistic_probe(positive, negative, l2) @ expected) < 1e-7


def test_leaving_a_speaker_out_passes_the_penalty_and_says_why_it_cannot_word_for_word(monkeypatch):
    positive, negative = np.eye(4)[:2], np.eye(4)[2:]
    missing, note = probes.leave_one_speaker_out(positive, negative, [None, "a"], [None, None], 1.0)
    assert missing is None and note == ("3 clip(s) have no speaker (a speaker column in metadata.tsv, or one "
                                        "subfolder per speaker)")
    assert probes.leave_one_speaker_out(positive, negative, ["a", "b"], ["a", "c"], 1.0) == (
        None, "clips of at least two speakers on both sides are needed; found 1 (a)")
    assert probes.leave_one_speaker_out(positive, negative, ["a", "b"], ["c", "d"], 1.0)[1].endswith("found 0 (none)")
    seen = []
    real = probes.logistic_probe
    monkeypatch.setattr(probes, "logistic_probe", lambda p, n, l2: seen.append(l2) or real(p, n, l2))
    positive, negative = np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[-1.0, 1.0], [-1.0, 0.0]])  # 0: the side
    held, note = probes.leave_one_speaker_out(positive, negative, ["a", "b"], ["b", "a"], l2=0.25)
    assert note is None and seen == [0.25, 0.25] and held == {"probe": 1.0, "mean": 1.0, "speakers": 2}


def test_a_speaker_comes_from_the_metadata_column_or_a_subfolder(tmp_path):
    from audiation.data import audio_files

    (tmp_path / "set" / "anna").mkdir(parents=True)
    (tmp_path / "set" / "anna" / "1.flac").touch()
    (tmp_path / "set" / "2.flac").touch()
    assert audio_files.speaker(tmp_path / "set" / "anna" / "1.flac", tmp_path / "set") == "anna"
    assert audio_files.speaker(tmp_path / "set" / "2.flac", tmp_path / "set") is None
    assert audio_files.speaker(CONTRAST / "high" / "000.flac", CONTRAST / "high") == "en-us+m3"  # metadata.tsv above it


def _directions(*args: str):
    return run_module("audiation.directions", *args)


def test_a_pitch_direction_separates_held_out_clips_and_drives_an_audiation(tmp_path):
    result = _directions("model=tiny", "model.layer=1", f"positive={CONTRAST / 'high'}",
                         f"negative={CONTRAST / 'low'}", f"out={tmp_path / 'high.npy'}",
                         f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'job'}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "job" / "directions.json").read_text())
    # Measured on the shipped tiny (2026-12-02): probe 0.953, mean difference 0.859 on 8 + 8 held-out clips,
    # where one misordered pair costs 1/64 = 0.016: a margin of about three pairs each.
    assert summary["held_out_auc"]["probe"] >= 0.9 and summary["held_out_auc"]["mean"] >= 0.8, summary
    assert summary["clips"] == {"positive": 32, "negative": 32}
    # Measured on the shipped tiny: leaving each of the 6 voices out, probe 0.979, mean difference 0.964
    assert summary["leave_one_speaker_out_auc"]["speakers"] == 6 and summary["leave_one_speaker_out_auc"]["probe"] >= 0.9
    direction = np.load(tmp_path / "high.npy")
    assert direction.shape == (192,) and np.linalg.norm(direction) == pytest.approx(1.0, abs=1e-5)
    audiated = run_cli("model=tiny", "model.layer=1", "objective=direction", f"objective.direction={tmp_path / 'high.npy'}",
                       "steps=20", "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert audiated.returncode == 0, audiated.stderr[-2000:]
    target = json.loads((tmp_path / "run" / "metrics.json").read_text())["targets"][0]
    assert target["name"] == "L1-D0-direction" and target["final_activation"] > target["initial_activation"]


def test_a_directions_plan_takes_two_files_a_side_and_refuses_the_rest_in_whole_lines(tmp_path):
    from audiation.config.configs import compose
    from audiation.config.job_plans import directions_plan
    from audiation.data.audio_files import list_audio
    from audiation.errors import AudiationError

    for side, clips in (("a", ("000", "001")), ("b", ("002", "003"))):
        (tmp_path / side).mkdir()
        for clip in clips:
            (tmp_path / side / f"{clip}.flac").write_bytes((CONTRAST / "low" / f"{clip}.flac").read_bytes())
    (tmp_path / "file").write_text("")

    def plan(*overrides):
        return directions_plan(compose("model=tiny", f"positive={tmp_path / 'a'}", f"negative={tmp_path / 'b'}",
                                       f"data.cache_dir={tmp_path / 'cache'}", *overrides, config_name="directions"),
                               tmp_path / "job")

    assert [len(files) for files in plan().files.values()] == [2, 2]  # two a side are enough
    for override, message in (
            (f"data.cache_dir={tmp_path / 'file' / 'cache'}",
             f"data.cache_dir={tmp_path / 'file' / 'cache'} cannot be a folder: {tmp_path / 'file'} is a file"),
            (f"negative={tmp_path / 'a'}", f"positive and negative share 2 audio file(s) (e.g. "
             f"{min(list_audio(tmp_path / 'a', name='positive'))}): a direction needs two different sets of clips"),
            (f"out={tmp_path}", f"out={tmp_path} is a folder; give the .npy file to write (e.g. "
             f"out={tmp_path / 'direction.npy'})")):
        with pytest.raises(AudiationError) as raised:
            plan(override)
        assert str(raised.value) == message


@pytest.mark.parametrize("overrides,message", [
    ([], "positive is required"),
    (["positive=/no/such", "negative=NEG"], "positive=/no/such: no such folder"),
    (["positive=EMPTY", "negative=NEG"], "positive=EMPTY contains no audio files"),
    (["positive=ONE", "negative=NEG"], "has 1 audio file; at least 2 are needed"),
    (["positive=NEG", "negative=NEG", "method=svm"], "method=svm is not one of probe, mean"),
    (["positive=NEG", "negative=NEG", "held_out=1"], "held_out=1 must be below 1"),
])
def test_bad_input_is_one_line(tmp_path, overrides, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.flac").write_bytes((CONTRAST / "low" / "000.flac").read_bytes())
    names = {"NEG": str(CONTRAST / "low"), "EMPTY": str(tmp_path / "empty"), "ONE": str(tmp_path / "one")}
    overrides = [o.split("=")[0] + "=" + names.get(o.split("=")[1], o.split("=")[1]) for o in overrides]
    message = message.replace("EMPTY", names["EMPTY"])
    result = _directions("model=tiny", *overrides, f"hydra.run.dir={tmp_path / 'job'}")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "job").exists()


def test_a_direction_audiated_both_ways_is_judged(tmp_path):
    result = _directions("model=tiny", "model.layer=1", f"positive={CONTRAST / 'high'}", f"negative={CONTRAST / 'low'}",
                         f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'job'}", "audiate=true",
                         "audiate_steps=5", "audiate_with=['parameterization=speech']")
    assert result.returncode == 0, result.stderr[-3000:]
    ways = json.loads((tmp_path / "job" / "directions.json").read_text())["audiated"]
    assert [w["way"] for w in ways] == ["towards positive", "towards negative"]
    assert all(w["voiced_share"] > 0.5 and w["f0_hz"] > 0 and (tmp_path / "job" / "audiated").exists() for w in ways)
    assert ways[0]["name"] == "L1-D0-direction" and "F0" in result.stdout


def test_a_direction_is_audiated_towards_each_side_from_one_file_of_both(tmp_path):
    from audiation.hearing import judges
    from audiation.jobs.directions_job import audiate_both_ways

    direction = np.array([0.6, -0.8, 0.0], np.float32)
    asked = []

    def audiate(directions, out):  # what the job's audiation is given, and two targets as it returns them
        asked.append((directions, out, np.load(directions)))
        return [{"name": f"direction_{i}", "final_activation": 2.0 - i, "files": {"wav_16bit": f"d{i}.wav"},
                 judges.FIELDS[0]: 100.0 + i, "judges_note": f"note {i}", "unkept": 1} for i in range(2)]

    ways = audiate_both_ways(audiate, direction, tmp_path)
    (path, out, both), = asked
    assert path == tmp_path / "both_ways.npy" and out == tmp_path / "audiated"
    assert both.tolist() == [direction.tolist(), (-direction).tolist()]  # + then -, in the order of the ways
    assert [w["way"] for w in ways] == ["towards positive", "towards negative"]
    assert [w["audio"] for w in ways] == [str(tmp_path / "audiated" / "d0.wav"), str(tmp_path / "audiated" / "d1.wav")]
    assert [w[judges.FIELDS[0]] for w in ways] == [100.0, 101.0] and "unkept" not in ways[0]
    assert [(w["name"], w["final_activation"], w["judges_note"]) for w in ways] == [
        ("direction_0", 2.0, "note 0"), ("direction_1", 1.0, "note 1")]  # why a judge said nothing, kept


class PastTheCheck(Exception):
    """Raised where a job's work would begin: its folder was taken."""


def _stop_past_the_check(*_):
    raise PastTheCheck


@pytest.mark.parametrize("name,out,refused", [
    ("directions.json", None, True), ("both_ways.npy", None, True), ("audiated", None, True), (".hydra", None, True),
    ("high.npy", "job", True),  # the direction's own name, where it is written into the folder
    ("high.npy", "elsewhere", False), ("direction.npy", None, True),  # the default out: direction.npy in the folder
])
def test_a_directions_job_refuses_another_tools_files_before_any_work(tmp_path, monkeypatch, name, out, refused):
    from audiation.config.configs import compose
    from audiation.config.job_plans import directions_plan
    from audiation.errors import AudiationError
    from audiation.jobs import directions_job

    job = tmp_path / "job"
    job.mkdir()
    (job / name).write_text("another tool's")
    given = [f"out={tmp_path / out / 'high.npy'}"] if out else []
    plan = directions_plan(compose("model=tiny", f"positive={CONTRAST / 'high'}", f"negative={CONTRAST / 'low'}",
                                   *given, config_name="directions"), job)
    monkeypatch.setattr(directions_job, "configure", _stop_past_the_check)
    with pytest.raises(AudiationError if refused else PastTheCheck) as raised:
        directions_job.directions_job(plan, job)
    assert (f"holds files audiation did not write ({name})" in str(raised.value)) is refused
    assert (job / name).read_text() == "another tool's"


@pytest.mark.parametrize("summary,ours", [({"held_out_auc": {"probe": 0.9}}, True), ({"held_out_auc": 0.9}, False),
                                          ({"auc": {}}, False)])
def test_a_directions_job_writes_again_over_its_own_folder_told_by_its_summary(tmp_path, monkeypatch, summary, ours):
    from audiation.config.configs import compose
    from audiation.config.job_plans import directions_plan
    from audiation.errors import AudiationError
    from audiation.jobs import directions_job

    (tmp_path / "directions.json").write_text(json.dumps(summary))
    (tmp_path / "both_ways.npy").write_text("an earlier run's")
    plan = directions_plan(compose("model=tiny", f"positive={CONTRAST / 'high'}", f"negative={CONTRAST / 'low'}",
                                   config_name="directions"), tmp_path)
    monkeypatch.setattr(directions_job, "configure", _stop_past_the_check)
    with pytest.raises(PastTheCheck if ours else AudiationError, match=None if ours else
                       r"did not write \(directions.json, both_ways.npy\)"):
        directions_job.directions_job(plan, tmp_path)


def test_a_directions_job_fits_on_its_training_clips_and_writes_what_its_numbers_rest_on(tmp_path, monkeypatch, caplog):
    """The job without the model: each side's clip vectors stand in for the cache's (one per file)."""
    import logging

    from audiation.config.configs import compose
    from audiation.config.job_plans import directions_plan
    from audiation.data import audio_files
    from audiation.data.splits import held_out
    from audiation.errors import AudiationError
    from audiation.jobs import directions_job

    rng = np.random.default_rng(0)
    vectors = {"positive": rng.standard_normal((32, 3)) + [1, 0, 0], "negative": rng.standard_normal((32, 3))}
    out = tmp_path / "two" / "deep" / "high.npy"
    plan = directions_plan(compose("model=tiny", f"positive={CONTRAST / 'high'}", f"negative={CONTRAST / 'low'}",
                                   "method=mean", "l2=0.5", "threads=1", "data.max_seconds=7", f"out={out}",
                                   config_name="directions"), tmp_path / "job")
    asked = []
    monkeypatch.setattr(directions_job, "configure", lambda *given: asked.append(("configure", given)))

    def open_cache(spec, layer, model_config, files, cache_dir, device, max_seconds):
        asked.append(("cache", max_seconds))
        return files, vectors["positive" if files == plan.files["positive"] else "negative"]

    monkeypatch.setattr(directions_job, "open_cache", open_cache)
    monkeypatch.setattr(probes, "clip_vectors", lambda cache: cache)
    monkeypatch.setattr(audio_files, "speaker", lambda *_: None)
    with caplog.at_level(logging.WARNING):
        summary = directions_job.directions_job(plan, tmp_path / "job")
    assert asked == [("configure", (plan.device, 1)), ("cache", 7.0), ("cache", 7.0)]
    train, test = held_out(32, 0.25, 0)
    fitted = probes.mean_difference(vectors["positive"][train], vectors["negative"][train])
    assert np.array_equal(np.load(out), fitted)  # fitted on the training clips only
    assert summary == {
        "model": plan.spec.short_name, "layer": plan.layer.label, "method": "mean", "out": str(out),
        "held_out_auc": {m: probes.auc(vectors["positive"][test] @ d, vectors["negative"][test] @ d) for m, d in (
            ("mean", fitted), ("probe", probes.logistic_probe(vectors["positive"][train], vectors["negative"][train], 0.5)))},
        "leave_one_speaker_out_auc": None, "leave_one_speaker_out_note": "64 clip(s) have no speaker (a speaker column "
        "in metadata.tsv, or one subfolder per speaker)", "clips": {"positive": 32, "negative": 32},
        "held_out_clips": {"positive": 8, "negative": 8}, "l2": 0.5, "positive": str(CONTRAST / "high"),
        "negative": str(CONTRAST / "low")}
    assert json.loads((tmp_path / "job" / "directions.json").read_text()) == summary
    assert [r.getMessage() for r in caplog.records if r.name.startswith("audiation")] == [
        f"warning: no leave-one-speaker-out AUC: {summary['leave_one_speaker_out_note']}"]
    vectors["negative"] = vectors["positive"]  # the same clips on both sides: no direction, in one line
    with pytest.raises(AudiationError) as raised, warnings.catch_warnings():
        warnings.simplefilter("error")  # and only that line: numpy's "invalid value encountered" is not printed first
        directions_job.directions_job(plan, tmp_path / "job")
    assert str(raised.value) == (f"no mean direction could be fitted at layer {plan.layer.label}: the two sides' "
                                 "activations do not differ (are they the same clips?)")


def test_a_directions_jobs_audiation_run_has_its_steps_no_logger_the_judges_and_the_jobs_model():
    from audiation.config.configs import compose
    from audiation.config.job_plans import direction_run

    cfg = compose("model=random_small", "positive=a", "negative=b", "audiate_steps=7", "device=cpu", "threads=1",
                  "audiate_with=['parameterization=speech','optimizer.lr=0.01']", config_name="directions")
    run = direction_run(cfg, ROOT / "d.npy")
    assert run.objective.name == "direction" and run.objective.direction == str(ROOT / "d.npy")
    assert run.steps == 7 and run.logger.enabled is False and run.quality.judges is True
    assert run.parameterization.name == "speech" and run.optimizer.lr == 0.01  # the overrides, applied last
    assert run.model == cfg.model and (run.device, run.threads) == ("cpu", 1)
    # the overrides win over the job's own settings
    mine = direction_run(compose("model=random_small", "positive=a", "negative=b",
                                 "audiate_with=['steps=3','quality.judges=false']", config_name="directions"), ROOT / "d.npy")
    assert mine.steps == 3 and mine.quality.judges is False


def test_a_directions_jobs_audiation_run_is_judged_whatever_the_runs_default(monkeypatch):
    """Its summary's F0 and voiced share come from the judges, so they are on even where a run's default is off."""
    from audiation.config import job_plans
    from audiation.config.configs import compose

    cfg = compose("model=random_small", "positive=a", "negative=b", config_name="directions")
    monkeypatch.setattr(job_plans, "compose", lambda *overrides: compose("quality.judges=false", *overrides))
    assert job_plans.direction_run(cfg, ROOT / "d.npy").quality.judges is True
