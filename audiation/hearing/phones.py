"""Phone labels of natural audio, and a phone name for every unit.

Each file of a dataset cache (`activations.ActivationCache`) is labelled with ARPAbet phones by
pocketsphinx: its transcript (a `metadata.tsv` or LibriSpeech `.trans.txt` beside it) force-aligned,
words CMUdict lacks spelled by espeak-ng (its IPA mapped to ARPAbet); a file without a transcript, or
whose alignment fails, is decoded by the phone recognizer instead. Every frame of the cache gets the
phone spanning its centre; the labels are saved beside the cache (`phones-<key>.npz`).

A unit's name is the phone most over-represented among its top frames: `phone` (the highest lift over
its base rate among phones making up at least `MIN_SHARE` of those frames), `phone_lift` and
`phone_share`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from audiation.data import audio_files
from audiation.data.activations import ActivationCache
from audiation.hearing import judges

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
PHONE_FRAME_SECONDS = 0.01
TOP_FRAMES = 100  # a unit's top frames that name it
MIN_SHARE = 0.15  # a phone names a unit only if it is at least this share of the top frames (no lucky rarities)
ALIGNER_VERSION = 2  # labels made by an earlier aligner are made again (2: the wide-beam retry)
NAMED_LIFT = 3.0  # the report's bar: a unit "has a phone" when its lift is at least this

# espeak-ng's IPA (en-us) to ARPAbet; two-character symbols first. Stress and length marks are dropped.
IPA_TO_ARPABET = {
    "tʃ": "CH", "dʒ": "JH", "eɪ": "EY", "aɪ": "AY", "ɔɪ": "OY", "aʊ": "AW", "oʊ": "OW", "əʊ": "OW",
    "ɪə": "IH", "eə": "EH", "ʊə": "UH", "iː": "IY", "uː": "UW", "ɑː": "AA", "ɔː": "AO", "ɜː": "ER",
    "i": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EH", "ɛ": "EH", "æ": "AE", "a": "AA", "ɑ": "AA", "ɒ": "AA",
    "ɔ": "AO", "o": "OW", "ʊ": "UH", "u": "UW", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER", "ɜ": "ER",
    "ɝ": "ER", "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V",
    "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "x": "HH", "ç": "HH",
    "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɬ": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y", "ɾ": "T",
    "ʔ": "T",
}
_IPA = re.compile("|".join(sorted(map(re.escape, IPA_TO_ARPABET), key=len, reverse=True)))


def ipa_to_arpabet(ipa: str) -> list[str]:
    """ARPAbet phones of one word's IPA; symbols outside the table (stress, length, syllabic) are dropped."""
    return [IPA_TO_ARPABET[symbol] for symbol in _IPA.findall(ipa)]


@functools.cache
def espeak_version() -> str | None:
    """espeak-ng's version line, None when it is not installed: the labels depend on it (without it, a file
    with a word CMUdict lacks is decoded, not aligned)."""
    if shutil.which("espeak-ng") is None:
        return None
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.split(" Data at")[0].strip()


def espeak_arpabet(words: list[str]) -> dict[str, str]:
    """{word: "P H O N E S"} from espeak-ng (en-us), for words CMUdict lacks; {} without espeak-ng."""
    if not words or espeak_version() is None:
        return {}
    out = _espeak_ipa(words)
    if len(out) != len(words):  # espeak-ng joined or split a word: pair them one by one instead
        out = ["".join(_espeak_ipa([word])) for word in words]
    return {w: " ".join(p) for w, ipa in zip(words, out) if (p := ipa_to_arpabet(ipa))}


def _espeak_ipa(words: list[str]) -> list[str]:
    return subprocess.run(["espeak-ng", "-q", "--ipa", "-v", "en-us", "\n".join(words)], capture_output=True,
                          text=True).stdout.split()


class Aligner:
    """pocketsphinx's forced aligner and phone recognizer (the judges'), loaded once."""

    def __init__(self):
        from pocketsphinx import Decoder
        # No language model: alignment follows the text's own words (40 of 40 slice files aligned the same
        # with it and without it), and the 27 MB English LM cost 0.27 s and its memory in each decoder.
        self.words = Decoder(samprate=SAMPLE_RATE, logfn=os.devnull, lm=None)
        # The default beams lost the words of a third of the shipped speech slice (rare words, fast voices);
        # these find all but a few, at several times the cost, so they are the second try, not the first.
        self.wide = Decoder(samprate=SAMPLE_RATE, logfn=os.devnull, lm=None, beam=1e-100, wbeam=1e-80, pbeam=1e-100)
        self.phone_recognizer = judges.phone_recognizer()
        self.added: set[str] = set()

    def segments(self, signal: np.ndarray, text: str | None) -> tuple[list[tuple[str, float, float]], str]:
        """[(phone, start s, end s)] of a 16 kHz signal and how they were found: "aligned" (the text,
        possibly with espeak-ng's words), or "decoded" (no text, or the alignment failed)."""
        pcm = judges.pcm(signal)
        words = _words(text)
        if words:
            unknown = [w for w in dict.fromkeys(words) if w not in self.added and self.words.lookup_word(w) is None]
            for word, phones in espeak_arpabet(unknown).items():
                for decoder in (self.words, self.wide):
                    decoder.add_word(word, phones, False)
                self.added.add(word)
            for decoder in (self.words, self.wide):
                try:
                    decoder.reinit_feat()  # as a fresh decoder hears it: labels never depend on file order
                    decoder.set_align_text(" ".join(words))
                    judges.decode(decoder, pcm)
                except RuntimeError:  # a word neither CMUdict nor espeak-ng could spell
                    break
                if decoder.hyp() is not None:  # the words were found: now their phones
                    return self._phones_of_words(decoder, pcm), "aligned"
        return [(phone, first * PHONE_FRAME_SECONDS, (last + 1) * PHONE_FRAME_SECONDS)
                for phone, first, last in judges.recognized(self.phone_recognizer, pcm)], "decoded"

    def _phones_of_words(self, decoder, pcm: bytes) -> list[tuple[str, float, float]]:
        """The phones of the words the first pass found. Its second pass (state-level alignment) fails on
        some ordinary utterances ("close once time kind let": "Failed to stop utterance processing", at any
        beam): then each word's dictionary phones share its span evenly, which keeps the word timing."""
        spans = [(s.word, s.start_frame, s.end_frame + 1) for s in decoder.seg()
                 if s.word not in ("<s>", "</s>", "<sil>")]
        try:
            return self._state_pass(decoder, pcm)
        except RuntimeError:
            pass
        out = []
        for word, start, stop in spans:
            spelled = (decoder.lookup_word(re.sub(r"\(\d+\)$", "", word)) or "").split()
            edges = np.linspace(start, stop, len(spelled) + 1) * PHONE_FRAME_SECONDS
            out += [(phone, float(a), float(b)) for phone, a, b in zip(spelled, edges[:-1], edges[1:])]
        return out

    @staticmethod
    def _state_pass(decoder, pcm: bytes) -> list[tuple[str, float, float]]:
        decoder.set_alignment()  # never ask hyp() of this second pass: pocketsphinx 5.1 crashes
        judges.decode(decoder, pcm)
        return [(p.name, p.start * PHONE_FRAME_SECONDS, (p.start + p.duration) * PHONE_FRAME_SECONDS)
                for word in decoder.get_alignment() for p in word]


def _words(text: str | None) -> list[str]:
    """The transcript as CMUdict spells words: lower case, letters and apostrophes."""
    return re.findall(r"[a-z']+", (text or "").lower())


def labels_path(cache: ActivationCache) -> Path:
    """Beside the cache, named by what the labels depend on (the files, their pieces and transcripts, the
    frame geometry, the aligner and espeak-ng's version or absence), so every layer, model and SAE with the
    same frames shares them, and labels made before espeak-ng was installed are not read after."""
    key = json.dumps([[p.file, p.offset_seconds, p.first_frame, p.num_frames, audio_files.transcript(p.file)]
                      for p in cache.pieces] + [cache.hop, cache.field, cache.sample_rate]
                     + ([cache.offset] if cache.offset else [])  # Whisper's centred frames
                     + [ALIGNER_VERSION, espeak_version()])
    return cache.folder.parent / f"phones-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def frame_labels(cache: ActivationCache, read: Callable[[str], np.ndarray]) -> FramePhones:
    """The phone of each cache frame, read from beside the cache or made and saved there; says once which
    phones the data is too short to name any unit for."""
    labels = _saved_or_made(cache, read)
    rare = unnameable(labels)
    if rare:
        log.warning("warning: %d phone(s) have under %d frames in the data, too few to name any unit: %s (more "
                    "data names more units)", len(rare), int(MIN_SHARE * TOP_FRAMES), " ".join(f"/{p}/" for p in rare))
    return labels


def _saved_or_made(cache: ActivationCache, read: Callable[[str], np.ndarray]) -> FramePhones:
    path = labels_path(cache)
    saved = _saved_labels(path, cache.num_frames)
    if saved is not None:
        return saved
    aligner = Aligner()
    inventory: dict[str, int] = {"SIL": 0}
    labels = np.zeros(cache.num_frames, dtype=np.int16)
    methods: Counter = Counter()
    by_file: dict[str, list] = {}
    for piece in cache.pieces:
        by_file.setdefault(piece.file, []).append(piece)
    for file in tqdm(by_file, desc="phones", unit="file", dynamic_ncols=True, leave=False):
        signal = read(file)
        if cache.sample_rate != SAMPLE_RATE:
            import soxr
            signal = soxr.resample(signal, cache.sample_rate, SAMPLE_RATE)
        segments, method = aligner.segments(signal, audio_files.transcript(file))
        methods[method] += 1
        starts = np.array([start for _, start, _ in segments] or [0.0])
        ends = np.array([end for _, _, end in segments] or [0.0])
        ids = np.array([inventory.setdefault(judges.phone_of(p) or "SIL", len(inventory)) for p, _, _ in segments] or [0])
        for piece in by_file[file]:
            local = np.arange(piece.num_frames)
            times = piece.offset_seconds + cache.centre_seconds(local)
            index = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(starts) - 1)
            inside = (times >= starts[index]) & (times < ends[index])
            labels[piece.first_frame:piece.first_frame + piece.num_frames] = np.where(inside, ids[index], 0)
    if methods["decoded"]:
        log.warning("warning: %d of %d files had no transcript or could not be aligned: their phones are what "
                    "pocketsphinx's phone recognizer heard%s", methods["decoded"], sum(methods.values()),
                    "" if espeak_version() else " (espeak-ng is not installed, so no word CMUdict lacks can be "
                    "spelled: `make system-packages` installs it)")
    names = sorted(inventory, key=inventory.get)
    with open(path.with_suffix(".partial"), "wb") as out:  # complete or absent: a crash leaves no half file
        np.savez(out, labels=labels, inventory=json.dumps(names))
    path.with_suffix(".partial").replace(path)
    return FramePhones(labels, names)


def _saved_labels(path: Path, frames: int) -> FramePhones | None:
    """The labels saved at `path` when they fit the cache (one per frame, each in the inventory); a damaged
    file is set aside, so the labels are made again."""
    from audiation.outputs.results import set_aside

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            labels, inventory = saved["labels"], json.loads(str(saved["inventory"]))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        set_aside(path, (str(error).splitlines() or [""])[0][:80] or type(error).__name__)
        return None
    if not (isinstance(inventory, list) and inventory and all(isinstance(p, str) for p in inventory)):
        set_aside(path, "its inventory is not a list of phones")
    elif labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != frames:
        set_aside(path, f"not one phone per frame of its {frames}")
    elif labels.size and not 0 <= labels.min() <= labels.max() < len(inventory):
        set_aside(path, f"labels outside its inventory of {len(inventory)}")
    else:
        return FramePhones(labels, inventory)
    return None


class FramePhones(NamedTuple):
    """The phone of every frame of a cache (indices into `inventory`)."""
    labels: np.ndarray
    inventory: list[str]


def name_unit(values: np.ndarray, labels: FramePhones, top: int = TOP_FRAMES) -> dict:
    """{phone, phone_lift, phone_share} of one unit from its activation at every frame."""
    labels, inventory = labels
    top = min(top, len(values))
    chosen = labels[np.argpartition(-values, top - 1)[:top]]
    counts = np.bincount(chosen, minlength=len(inventory))
    base = np.bincount(labels, minlength=len(inventory)) / len(labels)
    share = counts / top
    lift = np.where(base > 0, share / np.maximum(base, 1e-12), 0.0)
    eligible = np.flatnonzero(share >= MIN_SHARE)
    if eligible.size == 0:
        return {"phone": None, "phone_lift": None, "phone_share": None}
    best = int(eligible[np.argmax(lift[eligible])])
    # Below NAMED_LIFT the best phone is barely over its base rate (/SIL/ x0.7): no name, its numbers kept
    return {"phone": inventory[best] if lift[best] >= NAMED_LIFT else None, "phone_lift": round(float(lift[best]), 2),
            "phone_share": round(float(share[best]), 3)}


def unnameable(labels: FramePhones, top: int = TOP_FRAMES) -> list[str]:
    """Phones with too few frames in the data to make up `MIN_SHARE` of any unit's top frames: no unit can
    be named for them, however selective it is."""
    counts = np.bincount(labels.labels, minlength=len(labels.inventory))
    return [phone for phone, count in zip(labels.inventory, counts) if count < MIN_SHARE * top and phone != "SIL"]


def heard_as_label(record: dict) -> bool | None:
    """Whether the judge hears the unit's own phone in its audiation: at the target frame for a unit at one
    frame (the record's `frame`, whatever the objective is named), anywhere for the others; None when either
    is missing."""
    phone = record.get("phone")
    if not phone or record.get("phones") is None:
        return None
    if record.get("frame") is not None:
        return record.get("phone_at_target") == phone
    return phone in record["phones"] or (phone == "SIL" and not record["phones"])
