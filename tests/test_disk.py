"""Files on disk (`outputs.disk`), tested directly: the playable audio's peak, the page's envelope, the
spectrogram's numbers and its axes' ticks, writes that are whole or absent, and the writer's order."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf
import torch

from audiation.outputs import disk


def test_the_playable_file_peaks_at_minus_1_dbfs_and_samples_that_are_not_finite_are_silence(tmp_path):
    signal = np.array([0.5, -2.0, np.nan, np.inf], dtype=np.float32)
    peak = 10 ** (-1 / 20)
    np.testing.assert_allclose(disk.peak_normalise(signal), [peak / 4, -peak, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(disk.peak_normalise(signal, -6.0), [10 ** (-6 / 20) / 4, -10 ** (-6 / 20), 0, 0],
                               rtol=1e-6)
    assert not disk.peak_normalise(np.zeros(3)).any()  # silence stays silence, no division by zero
    disk.write_wav(tmp_path / "a.wav", signal[:2], 16000, "PCM_16")
    disk.write_wav(tmp_path / "b.wav", signal[:2], 8000)
    played, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    assert rate == 16000 and sf.info(tmp_path / "a.wav").subtype == "PCM_16"
    np.testing.assert_allclose(played, [peak / 4, -peak], atol=1 / 32768)
    kept, rate = sf.read(tmp_path / "b.wav", dtype="float32")
    assert rate == 8000 and sf.info(tmp_path / "b.wav").subtype == "FLOAT" and kept.tolist() == [0.5, -2.0]


def test_the_envelope_is_each_stretchs_peak_over_the_whole_peak_at_three_places():
    signal = np.array([0, 1, -4, 2, 0.5, 0.25, 3, 0, 0, -1], dtype=np.float32)
    assert disk.envelope(signal, 5) == [0.25, 1.0, 0.125, 0.75, 0.25]
    assert disk.envelope(np.array([3.0, 1.0]), 2) == [1.0, 0.333]
    assert disk.envelope(np.array([1.0, -0.5, 0.25]), 5) == [1.0, 0.5, 0.25, 0.0, 0.0]  # more points than samples
    assert disk.envelope(np.zeros(4), 2) == [0.0, 0.0]
    assert len(disk.envelope(np.ones(16000))) == 200


def test_axis_ticks_are_round_steps_from_zero_to_the_span():
    assert disk._ticks(1.0, 5) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert disk._ticks(3.0, 4) == [0, 1, 2, 3] and disk._ticks(8.0, 4) == [0, 2, 4, 6, 8]  # seconds; 16 kHz's kHz
    assert disk._ticks(2.9, 6) == [0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert disk._ticks(1e5, 5) == [0.0, 1e5]  # past every step: the ends


def test_a_spectrogram_is_db_of_a_hann_stft_floored_80_db_below_its_peak_with_high_frequencies_on_top():
    t = torch.arange(16000) / 16000
    sine = torch.sin(2 * torch.pi * 1000 * t)[None]
    db, hop = disk.log_spectrograms(sine)
    assert hop == 40 and db.shape == (1, 201, 401)  # 400 columns, 201 rows of 40 Hz
    assert int(db[0, :, 200].argmax()) == 25  # 1 kHz / 40 Hz
    assert float(db.max()) == pytest.approx(40.0, abs=0.05)  # |X| = amplitude x sum(hann) / 2 = 100
    assert float(db.min()) == pytest.approx(float(db.max()) - 80, abs=1e-4)
    indices, hop = disk.spectrogram_indices(sine)
    assert indices.dtype == np.uint8 and indices.shape == (1, 201, 401) and hop == 40
    assert indices[0, 200 - 25, 200] == disk.COLOURS - 1 and indices.min() == 0  # flipped: 1 kHz 25 rows up
    peak = float(db.max())
    shared, _ = disk.spectrogram_indices(sine, (peak - 60, peak + 20))
    assert shared.max() == round(0.75 * (disk.COLOURS - 1)) and shared.min() == 0  # 3/4 up the shared range
    longer, hop = disk.log_spectrograms(torch.zeros(1, 16001))
    assert hop == 41 and longer.shape[2] == 391  # at most 400 columns, whatever the length
    tiny, hop = disk.log_spectrograms(torch.ones(1, 1))
    assert hop == 1 and tiny.shape == (1, 2, 2)  # one sample: a 2-point transform, not a crash


def test_a_file_is_written_whole_or_not_at_all_and_a_write_error_names_it(tmp_path):
    path = tmp_path / "sub" / "a.json"
    with pytest.raises(RuntimeError), disk.atomic(path) as temporary:
        assert temporary == tmp_path / "sub" / ".a.partial.json"
        temporary.write_text("half")
        raise RuntimeError("stopped")
    assert list((tmp_path / "sub").iterdir()) == []
    with pytest.raises(OSError) as full, disk.atomic(path):
        raise OSError(28, "No space left on device")
    assert full.value.filename == str(path) and list((tmp_path / "sub").iterdir()) == []
    with pytest.raises(OSError) as named, disk.atomic(path):
        raise OSError(13, "Permission denied", "/elsewhere")
    assert named.value.filename == "/elsewhere"
    assert disk.write_bytes(path, b"{}") == str(path) and path.read_bytes() == b"{}"
    assert list((tmp_path / "sub").iterdir()) == [path]


def test_the_writer_does_its_tasks_in_order_on_its_own_thread_and_ends_with_them():
    done, threads = [], set()
    with disk.Writer() as writer:
        for i in range(50):
            writer.submit(lambda i=i: done.append(i) or threads.add(threading.current_thread().name))
        writer.flush()
        assert done == list(range(50)) and threads == {"audiation-writer"}
        writer.submit(lambda: done.append("last"))
    assert done[-1] == "last" and not writer._thread.is_alive()


def test_a_spectrogram_pictures_ticks_frame_and_scale_bar_are_where_their_numbers_say():
    from io import BytesIO

    from PIL import Image

    indices, hop = disk.spectrogram_indices(torch.zeros(1, 16000))
    image = Image.open(BytesIO(disk.spectrogram_png(indices[0], hop, 16000, 16000, "a title", mark_seconds=0.25)))
    pixels = np.asarray(image)
    top, left = disk.MARGIN_TOP, disk.MARGIN_LEFT
    bottom, right = top + 201, left + 401
    assert pixels.shape == (bottom + disk.MARGIN_BOTTOM, right + disk.MARGIN_RIGHT)
    black = pixels == disk.BLACK
    mark = round(left + 0.25 * 400)  # the target frame's dashes reach the frame's bottom edge
    assert black[top - 1, left - 1:right + 1].all() and np.delete(black[bottom, left - 1:right + 1], mark - left + 1).all()
    assert black[top - 1:bottom + 1, left - 1].all() and black[top - 1:bottom + 1, right].all()
    for seconds in (0, 0.2, 0.4, 0.6, 0.8, 1.0):  # a tick every 0.2 s, 400 columns to the second
        assert black[bottom + 1:bottom + 4, round(left + seconds * 400)].all(), seconds
    assert not black[bottom + 1:bottom + 4, left + 40].any()
    for khz in (0, 2, 4, 6, 8):  # a tick every 2 kHz, 8 kHz at the top row
        assert black[round(bottom - khz / 8 * 200), left - 4:left - 1].all(), khz
    bar = right + 8
    for db in (0, 20, 40, 60, 80):
        assert black[round(top + db / 80 * 200), bar + 8:bar + 12].all(), db
    cyan = pixels[:, mark] == disk.CYAN  # the target frame, dashed 4 rows in 6
    assert cyan[top:top + 4].all() and not cyan[top + 4:top + 6].any() and not cyan[:top].any()
    picture = np.delete(pixels[top:bottom, left:right], mark - left, axis=1)
    assert (picture == disk.COLOURS - 1).all()  # silence on its own scale: flat, all at its own peak
    assert black[2:top - 4, left:left + 30].any()  # the title, drawn above the picture
