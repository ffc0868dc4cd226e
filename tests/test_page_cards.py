"""The page's cards (`browser.page`), built in-process from job folders written by hand: every field of a card
matched whole, the order of cards, what the header says, the links. (The page drawn in a browser, and its
escaping, are in test_gallery.py and test_page_js.py.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from audiation.browser import page
from audiation.errors import AudiationError

NAME = "L2-U5-unit"


def _job(root: Path, where: str, records: list[dict], overrides: str = "") -> Path:
    job = root / where
    for record in records:
        folder = job / "targets" / record["name"]
        folder.mkdir(parents=True)
        for file in ("audio.wav", "audio_16bit.wav", "spectrogram.png", "history.npz"):
            (folder / file).write_bytes(b"RIFF" + record["name"].encode())
    if overrides:
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(overrides)
    (job / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    return job


def _rich_record() -> dict:
    return {"name": NAME, "layer": "L2", "unit": 5, "model": "tiny-w2v2-espeak", "objective": "unit",
            "parameterization": "fft", "augmentation": "standard", "initial_activation": 0.123456,
            "final_activation": 2.5, "final_terms": {"activation": 2.5, "neighbours": 0.25, "silence": float("nan")},
            "selectivity": 0.75, "robust_activation": 1.5, "frame": 24, "steps": 200, "sample": 0,
            "transcript": "ah", "whisper_transcript": "(mumbling)", "phones": ["AA", "SIL"], "phone_hit": True,
            "phone_chance": 0.2, "phone_at_target": "AA", "heard_as_label": False, "judges_note": None, "phone": "AA",
            "phone_lift": 8.14, "nearest_features": [[3, 0.5], [7, 0.25]], "trace_hop_seconds": 0.02,
            "trace_offset_seconds": 0.01, "activation_trace": [0.0, 1.0, float("nan")], "waveform": [0.1, 0.2],
            "examples": [{"rank": 1, "activation": 3.0, "text": "a b", "file": "/data/x/a.flac", "time_seconds": 1.236,
                          "clip": "examples/L2-U5/1.wav", "spectrogram": "examples/L2-U5/1.png", "trace": [1, 2],
                          "trace_seconds": [0.0, 0.02], "clip_seconds": 0.5}],
            "files": {"wav": f"targets/{NAME}/audio.wav"}}


def test_a_card_holds_every_field_of_its_record_as_the_page_shows_it(tmp_path):
    job = _job(tmp_path, "2026-12-08/10-00-00", [_rich_record()], "- model=tiny\n- objective.unit=0\\:2\n")
    (job / "loss_curve.png").write_bytes(b"png")
    for run in ("offline-run-20261208_100000-a", "offline-run-20261208_110000-b"):  # W&B's run folders: the last
        (job / "wandb" / run).mkdir(parents=True)
    (job / "examples" / "L2-U5").mkdir(parents=True)
    for file in ("1.wav", "1.png"):
        (job / "examples" / "L2-U5" / file).write_bytes(b"x")
    (card,) = page.collect_cards([tmp_path], page._Media(tmp_path, False))
    at = "2026-12-08/10-00-00"
    assert card == {
        "source": 0, "name": NAME, "layer": "L2", "model": "tiny-w2v2-espeak", "character": None, "phone": "/AA/ ×8.1",
        "objective": "unit",
        "meta": f"job {at} · tiny-w2v2-espeak · fft · standard",  # its overrides, shared by every card, are not
        "stopped": None,
        "rows": [("activation before → after", "0.1235 → 2.5"), ("gain", 2.5 - 0.123456), ("neighbours", 0.25),
                 ("silence", None), ("phone_chance", 0.2), ("phone_lift", 8.14), ("robust_activation", 1.5),
                 ("selectivity", 0.75), ("transcript", "ah"), ("whisper_transcript", "(mumbling)"),
                 ("phone heard", "yes (elsewhere in this job: 0.20)"), ("phones", "AA SIL"), ("phone_at_target", "AA"),
                 ("heard_as_label", "false"), ("nearest_features", "U3 (0.50), U7 (0.25)")],
        "links": [("job folder", at), ("loss curve", f"{at}/loss_curve.png"), ("metrics", f"{at}/metrics.json"),
                  ("W&B run", f"{at}/wandb/offline-run-20261208_110000-b")],
        "overrides": ["model=tiny", "objective.unit=0:2"],  # as typed, not as Hydra writes it back
        "audio": f"{at}/targets/{NAME}/audio_16bit.wav", "spectrogram": f"{at}/targets/{NAME}/spectrogram.png",
        "_wav": job / "targets" / NAME / "audio.wav",
        "waveform": [0.1, 0.2], "trace": [0.0, 1.0, None], "trace_hop": 0.02, "trace_offset": 0.01,
        "seconds": 3 * 0.02, "mark": 0.01 + 24 * 0.02,
        "examples": [{"rank": 1, "activation": 3.0, "text": "a b", "where": "a.flac 1.24 s",
                      "clip": f"{at}/examples/L2-U5/1.wav", "spectrogram": f"{at}/examples/L2-U5/1.png",
                      "trace": [1, 2], "trace_seconds": [0.0, 0.02]}],
        "clip_seconds": 0.5,
        "text": f"{NAME.lower()} l2 unit {at} tiny-w2v2-espeak fft standard model=tiny objective.unit=0:2 ah  aa sil "
                "/aa/ phone:aa",
        "keys": {"unit": 5.0, "final_activation": 2.5, "gain": 2.5 - 0.123456, "phone_chance": 0.2, "phone_lift": 8.14,
                 "robust_activation": 1.5, "selectivity": 0.75, "layer": 0},
    }


def test_a_bare_record_makes_a_card_of_nones_and_a_stopped_one_says_so(tmp_path):
    _job(tmp_path, ".", [{"name": "L2-U1-channel", "layer": "L2", "stopped": "interrupted", "phone_hit": False,
                          "phones": [], "final_activation": 1.0, "heard_as_label": True, "phone": "S", "frame": 3,
                          "trace_hop_seconds": 0.02}])  # a phone without its lift; a frame without the trace's offset
    (card,) = page.collect_cards([tmp_path], page._Media(tmp_path, False))
    assert (card["meta"], card["stopped"], card["phone"], card["objective"], card["model"]) == (
        "", "interrupted", None, "None", None)
    assert card["rows"] == [("activation before → after", "None → 1.0"), ("gain", None), ("phone heard", "no"),
                            ("phones", "(none)"), ("heard_as_label", "true")]
    assert (card["trace"], card["seconds"], card["mark"], card["examples"], card["clip_seconds"]) == (
        None, 0.0, None, [], 1.0)
    assert card["links"] == [("job folder", "."), ("metrics", "metrics.json")]
    assert card["keys"] == {"unit": None, "final_activation": 1.0, "gain": None, "layer": 0}


def test_cards_stand_in_layer_then_unit_order_and_the_header_says_what_varies(tmp_path):
    def record(layer, unit):
        return {"name": f"{layer}-U{unit}", "layer": layer, "unit": unit, "objective": "channel", "model": "m"}

    _job(tmp_path, "10_seed=1", [record("L10", 2), record("L2", 11), record("L2", 3)], "- seed=1\n- steps=5\n")
    _job(tmp_path, "9_seed=2", [record("conv1", 0), {**record("logits", 0), "unit": None}, record("L2", 3),
                                {**record("L2", "all"), "unit": None}], "- seed=2\n- steps=5\n")
    cards = page.collect_cards([tmp_path], page._Media(tmp_path, False))
    assert [(c["layer"], c["keys"]["unit"], c["meta"]) for c in cards] == [
        ("conv1", 0, "job 9_seed=2 · m · seed=2"), ("L2", 3, "job 9_seed=2 · m · seed=2"),  # job 9 before job 10
        ("L2", 3, "job 10_seed=1 · m · seed=1"), ("L2", 11, "job 10_seed=1 · m · seed=1"),
        ("L2", None, "job 9_seed=2 · m · seed=2"),  # a whole layer's target after its units
        ("L10", 2, "job 10_seed=1 · m · seed=1"), ("logits", None, "job 9_seed=2 · m · seed=2")]
    assert [c["keys"]["layer"] for c in cards] == [0, 1, 1, 1, 1, 2, 3]
    assert cards[0]["text"].rstrip() == "conv1-u0 conv1 channel 9_seed=2 m seed=2 steps=5"  # no phone to find it by
    assert page.constant_overrides(cards) == ["steps=5"] and page.varying_keys(cards) == ["seed"]
    assert page.what_it_shows(cards, [tmp_path]) == f"7 audiations of m conv1, L2, L10, logits · sweep {tmp_path.name}"


def test_a_unit_of_an_examples_job_is_a_card_of_its_examples(tmp_path):
    unit = {"name": "L6-U4", "layer": "L6", "unit": 4, "stats": {"max": 2.0, "mean": 0.5}, "phone": "S",
            "phone_lift": 3.0, "examples": []}
    (tmp_path / "examples.json").write_text(json.dumps({"model": "tiny", "clip_seconds": 0.75, "units": [unit]}))
    (card,) = page.collect_cards([tmp_path], page._Media(tmp_path, False))
    assert card == {"source": 0, "name": "L6-U4", "layer": "L6", "character": None, "phone": "/S/ ×3.0",
                    "meta": "tiny · examples", "stopped": None, "rows": [("dataset max", 2.0), ("dataset mean", 0.5)],
                    "audio": None, "examples": [], "clip_seconds": 0.75, "text": "l6-u4 l6 . examples /s/ phone:s",
                    "keys": {"unit": 4.0, "final_activation": 2.0, "layer": 0}}
    assert page.what_it_shows([card], [tmp_path]) == f"1 unit' natural examples of L6 · sweep {tmp_path.name}"


@pytest.mark.parametrize("audiations,units,layers,heading", [
    (1, 0, ["L1"], "1 audiation of m L1"), (2, 1, ["L1"], "2 audiations and 1 unit' natural examples of m L1"),
    (0, 2, ["L1"], "2 units' natural examples of m L1"),
    (7, 0, [f"L{i}" for i in range(7)], "7 audiations of m L0, L1, L2, L3, L4, L5 …")])
def test_the_heading_counts_what_the_cards_are(tmp_path, audiations, units, layers, heading):
    cards = [{"objective": "unit", "model": "m", "layer": layers[i % len(layers)]} for i in range(audiations)]
    cards += [{"model": "m", "layer": layers[0]} for _ in range(units)]
    job = tmp_path / "2026-12-08" / "10-00-00"
    job.mkdir(parents=True)
    (job / "metrics.json").write_text("{}")
    assert page.what_it_shows(cards, [job]) == f"{heading} · job 2026-12-08/10-00-00"
    (tmp_path / "named").mkdir()
    (tmp_path / "named" / "metrics.json").write_text("{}")
    assert page.what_it_shows(cards, [job, tmp_path / "named"]).endswith(" · job 2026-12-08/10-00-00 vs job named")


def test_media_are_linked_from_the_page_or_embedded_and_never_from_outside_the_job(tmp_path):
    job = _job(tmp_path, "job #1", [{"name": "L2-U0", "layer": "L2"}])
    wav = job / "targets" / "L2-U0" / "audio_16bit.wav"
    assert page._Media(tmp_path, False)(wav, job) == "job%20%231/targets/L2-U0/audio_16bit.wav"
    assert page._Media(tmp_path / "job #1", False)(wav, job) == "targets/L2-U0/audio_16bit.wav"
    embedded = page._Media(tmp_path, True)
    assert embedded(wav, job) == "data:audio/wav;base64," + base64.b64encode(wav.read_bytes()).decode()
    png = job / "targets" / "L2-U0" / "spectrogram.png"
    assert embedded(png, job).startswith("data:image/png;base64,")
    (tmp_path / "secret.wav").write_bytes(b"x")
    assert embedded(job / ".." / "secret.wav", job) is None and embedded(job / "missing.wav", job) is None
    assert page._Media(tmp_path, True).link(job / "metrics.json", tmp_path) == "job%20%231/metrics.json"  # a link,
    # never embedded
    assert page._Media(tmp_path, False).link(tmp_path / "secret.wav", job) is None


def test_a_folder_that_is_not_there_or_holds_nothing_is_one_line(tmp_path):
    with pytest.raises(AudiationError, match=rf"^{tmp_path / 'none'}: no such folder$"):
        page.collect_cards([tmp_path / "none"], page._Media(tmp_path, False))
    with pytest.raises(AudiationError, match=rf"^no metrics.json with targets or examples.json under {tmp_path}, "
                                             rf"{tmp_path}$"):
        page.collect_cards([tmp_path, tmp_path], page._Media(tmp_path, False))


def test_json_in_a_script_block_has_no_character_the_html_parser_reads():
    text = page._json_for_script({"a": "</script><!--&"})
    assert text == '{"a":"\\u003c/script\\u003e\\u003c!--\\u0026"}' and json.loads(text) == {"a": "</script><!--&"}
