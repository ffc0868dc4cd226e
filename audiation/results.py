"""The results format: what a job leaves on disk, and the one place that knows its field names.

A job folder holds `metrics.json` ({"run": {...}, "targets": [record, ...]}), `history.npz` (every
target's loss terms per step), `loss_curve.png`, and per target `targets/<name>/` with `audio.wav`,
`audio_16bit.wav`, `spectrogram.png` and `target.json` (the record; written last, so it marks the
target complete). File paths in records are relative to the job folder, so a moved folder still works.

A record also holds `settings`: everything that shaped the target's result (model, layer, objective,
signal, augmentation, optimiser, steps, seed, regularisers, precision). A rerun into the folder skips a
target only when its settings are the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from audiation.errors import AudiationError
from audiation.outputs import atomic, write_json

TARGET_FILES = {"wav": "audio.wav", "wav_16bit": "audio_16bit.wav", "spectrogram": "spectrogram.png"}
RECORD = "target.json"
METRICS = "metrics.json"
HISTORY = "history.npz"

# Per-target numbers in the W&B table (beside audio and spectrogram): what users sort by.
TABLE_COLUMNS = ("name", "layer", "unit", "text", "objective", "initial_activation", "final_activation",
                 "robust_activation", "selectivity", "silence_ratio_db", "activation_ratio", "activation_ratio_p99",
                 "transcript", "cer", "heard_share", "listener_transcript", "listener_cer", "listener_heard_share",
                 "sample", "sibling_similarity")
# The quality numbers `audiation.report` summarises per layer.
MEASURES = ("final_activation", "activation_ratio", "activation_ratio_p99", "robust_activation", "selectivity",
            "silence_ratio_db", "cer", "heard_share", "listener_cer", "listener_heard_share")


def target_folder(job_dir: Path, name: str) -> Path:
    return Path(job_dir) / "targets" / name


def target_files(name: str) -> dict[str, str]:
    """A target's files, relative to its job folder."""
    return {key: f"targets/{name}/{file}" for key, file in TARGET_FILES.items()}


def read_record(job_dir: Path, name: str) -> dict | None:
    """A complete target's record, or None when the target is not complete."""
    path = target_folder(job_dir, name) / RECORD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_record(job_dir: Path, record: dict) -> None:
    write_json(target_folder(job_dir, record["name"]) / RECORD, record)


def settings_difference(old: dict, new: dict) -> list[str]:
    """The keys whose values differ between two `settings` dicts, sorted. A key only one side has (an
    option added since, like `augmentation.room_ms`) differs only if it is switched on there."""
    def differs(key):
        if key in old and key in new:
            return old[key] != new[key]
        return (old if key in old else new)[key] not in (None, False, 0, "", [])
    return sorted(k for k in old.keys() | new.keys() if differs(k))


def read_metrics(job_dir: Path) -> dict | None:
    try:
        metrics = json.loads((Path(job_dir) / METRICS).read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and isinstance(metrics.get("targets"), list) else None


def write_metrics(job_dir: Path, metrics: dict) -> None:
    write_json(Path(job_dir) / METRICS, metrics)


def read_history(job_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """{target name: {term: values per step}} from a job's history.npz ({} when there is none)."""
    try:
        with np.load(Path(job_dir) / HISTORY) as stored:
            names = [str(n) for n in stored["names"]]
            terms = [k for k in stored.files if k != "names"]
            return {name: {t: stored[t][:, i] for t in terms} for i, name in enumerate(names)}
    except (OSError, ValueError, KeyError):
        return {}


def write_history(job_dir: Path, by_target: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Store every target's loss terms as (steps, targets) arrays, shorter histories NaN-padded; returns
    them for the loss curve."""
    names = list(by_target)
    terms = list(dict.fromkeys(t for history in by_target.values() for t in history))
    steps = max((len(v) for history in by_target.values() for v in history.values()), default=0)
    joined = {t: np.full((steps, len(names)), np.nan, dtype=np.float32) for t in terms}
    for i, name in enumerate(names):
        for term, values in by_target[name].items():
            joined[term][:len(values), i] = values
    with atomic(Path(job_dir) / HISTORY) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, names=np.array(names), **joined)
    return joined


def natural_key(text: str) -> list:
    """Sort key that orders digits as numbers: L2 < L10, 2/9 < 10/0."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text.lower())]


def read_jobs(folder: Path) -> list[tuple[Path, dict]]:
    """(job folder, metrics) for every metrics.json of an audiation job under `folder`, in natural order."""
    jobs = []
    for path in sorted(Path(folder).rglob(METRICS), key=lambda p: natural_key(str(p.relative_to(folder)))):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise AudiationError(f"cannot read {path}: {error}") from None
        if isinstance(metrics, dict) and isinstance(metrics.get("targets"), list):  # others are not ours
            jobs.append((path.parent, metrics))
    return jobs


def table_row(job_dir: Path, record: dict) -> dict:
    """A record as one row of the W&B `targets` table: its numbers and its media files."""
    files = record.get("files") or target_files(record["name"])
    return {**{k: record.get(k) for k in TABLE_COLUMNS}, "audio": str(Path(job_dir) / files["wav_16bit"]),
            "spectrogram": str(Path(job_dir) / files["spectrogram"]),
            "examples": [str(Path(job_dir) / e["clip"]) for e in record.get("examples") or []]}
