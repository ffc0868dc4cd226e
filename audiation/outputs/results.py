"""The results format: what a job leaves on disk, and the one place that knows its field names.

A job folder holds `metrics.json` ({"run": {...}, "targets": [record, ...]}: every complete target in
the folder, whichever run made it), `history.npz` (every target's loss terms per step, joined from the
targets' own), `loss_curve.png`, and per target `targets/<name>/` with `audio.wav`, `audio_16bit.wav`,
`spectrogram.png`, `history.npz` and `target.json` (the record; written last: a target is complete when its
record and every file the record names exist). File paths in records are relative to the job folder, so
a moved folder still works. A damaged record or history is set aside as `<file>.corrupt`, said in one
line, and the target is audiated again.

A record also holds `settings`: everything that shaped the target's result (model, layer, objective,
signal, augmentation, optimiser, steps, seed, regularisers, precision). A rerun into the folder skips a
target only when its settings are the same.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

import numpy as np

from audiation.errors import AudiationError
from audiation.outputs import record_schema
from audiation.outputs.disk import atomic, write_json

log = logging.getLogger(__name__)

TARGET_FILES = {"wav": "audio.wav", "wav_16bit": "audio_16bit.wav", "spectrogram": "spectrogram.png",
                "history": "history.npz"}
RECORD = "target.json"
METRICS = "metrics.json"
HISTORY = "history.npz"

def is_target_name(name) -> bool:
    """A name that is one folder inside `targets/`: never a path out of it (names come from records too), and
    no control character (a NUL is refused by every file call)."""
    return (isinstance(name, str) and name.isprintable() and bool(name) and "/" not in name and "\\" not in name
            and name not in (".", ".."))


def target_folder(job_dir: Path, name: str) -> Path:
    if not is_target_name(name):
        raise AudiationError(f"{name!r} is not a target name: it would leave {Path(job_dir) / 'targets'}")
    return Path(job_dir) / "targets" / name


def within(folder: Path, path: Path) -> bool:
    """`path` leads inside `folder`, symlinks followed: a path read from a record (which any file on disk may
    hold) is only ever followed when it does, by every reader (resuming, W&B, the page)."""
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop; a NUL in a record's path
        return False


def inside(folder: Path, relative) -> Path | None:
    """`folder / relative` when it is a file inside `folder`, else None."""
    path = Path(folder) / str(relative)
    return path if within(folder, path) and path.is_file() else None


def target_files(name: str) -> dict[str, str]:
    """A target's files, relative to its job folder."""
    return {key: f"targets/{name}/{file}" for key, file in TARGET_FILES.items()}


def set_aside(path: Path, why: str) -> None:
    """Move a damaged file out of the way (`<file>.corrupt`) so the next run can go on, and say so."""
    path = Path(path)
    try:
        path.replace(path.with_name(path.name + ".corrupt"))
    except OSError:
        return
    log.warning("warning: %s is damaged (%s); set aside as %s.corrupt", path, why, path.name)


def _load(path: Path, load) -> tuple[bool, object]:
    """(True, what `load(path)` read), or (False, None) when the file is missing or damaged; a damaged file
    is set aside, its reason the error's first line."""
    try:
        return True, load(path)
    except FileNotFoundError:
        return False, None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        set_aside(path, (str(error).splitlines() or [""])[0][:80] or type(error).__name__)
        return False, None


def _read_json(path: Path):
    return json.loads(Path(path).read_text())


def record_misfits(record) -> list[str]:
    """Why a record read from disk is not one of ours ([] when it is): its fields' kinds (the record schema),
    and a name that is one folder of `targets/`."""
    misfits = record_schema.misfits(record)
    if not misfits and not is_target_name(record["name"]):
        misfits = ["name"]
    return misfits


def read_record(job_dir: Path, name: str) -> dict | None:
    """A complete target's record (it and every file it names exist), or None. A damaged record is set
    aside, so its target is audiated again."""
    path = target_folder(job_dir, name) / RECORD
    found, record = _load(path, _read_json)
    if not found:
        return None
    misfits = record_misfits(record)
    if misfits or record["name"] != name:
        set_aside(path, f"not a target record: {', '.join(misfits) or 'name'} does not fit")
        return None
    files = record.get("files") if isinstance(record.get("files"), dict) else {}
    if not all(inside(job_dir, f) for f in files.values()):
        return None
    return record


def folder_records(job_dir: Path, first: list[str] = ()) -> list[dict]:
    """Every complete target's record in the folder: the names in `first` in that order, then the rest in
    natural order (a folder can hold the targets of several runs)."""
    found = sorted((p.parent.name for p in Path(job_dir).glob(f"targets/*/{RECORD}")), key=natural_key)
    records = (read_record(job_dir, name) for name in dict.fromkeys([*first, *found]) if is_target_name(name))
    return [r for r in records if r is not None]


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
    """A job's metrics, or None when there are none; damaged ones are set aside (they are rebuilt from the
    targets' records at the end of the next run). Read only in a folder of ours (`folder.refuse_foreign`):
    metrics that do not fit are ours, damaged, and would be written over unseen."""
    path = Path(job_dir) / METRICS
    found, metrics = _load(path, _read_json)
    if not found:
        return None
    if not (isinstance(metrics, dict) and isinstance(metrics.get("targets"), list)
            and isinstance(metrics.get("run", {}), dict)):
        set_aside(path, "not a job's metrics: targets must be a list and run an object")
        return None
    misfits = record_schema.run_misfits(metrics.get("run", {}))
    if misfits:  # a rerun would add to its totals
        set_aside(path, f"run's {', '.join(misfits)} not of its kind")
        return None
    return metrics


def write_metrics(job_dir: Path, metrics: dict) -> None:
    write_json(Path(job_dir) / METRICS, metrics)


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of an .npz file, or None when there is none; a damaged one is set aside."""
    def load(file):
        with np.load(file, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}

    return _load(path, load)[1]


def read_history(job_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """{target name: {term: values per step}} from a job's history.npz ({} when there is none)."""
    stored = _load_npz(Path(job_dir) / HISTORY)
    if not stored or "names" not in stored:
        return {}
    names = [str(n) for n in stored.pop("names")]
    return {name: {t: values[:, i] for t, values in stored.items()} for i, name in enumerate(names)}


def write_target_history(job_dir: Path, name: str, history: dict[str, np.ndarray]) -> None:
    """One target's loss terms, written with its files: a killed run's finished targets keep theirs."""
    with atomic(target_folder(job_dir, name) / TARGET_FILES["history"]) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **history)


def read_target_history(job_dir: Path, name: str) -> dict[str, np.ndarray] | None:
    return _load_npz(target_folder(job_dir, name) / TARGET_FILES["history"])


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
    return [int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", text.lower())]  # not "¹"


def read_jobs(folder: Path) -> list[tuple[Path, dict]]:
    """(job folder, metrics) for every metrics.json of an audiation job under `folder`, in natural order,
    holding only the records that are ours; what is skipped (unreadable files, other tools' metrics.json,
    records without a name or layer) is named once."""
    return read_summaries(folder, METRICS, "targets", record_misfits, "record", "an audiation job's")


def read_examples_jobs(folder: Path) -> list[tuple[Path, dict]]:
    """(job folder, examples.json) of every examples job under `folder`, holding only the units that fit
    the record schema; what is skipped is named once, as `read_jobs` does."""
    return read_summaries(folder, "examples.json", "units", record_schema.unit_misfits, "unit", "an examples job's")


def read_summaries(folder: Path, filename: str, key: str, misfits, item: str, owner: str) -> list[tuple[Path, dict]]:
    """(job folder, summary) for every `filename` under `folder` whose `key` is a list, in natural order,
    holding only the items with no `misfits`; what is skipped is named once, in one warning."""
    jobs, skipped = [], []
    for path in sorted(Path(folder).rglob(filename), key=lambda p: natural_key(str(p.relative_to(folder)))):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            skipped.append(f"{path} ({str(error).splitlines()[0][:60]})")
            continue
        if not (isinstance(summary, dict) and isinstance(summary.get(key), list)):
            skipped.append(f"{path} (not {owner})")
            continue
        kept = [entry for entry in summary[key] if not misfits(entry)]
        if len(kept) < len(summary[key]):
            named = sorted({m for entry in summary[key] for m in misfits(entry)})
            skipped.append(f"{len(summary[key]) - len(kept)} {item}(s) of {path} "
                           f"({', '.join(named[:4])}: missing or not of the record schema's kind)")
        jobs.append((path.parent, {**summary, key: kept}))
    if skipped:
        log.warning("warning: skipped %s", "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more"
                                                                     if len(skipped) > 3 else ""))
    return jobs


def table_row(job_dir: Path, record: dict) -> dict:
    """A record as one row of the W&B `targets` table: its numbers (with `gain`, final - initial) and its
    media files."""
    files = target_files(record["name"])  # never a record's own paths: W&B would copy what they point at
    initial, final = record.get("initial_activation"), record.get("final_activation")
    gain = final - initial if isinstance(initial, (int, float)) and isinstance(final, (int, float)) else None
    clips = (inside(job_dir, e.get("clip")) for e in record.get("examples") or [])
    return {**{k: record.get(k) for k in record_schema.TABLE_COLUMNS}, "gain": gain,
            "audio": str(Path(job_dir) / files["wav_16bit"]),
            "spectrogram": str(Path(job_dir) / files["spectrogram"]),
            "examples": [str(clip) for clip in clips if clip is not None]}
