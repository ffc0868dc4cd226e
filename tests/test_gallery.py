"""The unit browser: one card per target from any folder of results (and per unit of an examples job),
media linked relative to the page (or embedded), natural examples beside the audiation, several runs side
by side, written by a Hydra callback at the end of a multirun, and working in a real headless browser."""

from __future__ import annotations

import base64
import html.parser as html_parser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from conftest import ROOT, compose, needs_espeak, run_cli, run_module
from omegaconf import OmegaConf

from audiation.browser.page import write_gallery
from audiation.errors import AudiationError
from audiation.jobs.audiate_job import audiate_folder
from audiation.jobs.sweep_callbacks import Gallery

CHROMIUM = Path("/usr/bin/chromium")
# Skipped without Chromium on a workstation; in CI (CI=true) a missing Chromium fails the test instead.
needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file() and not os.environ.get("CI"),
                                    reason="needs Debian's chromium: apt-get install -y chromium")
SLICE = ROOT / "audiation" / "assets" / "speech-slice"
CARD = re.compile(r'<article class="card" data-name="([^"]*)"')


def shown(dom: str) -> list[str]:
    """The names of the cards drawn on the page (in <main>, not the script's template)."""
    return CARD.findall(dom.split('<main id="cards"', 1)[1].split("</main>", 1)[0])


def data(page: Path) -> list[dict]:
    """The cards the page holds (its JSON block)."""
    text = page.read_text()
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1)
    return json.loads(block.replace("<\\/", "</"))


@pytest.fixture(scope="module")
def batched(tmp_path_factory) -> Path:
    """One job of 8 channel targets in one batch, run in process (a subprocess costs seconds of imports)."""
    folder = tmp_path_factory.mktemp("batched")
    audiate_folder(compose("model=random_small", "logger=none", "objective=channel", "objective.unit=0:8",
                           "batch_size=8", "steps=3", "threads=1"), folder)
    return folder


@pytest.fixture(scope="module")
def with_examples(tmp_path_factory) -> Path:
    """30 units of the trained model with quality.data: natural examples beside each audiation."""
    folder = tmp_path_factory.mktemp("examples")
    cfg = compose("model=tiny", "model.layer=4", "logger=none", "objective=channel", "steps=2", "threads=1",
                  "quality.draws=0", f"quality.data={SLICE}", f"quality.cache_dir={folder / 'cache'}",
                  "batch_size=30")
    cfg.objective.unit = "0:30"
    audiate_folder(cfg, folder / "run")
    return folder / "run"


def test_one_card_per_target_with_media_linked_relative_to_the_page_or_embedded(batched, tmp_path):
    page = write_gallery(batched)
    cards = data(page)
    names = [r["name"] for r in json.loads((batched / "metrics.json").read_text())["targets"]]
    assert [c["name"] for c in cards] == names and len(names) == 8
    for card in cards:
        assert (page.parent / card["audio"]).is_file() and (page.parent / card["spectrogram"]).is_file()
        assert len(card["waveform"]) == 200 and len(card["trace"]) == 49  # 1 s: 49 frames of the unit
    embedded = write_gallery(batched, tmp_path / "one-file.html", embed=True)
    wav = (batched / "targets" / names[0] / "audio_16bit.wav").read_bytes()
    assert data(embedded)[0]["audio"] == f"data:audio/wav;base64,{base64.b64encode(wav).decode()}"
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # nothing to fetch


def test_a_moved_folder_still_finds_its_files(batched, tmp_path):
    moved = shutil.copytree(batched, tmp_path / "elsewhere")
    metrics = json.loads((moved / "metrics.json").read_text())
    for record in metrics["targets"]:  # even records whose paths point nowhere
        record["files"] = {key: f"/gone/{Path(path).name}" for key, path in record["files"].items()}
    (moved / "metrics.json").write_text(json.dumps(metrics))
    page = write_gallery(moved)
    assert all((moved / c["audio"]).is_file() for c in data(page)) and "/gone/" not in page.read_text()


@needs_espeak  # its units are named by phones
def test_units_of_a_run_with_quality_data_carry_their_natural_examples_and_stay_small(with_examples):
    page = write_gallery(with_examples)
    cards = data(page)
    assert len(cards) == 30
    named = [card["phone"] for card in cards if card["phone"]]  # each unit's phone name, for its title
    assert len(named) > 15 and all(re.fullmatch(r"/[A-Z]+/ ×\d+\.\d", name) for name in named)
    for card in cards:
        assert len(card["examples"]) == 3
        for example in card["examples"]:
            assert (page.parent / example["clip"]).is_file() and (page.parent / example["spectrogram"]).is_file()
            assert example["trace"] and max(example["trace"]) == pytest.approx(example["activation"], abs=0.02)
    assert page.stat().st_size / 30 < 20_000  # the page itself, per unit (media are linked, not inside)


def test_an_examples_job_opens_in_the_same_page(tmp_path):
    from audiation.config.job_plans import examples_plan
    from audiation.jobs.examples_job import examples_job

    cfg = compose("model=tiny", "model.layer=4", "units=[3,10]", f"data.path={SLICE}", "logger=none", "top_k=3",
                  f"data.cache_dir={tmp_path / 'cache'}", config_name="examples")
    examples_job(examples_plan(cfg), tmp_path / "job")
    cards = data(write_gallery(tmp_path / "job"))
    assert [c["name"] for c in cards] == ["L4-U3", "L4-U10"]
    assert all(len(c["examples"]) == 3 and c["audio"] is None for c in cards)
    assert not any(c["meta"].startswith("job") for c in cards)  # the page's own folder is not named


def test_several_runs_are_compared_by_target_name(batched, tmp_path):
    other = tmp_path / "seed1"
    audiate_folder(compose("model=random_small", "logger=none", "objective=channel", "objective.unit=[2,3]",
                           "steps=3", "threads=1", "seed=1"), other)
    page = write_gallery([batched, other], tmp_path / "compare.html")
    cards = data(page)
    assert sorted(c["name"] for c in cards if c["source"] == 1) == ["L2-U2-channel", "L2-U3-channel"]
    assert len([c for c in cards if c["source"] == 0]) == 8
    assert "batched" in page.read_text() and "seed1" in page.read_text()


def test_multirun_callback_writes_the_sweep_page(tmp_path):
    folder = tmp_path / "sweep"
    result = run_cli("--multirun", "model=random_small", "logger=none", "objective.unit=0,1,10", "steps=3",
                     "threads=1", f"hydra.sweep.dir={folder}")
    assert result.returncode == 0, result.stderr
    assert f"audiation: gallery in {folder / 'index.html'}, report in {folder / 'report.md'}" in result.stdout
    assert '<p class="meta" id="reports"><a href="report.md">report</a> (<a href="report.png">plots</a>)</p>' in (
        folder / "index.html").read_text()
    cards = data(folder / "index.html")
    assert [c["name"] for c in cards] == ["L2-U0-unit", "L2-U1-unit", "L2-U10-unit"]
    assert "objective.unit=10" in cards[2]["meta"]  # each card names the overrides of its job
    # what every job shares is said once, in the header; the cards link their job's files
    page = (folder / "index.html").read_text()
    assert ('<p class="meta" id="summary">3 card(s) · varies: objective.unit · all: model=random_small · '
            "logger=none · steps=3 · threads=1</p>") in page
    assert all("steps=3" not in c["meta"] and "model=random_small" not in c["meta"] for c in cards)
    links = dict(cards[2]["links"])
    job = quote("2_objective.unit=10")  # the job folder is named after its swept value
    assert links == {"job folder": job, "loss curve": f"{job}/loss_curve.png", "config": f"{job}/.hydra/config.yaml",
                     "metrics": f"{job}/metrics.json"}
    assert all((folder / unquote(link)).exists() for link in links.values())


def test_callback_only_warns_when_there_is_nothing_to_show(tmp_path, capsys):
    Gallery().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert "audiation: warning: no gallery written: no metrics.json" in capsys.readouterr().err


def test_layers_sort_naturally_extra_numbers_show_and_text_cannot_break_out(tmp_path):
    def record(layer, unit, **extra):
        return {"name": f"{layer}-U{unit}-unit", "layer": layer, "unit": unit, "objective": "unit",
                "initial_activation": 0.0, "final_activation": 1.0, **extra}

    records = [record("L10", 0), record("logits", 1), record("L2", 5), record("conv3", 2), record("L2", 1),
               record("L0", 0, activation_ratio=2.5),
               record("L1", 0, activation_ratio=float("nan"), model="</script><b>&\"x\"</b>")]
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    page = write_gallery(tmp_path)
    cards = data(page)
    assert [c["name"] for c in cards] == ["conv3-U2-unit", "L0-U0-unit", "L1-U0-unit", "L2-U1-unit",
                                          "L2-U5-unit", "L10-U0-unit", "logits-U1-unit"]
    assert '<option value="activation_ratio">' in page.read_text()
    assert ["activation_ratio", 2.5] in cards[1]["rows"]
    assert cards[2]["keys"]["activation_ratio"] is None  # NaN is not JSON: no sort key, sorted last
    assert "</script><b>" not in page.read_text()  # the data cannot end its script element
    assert cards[2]["audio"] is None  # no files: no player, said so by its absence


@pytest.mark.parametrize("text", ["<!--<script>", "</script><b>x</b>", "<!-- -->&amp;<script", "]]>\u2028"])
def test_no_text_inside_a_script_block_changes_how_the_page_parses(tmp_path, text):
    record = {"name": "L1-U0-unit", "layer": "L1", "unit": 0, "objective": "unit", "transcript": text,
              "initial_activation": 0.0, "final_activation": 1.0}
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": [record, {**record, "name": "L1-U1-unit"}]}))
    page = write_gallery(tmp_path).read_text()
    for block in re.findall(r'<script type="application/json" id="\w+">(.*?)</script>', page, re.S):
        assert not set(block) & set("<>&")  # no tokenizer state (comment, double escape, end tag) to enter
    assert [dict(c["rows"])["transcript"] for c in data(tmp_path / "index.html")] == [text, text]


def test_records_and_units_that_do_not_fit_the_schema_never_reach_the_page(tmp_path, caplog):
    good = {"name": "L1-U0-unit", "layer": "L1", "unit": 0, "objective": "unit", "waveform": [0.5, 1.0]}
    bad = [{**good, "name": "L1-U1-unit", "waveform": "x"},
           {**good, "name": "L1-U2-unit", "examples": [{"rank": 1, "clip": "a.wav", "trace": "x"}]},
           {**good, "name": "L1-U3-unit", "activation_trace": {"a": 1}}]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"run": {}, "targets": [good, *bad]}))
    unit = {"name": "L2-U0", "layer": "L2", "unit": 0, "stats": {"max": 1.0}, "examples": []}
    (tmp_path / "ex").mkdir()
    (tmp_path / "ex" / "examples.json").write_text(json.dumps({"clip_seconds": "x", "units": [
        unit, {**unit, "name": "L2-U1", "unit": 1, "stats": None}, {**unit, "name": "L2-U2", "examples": "x"}]}))
    cards = data(write_gallery(tmp_path))
    assert [c["name"] for c in cards] == ["L1-U0-unit", "L2-U0"] and cards[1]["clip_seconds"] == 1.0
    assert cards[1]["meta"].startswith("job ex · ") and " ex examples" in cards[1]["text"]  # its folder, searchable
    records, units = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "3 record(s) of" in records and "activation_trace, examples, waveform: missing or not of" in records
    assert "2 unit(s) of" in units and "examples, stats: missing" in units


def test_shared_scale_and_embed_read_nothing_outside_the_job_and_pass_over_missing_files(tmp_path):
    import numpy as np

    from audiation.outputs.disk import write_spectrogram, write_wav

    job, secret = tmp_path / "job", tmp_path / "secret.wav"
    write_wav(secret, np.full(1600, 0.5, dtype=np.float32), 16000)
    records = []
    for unit in range(4):
        folder = job / "targets" / f"L1-U{unit}-unit"
        write_wav(folder / "audio.wav", np.sin(np.arange(1600) / (unit + 2)).astype(np.float32), 16000)
        write_wav(folder / "audio_16bit.wav", np.sin(np.arange(1600) / 3).astype(np.float32), 16000, "PCM_16")
        write_spectrogram(folder / "spectrogram.png", np.zeros(1600, dtype=np.float32), 16000, "x")
        records.append({"name": folder.name, "layer": "L1", "unit": unit, "objective": "unit"})
    (job / "targets/L1-U3-unit/audio.wav").unlink()  # deleted
    (job / "targets/L1-U2-unit/audio.wav").unlink()
    (job / "targets/L1-U2-unit/audio.wav").symlink_to(secret)  # leads out of the job folder
    (job / "targets/L1-U0-unit/audio_16bit.wav").unlink()
    (job / "targets/L1-U0-unit/audio_16bit.wav").symlink_to(secret)
    (job / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    cards = data(write_gallery(job, tmp_path / "page.html", embed=True, shared_scale=True))
    assert cards[0]["audio"] is None and cards[1]["audio"].startswith("data:audio/wav;base64,")
    assert [c["spectrogram"].startswith("data:image/png") for c in cards] == [True] * 4
    assert sorted(p.name for p in (tmp_path / "page.shared").iterdir()) == ["00000.png"]  # only U1 is whole
    assert base64.b64encode(secret.read_bytes()).decode()[:40] not in (tmp_path / "page.html").read_text()


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "absent", "absent: no such folder"),
    (lambda p: p, "no metrics.json with targets"),
], ids=["missing", "empty"])
def test_folder_without_results_is_a_one_line_error(tmp_path, make, message):
    with pytest.raises(AudiationError, match=message):
        write_gallery(make(tmp_path))
    result = run_module("audiation.gallery", str(make(tmp_path)), timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("audiation: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def _dom(page: Path, tmp_path: Path, drive: str = "", fragment: str = "") -> str:
    """The page after Chromium opened it from disk (at `#fragment`) and ran `drive` (a script, as a user's clicks)."""
    driven = page.with_name(f"driven-{page.name}")
    driven.write_text(page.read_text().replace("</body>", f"<script>{drive}</script></body>"))
    # Without the background-networking flags Chromium reaches out to Google's services at start-up.
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=8000", "--dump-dom", driven.as_uri() + fragment],
                          capture_output=True, text=True, timeout=90).stdout


@needs_chromium
def test_the_page_sorts_filters_and_plays_in_headless_chromium(batched, tmp_path):
    page = write_gallery(batched)
    dom = _dom(page, tmp_path, """
    document.getElementById('sort').value = 'final_activation';
    document.getElementById('desc').checked = true;
    document.getElementById('sort').dispatchEvent(new Event('input'));""")
    assert 'data-audio-loaded="8"' in dom, dom[:2000]
    durations = [float(d) for d in re.findall(r'<audio[^>]*data-duration="([^"]+)"', dom)]
    assert durations == pytest.approx([1.0] * 8)  # parameterization.seconds
    final = {r["name"]: r["final_activation"] for r in json.loads((batched / "metrics.json").read_text())["targets"]}
    assert shown(dom) == sorted(final, key=final.get, reverse=True)
    filtered = _dom(page, tmp_path, """
    document.getElementById('filter').value = 'L2-U3-';
    document.getElementById('filter').dispatchEvent(new Event('input'));""")
    assert shown(filtered) == ["L2-U3-channel"] and "1 of 8 shown" in filtered


@needs_chromium
def test_a_card_shows_its_core_and_keeps_the_rest_on_demand(batched, tmp_path):
    dom = _dom(write_gallery(batched), tmp_path, """
    const first = document.querySelector('article.card');
    const seen = () => [...first.querySelectorAll('tr, svg')].filter(e => e.checkVisibility());
    document.body.dataset.closed = [first.offsetHeight, ...seen().map(e => e.cells ? e.cells[0].textContent : 'svg')].join('|');
    first.querySelectorAll('details').forEach(d => d.open = true);
    document.body.dataset.opened = [first.offsetHeight, seen().length].join('|');""")
    body = dom.split("<body", 1)[1].split(">", 1)[0]
    closed, opened = (re.search(f'data-{state}="([^"]*)"', body).group(1).split("|") for state in ("closed", "opened"))
    assert closed[1:] == ["activation before → after"], closed  # with the player, spectrogram and name above it
    assert int(opened[1]) >= 8 and int(closed[0]) < 0.8 * int(opened[0]), (closed, opened)  # 502 of 723 px


@needs_chromium
def test_units_with_examples_page_through_and_their_examples_play(with_examples, tmp_path):
    page = write_gallery(with_examples)
    dom = _dom(page, tmp_path, """
    document.getElementById('size').value = '12';
    document.getElementById('size').dispatchEvent(new Event('input'));
    document.getElementById('next').click();""")
    assert shown(dom) == [f"L4-U{u}-channel" for u in range(12, 24)]
    assert "30 of 30 shown · page 2 of 3" in dom
    assert 'data-audio-loaded="48"' in dom  # 12 audiations and 3 natural examples each, all decoded
    main = dom.split('<main id="cards"', 1)[1].split("</main>", 1)[0]
    assert main.count("<svg") == 12 * (2 + 3)  # waveform, unit trace, and a trace per example
    assert main.count('<details class="natural">') == 12 and "<details open" not in main  # closed till asked


def test_a_shared_colour_scale_redraws_the_spectrograms_on_one_db_range(batched, tmp_path):
    page = write_gallery(batched, tmp_path / "shared.html", shared_scale=True)
    cards = data(page)
    assert all(c["spectrogram"].startswith("shared.shared/") and (tmp_path / c["spectrogram"]).is_file()
               for c in cards)
    own = data(write_gallery(batched, tmp_path / "own.html"))
    assert (tmp_path / own[0]["spectrogram"]).read_bytes() != (tmp_path / cards[0]["spectrogram"]).read_bytes()


def test_the_wandb_table_has_each_units_natural_examples(tmp_path):
    metrics = audiate_folder(compose("model=tiny", "model.layer=4", "objective=channel", "objective.unit=[3,10]",
                                     "steps=2", "threads=1", "logger.mode=offline", f"quality.data={SLICE}",
                                     f"quality.cache_dir={tmp_path / 'cache'}"), tmp_path / "run")
    assert all(len(t["examples"]) == 3 for t in metrics["targets"])
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    (table,) = (run / "files" / "media" / "table").glob("targets_*.table.json")
    content = json.loads(table.read_text())
    assert {"example_1", "example_2", "example_3"} <= set(content["columns"]) and len(content["data"]) == 2
    rows = [dict(zip(content["columns"], row)) for row in content["data"]]
    assert [(r["unit"], r["final_activation"]) for r in rows] == [(t["unit"], t["final_activation"])
                                                                 for t in metrics["targets"]]
    assert all(r[f"example_{k}"] == "Audio" for r in rows for k in (1, 2, 3))
    # W&B 0.31 keeps the table's media in its artifact staging folder (WANDB_DATA_DIR), not in the run folder:
    # the folder's JSON names each cell's type. The files themselves are the job's own (the page plays them).
    assert all((tmp_path / "run" / e["clip"]).is_file() for t in metrics["targets"] for e in t["examples"])


# Every injected tag or attribute is marked `data-injected`, so the DOM shows it whether or not its handler
# fires (an onerror on an image that loads never does). The name's handler sets the flag before it reaches
# the "/audio_16bit.wav" a page would append.
HOSTILE = {"name": 'L1-U0-x" data-injected="1" onerror="document.body.dataset.pwned=1,q=1',
           "transcript": '<img src=x data-injected onerror="document.body.dataset.pwned=2">',
           "text": "<script data-injected>document.body.dataset.pwned=3</script>",
           "character": "'><svg data-injected onload=document.body.dataset.pwned=4>",
           "model": '" data-injected="1" onmouseover="document.body.dataset.pwned=5',
           "phone": '"><img src=x data-injected onerror="document.body.dataset.pwned=7">',
           "phones": ["<b data-injected>S</b>"]}


class _Attributes(html_parser.HTMLParser):
    """Every element's tag and attribute names, as the browser left them."""

    def __init__(self, dom: str):
        super().__init__()
        self.elements: list[tuple[str, list[str]]] = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, [name for name, _ in attrs]))


@needs_chromium
def test_quotes_script_and_onerror_in_names_texts_and_folders_are_only_text(tmp_path):
    import numpy as np

    from audiation.outputs.disk import write_spectrogram, write_wav

    job = tmp_path / 'run "<b data-injected>x'  # a job folder whose name would end an attribute and open a tag
    files = job / "targets" / HOSTILE["name"]
    write_wav(files / "audio_16bit.wav", np.sin(np.arange(16000) / 5.0).astype(np.float32), 16000, "PCM_16")
    write_spectrogram(files / "spectrogram.png", np.zeros(1600, dtype=np.float32), 16000, "x")
    example = job / "examples" / 'L1-U0 "q"'
    write_wav(example / "1.wav", np.sin(np.arange(8000) / 3.0).astype(np.float32), 16000, "PCM_16")
    hostile_example = {"rank": 1, "clip": 'examples/L1-U0 "q"/1.wav', "spectrogram": "../../../etc/passwd",
                       "file": '<i data-injected>a.wav</i>"><img src=x data-injected onerror=document.body.dataset.pwned=6>',
                       "text": "</script>"}
    record = {**HOSTILE, "layer": "L1", "unit": 0, "objective": "unit", "initial_activation": 0.0, "phone_lift": 5.0,
              "final_activation": 1.0, "examples": [hostile_example]}
    (job / "metrics.json").write_text(json.dumps({"run": {}, "targets": [record]}))
    page = write_gallery(job)
    assert "passwd" not in page.read_text()  # a record's path out of its job folder is never linked
    dom = _dom(page, tmp_path)
    assert "pwned" not in dom.split("<body", 1)[1].split(">", 1)[0], "a hostile value ran as script"
    (title,) = re.findall(r"<title>(.*?)</title>", page.read_text())  # what the page shows, as its heading says it
    assert title == re.search(r"<h1>(.*?)</h1>", page.read_text()).group(1) + " · audiation"
    assert "job run &quot;&lt;b data-injected&gt;x" in title and "&quot; data-injected=&quot;1&quot; onmouseover=&quot;" in title
    main = dom.split('<main id="cards"', 1)[1].split("</main>", 1)[0]
    assert shown(dom) == [HOSTILE["name"].replace('"', "&quot;")]
    injected = [(tag, names) for tag, names in _Attributes(dom).elements
                if "data-injected" in names or any(name.startswith("on") for name in names)]
    assert injected == [], "a hostile value became a tag or an attribute"
    assert html_text(main).count(HOSTILE["transcript"]) == 1 and html_text(main).count(HOSTILE["text"]) == 1
    assert html_text(main).count(f"/{HOSTILE['phone']}/ ×5.0") == 1 and HOSTILE["phones"][0] in html_text(main)
    assert 'data-audio-loaded="2"' in dom  # both players found their files through the quoted paths


def html_text(fragment: str) -> str:
    """The text a reader sees in an HTML fragment."""
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", fragment))


# --- the page as a sweep dashboard: header, grid, labels from the record schema, links -----------------------


@pytest.fixture(scope="module")
def layers_by_units(tmp_path_factory) -> Path:
    """A 2 layers x 2 units sweep (one job per layer, its units batched), with offline W&B runs."""
    sweep = tmp_path_factory.mktemp("grid") / "sweep"
    result = run_cli("--multirun", "model=random_small", "model.layer=1,2", "objective=channel",
                     "objective.unit=0:2", "steps=3", "threads=1", "quality.draws=1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    return sweep


def test_the_header_says_what_varies_and_every_card_links_its_wandb_run(layers_by_units):
    page = (layers_by_units / "index.html").read_text()
    # Hydra writes the unit range back escaped (objective.unit=0\:2); the page says it as it was typed
    assert "4 card(s) · varies: model.layer · all: model=random_small · objective=channel · objective.unit=0:2 · " in page
    for card in data(layers_by_units / "index.html"):
        links = dict(card["links"])
        layer = int(card["layer"][1:])
        assert unquote(links["W&B run"]).startswith(f"{layer - 1}_model.layer={layer}/wandb/offline-run-")
        assert (layers_by_units / unquote(links["W&B run"]) / "files").is_dir()
        assert "model.layer" in card["meta"] and "steps=3" not in card["meta"]


@needs_chromium
def test_the_grid_colours_layers_by_units_and_a_cell_opens_its_card(layers_by_units, tmp_path):
    page = layers_by_units / "index.html"
    dom = _dom(page, tmp_path, """
    document.getElementById('view').value = 'grid';
    document.getElementById('sort').value = 'final_activation';
    document.getElementById('view').dispatchEvent(new Event('input'));""")
    main = dom.split('<main id="cards"', 1)[1].split("</main>", 1)[0]
    (head, *rows) = re.findall(r"<tr><th>([^<]*)</th>(.*?)</tr>", main)
    assert [label for label, _ in rows] == ["L1", "L2"] and re.findall(r"<th>(\d+)</th>", head[1]) == ["0", "1"]
    cells = {name: colour for _, row in rows
             for colour, name in re.findall(r'style="background: ?([^"]+)" data-name="([^"]+)"', row)}
    final = {c["name"]: c["keys"]["final_activation"] for c in data(page)}
    assert set(cells) == set(final) and len(cells) == 4
    assert cells[max(final, key=final.get)] .replace(" ", "") == "rgb(253,231,37)"  # the best is the bright end
    assert cells[min(final, key=final.get)] .replace(" ", "") == "rgb(68,1,84)"
    assert "colour: activation after ↑" in main
    clicked = _dom(page, tmp_path, """
    document.getElementById('view').value = 'grid';
    document.getElementById('view').dispatchEvent(new Event('input'));
    document.querySelector('td.cell[data-name="L2-U1-channel"]').click();""")
    assert shown(clicked) == ["L2-U1-channel"]


@needs_chromium
def test_card_rows_carry_the_schemas_labels_meanings_and_direction(layers_by_units, tmp_path):
    dom = _dom(layers_by_units / "index.html", tmp_path)
    assert re.search(r'<td title="the activation\'s mean over fresh augmentation draws \(higher is better\)">'
                     r"robust activation ↑</td>", dom.replace("&#39;", "'")), dom[-3000:]


@needs_chromium
def test_the_grid_puts_the_best_at_the_bright_end_when_lower_is_better(tmp_path):
    records = [{"name": f"L1-U{u}-unit", "layer": "L1", "unit": u, "final_activation": 1.0, "silence_ratio_db": db}
               for u, db in enumerate([-20.0, -5.0])]
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    dom = _dom(write_gallery(tmp_path), tmp_path, """
    document.getElementById('view').value = 'grid';
    document.getElementById('sort').value = 'silence_ratio_db';
    document.getElementById('view').dispatchEvent(new Event('input'));""")
    cells = dict((name, colour.replace(" ", "")) for colour, name in
                 re.findall(r'style="background: ?([^"]+)" data-name="([^"]+)"',
                            dom.split('<main id="cards"', 1)[1].split("</main>", 1)[0]))
    assert cells == {"L1-U0-unit": "rgb(253,231,37)", "L1-U1-unit": "rgb(68,1,84)"}  # -20 dB is the better


@needs_chromium
def test_the_address_keeps_view_sort_and_filter(tmp_path):
    """Read on load and written on every choice (Back from a card to the grid: tests/test_grid.py, since headless
    Chromium's --dump-dom never returns after history.back())."""
    records = [{"name": f"L1-U{u}-unit", "layer": "L1", "unit": u, "final_activation": float(u)} for u in (0, 1, 2, 10)]
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    page = write_gallery(tmp_path)
    opened = _dom(page, tmp_path, fragment="#sort=final_activation&desc=1&filter=l1-u1")  # a reload or a shared link
    assert shown(opened) == ["L1-U10-unit", "L1-U1-unit"] and "2 of 4 shown" in opened
    edited = _dom(page, tmp_path, "document.body.dataset.hash = location.hash + ' ' + document.getElementById('sort').value;",
                  fragment="#sort=no_such_field")  # a sort the page does not offer: the default, and the address says so
    assert shown(edited) == [r["name"] for r in records] and 'data-hash=" layer"' in edited
    dom = _dom(page, tmp_path, """
    const view = document.getElementById('view');
    view.value = 'grid'; view.dispatchEvent(new Event('input'));
    document.body.dataset.grid = location.hash;
    document.querySelector('td.cell[data-name="L1-U2-unit"]').click();
    document.body.dataset.card = location.hash + ' ' + history.length;""")
    body = dom.split("<body", 1)[1].split(">", 1)[0]
    assert 'data-grid="#view=grid"' in body and 'data-card="#filter=l1-u2-unit 2"' in body, body
    assert shown(dom) == ["L1-U2-unit"]
