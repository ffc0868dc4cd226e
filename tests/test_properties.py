"""Properties of what takes arbitrary input, checked on generated values (Hypothesis): unit and layer
specs, names that become paths, the page's escaping, records read back from disk, metadata.tsv. Each
property holds for every input or the input is refused in one line (AudiationError) or skipped with a
warning; nothing else is ever raised."""

from __future__ import annotations

import functools
import html.parser
import json
import logging
import os
import re
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from test_gallery import _dom, needs_chromium

from audiation.config.checks import parse_units, safe_name
from audiation.data import audio_files, splits
from audiation.errors import AudiationError
from audiation.models import layers
from audiation.outputs import record_schema, results

# Temporary folders are made per example inside the test (a function-scoped fixture is shared by examples).
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# caplog is cleared by each example that reads it
SLOW = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def one_line_refusal(call, *args):
    """What `call(*args)` returns, or None when it refused with one line; any other exception fails the test."""
    try:
        return call(*args)
    except AudiationError as error:
        assert str(error) and not re.search(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", str(error)), repr(error)
        return None


def padded(text_strategy):
    """Texts with the blanks a user or a YAML file may leave around them."""
    blank = st.sampled_from(["", " ", "  ", "\t"])
    return st.tuples(blank, text_strategy, blank).map("".join)


# --- 1. unit specs and layer names ------------------------------------------------------------------------


@st.composite
def unit_specs(draw, count: int):
    """A valid objective.unit for `count` units, with the units it denotes (the grammar's own model)."""
    form = draw(st.sampled_from(["all", "int", "list", "range"]))
    if form == "all":
        return draw(padded(st.just("all"))), list(range(count))
    if form == "int":
        unit = draw(st.integers(0, count - 1))
        return draw(st.sampled_from([unit, str(unit), f" {unit} "])), [unit]
    if form == "list":
        units = draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=count, unique=True))
        return [draw(st.sampled_from([u, str(u), f"{u} "])) for u in units], units
    start = draw(st.none() | st.integers(0, count - 1))
    stop = draw(st.none() | st.integers(0, count))
    step = draw(st.none() | st.integers(1, count + 2))
    denoted = list(range(count))[slice(start, stop, step)]
    if not denoted:
        return draw(unit_specs(count))
    spec = ":".join("" if n is None else str(n) for n in (start, stop)) + ("" if step is None else f":{step}")
    return draw(padded(st.just(spec))), denoted


@FAST
@given(st.integers(1, 40).flatmap(lambda count: st.tuples(st.just(count), unit_specs(count))))
def test_a_valid_unit_spec_parses_to_the_units_it_denotes(case):
    count, (spec, denoted) = case
    assert parse_units(spec, count, "layer L1") == denoted


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
UNIT_TEXT = st.text(st.sampled_from("0123456789:-, all\n\t٣") | st.characters(), max_size=12)


@FAST
@given(st.integers(1, 40), st.one_of(UNIT_TEXT, JSON_SCALARS, st.lists(UNIT_TEXT | JSON_SCALARS, max_size=4),
                                    st.dictionaries(st.text(max_size=3), JSON_SCALARS, max_size=2)))
@example(5, "0:5:0")
@example(5, None)
@example(5, [])
@example(5, "1\n2")
@example(5, "9" * 5000)
@example(5, "0:" + "9" * 5000)
@example(5, ["1", "01"])
def test_any_other_unit_spec_is_refused_in_one_line(count, spec):
    units = one_line_refusal(parse_units, spec, count, "layer L1")
    if units is not None:  # what parses names units of the layer, each once, at least one
        assert units and len(set(units)) == len(units) and all(type(u) is int and 0 <= u < count for u in units)


def typed_name(layer: layers.Layer) -> str:
    """What a user types for a layer (`model.layer`): the grammar of audiation/models/layers.py."""
    return {"transformer": str(layer.index), "conv": f"conv{layer.index}", "mlp": f"mlp{layer.index}",
            "logits": "logits"}[layer.kind]


def every_layer(depth: int, convs: int, logits: bool) -> list[layers.Layer]:
    return ([layers.Layer("transformer", i) for i in range(depth + 1)] + [layers.Layer("conv", k) for k in
            range(1, convs + 1)] + [layers.Layer("mlp", i) for i in range(1, depth + 1)]
            + ([layers.Layer("logits")] if logits else []))


MODELS = st.tuples(st.integers(1, 30), st.integers(1, 9), st.booleans())


@FAST
@given(MODELS, st.data())
def test_every_layer_name_round_trips_and_labels_tell_layers_apart(model, data):
    everything = every_layer(*model)
    layer = data.draw(st.sampled_from(everything))
    name = typed_name(layer)
    typed = data.draw(padded(st.sampled_from([name, name.upper(), name.capitalize()])))
    assert layers.parse(typed, *model) == layer
    if layer.kind == "transformer":
        assert layers.parse(layer.index, *model) == layer  # an int from the YAML, not a string
    assert len({each.label for each in everything}) == len(everything)  # target folders name one layer each


@FAST
@given(MODELS, st.one_of(st.text(st.sampled_from("0123456789convmlpgitsLC -\n٣") | st.characters(), max_size=10),
                         JSON_SCALARS))
@example((3, 7, False), "logits")
@example((3, 7, True), "mlp0")
@example((3, 7, True), "9" * 5000)
def test_any_other_layer_name_is_refused_in_one_line(model, spec):
    layer = one_line_refusal(layers.parse, spec, *model)
    if layer is not None:
        assert layer in every_layer(*model) and layers.parse(typed_name(layer), *model) == layer


# --- 2. names that become paths ---------------------------------------------------------------------------

PATHLIKE = st.text(st.sampled_from("./\\\x00\n-_a") | st.characters(), max_size=70)


def is_one_plain_folder_name(name: str) -> bool:
    return (bool(name) and name not in (".", "..") and os.sep not in name and (os.altsep or "/") not in name
            and not any(unicodedata.category(c) == "Cc" for c in name))


@FAST
@given(PATHLIKE)
@example("..")
@example("a\x00b")
@example(".hidden")
@example("a/../b")
@example("\n")
def test_a_safe_name_is_one_plain_file_name_part(text):
    name = one_line_refusal(safe_name, text, "objective.name")
    if name is not None:
        assert name == text and is_one_plain_folder_name(name) and not name.startswith(".")


@FAST
@given(PATHLIKE)
@example("..")
@example(".")
@example("a\x00b")
@example("a\nb")
@example("x\\y")
@example("")
def test_a_target_name_is_one_folder_inside_targets_or_refused(text):
    job = Path(tempfile.gettempdir()) / "job"
    folder = one_line_refusal(results.target_folder, job, text)
    assert (folder is not None) == results.is_target_name(text)
    if folder is not None:
        assert folder.name == text and folder.parent == job / "targets" and is_one_plain_folder_name(text)
        assert results.within(job / "targets", folder)


# --- 3. the page's escaping -------------------------------------------------------------------------------

INJECTED = "<img src=x onerror=document.body.dataset.pwned=1>"  # marks the page, where an alert would hang it
# Texts that would end a script block, open a comment, close an attribute or add an element if unescaped.
HOSTILE = st.lists(st.sampled_from(["</script>", "<!--", "<script>", "-->", '"', "'", INJECTED,
                                    "&amp;", "\u2028", "\x00", "é", "🎤", "\\"]) | st.text(max_size=3),
                   max_size=5).map("".join)


def text_fields() -> list[str]:
    """Every record field whose kind is text (the record schema)."""
    return [key for key, kind in record_schema.KINDS.items() if kind("x") and not kind(0) and not kind([])]


def hostile_record(index: int, text: str) -> dict:
    name = text if results.is_target_name(text) else f"L1-U{index}-unit"
    return {**{key: text for key in text_fields()}, "name": name, "unit": index, "phones": [text, text],
            "initial_activation": 0.0, "final_activation": 1.0,
            "examples": [{"rank": 1, "file": text, "clip": text, "spectrogram": text, "text": text}]}


class Structure(html.parser.HTMLParser):
    """A page's elements and attribute names in document order: what its text cannot change."""

    def __init__(self):
        super().__init__()
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, sorted(name for name, _ in attrs)))

    def handle_endtag(self, tag):
        self.elements.append(("/" + tag, []))


def page_of(texts: list[str], folder: Path) -> tuple[str, list]:
    """The page of records holding `texts` in every text field, and the values its script blocks were made of."""
    from audiation.browser import page

    encoded, values = page._json_for_script, []
    records = [hostile_record(i, t) for i, t in enumerate(texts)]
    records = list({r["name"]: r for r in records}.values())  # one record a name
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(page, "_json_for_script", lambda value: (values.append(value), encoded(value))[1])
        return page.write_gallery(folder).read_text(encoding="utf-8"), values


def script_blocks(text: str) -> list[str]:
    return re.findall(r'<script type="application/json" id="\w+">(.*?)</script>', text, re.S)


@SLOW
@given(st.lists(HOSTILE, min_size=1, max_size=3))
@example(["</script><script>alert(1)</script>", "<!--<script>", "\x00"])
def test_no_text_in_a_record_changes_how_the_page_parses(texts):
    with tempfile.TemporaryDirectory() as tmp:
        hostile, values = page_of(texts, Path(tmp) / "hostile")
        plain, _ = page_of([f"t{i}" for i in range(len(texts))], Path(tmp) / "plain")
    blocks = script_blocks(hostile)
    assert [json.loads(block) for block in blocks] == [json.loads(json.dumps(v)) for v in values]
    assert not set("".join(blocks)) & set("<>&")  # no tokenizer state (comment, double escape, end tag) to enter
    structures = []
    for text in (hostile, plain):
        parser = Structure()
        parser.feed(text)
        structures.append(parser.elements)
    assert structures[0] == structures[1]


# In every page Chromium opens, beside the drawn texts: an attribute's end and a script block's end
ALWAYS_HOSTILE = ['"><img src=x onerror=document.body.dataset.pwned=1>',
                  "</script><img src=x onerror=document.body.dataset.pwned=2>"]


@functools.cache
def plain_dom() -> str:
    """Chromium's drawing of the page of plain texts: what every hostile page is compared with."""
    folder = Path(tempfile.mkdtemp())
    page_of([f"t{i}" for i in range(len(ALWAYS_HOSTILE) + 5)], folder / "job")
    return _dom(folder / "job" / "index.html", folder)


def drawn_cards(dom: str) -> Structure:
    parser = Structure()
    parser.feed(dom.split('<main id="cards"', 1)[1].split("</main>", 1)[0])
    return parser


@needs_chromium
# Each example opens Chromium (seconds): a few, and no shrinking, which would open it hundreds of times
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(HOSTILE, min_size=5, max_size=5))
def test_no_text_in_a_record_adds_an_element_or_handler_in_chromium(texts):
    with tempfile.TemporaryDirectory() as tmp:
        page_of(texts + ALWAYS_HOSTILE, Path(tmp) / "job")
        dom = _dom(Path(tmp) / "job" / "index.html", Path(tmp))
    assert dom and "data-pwned" not in dom, "a text ran as script"
    hostile, plain = drawn_cards(dom), drawn_cards(plain_dom())
    assert {tag for tag, _ in hostile.elements} == {tag for tag, _ in plain.elements}  # no element it lacks
    handlers = [{name for _, names in p.elements for name in names if name.startswith("on")} for p in (hostile, plain)]
    assert handlers[0] <= handlers[1]


# --- 4. records read back from disk -----------------------------------------------------------------------

JSON = st.recursive(JSON_SCALARS.filter(lambda v: v == v),  # NaN is not JSON (json.dumps writes it anyway)
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=6)
# A value of each kind the record schema knows, so records that fit are drawn as often as ones that do not.
OF_KIND = {
    record_schema._text: st.text(max_size=8), record_schema.is_whole: st.integers(-3, 9),
    record_schema.is_number: st.integers(-3, 9) | st.floats(-9, 9), record_schema._flag: st.booleans(),
    record_schema._numbers: st.lists(st.none() | st.floats(-9, 9), max_size=3),
    record_schema._texts: st.lists(st.text(max_size=4), max_size=3),
    record_schema._terms: st.dictionaries(st.text(max_size=4), st.none() | st.floats(-9, 9), max_size=3),
    record_schema._table: st.dictionaries(st.text(max_size=4), JSON, max_size=3),
    record_schema._paths: st.dictionaries(st.text(max_size=4), st.text(max_size=8), max_size=3),
    record_schema._pairs: st.lists(st.tuples(st.integers(0, 9), st.floats(-9, 9)).map(list), max_size=3),
    record_schema._examples: st.lists(st.fixed_dictionaries({}, optional={
        "rank": st.integers(0, 9), "text": st.text(max_size=4), "clip": st.text(max_size=8),
        "trace": st.lists(st.floats(-9, 9), max_size=3)}), max_size=2),
}


@st.composite
def records(draw):
    keys = draw(st.lists(st.sampled_from(sorted(record_schema.KINDS)), max_size=6, unique=True))
    fields = {key: draw(OF_KIND[record_schema.KINDS[key]] | JSON) for key in keys}
    name = draw(st.sampled_from(["L1-U0-unit", "L1-U1-unit"]) | st.text(max_size=6) | JSON)
    base = {"name": name, "layer": draw(st.just("L1") | JSON)}
    return draw(st.sampled_from([{**base, **fields}, fields, draw(JSON)]))


@SLOW
@given(st.lists(records(), max_size=4))
def test_records_from_disk_fit_their_kinds_or_are_skipped_with_a_warning(caplog, stored):
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job"
        job.mkdir()
        (job / "metrics.json").write_text(json.dumps({"run": {}, "targets": stored}))
        for record in stored:  # and as each target's own record, where its name makes a folder
            if isinstance(record, dict) and isinstance(record.get("name"), str) and results.is_target_name(
                    record["name"]):
                results.target_folder(job, record["name"]).mkdir(parents=True, exist_ok=True)
                (results.target_folder(job, record["name"]) / results.RECORD).write_text(json.dumps(record))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            jobs = one_line_refusal(results.read_jobs, Path(tmp))
            from_folders = one_line_refusal(results.folder_records, job)
            one_line_refusal(results.read_metrics, job)
        assert jobs is not None and from_folders is not None
        kept = jobs[0][1]["targets"]
        fits = [r for r in stored if not results.record_misfits(r)]
        assert kept == fits
        assert (len(kept) < len(stored)) == any("record(s) of" in m for m in caplog.messages)
        for record in kept + from_folders:  # what is kept has every field of its kind
            assert isinstance(record["name"], str) and isinstance(record["layer"], str)
            assert all(value is None or record_schema.KINDS[key](value) for key, value in record.items()
                       if key in record_schema.KINDS)
            results.table_row(job, record)
        if kept:  # the page reads them too
            from audiation.browser.page import write_gallery

            one_line_refusal(write_gallery, job)


# --- 5. metadata.tsv --------------------------------------------------------------------------------------

FIELD = st.text(st.characters(exclude_characters="\t\n\r") | st.sampled_from(['"', "'", "\x85", "\u2028", "\x0c"]),
                max_size=10)


def forget_read_metadata():
    """Each example writes a new metadata.tsv; what earlier ones read is cached by folder."""
    for cached in (audio_files._metadata, audio_files._transcripts, audio_files._speaker_columns):
        cached.cache_clear()


# A leading letter keeps names non-empty and not hidden, so few are filtered out (Hypothesis' health check)
FILE_NAME = FIELD.map(lambda n: "f" + n.strip()).filter(results.is_target_name)


@SLOW
@given(st.lists(st.tuples(FILE_NAME, FIELD, FIELD), min_size=1, max_size=4),
       st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
@example([("a.wav", '"quoted', "s1"), ("b.wav", 'x"', "s2")], "utf-8")
@example([("a.wav", "wait\x85 what", "s1")], "latin-1")
@example([("a.wav", "x", " ")], "utf-8")  # a blank speaker is none
def test_metadata_tsv_gives_each_files_transcript_and_speaker_or_warns(caplog, rows, encoding):
    lines = ["file\ttext\tspeaker"] + ["\t".join(row) for row in rows]
    try:
        raw = "\n".join(lines).encode(encoding)
    except UnicodeEncodeError:  # a text Latin-1 cannot hold is not in a Latin-1 file
        return
    try:  # the format's rule: UTF-8 (its byte-order mark dropped), else Latin-1, said in one line
        decoded, warned = raw.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        decoded, warned = raw.decode("latin-1"), ["read as Latin-1"]
    read = [line.split("\t") for line in re.split(r"\r\n|\r|\n", decoded)[1:]]
    texts = {file.strip(): text.strip() for file, text, _ in read}
    speakers = {file.strip(): speaker.strip() for file, _, speaker in read if speaker.strip()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "metadata.tsv").write_bytes(raw)
        forget_read_metadata()
        caplog.clear()
        for file in filter(is_one_plain_folder_name, texts):
            assert audio_files.transcript(folder / file) == texts[file]
            assert audio_files.speaker(folder / file, folder) == speakers.get(file)
    said = [m for m in caplog.messages if "metadata.tsv" in m]
    assert [m.split("; ")[1] for m in said] == warned and all("\n" not in m for m in said)


@SLOW
@given(st.binary(max_size=60) | st.text(max_size=60).map(lambda t: ("file\ttext\n" + t).encode("utf-8", "replace")))
@example(b"file\ttext\na.wav\t" + b"x" * 140_000)  # a field over the csv module's limit
def test_any_metadata_tsv_bytes_read_without_a_traceback(raw):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "metadata.tsv").write_bytes(raw)
        forget_read_metadata()
        assert isinstance(audio_files.transcript(folder / "a.wav"), (str, type(None)))
        assert isinstance(audio_files.speaker(folder / "a.wav", folder), (str, type(None)))


# --- 6. held-out splits -----------------------------------------------------------------------------------

@FAST
@given(st.integers(2, 300), st.floats(0, 1, exclude_min=True, exclude_max=True), st.integers(0, 2**32 - 1))
@example(2, 0.9, 0)  # rounds to every item: one is kept to fit on
@example(4, 0.1, 0)  # rounds to none: one is held out all the same
def test_a_held_out_split_parts_every_item_once_in_the_share_asked_and_the_seeds_order(count, fraction, seed):
    train, held = splits.held_out(count, fraction, seed)
    assert len(held) == min(max(1, round(count * fraction)), count - 1) and len(train) == count - len(held)
    assert sorted([*train, *held]) == list(range(count))
    assert list(train) == sorted(train) and list(held) == sorted(held)
    again = splits.held_out(count, fraction, seed)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], held)


def test_the_seed_chooses_which_items_are_held_out():
    """Of 40 items, half held out: 5 seeds give 5 different splits (by chance two agree in ~1e-11)."""
    assert len({tuple(splits.held_out(40, 0.5, seed)[1]) for seed in range(5)}) == 5
