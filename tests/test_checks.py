"""The single-value checks (`config.checks`), each refusal matched whole: what a user reads is the one line."""

from __future__ import annotations

import numpy as np
import pytest

from audiation.config import checks
from audiation.errors import AudiationError


def _refusal(check, *args) -> str:
    with pytest.raises(AudiationError) as refused:
        check(*args)
    return str(refused.value)


@pytest.mark.parametrize("spec,message", [
    ("0:8:0", "objective.unit=0:8:0 has a step of 0: use 1 or more"),
    ("0:9", "objective.unit=0:9 runs past the last unit of L2 (valid: 0..7)"),
    ("8:", "objective.unit=8: runs past the last unit of L2 (valid: 0..7)"),
    ("5:3", "objective.unit=5:3 selects no units of L2 (valid: 0..7)"),
    ([], "objective.unit=[] selects no units of L2 (valid: 0..7)"),
    ("x", "objective.unit=x is not a unit index (valid: 0..7)"),
    (8, "objective.unit=8 is out of range for L2 (valid: 0..7)"),
    ("-1", "objective.unit=-1 is out of range for L2 (valid: 0..7)"),
    ([1, 2, 1], "objective.unit names unit 1 twice: each target once")])
def test_a_unit_list_that_cannot_be_read_is_refused_in_one_line(spec, message):
    assert _refusal(checks.parse_units, spec, 8, "L2") == message


def test_units_read_as_a_user_writes_them():
    assert checks.parse_units("all", 3, "L2") == [0, 1, 2] and checks.parse_units(" 1 : 7 : 3 ", 8, "L2") == [1, 4]
    assert checks.parse_units(":2", 8, "L2") == [0, 1] and checks.parse_units("6:", 8, "L2") == [6, 7]
    assert checks.parse_units("0:8", 8, "L2") == list(range(8)) and checks.parse_units([3, "5"], 8, "L2") == [3, 5]
    assert checks.parse_units(7, 8, "L2", name="units") == [7]
    assert _refusal(checks.parse_units, "9", 8, "L2", "units") == "units=9 is out of range for L2 (valid: 0..7)"


def test_a_direction_that_is_not_a_vector_of_the_layer_is_refused_in_one_line(tmp_path):
    np.save(tmp_path / "two.npy", np.ones((2, 4), dtype=np.float32))
    assert checks.parse_directions(str(tmp_path / "two.npy"), 4).shape == (2, 4)
    assert checks.parse_directions([1, 0, 0, 0], 4).tolist() == [[1, 0, 0, 0]]
    assert checks.parse_directions(2.0, 1).tolist() == [[2.0]]
    missing = tmp_path / "none.npy"
    assert _refusal(checks.parse_directions, str(missing), 4) == f"objective.direction={missing}: no such .npy file"
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    assert _refusal(checks.parse_directions, str(tmp_path / "bad.npy"), 4).startswith(
        f"objective.direction={tmp_path / 'bad.npy'} could not be read: ")
    np.savez(tmp_path / "both.npz", a=np.ones(4))
    assert _refusal(checks.parse_directions, str(tmp_path / "both.npz"), 4) == (
        f"objective.direction={tmp_path / 'both.npz'} is an .npz archive; give one .npy array")
    assert _refusal(checks.parse_directions, ["a", "b"], 2) == (
        "objective.direction=['a', 'b'] is not numbers: give a .npy array of floats or an inline list of numbers")
    assert _refusal(checks.parse_directions, [1, 2, 3], 4) == (
        "objective.direction has shape (1, 3); expected (4,) or (k, 4)")
    assert checks.parse_directions([[1, 0], [0, 2]], 2).tolist() == [[1, 0], [0, 2]]  # a stack, inline
    for vector in ([0, 0], [1, float("nan")], [float("inf"), 1], [[1, 0], [0, 0]]):  # each vector of a stack
        assert _refusal(checks.parse_directions, vector, 2) == "objective.direction contains a zero or non-finite vector"


def test_a_text_is_spelled_in_the_vocabulary_of_the_model_or_refused_in_one_line():
    tokens = ["<pad>", "|", "m", "o", "n", "'"]
    assert checks.parse_texts(" Moon  on ", tokens, "tiny") == [("Moon on", [2, 3, 3, 4, 1, 3, 4])]
    assert checks.parse_texts(["no", "on"], tokens, "tiny") == [("no", [4, 3]), ("on", [3, 4])]
    assert checks.parse_texts("x", None, "w", encode=lambda text: [len(text)]) == [("x", [1])]
    assert checks.parse_texts(["x", " yz "], None, "w", encode=lambda text: [len(text)]) == [("x", [1]), ("yz", [2])]
    assert _refusal(checks.parse_texts, "moon", None, "wav2vec2") == (
        "objective=text needs a CTC model with a vocabulary; wav2vec2 has none")
    for spec in ("", " ", [], ["moon", 3], None):
        assert _refusal(checks.parse_texts, spec, tokens, "tiny") == "objective.text must be a word or a list of words"
    assert _refusal(checks.parse_texts, "zoom", tokens, "tiny") == (
        "objective.text=zoom: 'z' not in the vocabulary of tiny (it has: mon')")
    assert _refusal(checks.parse_texts, "zoo?", tokens, "tiny") == (
        "objective.text=zoo?: '?', 'z' not in the vocabulary of tiny (it has: mon')")
    assert _refusal(checks.parse_texts, ["moon", " moon "], tokens, "tiny") == (
        "objective.text names a text twice (or two that make the same target name): each target once")
    mixed = ["<pad>", "|", "M", "o"]  # two cases: letters are taken as written
    assert checks.parse_texts("Mo", mixed, "mixed") == [("Mo", [2, 3])]
    assert _refusal(checks.parse_texts, "mo", mixed, "mixed").startswith("objective.text=mo: 'm' not in")


def test_ctc_needs_a_frame_per_character_and_a_blank_between_two_equal_ones():
    assert checks.frames_needed([2, 3, 3, 4]) == 5 and checks.frames_needed([3, 3, 3]) == 5
    assert checks.frames_needed([1, 2, 1]) == 3 and checks.frames_needed([]) == 0


@pytest.mark.parametrize("args,message", [
    ((True, "steps", int), "steps=True must be a number"),
    (("x", "lr"), "lr=x must be a number"),
    (("nan", "lr"), "lr=nan must be a finite number"),
    (("inf", "lr"), "lr=inf must be a finite number"),
    ((2.5, "steps", int), "steps=2.5 must be a whole number"),
    ((0.0, "seconds"), "seconds=0 must be > 0"),
    ((-1, "gain", float, 0.0, False), "gain=-1 must be >= 0"),
    ((5, "share", float, 0.0, True, True, 1.0), "share=5 must be at most 1"),
    ((5, "share", float, 0.0, True, True, 1.0, None, "is more than all"), "share=5 is more than all"),
    ((1, "p", float, 0.0, True, True, np.inf, 1.0), "p=1 must be below 1")])
def test_a_number_out_of_its_range_is_refused_in_one_line(args, message):
    assert _refusal(checks.number, *args) == message


def test_a_number_in_its_range_is_returned_as_its_kind():
    assert checks.number("3", "steps", int) == 3 and isinstance(checks.number(3.0, "steps", int), int)
    assert checks.number(0, "gain", float, 0.0, False) == 0.0 and checks.number(1, "share", maximum=1.0) == 1.0
    assert checks.number("inf", "seconds", finite=False) == float("inf")
    assert checks.number(0.999, "p", below=1.0) == 0.999


def test_a_folder_that_cannot_be_written_is_refused_in_one_line(tmp_path):
    assert checks.writable_folder(tmp_path / "new" / "deeper", "out") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []  # tried, and nothing left behind
    for empty in (None, "", "  "):
        assert _refusal(checks.writable_folder, empty, "out") == "out is empty: it must name a folder"
    (tmp_path / "file").write_text("")
    assert _refusal(checks.writable_folder, tmp_path / "file" / "job", "out") == (
        f"out={tmp_path / 'file' / 'job'} cannot be a folder: {tmp_path / 'file'} is a file")
    assert _refusal(checks.writable_folder, "/proc/audiation-job", "out").startswith(
        "out=/proc/audiation-job is not writable (/proc: ")  # even for root: tried, not read off the permissions


def test_keys_no_schema_declares_the_logger_and_threads(monkeypatch):
    from omegaconf import OmegaConf

    from audiation.config import config_schema

    monkeypatch.setattr(config_schema, "unknown_keys", lambda cfg: ["stpes", "a.b", "c"])
    assert _refusal(checks.known_keys, None) == (
        "stpes is not a key of this config (nor are 2 more): check its spelling against conf/ (or --help)")
    monkeypatch.setattr(config_schema, "unknown_keys", lambda cfg: ["stpes", "c"])
    assert _refusal(checks.known_keys, None).startswith("stpes is not a key of this config (nor are 1 more): ")
    monkeypatch.setattr(config_schema, "unknown_keys", lambda cfg: ["stpes"])
    assert _refusal(checks.known_keys, None) == "stpes is not a key of this config: check its spelling against conf/ (or --help)"
    monkeypatch.setattr(config_schema, "unknown_keys", lambda cfg: [])
    checks.known_keys(None)
    assert _refusal(checks.check_logger, OmegaConf.create({"enabled": True, "mode": "bogus"})) == (
        "logger.mode=bogus is not one of auto, online, offline, disabled")
    checks.check_logger(OmegaConf.create({"enabled": False, "mode": "bogus"}))  # no logger: its mode is not read
    checks.check_logger(None)
    assert checks.threads("auto") is None and checks.threads(2) == 2


def test_a_name_that_becomes_a_file_name_is_refused_whole():
    assert checks.safe_name("my.run+2", "objective.name") == "my.run+2"
    assert _refusal(checks.safe_name, "../x", "objective.name") == (
        "objective.name='../x' cannot be part of a file name: use up to 64 letters, digits and _ . + - "
        "(not starting with . or holding ..)")
    assert checks.safe_name("a" * 64, "n") and _refusal(checks.safe_name, "a" * 65, "n").startswith("n='aaa")
    assert _refusal(checks.safe_name, "a..b", "n").startswith("n='a..b' cannot")
