"""A judge's verdict beside its chance rate: does it hear the target's label in the target's audiation more
often than in the other targets' audiations of the same job?

A judge that hears "V" in every signal "hears" a unit named /V/ in its own audiation every time; what
says anything is the hit rate against the rate at which the same judge hears that label in the audiations
made for other targets (a permutation baseline: every pairing of a label with another target's verdict).

Three verdicts, each `label(record)` (what should be heard) and `verdict(record)` (what was heard):
- `phone`: pocketsphinx hears the unit's phone name (at the target frame for unit audiations, anywhere else);
- `whisper_text`: Whisper's transcript holds every word of the target's text;
- `whisper_letter`: Whisper's transcript is the target's letter (the letter alone, or its English name).

`annotate(records)` adds to each record `<verdict>_hit` and `<verdict>_chance` (the share of the other
targets' audiations in which this target's label is heard), and returns the job's summary per verdict:
hits, targets, hit rate, chance rate.
"""

from __future__ import annotations

import re

LETTER_NAMES = {"a": "a ay eh", "b": "b be bee", "c": "c see sea", "d": "d dee", "e": "e ee", "f": "f ef eff",
                "g": "g gee", "h": "h aitch", "i": "i eye aye", "j": "j jay", "k": "k kay okay", "l": "l el ell",
                "m": "m em", "n": "n en", "o": "o oh owe", "p": "p pee pea", "q": "q queue cue", "r": "r are ar",
                "s": "s es ess", "t": "t tea tee", "u": "u you", "v": "v vee", "w": "w double-u", "x": "x ex",
                "y": "y why", "z": "z zee zed"}


def words(text: str | None) -> list[str]:
    """Lower-case words, punctuation dropped (Whisper writes "Moon." for moon)."""
    return re.sub(r"[^a-z0-9' -]+", " ", (text or "").lower()).split()


def _phone_label(record):
    return record.get("phone") or None


def _phone_verdict(record):
    if record.get("phones") is None:
        return None
    if record.get("frame") is not None:  # a unit at one frame: what is heard there
        return {record.get("phone_at_target") or "SIL"}
    return set(record["phones"]) or {"SIL"}


def _text_label(record):
    return tuple(words(record.get("text"))) or None


def _letter_label(record):
    character = record.get("character")
    return character if isinstance(character, str) and len(character) == 1 and character.isalpha() else None


def _transcript(record):
    transcript = record.get("whisper_transcript")
    return None if transcript is None else words(transcript)


VERDICTS = {
    "phone": (_phone_label, _phone_verdict, lambda label, heard: label in heard),
    "whisper_text": (_text_label, _transcript, lambda label, heard: all(w in heard for w in label)),
    "whisper_letter": (_letter_label, _transcript,
                       lambda label, heard: " ".join(heard).replace(".", "") in LETTER_NAMES[label].split()),
}


def annotate(records: list[dict]) -> dict[str, dict]:
    """Each verdict's hit and chance rate, per record and for the job ({} for verdicts with no target)."""
    summary = {}
    for name, (label_of, verdict_of, hit) in VERDICTS.items():
        rows = [(r, label_of(r), verdict_of(r)) for r in records]
        judged = [(r, label, heard) for r, label, heard in rows if label is not None and heard is not None]
        if not judged:
            continue
        for record, label, heard in judged:
            others = [h for other, _, h in judged if other is not record]
            record[f"{name}_hit"] = bool(hit(label, heard))
            record[f"{name}_chance"] = (round(sum(hit(label, h) for h in others) / len(others), 4)
                                        if others else None)
        chances = [r[f"{name}_chance"] for r, _, _ in judged if r[f"{name}_chance"] is not None]
        summary[name] = {"hits": sum(r[f"{name}_hit"] for r, _, _ in judged), "targets": len(judged),
                         "hit_rate": round(sum(r[f"{name}_hit"] for r, _, _ in judged) / len(judged), 4),
                         "chance_rate": round(sum(chances) / len(chances), 4) if chances else None}
    return summary


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions that make `a` into `b`."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def character_error_rate(reference: str, heard: str) -> float:
    """Edit distance between the texts over the reference's length (spaces count as characters), both as
    lower-case words without punctuation (Whisper writes "Star." for star; CTC vocabularies have none)."""
    reference, heard = " ".join(words(reference)), " ".join(words(heard))
    return edit_distance(reference, heard) / max(len(reference), 1)
