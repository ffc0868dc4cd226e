"""A job folder: its lock, and which targets a rerun still has to do, by the settings that made each target's
result (`builder.result_settings`, in the job's Plan).

A rerun into the same folder skips targets that are complete with the same settings, refuses (before any
work) targets made with other settings unless `redo=true`, and audiates the rest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from audiation.config import builder
from audiation.core.kinds import TargetKind
from audiation.core.objectives import Target
from audiation.errors import AudiationError
from audiation.outputs import results

log = logging.getLogger(__name__)


class FolderLock:
    """An exclusive lock on a job folder: a second run into it stops at once. The operating system drops
    the lock when the process ends, however it ends, so a crashed run never leaves it stuck; a run that
    ends removes the file too, so a finished folder holds only results."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".audiation.lock"
        self.handle = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise AudiationError(f"{self.path.parent} is in use by another run; wait for it or choose another "
                                     "folder") from None
            try:  # the run before us may have removed the file between our open and our lock: lock the new one
                if os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino:
                    self.handle = handle
                    return self
            except FileNotFoundError:
                pass
            handle.close()

    def __exit__(self, *_exc):
        self.path.unlink(missing_ok=True)  # while still holding it: the next run locks a file of its own
        self.handle.close()
        return False


# What an audiation job writes at its folder's top, and what only it leaves there (its lock, held or left by a
# killed run, and its targets): another tool's files of these names are never written over.
JOB_FILES = (results.METRICS, results.HISTORY, "loss_curve.png", ".hydra", "wandb", "examples", "index.html")
JOB_MARKS = (".audiation.lock", "targets")


def refuse_foreign(job_dir: Path, writes: tuple[str, ...] = JOB_FILES, marks: tuple[str, ...] = JOB_MARKS,
                   ours: Callable[[Path], bool] | None = None) -> None:
    """Refuse a folder that holds files named as the job's (`writes`) but none of `marks` and, where the job
    tells its own files by their content, is not `ours(job_dir)`: another tool's."""
    job_dir = Path(job_dir)
    clash = [name for name in writes if (job_dir / name).exists()]
    if clash and not any((job_dir / mark).exists() for mark in marks) and not (ours is not None and ours(job_dir)):
        raise AudiationError(f"{job_dir} holds files audiation did not write ({', '.join(clash)}) and would write "
                             "over them; choose another folder")


def json_holds(path: Path, kinds: dict[str, type]) -> bool:
    """Whether `path` is a JSON object whose `kinds` keys hold values of those types (one of our summaries)."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and all(isinstance(found.get(key), kind) for key, kind in kinds.items())


def settings_as_named_now(settings: dict) -> dict:
    """A record's settings as this version names them. Records written before the options were named by
    kind hold their functions' Python paths (`objective._target_: audiation.objectives.unit`, from before the
    package moved into folders) and, for features, `objective.form` where `objective.kind` now is: the
    objective's function was named as its kind is (`feature`'s kind was its form)."""
    paths = {f"{group}._target_" for group in builder.NAMED_OPTIONS}
    now = {key: value for key, value in settings.items() if key not in paths}
    if "objective._target_" in settings and "objective.kind" not in settings:
        function = str(settings["objective._target_"]).rpartition(".")[2]
        now["objective.kind"] = now.pop("objective.form", None) if function == "feature" else function
    return now


def target_settings(settings: dict, target: Target) -> dict:
    """A target's own settings: the job's, and for a direction the vector's content."""
    if target.kind is not TargetKind.direction:
        return settings
    return {**settings, "objective.direction": hashlib.sha256(target.vector.tobytes()).hexdigest()[:16]}


def asked_measures(plan: builder.Plan) -> dict[str, str]:
    """{option: a record field only it adds}: the measures this run asks for, which a finished target made
    without them lacks (they come with the optimisation, so only redoing it adds them)."""
    asked = {"quality.judges": "speech_probability"} if plan.quality.judges else {}
    if plan.quality.data and plan.kind.of_units:
        asked["quality.data"] = "activation_ratio"
    if plan.quality.draws > 0:
        asked["quality.draws"] = "robust_activation"
    if plan.listener is not None:
        asked["quality.listener"] = "listener_transcript"
    return asked


def targets_to_do(targets: list[Target], settings: dict, job_dir: Path, redo: bool,
                  measures: dict[str, str] | None = None) -> list[Target]:
    """The targets of `targets` to audiate now in `job_dir`: those not complete there. Refuses targets that are
    complete with other settings, unless `redo`; those that lack `measures` (from `asked_measures`) are
    redone with `redo`, else said in one line; a target's samples are all redone or none."""
    todo, differing, lacking = [], {}, {}
    for target in targets:
        record = results.read_record(job_dir, target.name)
        if record is None:
            todo.append(target)
            continue
        old = settings_as_named_now(record.get("settings") or {})
        changed = results.settings_difference(old, target_settings(settings, target))
        if changed:
            differing[target.name] = (changed, old)
        missing = [option for option, key in (measures or {}).items() if key not in record]
        for option in missing:
            lacking[option] = lacking.get(option, 0) + 1
        if (changed or missing) and redo:
            todo.append(target)
    if todo and todo[0].sample is not None:  # a target's samples are optimised together, or not at all
        groups = {t.group for t in todo}
        todo = [t for t in targets if t.group in groups]
    if differing and not redo:
        (name, (keys, old)), *_ = differing.items()
        new = target_settings(settings, next(t for t in targets if t.name == name))
        shown = ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys[:4])
        shown += " ..." if len(keys) > 4 else ""
        raise AudiationError(f"{len(differing)} target(s) in {job_dir} were made with other settings "
                             f"({shown}); use a new folder, or redo=true to audiate them again")
    if lacking and not redo:
        log.warning("warning: in %s, %s (made without them); add redo=true to audiate them again with them", job_dir,
                    ", ".join(f"{n} target(s) lack {option}'s measures" for option, n in lacking.items()))
    done = len(targets) - len(todo)
    if done:
        log.info("%d of %d targets already complete in %s; audiating the other %d", done, len(targets),
                 job_dir, len(todo))
    return todo

