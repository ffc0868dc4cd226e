"""The HTML gallery: one card per target from any folder of results, files found relative to the job
folder, written by a Hydra callback at the end of a multirun, and working in a real headless browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from audiation.errors import AudiationError
from audiation.callbacks import Gallery
from audiation.page import write_gallery
from audiation.jobs import audiate_folder
from conftest import ROOT, compose, run_cli

CHROMIUM = Path("/usr/bin/chromium")
CARD = re.compile(r'<article class="card"([^>]*)>\s*<h2>([^<]*)</h2>')  # (attributes, target name)


def cards(page: str) -> list[tuple[str, str]]:
    return CARD.findall(page)


@pytest.fixture(scope="module")
def batched(tmp_path_factory) -> Path:
    """One job of 8 channel targets in one batch, run in process (a subprocess costs seconds of imports)."""
    folder = tmp_path_factory.mktemp("batched")
    audiate_folder(compose("model=random_small", "logger=none", "objective=channel", "objective.unit=0:8", "batch_size=8",
                    "steps=3", "threads=1"), folder, None)
    return folder


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A multirun of 3 one-target jobs with the gallery callback of conf/config.yaml."""
    folder = tmp_path_factory.mktemp("sweep")
    result = run_cli("--multirun", "model=random_small", "logger=none", "objective.unit=0,1,10",
                     "steps=3", "threads=1", f"hydra.sweep.dir={folder}")
    assert result.returncode == 0, result.stderr
    return folder, result


def test_batched_job_gives_one_card_per_target_with_its_files_embedded(batched):
    page = write_gallery(batched).read_text()
    names = [r["name"] for r in json.loads((batched / "metrics.json").read_text())["targets"]]
    assert [name for _, name in cards(page)] == names and len(names) == 8
    for name in names:
        wav = (batched / "targets" / name / "audio_16bit.wav").read_bytes()
        assert f"data:audio/wav;base64,{base64.b64encode(wav).decode()}" in page
    assert page.count('src="data:image/png;base64,') == 8
    assert "http://" not in page and "https://" not in page  # nothing to fetch: it opens offline


def test_multirun_callback_writes_the_sweep_gallery(sweep):
    folder, result = sweep
    assert f"audiation: gallery in {folder / 'index.html'}" in result.stdout
    page = (folder / "index.html").read_text()
    assert [name for _, name in cards(page)] == ["L2-U0-unit", "L2-U1-unit", "L2-U10-unit"]
    assert "objective.unit=10" in page  # each card names the overrides of its job


def test_callback_only_warns_when_there_is_nothing_to_show(tmp_path, capsys):
    Gallery().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert "audiation: warning: no gallery written: no metrics.json" in capsys.readouterr().err


def test_a_moved_folder_still_finds_its_files(batched, tmp_path):
    moved = shutil.copytree(batched, tmp_path / "elsewhere")
    metrics = json.loads((moved / "metrics.json").read_text())
    for record in metrics["targets"]:  # even records whose paths point nowhere
        record["files"] = {key: f"/gone/{Path(path).name}" for key, path in record["files"].items()}
    (moved / "metrics.json").write_text(json.dumps(metrics))
    page = write_gallery(moved, tmp_path / "out.html").read_text()
    assert len(cards(page)) == 8
    assert page.count('src="data:audio/wav;base64,') == 8 and "/gone/" not in page


def test_layers_sort_naturally_extra_numbers_show_and_text_is_escaped(tmp_path):
    def record(layer, unit, **extra):
        return {"name": f"{layer}-U{unit}-unit", "layer": layer, "unit": unit, "objective": "unit",
                "initial_activation": 0.0, "final_activation": 1.0, **extra}

    records = [record("L10", 0), record("logits", 1), record("L2", 5), record("conv3", 2), record("L2", 1),
               record("L0", 0, activation_ratio=2.5), record("L1", 0, activation_ratio=float("nan"),
                                                              model="<b>&\"x\"</b>")]
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    page = write_gallery(tmp_path).read_text()
    assert [name for _, name in cards(page)] == ["conv3-U2-unit", "L0-U0-unit", "L1-U0-unit", "L2-U1-unit",
                                                 "L2-U5-unit", "L10-U0-unit", "logits-U1-unit"]
    assert '<option value="activation_ratio">' in page and "<td>activation_ratio</td><td>2.5</td>" in page
    assert "<td>activation_ratio</td><td>nan</td>" in page
    assert "&quot;activation_ratio&quot;: null" in page  # NaN is not JSON: no sort key, sorted last
    assert "<b>" not in page and "&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;" in page
    assert page.count('class="missing"') == 2 * len(records)  # no files: said so, not a broken image


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "absent", "absent: no such folder"),
    (lambda p: p, "no metrics.json with targets under"),
], ids=["missing", "empty"])
def test_folder_without_results_is_a_one_line_error(tmp_path, make, message):
    with pytest.raises(AudiationError, match=message):
        write_gallery(make(tmp_path))
    result = subprocess.run([sys.executable, "-m", "audiation.gallery", str(make(tmp_path))], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("audiation: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium: apt-get install -y chromium")
def test_page_works_in_headless_chromium(batched, tmp_path):
    """Chromium opens the page from disk, decodes every embedded WAV, and the page's own sort and filter
    (driven by an appended script, as a user would with the controls) reorder and hide cards."""
    page = write_gallery(batched).read_text()
    drive = """<script>
    document.getElementById('sort').value = 'final_activation';
    document.getElementById('desc').checked = true;
    document.getElementById('filter').value = 'L2-U3-';
    document.getElementById('sort').dispatchEvent(new Event('input'));
    </script></body>"""
    driven = tmp_path / "driven.html"
    driven.write_text(page.replace("</body>", drive))
    # Without the background-networking flags Chromium reaches out to Google's services at start-up.
    dom = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                          "--no-first-run", "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--dump-dom", driven.as_uri()],
                         capture_output=True, text=True, timeout=60).stdout

    assert 'data-audio-loaded="8"' in dom, dom[:2000]
    durations = [float(d) for d in re.findall(r'<audio[^>]*data-duration="([^"]+)"', dom)]
    assert durations == pytest.approx([1.0] * 8)  # parameterization.seconds
    shown = cards(dom)
    final = {r["name"]: r["final_activation"] for r in json.loads((batched / "metrics.json").read_text())["targets"]}
    assert [name for _, name in shown] == sorted(final, key=final.get, reverse=True)
    assert [name for attributes, name in shown if "hidden" not in attributes] == ["L2-U3-channel"]
    assert "1 of 8 shown" in dom
