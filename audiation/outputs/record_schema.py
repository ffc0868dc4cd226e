"""The record schema: every field of a target's record (`targets/<name>/target.json`), with its label,
unit, meaning and whether higher is better. It is the contract between the job that writes records and
everything that reads them: W&B's table and summary, the browser's cards and grid, the report. A new
measure is one `Field` here and appears in all of them; a test fails when a job writes a field that is
not declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    meaning: str
    unit: str = ""
    better: str | None = None  # "higher", "lower", or "neither" (a measure with no better end: F0)
    measure: bool = False  # a number to compare runs by: W&B summary (mean, median), the report, the grid
    table: bool = False  # a column of W&B's per-target table

    def describe(self) -> str:
        """The meaning in one line, with the unit and which way is better (tooltips, the README)."""
        extra = [part for part in (self.unit and f"in {self.unit}",
                                   self.better in ("higher", "lower") and f"{self.better} is better") if part]
        return self.meaning + (f" ({'; '.join(extra)})" if extra else "")


def _measure(key, label, meaning, unit="", better="higher", table=True):
    return Field(key, label, meaning, unit, better, measure=True, table=table)


FIELDS = (
    # which target it is
    Field("name", "name", "the target's name: layer, unit (or text, direction) and objective", table=True),
    Field("layer", "layer", "the layer: 0 is the transformer's input, L1..LN its layers, conv/mlp/logits", table=True),
    Field("unit", "unit", "the unit (channel) of the layer", table=True),
    Field("text", "text", "objective=text: the text the audiation should say", table=True),
    Field("direction_index", "direction", "objective=direction: which row of the directions file"),
    Field("objective", "objective", "the objective's name (unit, channel, layer, text, direction)", table=True),
    Field("frame", "target frame", "a unit at one frame (objective kind unit): the frame it is driven at"),
    Field("sample", "sample", "samples > 1: which of the target's samples", table=True),
    Field("group", "group", "the target the samples belong to"),
    Field("model", "model", "the model's short name"),
    Field("parameterization", "signal", "the parameterization's name"),
    Field("augmentation", "augmentation", "the augmentation's name"),
    Field("character", "character", "model.layer=logits: the character this CTC output stands for"),
    # how the optimisation went
    _measure("initial_activation", "activation before", "the objective's activation term on the starting signal, "
             "clean", table=True),
    _measure("final_activation", "activation after", "the activation term on the final signal, clean (no "
             "augmentation)"),
    _measure("gain", "gain", "activation after minus before; computed from the two, not stored", table=False),
    Field("initial_terms", "terms before", "every term of the objective on the starting signal"),
    Field("final_terms", "terms after", "every term of the objective on the final signal"),
    Field("steps", "steps", "optimisation steps taken"),
    Field("stopped", "stopped", "why the optimisation stopped early (null: it ran every step)"),
    Field("no_progress", "no progress", "the activation did not move, or a GELU output only rose to 0"),
    # quality
    _measure("robust_activation", "robust activation", "the activation's mean over fresh augmentation draws"),
    _measure("selectivity", "selectivity", "a unit at one frame: its activation over the mean |activation| "
             "of the other units at the frame"),
    _measure("silence_ratio_db", "silence ratio", "a unit at one frame: energy away from the frame relative to "
             "energy near it", "dB", "lower"),
    _measure("activation_ratio", "ratio to natural max", "activation after over the unit's maximum on "
             "quality.data"),
    _measure("activation_ratio_p99", "ratio to natural p99", "activation after over the unit's 99th "
             "percentile on quality.data"),
    Field("transcript", "heard", "what the model itself transcribes in the audiation (greedy CTC)", table=True),
    _measure("cer", "CER", "character error rate of that transcript against the text", better="lower"),
    _measure("heard_share", "heard share", "model.layer=logits: share of frames where the model hears the "
             "target character"),
    _measure("heard_share_of_letters", "heard share of letters", "model.layer=logits: of the frames where the "
             "model hears any letter, the share that are the target"),
    Field("ensemble_transcript", "ensemble heard", "what the optimised ensemble transcribes", table=True),
    _measure("ensemble_cer", "ensemble CER", "the ensemble's character error rate", better="lower"),
    _measure("ensemble_heard_share", "ensemble heard share", "share of frames where the ensemble hears the "
             "character"),
    _measure("ensemble_heard_share_of_letters", "ensemble heard share of letters", "of the frames where the "
             "ensemble hears any letter, the share that are the target"),
    Field("listener_transcript", "listener heard", "what quality.listener, a model not optimised, transcribes",
          table=True),
    _measure("listener_cer", "listener CER", "the listener's character error rate", better="lower"),
    _measure("listener_heard_share", "listener heard share", "share of frames where the listener hears the "
             "character"),
    _measure("listener_heard_share_of_letters", "listener heard share of letters", "of the frames where the "
             "listener hears any letter, the share that are the target"),
    _measure("sibling_similarity", "sibling similarity", "samples > 1: cosine similarity of the spectral "
             "profile to the other samples of the target", better="lower"),
    # quality.judges: what tools built for human speech hear (audiation/hearing/judges.py)
    Field("phones", "phones heard", "the ARPAbet phones pocketsphinx's phone recognizer hears (silence and "
          "noise left out)", table=True),
    Field("phone_at_target", "phone at target", "a unit at one frame: the phone (or SIL) pocketsphinx hears "
          "spanning the target frame", table=True),
    _measure("speech_probability", "speech probability", "silero-vad's mean speech probability over 32 ms "
             "windows"),
    _measure("f0_hz", "F0", "Praat's median pitch over voiced frames (null below 10% voiced)", "Hz", better="neither"),
    _measure("voiced_share", "voiced share", "share of Praat's pitch frames that are voiced", better="neither"),
    _measure("hnr_db", "HNR", "Praat's mean harmonics-to-noise ratio", "dB"),
    _measure("f1_hz", "F1", "Praat's median first formant over voiced frames (null below 10% voiced)", "Hz", better="neither"),
    _measure("f2_hz", "F2", "Praat's median second formant over voiced frames (null below 10% voiced)", "Hz", better="neither"),
    # quality.whisper: what Whisper tiny.en, trained on 680,000 h of real speech, hears (its full 30-s window)
    Field("whisper_transcript", "Whisper heard", "Whisper tiny.en's greedy transcript of the audiation", table=True),
    _measure("whisper_no_speech", "Whisper no-speech", "Whisper's probability of its no-speech token at the "
             "first decoding step (~0.004 on human speech, 0.9 on noise)", better="lower"),
    _measure("whisper_cer", "Whisper CER", "objective=text: the character error rate of Whisper's transcript",
             better="lower"),
    # every verdict beside its chance rate: the label heard in this audiation, and in the other targets' (verdicts.py)
    Field("phone_hit", "phone heard", "pocketsphinx hears the unit's phone name in its audiation (at the target "
          "frame for unit audiations)", table=True),
    _measure("phone_chance", "phone heard elsewhere", "share of the job's other audiations in which pocketsphinx "
             "hears this unit's phone: the chance rate of phone_hit", better="neither"),
    Field("whisper_text_hit", "Whisper heard the text", "every word of the target's text is in Whisper's "
          "transcript", table=True),
    _measure("whisper_text_chance", "text heard elsewhere", "share of the job's other audiations whose Whisper "
             "transcript holds this text: the chance rate", better="neither"),
    Field("whisper_letter_hit", "Whisper heard the letter", "Whisper's transcript is the target's letter (or its "
          "name)", table=True),
    _measure("whisper_letter_chance", "letter heard elsewhere", "share of the job's other audiations Whisper hears "
             "as this letter: the chance rate", better="neither"),
    # with quality.data: the unit's name, the phone of its top natural frames (audiation/hearing/phones.py)
    Field("phone", "phone", "the phone most over-represented (highest lift, at least 15% share) among the unit's "
          "top 100 frames on quality.data", table=True),
    _measure("phone_lift", "phone lift", "that phone's share of the top frames over its share of all frames"),
    _measure("phone_share", "phone share", "that phone's share of the unit's top frames"),
    Field("heard_as_label", "heard as its phone", "the judge hears the unit's phone in its audiation (at the "
          "target frame where there is one)", table=True),
    Field("judges_note", "judges note", "why the judges' numbers are null (silent, under 0.1 s, not finite)"),
    Field("measures_note", "measures note", "which measures failed on the saved signal, and why"),
    # objective=feature: what the features job measured of the feature
    Field("firing_frequency", "firing frequency", "objective=feature: share of the held-out frames the feature is "
          "on in (its SAE's features.json)", table=True),
    Field("nearest_features", "nearest features", "objective=feature: the features whose decoder rows are "
          "closest (feature, cosine)"),
    # for the page and for resuming
    Field("activation_trace", "trace", "the unit's activation at every frame of its audiation"),
    Field("trace_hop_seconds", "trace hop", "seconds between the trace's frames", "s"),
    Field("trace_offset_seconds", "trace offset", "time of the trace's first frame", "s"),
    Field("waveform", "waveform", "the audiation's peak envelope, for drawing"),
    Field("examples", "natural examples", "with quality.data: the unit's top natural examples"),
    Field("settings", "settings", "everything that shaped the result: a rerun skips the target only when equal"),
    Field("files", "files", "the target's files, relative to the job folder"),
)
BY_KEY = {f.key: f for f in FIELDS}
MEASURES = tuple(f.key for f in FIELDS if f.measure)
TABLE_COLUMNS = tuple(f.key for f in FIELDS if f.table)


def undeclared(record: dict) -> list[str]:
    """Fields of a record that the schema does not declare."""
    return [key for key in record if key not in BY_KEY]


def for_page() -> dict:
    """{key: {label, meaning, better}} for the browser's rows, tooltips and grid colours."""
    return {f.key: {"label": f.label, "meaning": f.describe(), "better": f.better, "unit": f.unit}
            for f in FIELDS if f.measure or f.unit}


# --- what a value read from disk must be: records and examples come from files anyone may have edited -----

def _text(value) -> bool:
    return isinstance(value, str)


def is_whole(value) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _flag(value) -> bool:
    return isinstance(value, bool)


def _numbers(value) -> bool:  # null stands for a value that was not finite
    return isinstance(value, list) and all(v is None or is_number(v) for v in value)


def _texts(value) -> bool:
    return isinstance(value, list) and all(map(_text, value))


def _terms(value) -> bool:
    return isinstance(value, dict) and all(v is None or is_number(v) for v in value.values())


def _table(value) -> bool:
    return isinstance(value, dict)


def _paths(value) -> bool:
    return isinstance(value, dict) and all(map(_text, value.values()))


def _pairs(value) -> bool:
    return isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 and is_whole(p[0]) and is_number(p[1])
                                           for p in value)


EXAMPLE = {"rank": is_whole, "file": _text, "time_seconds": is_number, "activation": is_number, "clip": _text,
           "spectrogram": _text, "text": _text, "clip_seconds": is_number, "trace_seconds": _numbers, "trace": _numbers}


def _examples(value) -> bool:
    return isinstance(value, list) and all(isinstance(e, dict) and not _misfits(e, EXAMPLE) for e in value)


# The kind of every field that is not a measure (measures are numbers); null fits every field.
KINDS = {
    "name": _text, "layer": _text, "unit": is_whole, "text": _text, "direction_index": is_whole, "objective": _text,
    "frame": is_whole, "sample": is_whole, "group": _text, "model": _text, "parameterization": _text,
    "augmentation": _text, "character": _text, "initial_terms": _terms, "final_terms": _terms, "steps": is_whole,
    "stopped": _text, "no_progress": _flag, "transcript": _text, "ensemble_transcript": _text,
    "listener_transcript": _text, "phones": _texts, "phone_at_target": _text, "phone": _text,
    "heard_as_label": _flag, "whisper_transcript": _text, "phone_hit": _flag, "whisper_text_hit": _flag,
    "whisper_letter_hit": _flag, "judges_note": _text, "measures_note": _text, "firing_frequency": is_number,
    "nearest_features": _pairs,
    "activation_trace": _numbers, "trace_hop_seconds": is_number, "trace_offset_seconds": is_number,
    "waveform": _numbers, "examples": _examples, "settings": _table, "files": _paths,
    **{key: is_number for key in MEASURES},
}
# A unit of an examples job's `examples.json`: its natural examples and numbers, no audiation.
EXAMPLES_UNIT = {"name": _text, "layer": _text, "unit": is_whole, "stats": _terms, "examples": _examples,
                 "phone": _text, "phone_lift": is_number, "phone_share": is_number}


# A job's `run` in `metrics.json`: the totals a rerun adds to.
RUN = {"runs": is_whole, "wall_seconds": is_number, "loop_seconds": is_number, "target_steps": is_whole,
       "batch_steps": is_whole}


def _misfits(values: dict, kinds: dict, required: tuple[str, ...] = ()) -> list[str]:
    return [key for key in required if values.get(key) is None] + [
        key for key, value in values.items() if value is not None and key in kinds and not kinds[key](value)]


def misfits(record, required: tuple[str, ...] = ("name", "layer")) -> list[str]:
    """The fields of a record (read from disk) that are missing or not of their kind: [] when it fits."""
    return _misfits(record, KINDS, required) if isinstance(record, dict) else ["record"]


def unit_misfits(unit) -> list[str]:
    """The same for a unit of `examples.json`."""
    required = ("name", "layer", "unit", "stats", "examples")
    return _misfits(unit, EXAMPLES_UNIT, required) if isinstance(unit, dict) else ["record"]


def run_misfits(run: dict) -> list[str]:
    """The same for the `run` of a job's `metrics.json`."""
    return _misfits(run, RUN)
