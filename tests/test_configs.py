"""The Hydra plumbing the entry points share (`config.configs`): a swept job's folder name, and the folder a
failed job leaves, removed only when it is empty and no other run holds it."""

from __future__ import annotations

import fcntl

from audiation.config import configs


def test_a_swept_jobs_name_keeps_appended_and_removed_keys_and_stops_at_120_characters(monkeypatch):
    monkeypatch.setenv(configs.SWEPT, "objective.text,seed")
    assert configs.swept_values(["+seed=3", "~objective.text", "steps=2"]) == "_+seed=3,_objective.text"  # ~ is not kept in a name
    assert configs.swept_values(["seed=1", "seed=2"]) == "_seed=1,seed=2"
    long = configs.swept_values(["objective.text=" + "a b" * 100])
    assert long == "_" + ("objective.text=" + "a_b" * 100)[:120] and len(long) == 121
    assert configs.swept_values(["objective.text=é!"]) == "_objective.text=_"  # a run of unsafe characters: one _
    monkeypatch.delenv(configs.SWEPT)
    assert configs.swept_values(["seed=1"]) == ""


def test_a_failed_jobs_empty_folder_goes_and_so_does_its_date_folder(tmp_path):
    job = tmp_path / "2026-12-08" / "10-00-00"
    job.mkdir(parents=True)
    (job / ".audiation.lock").touch()
    configs.discard_if_empty(job)
    assert not job.exists() and not job.parent.exists() and tmp_path.exists()
    named = tmp_path / "runs" / "mine"
    named.mkdir(parents=True)
    configs.discard_if_empty(named)
    assert not named.exists() and named.parent.exists()  # not a date folder: kept


def test_a_folder_with_anything_in_it_or_held_by_a_run_is_kept(tmp_path):
    job = tmp_path / "2026-12-08" / "kept"
    job.mkdir(parents=True)
    (job / "metrics.json").touch()
    (job / ".audiation.lock").touch()
    configs.discard_if_empty(job)
    assert (job / "metrics.json").exists() and (job / ".audiation.lock").exists()
    held = tmp_path / "2026-12-09" / "held"
    held.mkdir(parents=True)
    with open(held / ".audiation.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run's (flock is per open file)
        configs.discard_if_empty(held)
    assert (held / ".audiation.lock").exists()
    configs.discard_if_empty(tmp_path / "never-made")  # nothing to remove: no error
