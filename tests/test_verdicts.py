"""Verdicts beside their chance rates: a judge that hears the same thing in every audiation hits a label
exactly as often in the other targets' audiations as in its own."""

from __future__ import annotations

from audiation.hearing.verdicts import annotate, words


def _unit(phone, heard_at_target):
    return {"phone": phone, "phones": [heard_at_target], "phone_at_target": heard_at_target, "frame": 24}


def test_a_judge_that_always_hears_the_same_phone_is_at_chance():
    records = [_unit("V", "V"), _unit("S", "V"), _unit("V", "V"), _unit("M", "V")]
    summary = annotate(records)["phone"]
    assert summary == {"hits": 2, "targets": 4, "hit_rate": 0.5, "chance_rate": 0.5}
    assert [r["phone_hit"] for r in records] == [True, False, True, False]
    assert records[0]["phone_chance"] == 1.0  # it hears V in every other audiation too
    assert records[1]["phone_chance"] == 0.0


def test_a_judge_that_hears_each_target_beats_chance():
    records = [_unit(p, p) for p in ("S", "M", "K", "T")]
    summary = annotate(records)["phone"]
    assert summary["hit_rate"] == 1.0 and summary["chance_rate"] == 0.0


def test_channel_audiations_are_judged_on_every_phone_heard():
    records = [{"phone": "S", "phones": ["TH", "S"], "frame": None},
               {"phone": "M", "phones": ["S"], "frame": None},
               {"phone": "SIL", "phones": [], "frame": None}]
    annotate(records)
    assert [r["phone_hit"] for r in records] == [True, False, True]  # nothing heard is silence
    assert records[0]["phone_chance"] == 0.5  # S is heard in one of the two others


def test_whisper_texts_and_letters():
    texts = [{"text": "moon", "whisper_transcript": " Moon."}, {"text": "star", "whisper_transcript": "(music)"},
             {"text": "blue fish", "whisper_transcript": "Blue fish!"}]
    summary = annotate(texts)
    assert [r["whisper_text_hit"] for r in texts] == [True, False, True]
    assert summary["whisper_text"]["chance_rate"] == 0.0
    letters = [{"character": "k", "whisper_transcript": "Okay."}, {"character": "s", "whisper_transcript": "Yes."},
               {"character": "b", "whisper_transcript": "B"}]
    annotate(letters)
    assert [r["whisper_letter_hit"] for r in letters] == [True, False, True]


def test_records_without_a_label_or_a_verdict_are_left_out():
    records = [{"phone": None, "phones": ["S"]}, {"phone": "S", "phones": None}, {"name": "x"}]
    assert annotate(records) == {}
    assert all("phone_hit" not in r for r in records)
    one = [_unit("S", "S")]
    assert annotate(one)["phone"]["chance_rate"] is None and one[0]["phone_chance"] is None


def test_words_drop_punctuation_and_case():
    assert words(" Moon, STAR. (music)") == ["moon", "star", "music"]
    assert words("Don't: 42 re-enter!") == ["don't", "42", "re-enter"] and words(None) == []


def test_rates_are_rounded_to_four_places_and_a_unit_where_nothing_is_heard_hears_silence():
    records = [_unit("S", "S"), _unit("M", "S"), _unit("K", "M")]
    assert annotate(records)["phone"] == {"hits": 1, "targets": 3, "hit_rate": 0.3333, "chance_rate": 0.3333}
    assert [r["phone_chance"] for r in records] == [0.5, 0.5, 0.0]
    quiet = [_unit("SIL", None), _unit("S", "S")]
    annotate(quiet)
    assert [r["phone_hit"] for r in quiet] == [True, True] and quiet[1]["phone_chance"] == 0.0


def test_only_a_single_letter_is_a_letter_target():
    records = [{"character": c, "whisper_transcript": "a"} for c in ("a", "ab", "1", 5, "", None, "'")]
    annotate(records)
    assert [r.get("whisper_letter_hit") for r in records] == [True] + [None] * 6


def test_the_report_puts_each_verdict_beside_its_chance_rate(tmp_path):
    import json

    from audiation.report import write_report

    targets = [{"name": f"L2-U{u}-unit", "layer": "L2", "unit": u, "final_activation": 1.0, "phone": p,
                "phones": [h], "phone_at_target": h, "frame": 24} for u, (p, h) in enumerate([("S", "S"), ("M", "S")])]
    annotate(targets)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "metrics.json").write_text(json.dumps({"run": {"name": "x"}, "targets": targets}))
    text = write_report(tmp_path).read_text()
    assert "| phone | L2 | 2 | 0.5 | 0.5 |" in text
    # each table under its header row: a table without one is not a table in Markdown
    assert "\n| measure | layer | targets | median | q1 | q3 | min | max | share_above_1 | share_lift_3 |\n|---|" in text
    assert "same job):\n\n| verdict | layer | targets | hit_rate | chance_rate |\n|---|---|---|---|---|\n| phone |" in text


def test_the_report_command_prints_the_report_and_where_it_is(tmp_path, capsys):
    import json

    from audiation.report import main

    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": [
        {"name": f"L2-U{unit}-unit", "layer": "L2", "unit": unit, "final_activation": float(unit)} for unit in (1, 2)]}))
    main([str(tmp_path)])
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "report.md").read_text() + \
        f"audiation: report in {tmp_path / 'report.md'} (and report.csv, report.png)\n"
    assert "| final_activation | L2 | 2 |" in printed


def test_the_reports_numbers_per_measure_and_layer_are_those_of_the_finished_targets(tmp_path):
    import json

    from audiation.report import write_report

    def target(layer, unit, **fields):
        return {"name": f"{layer}-U{unit}-unit", "layer": layer, "unit": unit, **fields}

    jobs = {"a": [target("L10", 0, final_activation=4.0, activation_ratio=0.5, phone_hit=True, phone_chance=0.0),
                  target("L10", 1, final_activation=None, activation_ratio=2.0, phone_hit=False),
                  target("L2", 0, final_activation=1.0, phone_lift=3.0),
                  target("L2", 1, final_activation=2.0, phone_lift=2.0),
                  target("L2", 2, final_activation=100.0, phone_lift=9.0, phone_hit=True, stopped="interrupted")],
            "b": [target("L2", 3, final_activation=3.0, phone_lift=4.0),
                  target("L2", 4, final_activation=4.0, activation_ratio=1.0, whisper_text_hit=True),
                  target("L10", 2, final_activation=float("nan"), activation_ratio=1.5, phone_hit=False, phone_chance=0.5)]}
    for job, targets in jobs.items():
        (tmp_path / job).mkdir()
        (tmp_path / job / "metrics.json").write_text(json.dumps({"run": {}, "targets": targets}))
    header = "| measure | layer | targets | median | q1 | q3 | min | max | share_above_1 | share_lift_3 |\n" + "|---" * 10
    assert write_report(tmp_path).read_text() == f"""# Audiation report: {tmp_path.name}

{header}|
| final_activation | L2 | 4 | 2.5 | 1.75 | 3.25 | 1 | 4 |  |  |
| final_activation | L10 | 1 | 4 | 4 | 4 | 4 | 4 |  |  |
| activation_ratio | L2 | 1 | 1 | 1 | 1 | 1 | 1 | 0 |  |
| activation_ratio | L10 | 3 | 1.5 | 1 | 1.75 | 0.5 | 2 | 0.667 |  |
| phone_chance | L10 | 2 | 0.25 | 0.125 | 0.375 | 0 | 0.5 |  |  |
| phone_lift | L2 | 3 | 3 | 2.5 | 3.5 | 2 | 4 |  | 0.667 |

Each judge's verdict beside its chance rate (the label heard in the other targets' audiations of the same job):

| verdict | layer | targets | hit_rate | chance_rate |
|---|---|---|---|---|
| whisper_text | L2 | 1 | 1 |  |
| phone | L10 | 3 | 0.333 | 0.25 |

1 unfinished target(s) (interrupted or stopped) are left out.
"""
    assert (tmp_path / "report.csv").read_text().splitlines() == [
        "measure,layer,targets,median,q1,q3,min,max,share_above_1,share_lift_3",
        "final_activation,L2,4,2.5,1.75,3.25,1.0,4.0,,", "final_activation,L10,1,4.0,4.0,4.0,4.0,4.0,,",
        "activation_ratio,L2,1,1.0,1.0,1.0,1.0,1.0,0.0,", "activation_ratio,L10,3,1.5,1.0,1.75,0.5,2.0,0.6666666666666666,",
        "phone_chance,L10,2,0.25,0.125,0.375,0.0,0.5,,", "phone_lift,L2,3,3.0,2.5,3.5,2.0,4.0,,0.6666666666666666"]
