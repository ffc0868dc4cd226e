"""Dataset activations: one layer's activations over a folder of natural audio, cached on disk, and the
queries on them (per-unit statistics, the top examples of a unit).

Every unit's activation at every frame of every file is computed ONCE per (model, layer, files) and kept
in a cache folder; any later query over the same data, for any units, reads that cache and never loads
the model. The folder `<model>-<layer>-<hash>/` holds
- `activations.npy`: float16, (frames, units), all files' frames one after another (memory-mapped),
- `index.json`: per piece of audio: file, offset_seconds, first_frame, num_frames, duration (of the file),
- `stats.npz`: per unit `max`, `p99` (99th percentile over all frames), `mean_abs` (mean |activation|),
- `meta.json`: the model, layer, frame geometry, skipped files; written last.
It is built in a temporary folder and renamed into place, so a folder that exists is complete. The hash
covers the model (`ModelSpec.fingerprint`: a retrained local model gets a new cache), the layer,
`max_seconds`, and every audio file's path, size and mtime.

Each file is read, mixed to mono and resampled to the model's rate (audiation.data.audio_files) and run through the
encoder on its own: the encoder normalises each row, so padding files into a batch would change what the
model sees. Files longer than `max_seconds` are cut into pieces of about equal length starting on
the frame grid, each normalised on its own, so that attention stays affordable on hour-long recordings.

A cache can also be derived from another without the model (`derived_cache`: an SAE's features of the
layer), in the same format, so every query works on it too.

Why ~430 lines in one module: the cache's format (its files, the order they are written, the hash that
names it) and every query that reads it must agree byte for byte; one module keeps them together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import struct
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from audiation.data import audio_files
from audiation.errors import AudiationError
from audiation.models.encoder import Layer, ModelSpec, frame_grid, load_encoder, num_units
from audiation.models.families import family_of
from audiation.outputs import disk

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: mlp layers cache pre-activations
DEFAULT_MAX_SECONDS = 60.0
STATS = ("max", "p99", "mean_abs")
FLOAT16_MAX = float(np.finfo(np.float16).max)
EXACT_PERCENTILE_VALUES = 1 << 26  # up to 64M values (256 MB as float32) p99 is exact, else a histogram
HISTOGRAM_BINS = 8192
COLUMN_BLOCK_BYTES = 256 << 20  # memory for reading several units' columns in one pass
ROW_BLOCK_BYTES = 64 << 20  # memory for reading frames block by block


def _file_keys(files: list[Path]) -> list[list]:
    keys = []
    for path in files:
        try:
            stat = path.stat()
            keys.append([str(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            keys.append([str(path), -1, -1])
    return keys


def cache_key(fingerprint: dict, layer: Layer, files: list[Path], sample_rate: int, max_seconds: float) -> str:
    payload = {"format": CACHE_FORMAT, "model": fingerprint, "layer": layer.label, "sample_rate": sample_rate,
               "max_seconds": float(max_seconds), "files": _file_keys(sorted(files))}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _npy_header(shape: tuple[int, int], size: int = 128) -> bytes:
    """A version-1.0 .npy header of a fixed size, so the data can be streamed before the shape is known."""
    text = f"{{'descr': '<f2', 'fortran_order': False, 'shape': ({shape[0]}, {shape[1]}), }}"
    body = text.ljust(size - 11) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


@dataclass(frozen=True)
class Piece:
    """A stretch of one file that went through the model in one forward pass."""

    file: str
    offset_seconds: float  # where the piece starts in the (resampled) file
    first_frame: int  # its first row in activations.npy
    num_frames: int
    duration: float  # of the whole file, seconds


def split(num_samples: int, max_samples: int, hop: int, field: int) -> list[tuple[int, int]]:
    """(start, stop) of pieces of at most ~max_samples, starting on the frame grid (multiples of hop)."""
    if num_samples <= max_samples:
        return [(0, num_samples)]
    count = math.ceil(num_samples / max_samples)
    size = math.ceil(num_samples / count / hop) * hop
    starts = list(range(0, num_samples, size))
    if num_samples - starts[-1] < field and len(starts) > 1:  # a tail too short for a frame joins the last
        starts.pop()
    return [(s, starts[i + 1] if i + 1 < len(starts) else num_samples) for i, s in enumerate(starts)]


def _prefetch(files: list[Path], sample_rate: int, ahead: int = 4) -> Iterator[tuple[Path, np.ndarray | None, str]]:
    """(path, signal or None, reason) in order, decoding a few files ahead in threads while the model runs."""
    pool = ThreadPoolExecutor(max_workers=2)
    pending: deque = deque()
    queue = iter(files)
    try:
        for path in queue:
            pending.append((path, pool.submit(audio_files.read_audio, path, sample_rate)))
            if len(pending) >= ahead:
                break
        while pending:
            path, future = pending.popleft()
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(audio_files.read_audio, following, sample_rate)))
            try:
                yield path, future.result(), ""
            except audio_files.UnreadableAudio as error:
                yield path, None, str(error)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class ActivationCache:
    """One layer's activations over a set of audio files, on disk and memory-mapped (read-only).

    `ActivationCache.open(...)` returns the cache for (model, layer, files), building it first when it does
    not exist; opening an existing one reads three small files and maps the array: no model is loaded."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self.hop: int = self.meta["hop"]
        self.field: int = self.meta["field"]
        self.offset: int = self.meta.get("offset", 0)  # where frame 0 starts (caches before Whisper: 0)
        self.sample_rate: int = self.meta["sample_rate"]
        self.skipped: list[dict] = self.meta["skipped"]
        self.activations = np.load(self.folder / "activations.npy", mmap_mode="r")
        self.pieces = [Piece(**p) for p in json.loads((self.folder / "index.json").read_text())["pieces"]]
        with np.load(self.folder / "stats.npz") as stats:
            self.stats = {name: stats[name] for name in STATS}
        self._first_frames = np.array([p.first_frame for p in self.pieces], dtype=np.int64)

    @property
    def num_frames(self) -> int:
        return self.activations.shape[0]

    @property
    def num_units(self) -> int:
        return self.activations.shape[1]

    @property
    def files(self) -> list[str]:
        return list(dict.fromkeys(p.file for p in self.pieces))

    def locate(self, frame: int) -> tuple[str, float]:
        """(file, time in seconds of the frame's centre in that file)."""
        piece = self.pieces[int(np.searchsorted(self._first_frames, frame, side="right")) - 1]
        local = frame - piece.first_frame
        return piece.file, piece.offset_seconds + self.centre_seconds(local)

    def centre_seconds(self, local):
        """Seconds from a piece's start to the centre of its frame(s) `local`."""
        return (local * self.hop + self.offset + self.field / 2) / self.sample_rate

    def trace(self, unit: int, frame: int, seconds: float) -> tuple[list[float], list[float]]:
        """The unit's activation at the frames of `frame`'s piece within `seconds`/2 of it: (times relative
        to the start of a `seconds` clip centred on `frame`, activations), rounded for the page."""
        index = int(np.searchsorted(self._first_frames, frame, side="right")) - 1
        piece = self.pieces[index]
        half = int(seconds / 2 * self.sample_rate / self.hop)
        first = max(piece.first_frame, frame - half)
        last = min(piece.first_frame + piece.num_frames, frame + half + 1)
        values = np.asarray(self.activations[first:last, unit], dtype=np.float32)
        times = (np.arange(first, last) - frame) * self.hop / self.sample_rate + seconds / 2
        return [round(float(t), 4) for t in times], [round(float(v), 3) for v in values]

    def column(self, unit: int) -> np.ndarray:
        return np.asarray(self.activations[:, unit], dtype=np.float32)

    def columns(self, units: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(unit, its activation at every frame) for many units, reading the array once per block of units."""
        block = max(1, COLUMN_BLOCK_BYTES // max(4 * self.num_frames, 1))
        rows = max(1, ROW_BLOCK_BYTES // (2 * self.num_units))
        for start in range(0, len(units), block):
            chosen = units[start:start + block]
            values = np.empty((len(chosen), self.num_frames), dtype=np.float32)
            for row in range(0, self.num_frames, rows):
                values[:, row:row + rows] = self.activations[row:row + rows][:, chosen].T
            yield from zip(chosen, values)

    # --- opening and building ---

    @classmethod
    def open(cls, files: list[Path], layer: Layer, config, fingerprint: dict, tag: str, cache_dir: str | Path,
             encoder_factory: Callable[[], torch.nn.Module], sample_rate: int = 16000,
             max_seconds: float = DEFAULT_MAX_SECONDS) -> ActivationCache:
        """The cache for these files at this layer: opened when it exists, else built (the encoder is asked
        for, through `encoder_factory`, only then). Files that could not be read are reported on stderr."""
        files = sorted(Path(f) for f in files)
        longest = family_of(config).max_seconds(config)
        if longest is not None and max_seconds > longest:
            log.info("%s takes at most %g s at a time: longer files go through it in windows of %g s",
                     tag, longest, longest)
            max_seconds = longest
        key = cache_key(fingerprint, layer, files, sample_rate, max_seconds)
        folder = Path(cache_dir).expanduser() / f"{tag}-{layer.label}-{key}"
        if (folder / "meta.json").is_file():
            try:
                cache = cls(folder)
            except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
                _set_aside(folder, error)  # and built again below
            else:
                for entry in cache.skipped:
                    audio_files.warn_skipped(entry["file"], entry["reason"])
                return cache
        grid = frame_grid(layer, config)
        _build(folder, files, layer, num_units(layer, config), grid.hop, grid.field, sample_rate, max_seconds,
               encoder_factory, {"model": fingerprint, "key": key, "offset": grid.offset})
        return cls(folder)


def _set_aside(folder: Path, error: Exception) -> None:
    """Move a damaged cache out of the way (`<folder>.corrupt`, the newest one kept) and say so once."""
    aside = folder.with_name(folder.name + ".corrupt")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(folder, aside)
    reason = str(error).splitlines()[0][:80] if str(error) else type(error).__name__
    log.warning("warning: the activation cache %s is damaged (%s); set aside as %s and built again", folder, reason,
                aside.name)


def _write_file(out, encoder, device, signal: np.ndarray, layer: Layer, parts: list[tuple[int, int]]):
    """Append one file's activations (float16) to `out`, part by part: [(start sample, frames, max, min, sum of
    |activation|)] per part; None, with nothing appended, when any activation is not finite."""
    where, found = out.tell(), []
    for start, stop in parts:
        with torch.inference_mode():
            acts = encoder(torch.from_numpy(signal[start:stop]).to(device)[None], layer)[0].float().cpu().numpy()
        if not np.isfinite(acts).all():
            out.seek(where)
            out.truncate()
            return None
        half = np.clip(acts, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
        out.write(half.tobytes())
        stored = half.astype(np.float32)
        found.append((start, len(half), stored.max(axis=0), stored.min(axis=0),
                      np.abs(stored).sum(axis=0, dtype=np.float64)))
    return found


def _build(folder: Path, files: list[Path], layer: Layer, units: int, hop: int, field: int, sample_rate: int,
           max_seconds: float, encoder_factory, meta: dict) -> None:
    """Run every file through the encoder into a temporary folder, then rename it to `folder`."""
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    max_samples = max(int(max_seconds * sample_rate) // hop * hop, field)
    pieces, skipped, frames, seconds = [], [], 0, 0.0
    maximum = np.full(units, -np.inf, dtype=np.float32)
    minimum = np.full(units, np.inf, dtype=np.float32)
    abs_sum = np.zeros(units, dtype=np.float64)
    encoder, device, started = None, None, time.perf_counter()
    try:
        with open(partial / "activations.npy", "wb") as out, \
                tqdm(total=len(files), desc=f"activations {layer.label}", unit="file", dynamic_ncols=True,
                     leave=False) as bar:
            out.write(_npy_header((0, units)))
            for path, signal, reason in _prefetch(files, sample_rate):
                bar.update(1)
                if signal is not None and len(signal) < field:
                    signal, reason = None, (f"{len(signal) / sample_rate * 1000:.0f} ms is shorter than one frame "
                                            f"at layer {layer.label} ({field / sample_rate * 1000:.0f} ms)")
                if signal is not None:
                    if encoder is None:
                        encoder = encoder_factory()
                        device = next(encoder.parameters()).device
                    found = _write_file(out, encoder, device, signal, layer,
                                        split(len(signal), max_samples, hop, field))
                    if found is None:  # one such file would make every unit's maximum NaN
                        signal, reason = None, (f"the model's activations on it are not finite (its peak is "
                                                f"{np.abs(signal).max():.3g}: not audio levels?)")
                if signal is None:
                    audio_files.warn_skipped(path, reason)
                    skipped.append({"file": str(path), "reason": reason})
                    continue
                for start, count, high, low, total in found:
                    np.maximum(maximum, high, out=maximum)
                    np.minimum(minimum, low, out=minimum)
                    abs_sum += total
                    pieces.append(Piece(str(path), start / sample_rate, frames, count, len(signal) / sample_rate))
                    frames += count
                seconds += len(signal) / sample_rate
            out.seek(0)
            out.write(_npy_header((frames, units)))
        if not frames:
            raise AudiationError(f"none of the {len(files)} audio files could be read (see the warnings above)")
        activations = np.load(partial / "activations.npy", mmap_mode="r")
        stats = {"max": maximum, "p99": _p99(activations, minimum, maximum), "mean_abs": (abs_sum / frames)}
        del activations
        np.savez(partial / "stats.npz", **{k: np.asarray(v, dtype=np.float32) for k, v in stats.items()})
        (partial / "index.json").write_text(json.dumps({"pieces": [asdict(p) for p in pieces]}) + "\n")
        disk.write_json(partial / "meta.json", {
            **meta, "format": CACHE_FORMAT, "layer": layer.label, "hop": hop, "field": field,
            "sample_rate": sample_rate, "max_seconds": max_seconds, "files": len(files) - len(skipped),
            "skipped": skipped, "frames": frames, "units": units, "audio_seconds": seconds,
            "build_seconds": time.perf_counter() - started, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        })
        try:
            os.replace(partial, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # not a concurrent build that finished first
                raise
        log.info("cached %s activations of %d files (%.0f s of audio, %d frames x %d units) in %s (%.1f s)",
                 layer.label, len(files) - len(skipped), seconds, frames, units, folder, time.perf_counter() - started)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def derived_cache(cache: ActivationCache, transform: Callable[[np.ndarray], np.ndarray], key: str,
                  what: str) -> ActivationCache:
    """A cache whose every frame is `transform(frames)` of `cache`'s (an SAE's features of the layer: `what`
    says so in its meta), built once beside it as `<cache folder>-<key>` from the cache alone, without the
    model; the same queries (statistics, top examples, traces) then work on it."""
    folder = cache.folder.with_name(f"{cache.folder.name}-{key}")
    if (folder / "meta.json").is_file():
        try:
            return ActivationCache(folder)
        except (OSError, ValueError, KeyError) as error:
            _set_aside(folder, error)
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rows = max(1, ROW_BLOCK_BYTES // (4 * cache.num_units))
    try:
        with open(partial / "activations.npy", "wb") as out:
            out.write(_npy_header((0, 0)))
            maximum = minimum = abs_sum = None
            for start in range(0, cache.num_frames, rows):
                values = transform(np.asarray(cache.activations[start:start + rows], dtype=np.float32))
                half = np.clip(values, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
                out.write(half.tobytes())
                stored = half.astype(np.float32)
                if maximum is None:
                    maximum, minimum, abs_sum = stored.max(axis=0), stored.min(axis=0), np.zeros(half.shape[1])
                np.maximum(maximum, stored.max(axis=0), out=maximum)
                np.minimum(minimum, stored.min(axis=0), out=minimum)
                abs_sum += np.abs(stored).sum(axis=0, dtype=np.float64)
            units = len(maximum)
            out.seek(0)
            out.write(_npy_header((cache.num_frames, units)))
        activations = np.load(partial / "activations.npy", mmap_mode="r")
        stats = {"max": maximum, "p99": _p99(activations, minimum, maximum), "mean_abs": abs_sum / cache.num_frames}
        del activations
        np.savez(partial / "stats.npz", **{k: np.asarray(v, dtype=np.float32) for k, v in stats.items()})
        shutil.copyfile(cache.folder / "index.json", partial / "index.json")
        disk.write_json(partial / "meta.json", {**cache.meta, "units": units, "derived_from": str(cache.folder),
                                                   "transform": what})
        try:
            os.replace(partial, folder)
        except OSError:
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return ActivationCache(folder)


def _p99(activations: np.ndarray, minimum: np.ndarray, maximum: np.ndarray) -> np.ndarray:
    """Each unit's 99th percentile over all frames: exact (numpy's linear interpolation) when the array has
    at most EXACT_PERCENTILE_VALUES values, else interpolated in a histogram of HISTOGRAM_BINS bins per unit
    between its min and max (within about 0.1% of the unit's range, near float16's own precision)."""
    frames, units = activations.shape
    rows = max(1, ROW_BLOCK_BYTES // (4 * units))
    if frames * units <= EXACT_PERCENTILE_VALUES:
        return np.percentile(np.asarray(activations, dtype=np.float32), 99, axis=0)
    width = np.maximum(maximum - minimum, 1e-12) / HISTOGRAM_BINS
    counts = np.zeros(units * HISTOGRAM_BINS, dtype=np.int64)
    offsets = np.arange(units) * HISTOGRAM_BINS
    for row in range(0, frames, rows):
        block = np.asarray(activations[row:row + rows], dtype=np.float32)
        bins = np.clip(((block - minimum) / width).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        counts += np.bincount((bins + offsets).ravel(), minlength=counts.size)
    cumulative = counts.reshape(units, HISTOGRAM_BINS).cumsum(axis=1)
    wanted = 0.99 * (frames - 1) + 1  # the rank numpy interpolates at, counted from 1
    bin_index = (cumulative < wanted).sum(axis=1)
    below = np.where(bin_index > 0, cumulative[np.arange(units), np.maximum(bin_index - 1, 0)], 0)
    inside = counts.reshape(units, HISTOGRAM_BINS)[np.arange(units), np.minimum(bin_index, HISTOGRAM_BINS - 1)]
    fraction = (wanted - below - 0.5) / np.maximum(inside, 1)  # values spread evenly within a bin
    return minimum + width * (bin_index + np.clip(fraction, 0, 1))


# --- queries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    rank: int  # 1 = the strongest
    file: str
    time_seconds: float  # centre of the peak frame in the file (resampled to the model's rate)
    activation: float
    frame: int  # row in the cache


def top_examples(cache: ActivationCache, unit: int, k: int = 5, min_gap_seconds: float = 1.0,
                 values: np.ndarray | None = None) -> list[Example]:
    """The k frames where `unit` is highest, strongest first, each a different moment of the data.

    Frames are taken greedily by activation; a frame is skipped when an already chosen frame of the same
    file is less than `min_gap_seconds` away from it. So one file gives several examples only when its
    peaks are at least that far apart: `min_gap_seconds=inf` means at most one example per file, 0 allows
    neighbouring frames of one peak. `values` (the unit's column) may be passed when already read."""
    if not 0 <= unit < cache.num_units:
        raise AudiationError(f"unit {unit} is out of range (valid: 0..{cache.num_units - 1})")
    values = cache.column(unit) if values is None else values
    chosen: list[Example] = []
    candidates = min(len(values), max(64 * k, 4096))
    while True:
        if candidates < len(values):
            top = np.argpartition(-values, candidates - 1)[:candidates]
            order = top[np.lexsort((top, -values[top]))]  # by activation, ties by frame: deterministic
        else:
            order = np.lexsort((np.arange(len(values)), -values))
        chosen = []
        for frame in order:
            file, seconds = cache.locate(int(frame))
            if all(c.file != file or abs(c.time_seconds - seconds) >= min_gap_seconds for c in chosen):
                chosen.append(Example(len(chosen) + 1, file, seconds, float(values[frame]), int(frame)))
                if len(chosen) == k:
                    return chosen
        if candidates >= len(values):
            return chosen  # fewer than k separate moments in the whole data
        candidates = min(len(values), candidates * 16)


def clip_around(signal: np.ndarray, centre_seconds: float, seconds: float, sample_rate: int) -> np.ndarray:
    """`seconds` of the signal centred on `centre_seconds`, zero-padded where it runs past an edge."""
    length = max(1, round(seconds * sample_rate))
    start = round(centre_seconds * sample_rate) - length // 2
    clip = np.zeros(length, dtype=np.float32)
    lo, hi = max(start, 0), min(start + length, len(signal))
    if hi > lo:
        clip[lo - start:hi - start] = signal[lo:hi]
    return clip


def open_cache(spec: ModelSpec, layer: Layer, config, files: list[Path], cache_dir, device: str = "cpu",
               max_seconds: float = DEFAULT_MAX_SECONDS) -> ActivationCache:
    """The cache of `layer` over `files` (see `data.list_audio`), built (loading the model) only when missing."""
    return ActivationCache.open(files, layer, config, spec.fingerprint(), spec.short_name, cache_dir,
                                lambda: load_encoder(spec, device), spec.sample_rate, max_seconds)
