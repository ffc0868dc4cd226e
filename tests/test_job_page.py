"""A single job writes its own page, headed by what it shows; the page's filter finds units by phone name."""

from __future__ import annotations

import json
import re

from conftest import run_cli

from audiation.browser import page


def test_a_single_job_writes_its_page_and_says_where(tmp_path):
    job = tmp_path / "2026-12-03" / "10-00-00"
    result = run_cli("model=random_small", "logger=none", "objective=channel", "objective.unit=0:3", "steps=2",
                     "threads=1", "quality.judges=false", f"hydra.run.dir={job}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"(mean); page: {job / 'index.html'}" in result.stdout
    heading = re.search(r"<h1>(.*?)</h1>", (job / "index.html").read_text()).group(1)
    assert heading == "3 audiations of random_small L2 · job 2026-12-03/10-00-00"
    assert f"<title>{heading} · audiation</title>" in (job / "index.html").read_text()  # a tab says it too


def test_a_sweeps_jobs_leave_the_page_to_the_sweep(tmp_path):
    result = run_cli("--multirun", "model=random_small", "logger=none", "objective.unit=0,1", "steps=2", "threads=1",
                     "quality.judges=false", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list(tmp_path.glob("*/index.html")) and (tmp_path / "index.html").is_file()
    assert "<h1>2 audiations of random_small L2 · sweep " in (tmp_path / "index.html").read_text()


def test_the_filter_finds_a_unit_by_its_phone_name(tmp_path):
    records = [{"name": f"L6-U{unit}-channel", "layer": "L6", "unit": unit, "objective": "channel", "phone": phone,
                "phone_lift": 9.0, "initial_activation": 0.0, "final_activation": 1.0}
               for unit, phone in ((125, "S"), (68, "M"), (3, None))]
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    cards = page.collect_cards([tmp_path], page._Media(tmp_path, False))

    def found(words):  # as page.js
        return [c["name"] for c in cards if all(w in c["text"] for w in words.lower().split())]

    assert found("/s/") == ["L6-U125-channel"] and found("phone:m") == ["L6-U68-channel"]
    assert found("/z/") == []
