"""Audiation end to end, in process, on a small random wav2vec2: activations rise, unit audiation is
local and selective, rows of a batch are independent, runs are deterministic, files are right."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import compose

from audiation.jobs.audiate_job import audiate_folder
from audiation.models.encoder import Layer

FAST = ["model=random_small", "logger=none", "steps=30", "augmentation=none", "threads=1"]


def audiate(tmp_path, *overrides):
    """Run a job into tmp_path; its records' file paths made absolute for reading."""
    metrics = audiate_folder(compose(*FAST, *overrides), tmp_path, None)
    for record in metrics["targets"]:
        record["files"] = {k: tmp_path / v for k, v in record["files"].items()}
    return metrics


def activations_of(encoder, wav_path, layer):
    signal, rate = sf.read(wav_path, dtype="float32")
    assert rate == 16000
    with torch.no_grad():
        return encoder(torch.from_numpy(signal)[None], layer)[0]


@pytest.mark.parametrize("overrides", [
    ["objective=unit", "objective.unit=3"],
    ["objective=channel", "objective.unit=5"],
    ["objective=layer", "model.layer=conv3"],  # post-LN transformer outputs have a pinned mean square
    ["objective=channel", "objective.unit=5", "parameterization=waveform"],
    ["objective=direction", "objective.direction=[1,-1,0.5,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2]"],
])
def test_each_objective_raises_its_target_over_30_steps(tmp_path, overrides):
    target = audiate(tmp_path, *overrides)["targets"][0]
    assert target["final_activation"] > target["initial_activation"] + 0.5, target


def test_a_feed_forward_neuron_is_a_target_like_any_unit(tmp_path):
    target = audiate(tmp_path, "objective=channel", "objective.unit=50", "model.layer=mlp2")["targets"][0]
    assert target["name"] == "mlp2-U50-channel"
    # GELU outputs of this random net are small: from about 0 to a clear positive mean over all frames
    assert target["final_activation"] > target["initial_activation"] + 0.05, target


def test_unit_audiation_is_local_in_time_and_selective(tmp_path, small_encoder):
    target = audiate(tmp_path, "objective=unit", "objective.unit=7", "steps=60")["targets"][0]
    acts = activations_of(small_encoder, target["files"]["wav"], Layer("transformer", 2))
    frame = target["frame"]
    assert frame == acts.shape[0] // 2
    others_in_time = torch.cat([acts[:frame - 2, 7], acts[frame + 3:, 7]])
    assert acts[frame, 7] > others_in_time.max()
    neighbours = torch.cat([acts[frame, :7], acts[frame, 8:]])
    assert acts[frame, 7] > neighbours.max()
    assert target["final_terms"]["silence"] < target["initial_terms"]["silence"]


def test_batched_rows_equal_single_runs(tmp_path):
    batched = audiate(tmp_path / "batch", "objective=channel", "objective.unit=[0,1,2,3]", "batch_size=4",
                      "augmentation=standard")
    single = audiate(tmp_path / "single", "objective=channel", "objective.unit=2", "augmentation=standard")
    row = next(t for t in batched["targets"] if t["unit"] == 2)
    alone = single["targets"][0]
    np.testing.assert_allclose(sf.read(row["files"]["wav"])[0], sf.read(alone["files"]["wav"])[0],
                               rtol=1e-4, atol=1e-6)
    assert row["final_activation"] == pytest.approx(alone["final_activation"], rel=1e-4)
    assert len({t["name"] for t in batched["targets"]}) == 4


def test_units_given_as_a_range_are_chunked_into_batches(tmp_path):
    metrics = audiate(tmp_path, "objective=channel", "objective.unit=4:9", "batch_size=2", "steps=3")
    assert [t["unit"] for t in metrics["targets"]] == [4, 5, 6, 7, 8]
    assert all((tmp_path / "targets" / t["name"] / "target.json").is_file() for t in metrics["targets"])


def test_same_seed_same_audio_other_seed_other_audio(tmp_path):
    first = audiate(tmp_path / "a", "augmentation=strong", "steps=5")["targets"][0]
    again = audiate(tmp_path / "b", "augmentation=strong", "steps=5")["targets"][0]
    other = audiate(tmp_path / "c", "augmentation=strong", "steps=5", "seed=1")["targets"][0]
    read = lambda t: sf.read(t["files"]["wav"])[0]  # noqa: E731
    np.testing.assert_array_equal(read(first), read(again))
    assert not np.allclose(read(first), read(other))


def test_output_files(tmp_path):
    metrics = audiate(tmp_path, "parameterization.seconds=0.5", "steps=5")
    target = metrics["targets"][0]
    signal, rate = sf.read(target["files"]["wav"])
    assert rate == 16000 and len(signal) == 8000
    assert sf.info(target["files"]["wav"]).subtype == "FLOAT"
    pcm, rate = sf.read(target["files"]["wav_16bit"], dtype="int16")
    assert rate == 16000 and len(pcm) == 8000 and sf.info(target["files"]["wav_16bit"]).subtype == "PCM_16"
    assert 20 * np.log10(np.abs(pcm).max() / 32768) == pytest.approx(-1.0, abs=0.01)
    for png in (target["files"]["spectrogram"], tmp_path / "loss_curve.png"):
        with open(png, "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["run"]["steps_per_second"] > 0 and saved["run"]["wall_seconds"] > 0
    assert saved["targets"][0]["files"]["wav"] == "targets/L2-U0-unit/audio.wav"  # relative: the folder can move
    assert {"layer", "unit", "objective", "initial_activation", "final_activation", "final_terms"} <= set(saved["targets"][0])


def test_starting_from_a_clip_and_staying_close_to_it(tmp_path):
    from audiation.config.configs import ASSETS

    speech = ASSETS / "speech-slice" / "000092.flac"
    clip = sf.read(speech, dtype="float32")[0][:8000]
    read = lambda m: sf.read(m["targets"][0]["files"]["wav"])[0]  # noqa: E731
    start = audiate(tmp_path / "start", "parameterization.seconds=0.5", f"parameterization.init={speech}",
                    "steps=1", "optimizer.lr=1e-9")
    np.testing.assert_allclose(read(start), clip, atol=1e-4)  # one vanishing step: still the clip
    free = audiate(tmp_path / "free", "parameterization.seconds=0.5", f"parameterization.init={speech}", "steps=20")
    close = audiate(tmp_path / "close", "parameterization.seconds=0.5", f"parameterization.init={speech}", "steps=20",
                    "regularizer.stay_close=100")
    distance = lambda m: np.mean((read(m) - clip) ** 2) / np.mean(clip ** 2)  # noqa: E731
    assert distance(close) < 0.5 * distance(free)
    assert close["targets"][0]["final_terms"]["stay_close"] == pytest.approx(distance(close), rel=1e-3)


def test_samples_are_separate_signals_sample_0_is_the_targets_own(tmp_path):
    def run(folder, *overrides):
        return audiate(tmp_path / folder, "objective=channel", "objective.unit=[3,5]", "augmentation=standard",
                       *overrides)

    alone = run("alone")
    plain = run("plain", "samples=3", "batch_size=4")  # rounded to 3: a target's samples share a batch
    names = [t["name"] for t in plain["targets"]]
    assert names == [f"L2-U{u}-channel-s{s}" for u in (3, 5) for s in range(3)]
    read = lambda t: sf.read(t["files"]["wav"])[0]  # noqa: E731
    np.testing.assert_allclose(read(plain["targets"][0]), read(alone["targets"][0]), rtol=1e-4, atol=1e-6)
    assert not np.allclose(read(plain["targets"][0]), read(plain["targets"][1]))
    assert all(0 < t["sibling_similarity"] <= 1 for t in plain["targets"])


def test_directions_with_samples_keep_their_index_and_their_group(tmp_path):
    vectors = np.eye(32, dtype=np.float32)[:2]
    np.save(tmp_path / "two.npy", vectors)
    metrics = audiate(tmp_path / "job", "objective=direction", f"objective.direction={tmp_path / 'two.npy'}",
                      "samples=2", "diversity=1", "steps=3")
    targets = metrics["targets"]
    assert [t["name"] for t in targets] == ["L2-D0-direction-s0", "L2-D0-direction-s1", "L2-D1-direction-s0",
                                            "L2-D1-direction-s1"]
    assert [t["direction_index"] for t in targets] == [0, 0, 1, 1]
    assert all(t["final_terms"]["diversity"] != 0 and t["sibling_similarity"] is not None for t in targets)


def test_the_safe_to_play_file_of_a_signal_that_is_not_finite_is_silence_there(tmp_path):
    import soundfile as sf

    from audiation.outputs.disk import write_wav

    signal = np.array([0.5, np.nan, -0.25, np.inf, 0.0], dtype=np.float32)
    write_wav(tmp_path / "a.wav", signal, 16000, "PCM_16")
    played, _ = sf.read(tmp_path / "a.wav")
    assert np.allclose(played, [0.891, 0, -0.446, 0, 0], atol=1e-3)  # -1 dBFS peak, never full scale noise
