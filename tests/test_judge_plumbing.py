"""The judges' plumbing (`hearing.judges`), with stand-in judges: what a signal is turned into before any judge
hears it, how verdicts and failures of each kind of judge are gathered, the fields of a record, the workers a
job leaves room for. (What the real judges hear is in test_judges.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from audiation.hearing import judges
from audiation.hearing.judges import About, Judge


def test_a_pocketsphinx_token_is_a_phone_without_stress_or_none_for_silence_and_noise():
    assert [judges.phone_of(t) for t in ("AH1", "S", "ER0", "SIL", "+NSN+", "+BREATH+")] == [
        "AH", "S", "ER", None, None, None]


def test_pcm_is_16_bit_clipped_at_full_scale():
    assert np.frombuffer(judges.pcm(np.array([0.0, 0.5, -1.0, 2.0, -3.0])), np.int16).tolist() == [
        0, 16383, -32767, 32767, -32767]


def test_a_signal_is_prepared_at_a_peak_of_a_half_or_said_why_not():
    rate = judges.SAMPLE_RATE
    rows = np.zeros((4, rate), np.float32)
    rows[0, 10] = 0.01
    rows[1, 10] = np.nan
    rows[2, 5] = 0.5e-4  # under the silence floor
    rows[3, :] = np.linspace(-2, 1, rate)
    x, notes = judges.prepared(rows, rate)
    assert notes == [None, "not finite", "silent", None]
    assert x.dtype == np.float32 and x.shape == (4, rate) and np.isfinite(x).all()
    assert x[0, 10] == pytest.approx(0.5) and np.abs(x[3]).max() == pytest.approx(0.5)
    assert x[3, 0] == pytest.approx(-0.5) and x[3, -1] == pytest.approx(0.25)  # scaled, not clipped
    assert x[2, 5] == pytest.approx(0.25)  # 0.5e-4 / 1e-4 x 0.5: a near-silent row is not blown up to full scale
    short, (note,) = judges.prepared(np.ones((1, int(judges.MIN_SECONDS * rate) - 1)), rate)
    assert note == f"under {judges.MIN_SECONDS} s"
    assert judges.prepared(np.ones((1, int(judges.MIN_SECONDS * rate))), rate)[1] == [None]
    resampled, notes = judges.prepared(np.full((2, 8000), 0.1, np.float32), 8000)  # to the judges' 16 kHz
    assert resampled.shape == (2, 16000) and notes == [None, None]
    assert judges.prepared(np.full((1, 799), 0.1), 8000)[1] == [f"under {judges.MIN_SECONDS} s"]  # at its own rate
    assert judges.prepared(np.full((1, 900), 0.1), 8000)[1] == [None]


def _judge(name, fields, hear, batched):
    return Judge(name, fields, lambda device: hear, batched)


def test_neural_judges_give_every_row_their_fields_and_a_failure_is_a_note_for_all():
    seen = []

    def loud(signals, abouts):
        seen.append((tuple(signals.shape), [a.text for a in abouts]))
        return [{"peak": float(row.abs().max()), "extra": 1} for row in signals]

    def wrong(signals, abouts):
        return [{"n": 1}]

    def broken(signals, abouts):
        raise RuntimeError("x" * 300)

    panel = [_judge("loud", ("peak",), loud, True), _judge("wrong", ("n",), wrong, True),
             _judge("broken", ("b",), broken, True)]
    x = np.array([[0.5, -0.25], [0.125, 0.0]], np.float32)
    heard, notes = judges.hear_batch(panel, x, [About(None, "a"), About(0.5, "b")], "cpu")
    assert heard == [{"loud": {"peak": 0.5}}, {"loud": {"peak": 0.125}}]  # only its declared fields
    assert seen == [((2, 2), ["a", "b"])]
    assert notes == ["wrong failed: ValueError: 1 verdicts for 2 signals", f"broken failed: RuntimeError: {'x' * 200}"]
    assert judges.hear_batch([], x, [About()] * 2, "cpu") == ([{}, {}], [])
    assert judges.hear_batch(panel, x[:0], [], "cpu") == ([], [])


def test_cpu_judges_hear_one_signal_each_and_a_failure_costs_only_their_fields():
    abouts = []
    ok = _judge("ok", ("f0",), lambda x, about: abouts.append(about) or {"f0": float(x.sum()), "more": 2}, False)
    missing = _judge("missing", ("hnr",), lambda x, about: {}, False)
    heard, notes = judges.hear_one([ok, missing], np.array([1.0, 2.0]), About(0.25))
    assert heard == {"ok": {"f0": 3.0}} and notes == ["missing failed: KeyError: 'hnr'"]
    assert abouts == [About(0.25)]


def test_a_verdict_has_every_judges_fields_in_order_and_says_why_some_are_null():
    a, b = _judge("a", ("x", "y"), None, False), _judge("b", ("z",), None, True)
    assert list(judges.verdict((a, b), {"a": {"x": 1, "y": 2}}, ["b failed: E"]).items()) == [
        ("x", 1), ("y", 2), ("z", None), ("judges_note", "b failed: E")]
    assert judges.verdict((a,), {"a": {"x": 1}}, [])["judges_note"] is None
    assert judges.verdict((a,), {}, ["one", "two"]) == {"x": None, "y": None, "judges_note": "one; two"}
    assert [judges._rounded(v, 2) for v in (None, float("nan"), float("inf"), 1.23456, 2)] == [None, None, None, 1.23,
                                                                                              2.0]


def test_a_signal_with_nothing_to_judge_is_its_note_and_nulls(monkeypatch):
    monkeypatch.setattr(judges, "hearer", lambda *a: pytest.fail("no judge hears a silent signal"))
    record = judges.judge(np.zeros(16000), 16000)
    assert record["judges_note"] == "silent" and set(record) == {*judges.FIELDS, "judges_note"}
    assert all(record[field] is None for field in judges.FIELDS)


@pytest.mark.parametrize("cores,threads,load,workers", [(16, 1, 0.0, 14), (16, 4, 0.0, 11), (16, 1, 9.6, 6),
                                                         (2, 1, 0.0, 1), (2, 4, 0.0, 1), (8, 2, 2.4, 5)])
def test_the_judges_workers_use_the_cores_the_loop_and_the_machine_leave(monkeypatch, cores, threads, load, workers):
    monkeypatch.setattr(judges, "cores", lambda: cores)
    monkeypatch.setattr(judges.os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert judges.worker_count(threads) == workers


def test_the_judges_chosen_by_the_options():
    names = lambda chosen: [j.name for j in chosen]  # noqa: E731
    every = names(judges.JUDGES)
    assert names(judges.chosen(True, True)) == every
    assert names(judges.chosen(True, False)) == [n for n in every if n != "whisper"]
    assert names(judges.chosen(False, True)) == ["whisper"] and judges.chosen(False, False) == ()
