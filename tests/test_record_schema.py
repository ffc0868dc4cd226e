"""The record schema (audiation/outputs/record_schema.py) is the contract: every field a job writes is declared there,
with a meaning, and every measure has a direction the page and the README can state."""

from __future__ import annotations

import pytest
from conftest import ROOT

from audiation.config.configs import compose
from audiation.jobs.audiate_job import audiate_folder
from audiation.outputs import record_schema

SMALL = ["model=random_small", "logger=none", "threads=1", "steps=2"]
SLICE = ROOT / "audiation" / "assets" / "speech-slice"


@pytest.mark.parametrize("overrides", [
    ["objective=unit", "objective.unit=0:2", "samples=2", f"quality.data={SLICE}", "examples.top_k=1"],
    ["model=tiny", "model.layer=logits", "objective=channel", "objective.unit=3"],
    ["model=tiny", "objective=text", "objective.text=moon", "quality.draws=0"],
    ["objective=direction", "objective.direction=[" + ",".join(["1"] * 32) + "]"],
])
def test_every_field_a_job_writes_is_declared(tmp_path, overrides):
    metrics = audiate_folder(compose(*SMALL, *overrides), tmp_path / "job")
    for record in metrics["targets"]:
        assert record_schema.undeclared(record) == [], record["name"]


# Which way each measure is better: the page's arrows and grid colours follow it, so a flipped direction
# paints the worst audiations bright. A new measure is added here, with its direction decided.
HIGHER = {"initial_activation", "final_activation", "gain", "robust_activation", "selectivity", "activation_ratio",
          "activation_ratio_p99", "heard_share", "heard_share_of_letters", "ensemble_heard_share",
          "ensemble_heard_share_of_letters", "listener_heard_share", "listener_heard_share_of_letters",
          "speech_probability", "hnr_db", "phone_lift", "phone_share"}
LOWER = {"silence_ratio_db", "cer", "ensemble_cer", "listener_cer", "sibling_similarity", "whisper_no_speech",
         "whisper_cer"}
NEITHER = {"f0_hz", "voiced_share", "f1_hz", "f2_hz", "phone_chance", "whisper_text_chance", "whisper_letter_chance"}


def test_every_measure_says_which_way_is_better_and_every_field_what_it_means():
    for field in record_schema.FIELDS:
        assert field.meaning and field.label, field.key
    directions = {key: record_schema.BY_KEY[key].better for key in record_schema.MEASURES}
    assert directions == {**dict.fromkeys(HIGHER, "higher"), **dict.fromkeys(LOWER, "lower"),
                          **dict.fromkeys(NEITHER, "neither")}
    assert all(field.better is None for field in record_schema.FIELDS if not field.measure)
    assert record_schema.BY_KEY["silence_ratio_db"].describe().endswith("(in dB; lower is better)")
    assert record_schema.BY_KEY["f0_hz"].describe().endswith("(in Hz)")
    assert record_schema.BY_KEY["gain"].describe().endswith("; computed from the two, not stored (higher is better)")
    unit = record_schema.BY_KEY["unit"]
    assert unit.describe() == unit.meaning == "the unit (channel) of the layer"  # nothing to add, no brackets
    assert len(record_schema.BY_KEY) == len(record_schema.FIELDS)  # one entry per key


def test_every_field_has_the_kind_its_readers_check_and_records_that_do_not_fit_are_named():
    assert set(record_schema.KINDS) == set(record_schema.BY_KEY)  # a new field says what its values are
    good = {"name": "L1-U0-unit", "layer": "L1", "unit": 0, "waveform": [0.5, None], "final_terms": {"a": 1.0},
            "examples": [{"rank": 1, "trace": [1, 2.5]}], "nearest_features": [[1, 0.5]], "stopped": None}
    assert record_schema.misfits(good) == []
    assert record_schema.misfits({**good, "unit": True, "waveform": "x", "examples": [{"trace": "x"}]}) == [
        "unit", "waveform", "examples"]
    assert record_schema.misfits({"layer": "L1"}) == ["name"] and record_schema.misfits([]) == ["record"]


def test_the_page_gets_every_measure_and_every_field_with_a_unit_as_label_meaning_better_unit():
    fields = record_schema.for_page()
    assert set(fields) == {f.key for f in record_schema.FIELDS if f.measure or f.unit}
    assert set(record_schema.MEASURES) < set(fields) and "name" not in fields
    assert fields["silence_ratio_db"] == {"label": record_schema.BY_KEY["silence_ratio_db"].label, "unit": "dB",
                                          "meaning": record_schema.BY_KEY["silence_ratio_db"].describe(),
                                          "better": "lower"}


@pytest.mark.parametrize("field,value", [
    ("waveform", 3), ("waveform", {}), ("waveform", ["x"]),  # numbers: a list of numbers (or nulls)
    ("final_terms", {"a": "x"}), ("final_terms", [1.0]),  # terms: names to numbers (or nulls)
    ("nearest_features", [[1, "x"]]), ("nearest_features", [[1.5, 0.5]]), ("nearest_features", [[1, 0.5, 2]]),
    ("nearest_features", [5]), ("nearest_features", {"1": 0.5}),  # pairs: [feature index, similarity]
])
def test_a_value_not_of_its_fields_kind_is_a_misfit(field, value):
    assert record_schema.misfits({"name": "L1-U0-unit", "layer": "L1", field: value}) == [field]


def test_a_unit_of_an_examples_job_fits_or_its_misfits_are_named():
    unit = {"name": "L6-U125", "layer": "L6", "unit": 125, "stats": {"mean": 0.1, "max": None},
            "examples": [{"rank": 1, "file": "a.flac", "trace": [0.5]}], "phone": "S", "phone_lift": 9.1}
    assert record_schema.unit_misfits(unit) == []
    for key in ("name", "layer", "unit", "stats", "examples"):
        assert record_schema.unit_misfits({k: v for k, v in unit.items() if k != key}) == [key]
    assert record_schema.unit_misfits({**unit, "stats": {"mean": "x"}, "phone_share": "high"}) == ["stats", "phone_share"]
    assert record_schema.unit_misfits([unit]) == ["record"]
