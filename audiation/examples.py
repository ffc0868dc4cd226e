"""`python -m audiation.examples`: the natural inputs that excite a unit most ("dataset examples").

    python -m audiation.examples model=tiny model.layer=4 units=0:8 data.path=audiation/assets/speech-slice
    python -m audiation.examples model=tiny model.layer=logits units=22 data.path=/data/LibriSpeech/dev-clean

Every unit's activation at every frame of every file is computed ONCE per (model, layer, files) and kept
in a cache folder (`data.cache_dir`, default `outputs/cache/`); any later query over the same data, for
any units, reads that cache and never loads the model. Per unit, the job folder gets
`examples/<layer>-U<unit>/<rank>.wav` (a clip centred on the peak frame), `<rank>.png` (its spectrogram,
peak marked) and one `examples.json` for the whole job.

The cache folder `<model>-<layer>-<hash>/` holds
- `activations.npy`: float16, (frames, units), all files' frames one after another (memory-mapped),
- `index.json`: per piece of audio: file, offset_seconds, first_frame, num_frames, duration (of the file),
- `stats.npz`: per unit `max`, `p99` (99th percentile over all frames), `mean_abs` (mean |activation|),
- `meta.json`: the model, layer, frame geometry, skipped files; written last.
It is built in a temporary folder and renamed into place, so a folder that exists is complete. The hash
covers the model config (and the size and mtime of a local model folder's files: a retrained model gets a
new cache), the layer, `data.max_seconds`, and every audio file's path, size and mtime.

Each file is read, mixed to mono and resampled to the model's rate (audiation.data) and run through the
encoder on its own: the encoder normalises each row, so padding files into a batch would change what the
model sees. Files longer than `data.max_seconds` are cut into pieces of about equal length starting on
the frame grid, each normalised on its own, so that attention stays affordable on hour-long recordings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import numpy as np
import soundfile as sf
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from audiation import data, outputs, tracking
from audiation.configs import CONF, hydra_job_folder
from audiation.errors import AudiationError, run_or_exit
from audiation.model import (
    Layer,
    frame_geometry,
    load_config,
    load_encoder,
    num_units,
    parse_layer,
)

CACHE_FORMAT = 1
DEFAULT_MAX_SECONDS = 60.0
STATS = ("max", "p99", "mean_abs")
FLOAT16_MAX = float(np.finfo(np.float16).max)
EXACT_PERCENTILE_VALUES = 1 << 26  # up to 64M values (256 MB as float32) p99 is exact, else a histogram
HISTOGRAM_BINS = 8192
COLUMN_BLOCK_BYTES = 256 << 20  # memory for reading several units' columns in one pass


# --- the cache --------------------------------------------------------------------------------------


def model_fingerprint(model_cfg) -> dict:
    """What identifies the model's activations: its config (minus the layer) and, for a local folder, the
    size and mtime of its files, so retrained weights in the same folder never reuse an old cache."""
    fields = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items() if k != "layer"}
    folder = Path(str(fields.get("name", ""))).expanduser()
    if not fields.get("random_init") and folder.is_dir():
        fields["files"] = {p.name: [p.stat().st_size, p.stat().st_mtime_ns]
                           for p in sorted(folder.iterdir()) if p.is_file()}
    return fields


def model_tag(model_cfg) -> str:
    """A short readable name for cache folders: `tiny-w2v2-espeak`, `wav2vec2-base`, `random-wav2vec2`."""
    if model_cfg.random_init:
        return f"random-{model_cfg.architecture}"
    return Path(str(model_cfg.name).rstrip("/")).name or "model"


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
            pending.append((path, pool.submit(data.read_audio, path, sample_rate)))
            if len(pending) >= ahead:
                break
        while pending:
            path, future = pending.popleft()
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(data.read_audio, following, sample_rate)))
            try:
                yield path, future.result(), ""
            except data.UnreadableAudio as error:
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
        self.layer_label: str = self.meta["layer"]
        self.hop: int = self.meta["hop"]
        self.field: int = self.meta["field"]
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
        return piece.file, piece.offset_seconds + (local * self.hop + self.field / 2) / self.sample_rate

    def column(self, unit: int) -> np.ndarray:
        return np.asarray(self.activations[:, unit], dtype=np.float32)

    def columns(self, units: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(unit, its activation at every frame) for many units, reading the array once per block of units."""
        block = max(1, COLUMN_BLOCK_BYTES // max(4 * self.num_frames, 1))
        rows = max(1, (64 << 20) // (2 * self.num_units))
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
        key = cache_key(fingerprint, layer, files, sample_rate, max_seconds)
        folder = Path(cache_dir).expanduser() / f"{tag}-{layer.label}-{key}"
        if (folder / "meta.json").is_file():
            cache = cls(folder)
            for entry in cache.skipped:
                data.warn_skipped(entry["file"], entry["reason"])
            return cache
        hop, field = frame_geometry(layer, config)
        _build(folder, files, layer, num_units(layer, config), hop, field, sample_rate, max_seconds,
               encoder_factory, {"model": fingerprint, "key": key})
        return cls(folder)


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
                if signal is None:
                    data.warn_skipped(path, reason)
                    skipped.append({"file": str(path), "reason": reason})
                    continue
                if encoder is None:
                    encoder = encoder_factory()
                    device = next(encoder.parameters()).device
                for start, stop in split(len(signal), max_samples, hop, field):
                    with torch.inference_mode():
                        acts = encoder(torch.from_numpy(signal[start:stop]).to(device)[None], layer)[0]
                    half = np.clip(acts.float().cpu().numpy(), -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
                    out.write(half.tobytes())
                    stored = half.astype(np.float32)
                    np.maximum(maximum, stored.max(axis=0), out=maximum)
                    np.minimum(minimum, stored.min(axis=0), out=minimum)
                    abs_sum += np.abs(stored).sum(axis=0, dtype=np.float64)
                    pieces.append(Piece(str(path), start / sample_rate, frames, len(half), len(signal) / sample_rate))
                    frames += len(half)
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
        outputs.write_json(partial / "meta.json", {
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
        print(f"audiation: cached {layer.label} activations of {len(files) - len(skipped)} files "
              f"({seconds:.0f} s of audio, {frames} frames x {units} units) in {folder} "
              f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _p99(activations: np.ndarray, minimum: np.ndarray, maximum: np.ndarray) -> np.ndarray:
    """Each unit's 99th percentile over all frames: exact (numpy's linear interpolation) when the array has
    at most EXACT_PERCENTILE_VALUES values, else interpolated in a histogram of HISTOGRAM_BINS bins per unit
    between its min and max (within about 0.1% of the unit's range, near float16's own precision)."""
    frames, units = activations.shape
    rows = max(1, (64 << 20) // (4 * units))
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


def unit_statistics(model_cfg, layer, data_path, cache_dir="outputs/cache", device="cpu",
                    max_seconds: float = DEFAULT_MAX_SECONDS) -> dict[str, np.ndarray]:
    """Every unit's activation statistics over a folder of natural audio, for quality reports:
    {"max": (units,), "p99": (units,), "mean_abs": (units,)} (float32), from the cache, building it when
    needed (the model is loaded only then). `layer` is a Layer or a `model.layer` value; `model_cfg` is the
    `model` config node, e.g. `compose("model=tiny").model`."""
    config = load_config(model_cfg)
    layer = layer if isinstance(layer, Layer) else parse_layer(layer, config)
    files = data.list_audio(data_path)
    cache = ActivationCache.open(files, layer, config, model_fingerprint(model_cfg), model_tag(model_cfg),
                                 cache_dir, lambda: load_encoder(model_cfg, device), model_cfg.sample_rate,
                                 max_seconds)
    return {name: cache.stats[name].copy() for name in STATS}


# --- W&B --------------------------------------------------------------------------------------------


class ExamplesTracker(tracking.WandbTracker):
    """The project's W&B run (offline when not logged in, in the job folder, always finished, failures
    only warned about), plus the `examples` table."""

    def log_examples(self, rows: list[dict]) -> None:
        def log():
            columns = ["unit", "rank", "audio", "spectrogram", "file", "time", "activation", "text"]
            table = self.wandb.Table(columns=columns)
            for row in rows:
                table.add_data(row["unit"], row["rank"], self.wandb.Audio(row["audio"]),
                               self.wandb.Image(row["spectrogram"]), row["file"], row["time"], row["activation"],
                               row["text"])
            self.run.log({"examples": table})
            self.run.summary.update({"units": len({r["unit"] for r in rows}), "example_rows": len(rows)})

        if rows:
            self._guard(log)


# --- the command line -------------------------------------------------------------------------------


@dataclass
class Plan:
    layer: Layer
    units: list[int]
    files: list[Path]
    device: str
    config: object


def _number(value, name: str, kind=float, minimum: float = 0.0, strict: bool = True):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise AudiationError(f"{name}={value} must be a number") from None
    if math.isnan(number) or number < minimum or (strict and number == minimum):
        raise AudiationError(f"{name}={value} must be {'>' if strict else '>='} {minimum:g}")
    return number


def plan(cfg: DictConfig) -> Plan:
    """Check every value, reading only the model's config file and listing the data. Raises AudiationError."""
    from audiation.objectives import parse_units
    from audiation.run import resolve_device

    _number(cfg.top_k, "top_k", int)
    _number(cfg.clip_seconds, "clip_seconds")
    _number(cfg.min_gap_seconds, "min_gap_seconds", strict=False)
    _number(cfg.data.max_seconds, "data.max_seconds")
    if OmegaConf.is_missing(cfg.data, "path") or cfg.data.path in (None, ""):
        raise AudiationError("data.path is required: the folder of audio files to search (data.path=/path/to/audio)")
    if not Path(str(cfg.data.path)).expanduser().exists():
        raise AudiationError(f"data.path={cfg.data.path}: no such folder")
    device = resolve_device(str(cfg.device))
    config = load_config(cfg.model)
    layer = parse_layer(cfg.model.layer, config)
    try:
        units = parse_units(cfg.units, num_units(layer, config), f"layer {layer.label}")
    except AudiationError as error:
        raise AudiationError(str(error).replace("objective.unit=", "units=")) from None
    files = data.list_audio(cfg.data.path)
    return Plan(layer, list(dict.fromkeys(units)), files, device, config)


def write_unit(job_dir: Path, cache: ActivationCache, unit: int, found: list[Example], label: str,
               clip_seconds: float, read) -> dict:
    """One unit's clips, spectrograms and record (paths relative to the job folder)."""
    name = f"{label}-U{unit}"
    folder = job_dir / "examples" / name
    records = []
    for example in found:
        signal = read(example.file)
        clip = clip_around(signal, example.time_seconds, clip_seconds, cache.sample_rate)
        start = round(example.time_seconds * cache.sample_rate) - len(clip) // 2
        mark = example.time_seconds - start / cache.sample_rate
        wav, png = folder / f"{example.rank}.wav", folder / f"{example.rank}.png"
        with outputs.atomic(wav) as temporary:
            sf.write(temporary, np.clip(clip, -1, 1), cache.sample_rate, subtype="PCM_16", format="WAV")
        title = (f"{name} #{example.rank}: {Path(example.file).name} at {example.time_seconds:.2f} s "
                 f"({example.activation:.3g})")
        outputs.write_spectrogram(png, clip, cache.sample_rate, title, mark)
        records.append({"rank": example.rank, "file": example.file, "time_seconds": round(example.time_seconds, 4),
                        "activation": example.activation, "clip": str(wav.relative_to(job_dir)),
                        "spectrogram": str(png.relative_to(job_dir)), "text": data.transcript(example.file)})
    stats = {key: float(cache.stats[key][unit]) for key in STATS}
    return {"name": name, "layer": label, "unit": unit, "stats": stats, "examples": records}


def _finite_or_none(value) -> float | None:
    """JSON has no infinity: `min_gap_seconds=.inf` (one example per file) is written as null."""
    return float(value) if math.isfinite(float(value)) else None


def run_job(cfg: DictConfig, job_dir: Path, group: str | None) -> dict:
    job = plan(cfg)
    if job.device == "cpu" and cfg.threads != "auto":
        torch.set_num_threads(_number(cfg.threads, "threads", int))
    sample_rate = cfg.model.sample_rate
    cache = ActivationCache.open(job.files, job.layer, job.config, model_fingerprint(cfg.model), model_tag(cfg.model),
                                 cfg.data.cache_dir, lambda: load_encoder(cfg.model, job.device), sample_rate,
                                 cfg.data.max_seconds)
    last: dict[str, np.ndarray] = {}

    def read(file: str) -> np.ndarray:  # the same file often serves several units in a row
        if file not in last:
            last.clear()
            last[file] = data.read_audio(file, sample_rate)
        return last[file]

    units = []
    for unit, values in cache.columns(job.units):
        found = top_examples(cache, unit, int(cfg.top_k), float(cfg.min_gap_seconds), values)
        units.append(write_unit(job_dir, cache, unit, found, job.layer.label, float(cfg.clip_seconds), read))
    model = f"random:{cfg.model.architecture}" if cfg.model.random_init else cfg.model.name
    summary = {
        "model": model, "layer": job.layer.label, "data": str(Path(cfg.data.path).expanduser().resolve()),
        "cache": str(cache.folder), "files": len(cache.files), "skipped": cache.skipped, "frames": cache.num_frames,
        "audio_seconds": cache.meta["audio_seconds"], "sample_rate": sample_rate, "top_k": int(cfg.top_k),
        "clip_seconds": float(cfg.clip_seconds), "min_gap_seconds": _finite_or_none(cfg.min_gap_seconds),
        "units": units,
    }
    outputs.write_json(job_dir / "examples.json", summary)

    rows = [{"unit": u["unit"], "rank": e["rank"], "audio": str(job_dir / e["clip"]),
             "spectrogram": str(job_dir / e["spectrogram"]), "file": e["file"], "time": e["time_seconds"],
             "activation": e["activation"], "text": e["text"]} for u in units for e in u["examples"]]
    if cfg.logger is not None and cfg.logger.get("enabled", False):
        name = f"{job.layer.label}-examples"
        config = {"layer": job.layer.label, "units": OmegaConf.to_container(cfg).get("units"), "model": model,
                  "data": summary["data"], "top_k": summary["top_k"],
                  "config": OmegaConf.to_container(cfg, resolve=True)}
        with ExamplesTracker(cfg.logger, job_dir=job_dir, name=name, group=group, job_type="examples",
                             tags=[model_tag(cfg.model), "examples"], config=config,
                             sample_rate=sample_rate) as tracker:
            tracker.log_examples(rows)
    return summary


@hydra.main(config_path=CONF, config_name="examples", version_base="1.3")
def main(cfg: DictConfig) -> None:
    job_dir, group = hydra_job_folder()
    summary = run_or_exit(run_job, cfg, job_dir, group,
                          interrupted=f"no partial cache is kept, and {job_dir} holds what was written")
    print(f"audiation: top-{summary['top_k']} examples of {len(summary['units'])} unit(s) of {summary['layer']} "
          f"from {summary['files']} files in {job_dir}")


if __name__ == "__main__":
    main()
