"""Do audiations transfer? Letters audiated on one model, heard by another that never took part.

For each setting (a list of overrides on top of `model=tiny model.layer=logits objective=channel`), the
CTC output of each letter is maximised over a whole 1 s signal. Each audiation is then transcribed frame by
frame (greedy argmax) by the model itself (`heard_share`) and by an independent listener
(`listener_heard_share`, `quality.listener`): the share of frames that are the letter. The listener is
never part of an ensemble it judges.

    python experiments/transfer.py --out data/transfer            # every setting, a markdown table
    python experiments/transfer.py --only baseline,ensemble --letters aeos --seed 1

The table goes to stdout and <out>/transfer.md, each setting's records to <out>/<setting>/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np

from audiation.configs import compose
from audiation.jobs import audiate_folder

OLD_TINY = "data/models/tiny-v1"  # the first shipped model (42% CER), restored from git when missing
OLD_TINY_COMMIT = "7aef684"

SETTINGS = {
    "baseline": [],  # the defaults: augmentation=standard (10 ms shift, noise 20 dB below the signal)
    "no augmentation": ["augmentation=none"],
    "strong": ["augmentation=strong"],  # + ±10% stretch, ±6 dB gain
    "strong + room": ["augmentation=strong", "augmentation.room_ms=150"],
    "room": ["augmentation.room_ms=150"],
    "log-probability": ["objective.log_softmax=true"],
    "log-probability + strong + room": ["objective.log_softmax=true", "augmentation=strong", "augmentation.room_ms=150"],
    "1/f prior": ["parameterization.decay=1"],
    "white": ["parameterization.decay=0"],
    "ensemble": [f"model.ensemble=[{OLD_TINY}]"],
    "ensemble + strong + room": [f"model.ensemble=[{OLD_TINY}]", "augmentation=strong", "augmentation.room_ms=150"],
    "strong + room + clean": ["augmentation=strong", "augmentation.room_ms=150", "augmentation.with_clean=true"],
    "strong + room + 400 steps": ["augmentation=strong", "augmentation.room_ms=150", "steps=400"],
}


def most_common_letter(text: str) -> str | None:
    counts = Counter(c for c in text if c.isalpha() or c == "'")
    return counts.most_common(1)[0][0] if counts else None


def letter_share_of_speech(option: str) -> float:
    """For scale: the share of frames of natural speech (the shipped slice) in which the model's greedy output
    is a letter rather than blank. CTC models are peaky: a letter lasting several frames is emitted once."""
    import soundfile as sf
    import torch

    from audiation.builder import model_spec
    from audiation.configs import ASSETS
    from audiation.model import Layer, load_encoder

    model = load_encoder(model_spec(compose(f"model={option}").model), "cpu")
    blank = model.config.pad_token_id
    letters = frames = 0
    for path in sorted((ASSETS / "speech-slice").glob("*.flac")):
        audio, _ = sf.read(path, dtype="float32")
        with torch.no_grad():
            heard = model(torch.from_numpy(audio)[None], Layer("logits")).argmax(-1)[0]
        letters += int(((heard != blank) & (heard != model.vocabulary.index("|"))).sum())
        frames += len(heard)
    return letters / frames


def restore_old_tiny() -> None:
    """The first shipped model, from git history: a third CTC model for ensembles the listener can judge."""
    folder = Path(OLD_TINY)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json",
                 "tokenizer_config.json", "vocab.json"):
        blob = subprocess.run(["git", "show", f"{OLD_TINY_COMMIT}:audiation/assets/tiny-w2v2-espeak/{name}"],
                              check=True, capture_output=True).stdout
        (folder / name).write_bytes(blob)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/transfer"))
    parser.add_argument("--letters", default="aeiosnrtlm")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", default="tiny", help="the model option audiated")
    parser.add_argument("--listener", default=None, help="default: the model option's own listener")
    parser.add_argument("--only", default=None, help="comma-separated setting names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not Path(OLD_TINY, "model.safetensors").is_file():
        restore_old_tiny()
    names = args.only.split(",") if args.only else list(SETTINGS)
    rows = []
    for name in names:
        base = [f"model={args.model}", "model.layer=logits", "objective=channel", f"steps={args.steps}",
                "logger=none", f"threads={args.threads}", "quality.draws=0", f"seed={args.seed}"]
        if args.listener:
            base.append(f"quality.listener={args.listener}")
        probe = compose(*base)
        vocabulary = json.loads(Path(probe.model.name, "vocab.json").read_text())
        units = [vocabulary[letter] for letter in args.letters]
        folder = args.out / name.replace(" ", "_").replace("/", "").replace(",", "").replace("+", "and")
        started = time.perf_counter()
        metrics = audiate_folder(compose(*base, f"objective.unit=[{','.join(map(str, units))}]", *SETTINGS[name]),
                                 folder, None)
        seconds = time.perf_counter() - started
        targets = metrics["targets"]
        listener = np.array([t["listener_heard_share"] for t in targets])
        own = np.array([t["heard_share"] for t in targets])  # the model alone, even when it was in an ensemble
        together = [t.get("ensemble_heard_share") for t in targets]
        together = None if None in together else float(np.mean(together))
        # the letter the listener hears most often (blanks and spaces aside) is the target's
        top = np.mean([most_common_letter(t["listener_transcript"]) == t["character"] for t in targets])
        rows.append((name, listener.mean(), top, own.mean(), together, seconds,
                     " ".join(f"{t['character']}:{t['listener_heard_share']:.2f} {t['listener_transcript'][:12]!r}"
                              for t in targets)))
        print(f"{name}: listener {listener.mean():.3f}, own {own.mean():.3f}"
              + (f", ensemble {together:.3f}" if together is not None else "") + f" ({seconds:.0f} s)", flush=True)
    table = ["| setting | listener: share of frames heard as the letter (mean) | listener: the letter is its most "
             "common | model itself: share of frames | the ensemble optimised: share of frames | seconds | per letter: "
             "listener's share and transcript |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {n} | {m:.3f} | {h:.0%} | {o:.3f} | {'–' if e is None else f'{e:.3f}'} | {s:.0f} | {p} |"
              for n, m, h, o, e, s, p in rows]
    table.append(f"\nFor scale, on natural speech (the shipped slice) the listener's greedy output is a letter in "
                 f"{letter_share_of_speech('listener'):.0%} of frames and blank (or a word gap) in the rest.")
    text = "\n".join(table)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "transfer.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
