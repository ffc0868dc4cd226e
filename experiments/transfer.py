"""Are audiations heard by what took no part? Letters and words audiated on one model, judged by another.

For each setting (a list of overrides on top of `model=tiny quality.draws=0`), letters are audiated as
`model.layer=logits objective=channel` (the letter's CTC output over a whole 1 s signal) and words as
`objective=text`. Each audiation is then judged by
- the listener (`quality.listener`, a CTC model never part of what it judges): for letters, the share of
  its letter frames that are the letter (`listener_heard_share_of_letters`; CTC models are blank most of
  the time even on speech) and whether the letter is its most common; for words, its CER;
- pocketsphinx, trained on real English speech (`quality.judges`): for letters, whether it hears one of
  the letter's phones (`LETTER_PHONES`); for words, the phone error rate of what it hears against
  CMUdict's pronunciation;
- silero-vad: the median speech probability;
- the model itself, for scale.

    python experiments/transfer.py --out data/transfer                    # every setting, seeds 0 and 1 (hours)
    python experiments/transfer.py --only baseline,speech --seeds 0 --letters sfr --words moon

The tables go to stdout and <out>/transfer.md, each job's records to <out>/<setting>/<letters|words>-s<seed>/.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from audiation.config.configs import compose
from audiation.jobs.audiate_job import audiate_folder

sys.path.insert(0, str(Path(__file__).parent))
from eval_tiny import edit_distance

OLD_TINY = "data/models/tiny-v1"  # the first shipped model (42% CER), restored from git when missing: a third
OLD_TINY_COMMIT = "7aef684"        # CTC model for ensembles that the listener can judge

SETTINGS = {
    "baseline": [],  # fft signal, augmentation=standard (10 ms shift, noise 20 dB below the signal)
    "no augmentation": ["augmentation=none"],
    "strong": ["augmentation=strong"],  # + ±10% stretch, ±6 dB gain
    "room": ["augmentation.room_ms=150"],
    "strong + room": ["augmentation=strong", "augmentation.room_ms=150"],
    "log-probability": ["objective.log_softmax=true"],
    "1/f prior": ["parameterization.decay=1"],
    "white": ["parameterization.decay=0"],
    "ensemble": [f"model.ensemble=[{OLD_TINY}]"],
    "strong + room + clean": ["augmentation=strong", "augmentation.room_ms=150", "augmentation.with_clean=true"],
    "speech prior": ["regularizer.speech=1"],
    "speech signal": ["parameterization=speech"],
    "speech signal + prior": ["parameterization=speech", "regularizer.speech=1"],
    "speech signal + prior + strong + room": ["parameterization=speech", "regularizer.speech=1",
                                              "augmentation=strong", "augmentation.room_ms=150"],
    "speech signal + prior + lr 0.1 + 400 steps": ["parameterization=speech", "regularizer.speech=1",
                                                 "optimizer.lr=0.1", "steps=400"],
    "speech signal + strong + room": ["parameterization=speech", "augmentation=strong", "augmentation.room_ms=150"],
    "speech signal + prior + strong + room + 400 steps": ["parameterization=speech", "regularizer.speech=1",
                                                        "augmentation=strong", "augmentation.room_ms=150", "steps=400"],
    "speech signal + ensemble": ["parameterization=speech", f"model.ensemble=[{OLD_TINY}]"],
    "speech signal + prior + strong + room + ensemble": ["parameterization=speech", "regularizer.speech=1",
                                                         "augmentation=strong", "augmentation.room_ms=150",
                                                         f"model.ensemble=[{OLD_TINY}]"],
}
LETTERS = "sfrmoetkaz"
WORDS = ["moon", "star", "blue", "fish", "sun", "tree", "water", "green"]
# The ARPAbet phones a letter can stand for in English (a vowel letter for several).
LETTER_PHONES = {"a": {"AE", "EY", "AA", "AH", "AO"}, "e": {"IY", "EH", "AH"}, "f": {"F"}, "k": {"K"},
                 "m": {"M"}, "o": {"OW", "AA", "AO", "AH", "UW"}, "r": {"R", "ER"}, "s": {"S", "Z"},
                 "t": {"T"}, "z": {"Z", "S"}}


def restore_old_tiny() -> None:
    """The first shipped model, from git history (for the ensemble settings)."""
    import subprocess

    folder = Path(OLD_TINY)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json",
                 "tokenizer_config.json", "vocab.json"):
        blob = subprocess.run(["git", "show", f"{OLD_TINY_COMMIT}:audiation/assets/tiny-w2v2-espeak/{name}"],
                              check=True, capture_output=True).stdout
        (folder / name).write_bytes(blob)


def cmudict_phones(words: list[str]) -> dict[str, list[str]]:
    """CMUdict's first pronunciation of each word, stress digits dropped (from pocketsphinx's wheel)."""
    from pocketsphinx import get_model_path

    wanted, found = set(words), {}
    for line in open(os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict"), encoding="utf-8"):
        word, *phones = line.split()
        if word in wanted and word not in found:
            found[word] = [re.sub(r"\d", "", p) for p in phones]
    return found


def most_common_letter(text: str) -> str | None:
    counts = Counter(c for c in text if c.isalpha() or c == "'")
    return counts.most_common(1)[0][0] if counts else None


def run(base: list[str], setting: list[str], folder: Path) -> tuple[list[dict], float]:
    started = time.perf_counter()
    metrics = audiate_folder(compose(*base, *setting), folder, None)
    return metrics["targets"], time.perf_counter() - started


def letters_row(targets: list[dict]) -> dict:
    shares = [t["listener_heard_share_of_letters"] or 0.0 for t in targets]  # null: no letter heard at all
    return {"listener share of letters": np.mean(shares),
            "listener: most common": np.mean([most_common_letter(t["listener_transcript"]) == t["character"]
                                              for t in targets]),
            "pocketsphinx hears its phone": sum(bool(LETTER_PHONES[t["character"]] & set(t["phones"] or []))
                                                for t in targets),
            "speech probability": statistics.median(t["speech_probability"] or 0.0 for t in targets),
            "model itself: share of letters": np.mean([t["heard_share_of_letters"] or 0.0 for t in targets]),
            "detail": " ".join(f"{t['character']}:{(t['listener_heard_share_of_letters'] or 0):.2f}/"
                               f"{' '.join(t['phones'] or [])[:14]}" for t in targets)}


def words_row(targets: list[dict], pronunciations: dict[str, list[str]]) -> dict:
    errors = [edit_distance(t["phones"] or [], pronunciations[t["text"]]) / len(pronunciations[t["text"]])
              for t in targets]
    return {"listener CER": np.mean([t["listener_cer"] for t in targets]),
            "pocketsphinx phone error rate": np.mean(errors),
            "speech probability": statistics.median(t["speech_probability"] or 0.0 for t in targets),
            "model itself: CER": np.mean([t["cer"] for t in targets]),
            "detail": " ".join(f"{t['text']}:{t['listener_transcript']!r}/{' '.join(t['phones'] or [])}"
                               for t in targets)}


def table(rows: list[tuple[str, int, dict, float]]) -> str:
    columns = [k for k in rows[0][2] if k != "detail"]
    lines = ["| setting | seed | " + " | ".join(columns) + " | seconds | per target |",
             "|---|---|" + "---|" * (len(columns) + 2)]
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines += [f"| {name} | {seed} | " + " | ".join(cell(row[c]) for c in columns) + f" | {seconds:.0f} | {row['detail']} |"
              for name, seed, row, seconds in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/transfer"))
    parser.add_argument("--letters", default=LETTERS)
    parser.add_argument("--words", default=",".join(WORDS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", default="tiny", help="the model option audiated")
    parser.add_argument("--listener", default=None, help="default: the model option's own listener")
    parser.add_argument("--only", default=None, help="comma-separated setting names")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    names = args.only.split(",") if args.only else list(SETTINGS)
    if any(OLD_TINY in " ".join(SETTINGS[name]) for name in names) and not Path(OLD_TINY, "model.safetensors").is_file():
        restore_old_tiny()
    words = [w for w in args.words.split(",") if w]
    pronunciations = cmudict_phones(words)
    letter_rows, word_rows = [], []
    for name in names:
        folder = args.out / re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")
        for seed in (int(s) for s in args.seeds.split(",")):
            base = [f"model={args.model}", f"steps={args.steps}", "logger=none", f"threads={args.threads}",
                    "quality.draws=0", f"seed={seed}"] + ([f"quality.listener={args.listener}"] if args.listener else [])
            vocabulary = compose(*base).model  # the letters' CTC ids come from the model's vocab.json
            ids = _letter_ids(vocabulary.name, args.letters)
            targets, seconds = run(base + ["model.layer=logits", "objective=channel",
                                           f"objective.unit=[{','.join(map(str, ids))}]"], SETTINGS[name],
                                   folder / f"letters-s{seed}")
            letter_rows.append((name, seed, letters_row(targets), seconds))
            print(f"{name} (seed {seed}), letters: " + ", ".join(
                f"{k} {v:.3f}" for k, v in letter_rows[-1][2].items() if k != "detail"), flush=True)
            if words:
                targets, seconds = run(base + ["objective=text", f"objective.text=[{','.join(words)}]"],
                                       SETTINGS[name], folder / f"words-s{seed}")
                word_rows.append((name, seed, words_row(targets, pronunciations), seconds))
                print(f"{name} (seed {seed}), words: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in word_rows[-1][2].items() if k != "detail"), flush=True)
    text = "## Letters\n\n" + table(letter_rows) + ("\n\n## Words\n\n" + table(word_rows) if word_rows else "")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "transfer.md").write_text(text + "\n")


def _letter_ids(model_folder: str, letters: str) -> list[int]:
    import json

    vocabulary = json.loads(Path(model_folder, "vocab.json").read_text())
    return [vocabulary[letter] for letter in letters]


if __name__ == "__main__":
    main()
