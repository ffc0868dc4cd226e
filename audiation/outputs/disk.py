"""Files on disk: the results that must never be lost. Everything here is written before W&B sees it.

Audio (`audio.wav` float32 as optimised, `audio_16bit.wav` peak-normalised to -1 dBFS: safe to play),
spectrogram pictures (computed for a whole batch on its device, drawn as small palette PNGs), JSON, the
loss curve, and `Writer`: a background thread that writes while the next batch optimises. Files are
written under a temporary name and renamed, so a file that exists is complete.
"""

from __future__ import annotations

import functools
import io
import json
import os
import queue
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image, ImageDraw

PEAK_DBFS = -1.0


@contextmanager
def atomic(path: Path):
    """Yield a temporary path next to `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        error.filename = error.filename or str(path)  # a write's error names no file: the user needs it
        raise
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, data) -> None:
    """JSON as the standard has it: a number that is not finite is written as null (NaN is not JSON)."""
    with atomic(path) as temporary:
        temporary.write_text(json.dumps(_finite(data), indent=2, default=_plain, allow_nan=False) + "\n")


def _finite(value):
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    return value


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def peak_normalise(signal: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """The signal with its peak at `peak_dbfs`; samples that are not finite are silence (the file is the
    one that is safe to play)."""
    signal = np.where(np.isfinite(signal), signal, 0)
    peak = np.abs(signal).max()
    return signal * (10 ** (peak_dbfs / 20) / peak) if peak > 0 else signal


def envelope(signal: np.ndarray, points: int = 200) -> list[float]:
    """The peak |amplitude| in `points` equal stretches of the signal, relative to the whole peak: enough
    to draw its waveform on a page."""
    peaks = np.array([np.abs(part).max() if part.size else 0.0 for part in np.array_split(signal, points)])
    return [round(float(p), 3) for p in peaks / max(float(peaks.max()), 1e-12)]


def wav_bytes(samples: np.ndarray, sample_rate: int, subtype: str) -> bytes:
    """A WAV file's bytes, encoded in memory: the disk is then written by Python, whose failure (a full
    disk) is an OSError naming the file, not libsndfile's own error."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def write_wav(path: Path, signal: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> None:
    """`FLOAT`: the signal as it is; `PCM_16`: peak-normalised to -1 dBFS first."""
    samples = signal.astype(np.float32) if subtype == "FLOAT" else peak_normalise(signal)
    write_bytes(path, wav_bytes(samples, sample_rate, subtype))


# --- spectrograms: a whole batch at once, on the signals' device; one palette PNG per target ------------

N_FFT = 400  # 25 ms windows at 16 kHz: 201 frequency rows
IMAGE_COLUMNS = 400  # about this many STFT frames across the image, whatever the signal's length
DYNAMIC_RANGE_DB = 80.0
COLOURS = 64  # colour-map levels: smooth to the eye, and noise-like pictures compress to ~40 KB
WHITE, BLACK, GREY, CYAN = COLOURS, COLOURS + 1, COLOURS + 2, COLOURS + 3
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 46, 52, 18, 30  # the right one holds the dB scale bar


def log_spectrograms(signals: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(rows, frequencies, frames) magnitudes in dB of a Hann-windowed STFT, low frequencies first, each
    row floored 80 dB below its own peak; and the hop in samples. Runs on the signals' device."""
    signals = signals.float()
    hop = max(1, -(-signals.shape[1] // IMAGE_COLUMNS))
    window = torch.hann_window(N_FFT, device=signals.device)
    n_fft = min(N_FFT, max(2, signals.shape[1]))
    spectrum = torch.stft(signals, n_fft, hop, window=window[:n_fft] if n_fft < N_FFT else window,
                          center=True, pad_mode="constant", return_complex=True)
    db = 20 * torch.log10(spectrum.abs() + 1e-10)
    peak = db.amax(dim=(1, 2), keepdim=True)
    return torch.maximum(db, peak - DYNAMIC_RANGE_DB), hop


def spectrogram_indices(signals: torch.Tensor, db_range: tuple[float, float] | None = None) -> tuple[np.ndarray, int]:
    """Palette indices (rows, frequencies high to low, frames) uint8, quantised on the device: what a
    batch of spectrogram pictures needs from the GPU is one small transfer. Each picture spans the 80 dB
    below its own peak, or the shared `db_range` (low, high) so pictures compare: the scale bar's
    0 to -80 dB either way."""
    db, hop = log_spectrograms(signals)
    if db_range is None:
        high = db.amax(dim=(1, 2), keepdim=True)
        low = high - DYNAMIC_RANGE_DB
    else:
        low, high = db_range
    scaled = ((db - low) / (high - low)).clamp(0, 1)
    indices = (scaled * (COLOURS - 1)).round().to(torch.uint8).flip(1)
    return indices.cpu().numpy(), hop


@functools.lru_cache(maxsize=1)
def palette() -> list[int]:
    """magma in COLOURS entries, then white, black, grey, cyan: a flat RGB list for a "P" mode PNG."""
    from matplotlib import colormaps

    colours = (colormaps["magma"](np.linspace(0, 1, COLOURS))[:, :3] * 255).round().astype(int)
    extra = [(255, 255, 255), (0, 0, 0), (140, 140, 140), (0, 230, 255)]
    return [int(v) for colour in [*colours.tolist(), *extra] for v in colour]


def _ticks(span: float, most: int) -> list[float]:
    """Round tick positions from 0 to `span`, at most `most` + 1 of them."""
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600):
        if span / step <= most:
            return [i * step for i in range(int(span / step + 1e-9) + 1)]
    return [0.0, span]


def spectrogram_png(indices: np.ndarray, hop: int, num_samples: int, sample_rate: int, title: str,
                    mark_seconds: float | None = None) -> bytes:
    """One spectrogram picture as PNG bytes: time (s) and frequency (kHz) axes, a title, a dB scale bar,
    and the target frame as a dashed cyan line. A palette image (~25-60 KB) drawn with Pillow, not a matplotlib figure
    (~0.2 s and ~250 KB each)."""
    rows, columns = indices.shape
    width, height = MARGIN_LEFT + columns + MARGIN_RIGHT, MARGIN_TOP + rows + MARGIN_BOTTOM
    image = Image.new("P", (width, height), WHITE)
    image.putpalette(palette())
    image.paste(Image.fromarray(indices, mode="L"), (MARGIN_LEFT, MARGIN_TOP))
    draw = ImageDraw.Draw(image)
    bottom, right = MARGIN_TOP + rows, MARGIN_LEFT + columns
    draw.rectangle((MARGIN_LEFT - 1, MARGIN_TOP - 1, right, bottom), outline=BLACK)
    seconds = num_samples / sample_rate
    x_of = lambda t: MARGIN_LEFT + t * sample_rate / hop  # noqa: E731 - frame k is centred on sample k*hop
    for t in _ticks(seconds, 5):
        x = x_of(t)
        draw.line((x, bottom, x, bottom + 3), fill=BLACK)
        draw.text((x, bottom + 5), f"{t:g}", fill=BLACK, anchor="mt")
    draw.text((right, height - 1), "time (s)", fill=GREY, anchor="rd")
    nyquist_khz = sample_rate / 2000
    for khz in _ticks(nyquist_khz, 4):
        y = bottom - khz / nyquist_khz * (rows - 1)
        draw.line((MARGIN_LEFT - 4, y, MARGIN_LEFT - 1, y), fill=BLACK)
        draw.text((MARGIN_LEFT - 6, y), f"{khz:g}", fill=BLACK, anchor="rm")
    draw.text((2, MARGIN_TOP - 2), "kHz", fill=GREY, anchor="ld")
    draw.text((MARGIN_LEFT, 2), title, fill=BLACK)
    _scale_bar(draw, right + 8, MARGIN_TOP, bottom)
    if mark_seconds is not None:
        x = x_of(mark_seconds)
        for y in range(MARGIN_TOP, bottom, 6):
            draw.line((x, y, x, min(y + 3, bottom)), fill=CYAN)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def _scale_bar(draw: ImageDraw.ImageDraw, left: int, top: int, bottom: int) -> None:
    """The colour map as a vertical bar, labelled in dB below the picture's peak (or the shared peak)."""
    for y in range(top, bottom):
        draw.line((left, y, left + 7, y), fill=round((COLOURS - 1) * (bottom - 1 - y) / max(bottom - 1 - top, 1)))
    draw.rectangle((left - 1, top - 1, left + 8, bottom), outline=BLACK)
    for db in range(0, int(DYNAMIC_RANGE_DB) + 1, 20):
        y = top + db / DYNAMIC_RANGE_DB * (bottom - 1 - top)
        draw.line((left + 8, y, left + 11, y), fill=BLACK)
        draw.text((left + 13, y), f"{-db}", fill=BLACK, anchor="lm")
    draw.text((left + 12, top - 2), "dB", fill=GREY, anchor="md")  # below the peak


def write_bytes(path: Path, content: bytes) -> str:
    with atomic(path) as temporary:
        temporary.write_bytes(content)
    return str(path)


def write_spectrogram(path: Path, signal: np.ndarray, sample_rate: int, title: str,
                      mark_seconds: float | None = None) -> str:
    """One signal's spectrogram PNG (for batches, call `spectrogram_indices` once and `spectrogram_png`
    per row)."""
    indices, hop = spectrogram_indices(torch.from_numpy(np.asarray(signal, dtype=np.float32))[None])
    return write_bytes(path, spectrogram_png(indices[0], hop, len(signal), sample_rate, title, mark_seconds))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def write_loss_curve(path: Path, history: dict[str, np.ndarray], title: str) -> str:
    """One panel per term: the mean over targets, with the range of targets shaded. The terms are those
    the optimiser saw, on the augmented signal; the record's `final_activation` is measured clean."""
    plt = pyplot()
    names = [n for n in history if len(history[n])]
    figure, axes = plt.subplots(1, max(len(names), 1), figsize=(3.2 * max(len(names), 1), 2.8), dpi=100,
                                squeeze=False)
    for axis, name in zip(axes[0], names):
        values = history[name]
        steps = np.arange(1, len(values) + 1)
        axis.plot(steps, values.mean(axis=1), linewidth=1.2)
        if values.shape[1] > 1:
            axis.fill_between(steps, values.min(axis=1), values.max(axis=1), alpha=0.25)
        axis.set(xlabel="step", ylabel=f"{name} (mean, range)" if values.shape[1] > 1 else name, title=name)
    figure.suptitle(f"{title}: on the augmented signal (final_activation is measured clean)", fontsize=9)
    figure.tight_layout()
    with atomic(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return str(path)


class Writer:
    """Writes files on one background thread, in the order given, while the caller goes on (the next
    batch optimising). `flush()` waits for everything so far and re-raises the first failure; use it
    before anything reads the files, and on the way out (Ctrl-C, SIGTERM) so nothing is half-done."""

    def __init__(self):
        self._tasks: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="audiation-writer", daemon=True)
        self._thread.start()

    def _work(self):
        while True:
            task = self._tasks.get()
            try:
                if task is None:
                    return
                if self._error is None:
                    task()
            except BaseException as error:
                self._error = error
            finally:
                self._tasks.task_done()

    def submit(self, task: Callable[[], object]) -> None:
        """Queue a task; a failure of an earlier one is raised here, so the job stops at the next batch."""
        if self._error is not None:
            self.flush()
        self._tasks.put(task)

    def flush(self) -> None:
        self._tasks.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        self._tasks.join()
        self._tasks.put(None)
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()
        return False
