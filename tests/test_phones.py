"""Unit names: the phones of the data's frames (pocketsphinx's alignment of the transcripts), and each
unit's phone from its top frames, on the shipped model and speech slice."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from conftest import compose, needs_espeak

from audiation.config import builder
from audiation.config.configs import ASSETS
from audiation.config.job_plans import examples_plan
from audiation.data import audio_files
from audiation.data.activations import open_cache
from audiation.hearing import phones
from audiation.jobs.examples_job import examples_job, last_file_reader
from audiation.models.encoder import load_config, parse_layer

SLICE = ASSETS / "speech-slice"
# The character units of tiny's MODEL_CARD.md, the phones their letter stands for, and the lift measured
# (2026-12-03, torch 2.13 CPU). A tenth either way is about four of the 100 top frames changing phone
# (one frame moves the share 0.01): more than the arithmetic of another CPU, less than a bug in the rates.
CHARACTER_UNITS = [("logits", 22, {"S", "Z"}, 9.06), ("logits", 21, {"R", "ER"}, 28.94), ("logits", 19, {"P"}, 28.22),
                   ("6", 125, {"S", "Z"}, 10.96), ("6", 68, {"M"}, 24.85)]
LIFT = {(layer, unit): lift for layer, unit, _, lift in CHARACTER_UNITS}


@pytest.fixture(scope="module")
def tiny_caches(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    spec = builder.model_spec(compose("model=tiny").model)
    config = load_config(spec)
    files = audio_files.list_audio(SLICE)
    return {layer: open_cache(spec, parse_layer(layer, config), config, files, cache_dir)
            for layer in ("logits", "6")}


def test_espeak_ipa_becomes_arpabet():
    assert phones.ipa_to_arpabet("dʒˈʌdʒ") == ["JH", "AH", "JH"]
    assert phones.ipa_to_arpabet("θˈɔːt") == ["TH", "AO", "T"]
    assert phones.ipa_to_arpabet("mˈɛʒɚ") == ["M", "EH", "ZH", "ER"]
    assert phones.ipa_to_arpabet("tʃˈæɹiət") == ["CH", "AE", "R", "IY", "AH", "T"]


@needs_espeak
@pytest.mark.parametrize("layer,unit,letter_phones,lift", CHARACTER_UNITS)
def test_the_model_cards_character_units_are_named_by_their_letters_phone(tiny_caches, layer, unit, letter_phones,
                                                                           lift):
    cache = tiny_caches[layer]
    name = phones.name_unit(cache.column(unit), phones.frame_labels(cache, last_file_reader(16000)))
    assert name["phone"] in letter_phones and name["phone_share"] >= phones.MIN_SHARE
    assert name["phone_lift"] == pytest.approx(lift, rel=0.1)


def test_frame_labels_follow_the_alignment_and_are_shared_by_every_layer(tiny_caches, monkeypatch):
    logits, last = tiny_caches["logits"], tiny_caches["6"]
    labels = phones.frame_labels(logits, last_file_reader(16000))
    assert len(labels.labels) == logits.num_frames and labels.inventory[0] == "SIL"
    share = np.bincount(labels.labels, minlength=len(labels.inventory)) / len(labels.labels)
    assert 0.1 < share[0] < 0.6 and len(labels.inventory) > 30  # silence at the ends, most of English's phones
    monkeypatch.setattr(phones, "Aligner", None)  # the saved labels are read: nothing is aligned again
    again = phones.frame_labels(last, last_file_reader(16000))
    assert np.array_equal(again.labels, labels.labels) and again.inventory == labels.inventory


def test_a_frame_takes_the_phone_spanning_its_centre(tiny_caches, tmp_path, monkeypatch):
    cache = tiny_caches["logits"]
    piece = cache.pieces[0]
    centre = lambda frame: (frame * cache.hop + cache.field / 2) / cache.sample_rate  # noqa: E731
    boundary = (centre(10) + centre(11)) / 2

    class Fake:  # one file: silence, then AA up to between frames 10 and 11, then S
        def segments(self, signal, text):
            return [("SIL", 0.0, 0.05), ("AA", 0.05, boundary), ("S", boundary, 99.0)], "aligned"

    monkeypatch.setattr(phones, "Aligner", Fake)
    monkeypatch.setattr(phones, "labels_path", lambda cache: tmp_path / "labels.npz")
    labels, inventory = phones.frame_labels(cache, last_file_reader(16000))
    first = [inventory[i] for i in labels[piece.first_frame:piece.first_frame + 12]]
    expected = ["SIL" if centre(f) < 0.05 else "AA" if centre(f) < boundary else "S" for f in range(12)]
    assert first == expected and first[10] == "AA" and first[11] == "S"


def test_labels_made_without_espeak_are_not_read_once_it_is_installed_and_the_warning_names_it(
        tiny_caches, monkeypatch, caplog):
    cache = tiny_caches["logits"]
    paths = {}
    for version in (None, "eSpeak NG text-to-speech: 1.51", "eSpeak NG text-to-speech: 1.52"):
        monkeypatch.setattr(phones, "espeak_version", lambda version=version: version)
        paths[version] = phones.labels_path(cache)
    assert len(set(paths.values())) == 3 and all(p.parent == cache.folder.parent for p in paths.values())

    class Fake:  # no word could be aligned: every file decoded
        def segments(self, signal, text):
            return [("AA", 0.0, 99.0)], "decoded"

    monkeypatch.setattr(phones, "Aligner", Fake)
    for version, hinted in ((None, True), ("eSpeak NG text-to-speech: 1.51", False)):
        monkeypatch.setattr(phones, "espeak_version", lambda version=version: version)
        monkeypatch.setattr(phones, "labels_path", lambda cache, version=version: cache.folder.parent / f"{version}.npz")
        caplog.clear()
        phones.frame_labels(cache, last_file_reader(16000))
        files = len({p.file for p in cache.pieces})
        assert f"{files} of {files} files had no transcript or could not be aligned" in caplog.text
        assert ("espeak-ng is not installed, so no word CMUdict lacks can be spelled" in caplog.text) == hinted


@pytest.mark.parametrize("damage,why", [("cut", "File is not a zip file"), ("inventory", "its inventory is not"),
                                        ("past", "labels outside its inventory of 1"), ("short", "not one phone per")])
def test_damaged_phone_labels_are_set_aside_and_made_again(tiny_caches, tmp_path, monkeypatch, caplog, damage, why):
    cache = tiny_caches["logits"]

    class Fake:
        def segments(self, signal, text):
            return [("AA", 0.0, 99.0)], "aligned"

    path = tmp_path / "labels.npz"
    frames = cache.num_frames - (damage == "short")
    with open(path, "wb") as out:
        np.savez(out, labels=np.full(frames, 5 if damage == "past" else 0, dtype=np.int16),
                 inventory=json.dumps({"SIL": 0} if damage == "inventory" else ["SIL"]))
    if damage == "cut":
        path.write_bytes(path.read_bytes()[:30])
    monkeypatch.setattr(phones, "Aligner", Fake)
    monkeypatch.setattr(phones, "labels_path", lambda cache: path)
    labels, inventory = phones.frame_labels(cache, last_file_reader(16000))
    assert inventory == ["SIL", "AA"] and len(labels) == cache.num_frames and labels.max() == 1
    assert (tmp_path / "labels.npz.corrupt").is_file() and f"labels.npz is damaged ({why}" in caplog.text


def test_data_without_transcripts_is_decoded_and_named_once(tmp_path, caplog):
    for path in sorted(SLICE.glob("*.flac"))[:3]:
        shutil.copy(path, tmp_path)  # no metadata.tsv: nothing to align
    spec = builder.model_spec(compose("model=tiny").model)
    config = load_config(spec)
    cache = open_cache(spec, parse_layer("logits", config), config, audio_files.list_audio(tmp_path), tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        labels = phones.frame_labels(cache, last_file_reader(16000))
    warnings = [r.getMessage() for r in caplog.records if "phone recognizer" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 3 of 3 files")
    assert (labels.labels > 0).mean() > 0.3  # the recognizer hears phones in speech


def test_heard_as_label_is_the_phone_at_the_target_frame_where_there_is_one_and_anywhere_else():
    at_frame = {"phone": "S", "frame": 24, "phones": ["S"]}
    assert phones.heard_as_label({**at_frame, "objective": "unit", "phone_at_target": "S"})
    assert not phones.heard_as_label({**at_frame, "objective": "unit", "phone_at_target": "T"})
    # the target frame decides, not the objective's editable label: a feature at one frame, a channel named unit
    assert not phones.heard_as_label({**at_frame, "objective": "feature", "phone_at_target": "T"})
    assert phones.heard_as_label({"phone": "S", "objective": "unit", "frame": None, "phones": ["T", "S"]})
    assert phones.heard_as_label({"phone": "S", "objective": "channel", "frame": None, "phones": ["T", "S"]})
    assert not phones.heard_as_label({"phone": "S", "objective": "channel", "frame": None, "phones": ["T"]})
    assert phones.heard_as_label({"phone": None, "objective": "channel", "frame": None, "phones": ["T"]}) is None
    assert phones.heard_as_label({"phone": "S", "objective": "channel", "frame": None}) is None  # judges off


def test_a_silence_unit_is_heard_as_its_label_only_when_the_judge_hears_nothing():
    silent = {"objective": "channel", "frame": None}
    assert phones.heard_as_label({**silent, "phone": "SIL", "phones": []})
    assert not phones.heard_as_label({**silent, "phone": "SIL", "phones": ["T"]})
    assert not phones.heard_as_label({**silent, "phone": "S", "phones": []})  # nothing heard is not /S/


@needs_espeak
def test_the_examples_job_names_each_unit(tmp_path):
    cfg = compose("model=tiny", "model.layer=6", "units=[125,68]", f"data.path={SLICE}",
                  f"data.cache_dir={tmp_path / 'cache'}", "top_k=1", "logger=none", config_name="examples")
    examples_job(examples_plan(cfg), tmp_path / "job")
    summary = json.loads((tmp_path / "job" / "examples.json").read_text())
    units = {u["unit"]: u for u in summary["units"]}
    assert units[125]["phone"] in {"S", "Z"} and units[68]["phone"] == "M"
    assert all(u["phone_lift"] == pytest.approx(LIFT["6", u["unit"]], rel=0.1) and 0 < u["phone_share"] <= 1
               for u in units.values())
    assert summary["model_cer"]["files"] == 32 and 0.1 < summary["model_cer"]["cer"] < 0.5  # what the names rest on


def test_a_phone_barely_over_its_base_rate_is_no_name():
    labels = phones.FramePhones(np.array([0] * 600 + [1] * 300 + [2] * 100), ["SIL", "S", "M"])
    values = np.zeros(1000)
    values[:100] = 1  # the top frames are all silence, 60% of the data: lift 1.7
    named = phones.name_unit(values, labels)
    assert named["phone"] is None and named["phone_lift"] == pytest.approx(1 / 0.6, abs=0.01)
    values = np.zeros(1000)
    values[900:] = 1  # all /M/, 10% of the data: lift 10
    assert phones.name_unit(values, labels)["phone"] == "M"


def test_a_name_rests_on_the_bars_themselves_and_its_numbers_are_rounded_as_recorded():
    def named(top_labels, rest_labels, inventory, top=100):
        labels = np.array(top_labels + rest_labels)
        values = np.r_[np.ones(len(top_labels)), np.zeros(len(rest_labels))]
        return phones.name_unit(values, phones.FramePhones(labels, inventory), top=top)

    eight = [f"P{i}" for i in range(8)]
    spread = named([i % 8 for i in range(100)], list(range(8)) * 100, eight)  # 12-13% each: under MIN_SHARE
    assert spread == {"phone": None, "phone_lift": None, "phone_share": None}
    # exactly MIN_SHARE of the top frames is enough; the rest spread thin
    at_share = named([0] * 15 + [1 + i % 7 for i in range(85)], [1] * 900, eight)
    assert at_share["phone"] == "P0" and at_share["phone_share"] == 0.15
    # exactly NAMED_LIFT names it: 75% of the top frames, 25% of the data
    at_lift = named([0] * 75 + [1] * 25, [0] * 175 + [1] * 725, ["SIL", "S"])
    assert at_lift == {"phone": "SIL", "phone_lift": 3.0, "phone_share": 0.75}
    # lift to two places, share to three (the record's precision): /S/ is 2 of 3 top frames and 2 of 7 frames
    thirds = named([1, 1, 0], [0] * 4, ["SIL", "S"], top=3)
    assert thirds == {"phone": None, "phone_lift": 2.33, "phone_share": 0.667}


def test_a_unit_is_named_from_exactly_its_top_frames_wherever_they_are():
    # /HH/ is in the inventory but never in the data: its base rate is 0, not an error
    inventory, rng = ["SIL", "S", "M", "HH"], np.random.default_rng(0)
    for top, frames in ((1, 2000), (5, 2000), (100, 20000)):  # numpy partitions 2,000 frames unlike 200
        for _ in range(5):
            values = rng.permutation(frames).astype(float)
            labels = np.where(values >= frames - top, 2, rng.integers(0, 2, frames))  # the top frames are /M/ only
            named = phones.name_unit(values, phones.FramePhones(labels, inventory), top=top)
            assert named["phone"] == "M" and named["phone_share"] == 1.0
            assert named["phone_lift"] == pytest.approx(frames / top, rel=1e-3)


def test_phones_too_rare_to_name_any_unit_are_said_once(tiny_caches, caplog, monkeypatch):
    labels = phones.FramePhones(np.array([0] * 50 + [1] * 15 + [2] * 14), ["SIL", "S", "HH"])
    assert phones.unnameable(labels) == ["HH"]  # 14 frames can never be 15% of 100 top frames
    monkeypatch.setattr(phones, "_saved_or_made", lambda cache, read: labels)
    with caplog.at_level(logging.WARNING):
        phones.frame_labels(tiny_caches["6"], None)
    said = [r.getMessage() for r in caplog.records if "too few to name" in r.getMessage()]
    assert len(said) == 1 and "/HH/" in said[0] and "/S/" not in said[0]


def test_when_the_phone_pass_fails_the_words_keep_their_alignment(monkeypatch):
    """pocketsphinx's state-level pass fails on some ordinary utterances; the word pass's timing stays, each
    word's dictionary phones in order inside it."""
    path = sorted(SLICE.glob("*.flac"))[0]
    signal, text = audio_files.read_audio(path, 16000), audio_files.transcript(path)
    aligner = phones.Aligner()
    assert aligner.segments(signal, text)[1] == "aligned"

    def fail(_decoder, _pcm):
        raise RuntimeError("Failed to stop utterance processing")

    monkeypatch.setattr(aligner, "_state_pass", fail)
    spread, how = aligner.segments(signal, text)
    spelled = [p for w in phones._words(text) for p in aligner.words.lookup_word(w).split()]
    assert how == "aligned" and [p for p, _, _ in spread] == spelled
    starts = [s for _, s, _ in spread]
    assert starts == sorted(starts) and spread[-1][2] <= len(signal) / 16000 + 0.02


@needs_espeak
def test_the_wide_beam_aligns_what_the_default_loses():
    """000028 ("fixedly accuser tufting") lost its words at pocketsphinx's default beams."""
    path = SLICE / "000028.flac"
    assert phones.Aligner().segments(audio_files.read_audio(path, 16000), audio_files.transcript(path))[1] == "aligned"


@needs_espeak
def test_words_the_dictionary_lacks_are_spelled_by_espeak_each_on_its_own():
    # one call for all three, each on its own line (a call that runs words together falls back to one a word)
    assert phones.espeak_arpabet(["judge", "thought", "measure"]) == {
        "judge": "JH AH JH", "thought": "TH AO T", "measure": "M EH ZH ER"}


@needs_espeak
def test_a_word_espeak_splits_does_not_unspell_the_others(monkeypatch):
    real = phones._espeak_ipa
    monkeypatch.setattr(phones, "_espeak_ipa", lambda words: real(words) + (["ɛkstɹə"] if len(words) > 1 else []))
    spelled = phones.espeak_arpabet(["blorptastic", "zyxwv"])
    assert set(spelled) == {"blorptastic", "zyxwv"}


def test_names_say_when_the_model_does_not_understand_their_data(tmp_path, caplog):
    """The model's own CER on the transcribed files is recorded; above 0.5 a warning says the names describe
    its confusion (here: the right audio under wrong transcripts)."""
    from audiation.hearing.quality import data_error_rate
    from audiation.models.encoder import load_encoder

    encoder = load_encoder(builder.model_spec(compose("model=tiny").model), "cpu")
    files = sorted(SLICE.glob("*.flac"))[:6]
    with caplog.at_level(logging.WARNING):
        understood = data_error_rate(encoder, files)
    assert understood["files"] == 6 and understood["cer"] < 0.5  # tiny hears espeak-ng (its card: 0.29)
    assert not [r for r in caplog.records if "does not understand" in r.getMessage()]
    for path in files:
        shutil.copy(path, tmp_path)
    (tmp_path / "metadata.tsv").write_text("file\ttext\n" + "".join(f"{p.name}\tzebra quartz jukebox\n" for p in files))
    with caplog.at_level(logging.WARNING):
        confused = data_error_rate(encoder, sorted(tmp_path.glob("*.flac")))
    assert confused["cer"] > 0.5
    assert len([r for r in caplog.records if "does not understand" in r.getMessage()]) == 1
    assert data_error_rate(encoder, [tmp_path / "missing.flac"]) is None  # no transcript: nothing to say


def test_one_rule_says_what_is_a_phone_for_the_judge_and_the_labels():
    from audiation.hearing import judges

    assert [judges.phone_of(t) for t in ("SIL", "+NSN+", "+BREATH+", "AH0", "Z", "ER1")] == [None, None, None,
                                                                                               "AH", "Z", "ER"]
