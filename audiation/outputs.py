"""Files on disk: the results that must never be lost. Everything here is written before W&B sees it.

Per target, in `<job folder>/targets/<target name>/`: `audio.wav` (float32, the signal as optimised),
`audio_16bit.wav` (PCM, peak-normalised to -1 dBFS: safe to play), `spectrogram.png`. Per job:
`metrics.json` and `loss_curve.png`. Files are written under a temporary name and renamed, so a file
that exists is complete.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from audiation.errors import AudiationError

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
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, data) -> None:
    with atomic(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def peak_normalise(signal: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    peak = np.abs(signal).max()
    return signal * (10 ** (peak_dbfs / 20) / peak) if peak > 0 else signal


def write_audio(folder: Path, signal: np.ndarray, sample_rate: int) -> dict[str, str]:
    files = {"wav": folder / "audio.wav", "wav_16bit": folder / "audio_16bit.wav"}
    with atomic(files["wav"]) as temporary:
        sf.write(temporary, signal.astype(np.float32), sample_rate, subtype="FLOAT", format="WAV")
    with atomic(files["wav_16bit"]) as temporary:
        sf.write(temporary, peak_normalise(signal), sample_rate, subtype="PCM_16", format="WAV")
    return {key: str(path) for key, path in files.items()}


def log_spectrogram(signal: np.ndarray, sample_rate: int, n_fft: int = 512, hop: int = 64) -> np.ndarray:
    """Magnitude in dB (frequencies, frames) of a Hann-windowed STFT, 80 dB below the peak at the least."""
    padded = np.pad(signal, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)).T
    db = 20 * np.log10(magnitude + 1e-10)
    return np.maximum(db, db.max() - 80)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def write_spectrogram(path: Path, signal: np.ndarray, sample_rate: int, title: str,
                      mark_seconds: float | None = None) -> str:
    plt = pyplot()
    db = log_spectrogram(signal, sample_rate)
    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=100)
    image = axes.imshow(db, origin="lower", aspect="auto", cmap="magma",
                        extent=(0, len(signal) / sample_rate, 0, sample_rate / 2000))
    if mark_seconds is not None:
        axes.axvline(mark_seconds, color="cyan", linestyle="--", linewidth=1, label="target frame")
        axes.legend(loc="upper right", fontsize=8)
    axes.set(xlabel="time (s)", ylabel="frequency (kHz)", title=title)
    figure.colorbar(image, ax=axes, label="dB")
    figure.tight_layout()
    with atomic(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return str(path)


def write_loss_curve(path: Path, history: dict[str, np.ndarray], title: str) -> str:
    """One panel per term: the mean over targets, with the range of targets shaded."""
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
        axis.set(xlabel="step", title=name)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    with atomic(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return str(path)


def natural_key(text: str) -> list:
    """Sort key that orders digits as numbers: L2 < L10, 2/9 < 10/0."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text.lower())]


def read_jobs(folder: Path) -> list[tuple[Path, dict]]:
    """(job folder, metrics) for every metrics.json of an audiation job under `folder`, in natural order."""
    jobs = []
    for path in sorted(folder.rglob("metrics.json"), key=lambda p: natural_key(str(p.relative_to(folder)))):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise AudiationError(f"cannot read {path}: {error}") from None
        if isinstance(metrics, dict) and isinstance(metrics.get("targets"), list):  # others are not ours
            jobs.append((path.parent, metrics))
    return jobs
