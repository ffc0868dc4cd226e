"""One unit's natural examples written into a job folder (`jobs.examples_job.write_examples_of_unit`, shared by
the examples job and audiation jobs with `quality.data`), from a stand-in cache: each clip centred on its peak,
its picture's title and mark, its record; and the reader that keeps the last file."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import soundfile

from audiation.data.activations import Example
from audiation.jobs import examples_job


def test_a_units_examples_are_clips_centred_on_their_peaks_with_a_record_each(tmp_path, monkeypatch):
    rate = 1000
    signal = np.arange(3000, dtype=np.float32) / 3000  # a ramp: where a clip was cut from shows in its samples
    data = tmp_path / "data"
    data.mkdir()
    (data / "metadata.tsv").write_text("file\ttext\nsay.wav\thello there\n")
    cache = SimpleNamespace(sample_rate=rate, stats={"max": np.array([0.0, 5.0]), "p99": np.array([0.0, 4.0]),
                                                     "mean_abs": np.array([0.0, 0.5])},
                            trace=lambda unit, frame, seconds: ([unit * 1.0, frame * 1.0], [seconds, 2.0]))
    found = [Example(1, str(data / "say.wav"), 1.23456, 4.5, 61), Example(2, str(data / "other.wav"), 0.2, 3.25, 10)]
    pictures = []
    monkeypatch.setattr(examples_job.disk, "write_spectrogram",
                        lambda path, clip, sample_rate, title, mark: pictures.append((path, len(clip), title, mark)))
    unit = examples_job.write_examples_of_unit(tmp_path, cache, 1, found, "L6", 0.5, lambda file: signal)
    assert unit == {"name": "L6-U1", "layer": "L6", "unit": 1, "stats": {"max": 5.0, "p99": 4.0, "mean_abs": 0.5},
                    "examples": [
                        {"rank": 1, "file": str(data / "say.wav"), "time_seconds": 1.2346, "activation": 4.5,
                         "clip": "examples/L6-U1/1.wav", "spectrogram": "examples/L6-U1/1.png", "text": "hello there",
                         "clip_seconds": 0.5, "trace_seconds": [1.0, 61.0], "trace": [0.5, 2.0]},
                        {"rank": 2, "file": str(data / "other.wav"), "time_seconds": 0.2, "activation": 3.25,
                         "clip": "examples/L6-U1/2.wav", "spectrogram": "examples/L6-U1/2.png", "text": None,
                         "clip_seconds": 0.5, "trace_seconds": [1.0, 10.0], "trace": [0.5, 2.0]}]}
    first, info = soundfile.read(tmp_path / "examples/L6-U1/1.wav", dtype="float32"), soundfile.info(
        tmp_path / "examples/L6-U1/1.wav")
    assert (info.samplerate, info.subtype, len(first[0])) == (rate, "PCM_16", 500)
    assert np.allclose(first[0], signal[985:1485], atol=1 / 2**15)  # 1.235 s x 1000 Hz, minus half of 500
    second = soundfile.read(tmp_path / "examples/L6-U1/2.wav", dtype="float32")[0]
    assert not second[:50].any() and np.allclose(second[50:], signal[:450], atol=1 / 2**15)  # padded before 0 s
    assert [(p.relative_to(tmp_path).as_posix(), n, title) for p, n, title, _ in pictures] == [
        ("examples/L6-U1/1.png", 500, "L6-U1 #1: say.wav at 1.23 s (4.5)"),
        ("examples/L6-U1/2.png", 500, "L6-U1 #2: other.wav at 0.20 s (3.25)")]
    assert np.allclose([mark for *_, mark in pictures], [1.23456 - 0.985, 0.2 + 0.05])  # the peak, within its clip


def test_a_loud_example_is_clipped_to_what_a_16_bit_file_holds(tmp_path):
    cache = SimpleNamespace(sample_rate=1000, stats={key: np.array([1.0]) for key in ("max", "p99", "mean_abs")},
                            trace=lambda unit, frame, seconds: ([], []))
    loud = np.full(1000, 3.0, dtype=np.float32)
    examples_job.write_examples_of_unit(tmp_path, cache, 0, [Example(1, "x.wav", 0.5, 1.0, 0)], "L1", 0.1,
                                        lambda file: loud)
    clip = soundfile.read(tmp_path / "examples/L1-U0/1.wav", dtype="float32")[0]
    assert clip.max() > 0.999 and clip.max() <= 1.0


def test_the_reader_reads_a_file_once_while_it_is_the_last_one(monkeypatch):
    reads = []
    monkeypatch.setattr(examples_job.audio_files, "read_audio",
                        lambda file, rate: reads.append((file, rate)) or np.array([len(reads)], np.float32))
    read = examples_job.last_file_reader(8000)
    assert [read(f)[0] for f in ("a", "a", "b", "a", "a")] == [1, 1, 2, 3, 3]
    assert reads == [("a", 8000), ("b", 8000), ("a", 8000)]
