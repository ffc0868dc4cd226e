"""Natural audio in: find the audio files of a folder and read them as the model hears them.

    files = list_audio("/data/LibriSpeech/dev-clean")      # recursive, sorted; .wav .flac .ogg, any case
    signal = read_audio(files[0], 16000)                    # float32, mono, resampled with soxr

A file that cannot be read is reported on stderr by name (`audiation: warning: skipped <path>: <reason>`)
by `warn_skipped`, and the caller goes on with the others. A missing folder, or one without audio files,
is an AudiationError with one line.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from audiation.errors import AudiationError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class UnreadableAudio(Exception):
    """One file could not be decoded (corrupt, empty, not audio): skip it and go on."""


def list_audio(path: str | Path, name: str = "data.path") -> list[Path]:
    """Every audio file under `path` (recursively, following symlinked folders once), as sorted absolute
    paths. `path` may also be a single audio file. Raises AudiationError when there is nothing to read."""
    root = Path(path).expanduser()
    if not root.exists():
        raise AudiationError(f"{name}={path}: no such folder")
    root = root.resolve()
    if root.is_file():
        if root.suffix.lower() not in AUDIO_SUFFIXES:
            raise AudiationError(f"{name}={path} is not an audio file ({', '.join(AUDIO_SUFFIXES)})")
        return [root]
    files, seen, jobs = [], set(), []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop: each real folder is walked once
            subfolders[:] = []
            continue
        seen.add(real)
        if _is_job_folder(names, subfolders) and Path(folder) != root:
            jobs.append(folder)  # its audio is audiations and their examples, not natural speech
            subfolders[:] = []
            continue
        subfolders.sort()
        files += [Path(folder) / n for n in names if Path(n).suffix.lower() in AUDIO_SUFFIXES]
    if jobs:
        log.warning("warning: %s: left out %d folder(s) of audiation's own results (%s)", name, len(jobs),
                    ", ".join(jobs[:2]) + (" ..." if len(jobs) > 2 else ""))
    if not files:
        raise AudiationError(f"{name}={path} contains no audio files ({', '.join(AUDIO_SUFFIXES)}, searched "
                             "recursively)")
    return sorted(files)


def _is_job_folder(names: list[str], subfolders: list[str]) -> bool:
    """A folder an audiation job or examples job wrote (running, killed or finished)."""
    return ".audiation.lock" in names or "examples.json" in names or ("metrics.json" in names
                                                                       and "targets" in subfolders)


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """The file as float32 mono at `sample_rate`: channels averaged, resampled with soxr (high quality).

    Raises UnreadableAudio with the reason when the file cannot be decoded or holds no samples."""
    try:
        signal, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile reports corrupt data in several ways
        raise UnreadableAudio(_reason(error)) from None
    if signal.size == 0:
        raise UnreadableAudio("no audio samples")
    mono = signal.mean(axis=1) if signal.shape[1] > 1 else signal[:, 0]
    if not np.isfinite(mono).all():
        raise UnreadableAudio("non-finite samples")
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[-1] if text else type(error).__name__).strip()


def warn_skipped(path, reason: str) -> None:
    print(f"audiation: warning: skipped {path}: {reason}", file=sys.stderr)


def _text_of(path: Path) -> str:
    """A text file as UTF-8 (a byte-order mark dropped); one that is not is read as Latin-1, said once."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        log.warning("warning: %s is not UTF-8 (byte %d); read as Latin-1", path, error.start)
        return raw.decode("latin-1")


@functools.lru_cache(maxsize=256)
def _metadata(folder: Path) -> tuple[dict[str, str], ...]:
    """The rows of the folder's `metadata.tsv`, by column name. Tab-separated, nothing quoted: a `"` in a
    transcript is a character of it, not the start of a field that would swallow the rows after it."""
    tsv = folder / "metadata.tsv"
    try:
        text = _text_of(tsv) if tsv.is_file() else ""
    except OSError:
        return ()
    # Rows end at \n, \r or \r\n only: str.splitlines also splits at \x0c, \x85 (a cp1252 "…" read as
    # Latin-1), U+2028 ..., which are characters of a transcript
    try:
        return tuple(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    except csv.Error as error:  # a field over csv's limit (128 KiB)
        log.warning("warning: %s is not read (%s)", tsv, error)
        return ()


@functools.lru_cache(maxsize=256)
def _transcripts(folder: Path) -> dict[str, str]:
    """{file name or stem: text} from the folder's `metadata.tsv` (columns `file` and `text`) and any
    LibriSpeech `*.trans.txt` (`<utterance id> <text>` per line)."""
    texts = {row["file"].strip(): row["text"].strip() for row in _metadata(folder)
             if row.get("file") and row.get("text") is not None}
    for trans in sorted(folder.glob("*.trans.txt")):
        try:
            lines = _text_of(trans).splitlines()
        except OSError:
            continue
        for line in lines:
            utterance, _, text = line.strip().partition(" ")
            if utterance:
                texts.setdefault(utterance, text.strip())
    return texts


def transcript(path: str | Path) -> str | None:
    """The text a metadata.tsv or LibriSpeech .trans.txt next to the file gives for it, else None."""
    path = Path(path)
    texts = _transcripts(path.parent)
    for key in (path.name, path.stem):
        if key in texts:
            return texts[key]
    return None


@functools.lru_cache(maxsize=64)
def _speaker_columns(folder: Path) -> dict[str, str]:
    """{file path relative to the folder: speaker} from the folder's `metadata.tsv` `speaker` column."""
    return {row["file"].strip(): row["speaker"].strip() for row in _metadata(folder)
            if row.get("file") and (row.get("speaker") or "").strip()}  # a blank speaker is none


def speaker(path: str | Path, root: str | Path) -> str | None:
    """Who speaks in a file under `root`: the `speaker` column of a metadata.tsv in its folder or any folder up
    to root's parent (paths relative to that folder), else the first subfolder of root it lies in (one
    subfolder per speaker), else None."""
    path, root = Path(path).resolve(), Path(root).resolve()
    for folder in path.parents:
        found = _speaker_columns(folder)
        relative = path.relative_to(folder).as_posix()
        if relative in found:
            return found[relative]
        if folder == root.parent or folder == folder.parent:
            break
    inside = path.relative_to(root).parts if path.is_relative_to(root) else ()
    return inside[0] if len(inside) > 1 else None
