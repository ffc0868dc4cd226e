"""Words audiated on one model, heard by the others: each judge's CER and hit rate beside its chance rate.

For every text target of the given job folders (`objective=text`), the audiation (`audio.wav`) is
transcribed by Whisper tiny.en (its full 30-s window), by the shipped CTC models tiny and listener, and
the CER against the target's text is set beside the chance CER: the same transcript scored against the
other targets' texts of its job (a permutation baseline). A hit is every word of the text in the
transcript; its chance rate is how often the text is in the other targets' transcripts. The judge that made
an audiation is marked: it took part.

    OMP_NUM_THREADS=1 python experiments/whisper_study.py data/study-tiny-words/* data/study-whisper-words/*
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiation.config.configs import ASSETS
from audiation.hearing.quality import character_error_rate
from audiation.hearing.verdicts import words
from audiation.models.encoder import ModelSpec, load_encoder

JUDGES = {"whisper-tiny.en": ModelSpec("openai/whisper-tiny.en", normalize=False),
          "tiny-w2v2-espeak": ModelSpec(str(ASSETS / "tiny-w2v2-espeak")),
          "listener-w2v2-espeak": ModelSpec(str(ASSETS / "listener-w2v2-espeak"))}


def hits(text: str, heard: str) -> bool:
    return all(w in words(heard) for w in words(text))


def judge_folder(folder: Path, encoders: dict) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    targets = [t for t in metrics["targets"] if t.get("text")]
    signals = [sf.read(folder / t["files"]["wav"], dtype="float32")[0] for t in targets]
    wave = torch.from_numpy(np.stack(signals))
    texts = [t["text"] for t in targets]
    made_by = metrics["run"].get("model") or targets[0].get("model")
    out = {"folder": str(folder), "model": made_by, "targets": len(targets), "judges": {}}
    for name, encoder in encoders.items():
        with torch.no_grad():
            heard, no_speech = encoder.hear(wave) if encoder.tokens is not None else (encoder.transcribe(wave), None)
        cer = [character_error_rate(t, h) for t, h in zip(texts, heard)]
        chance = [np.mean([character_error_rate(o, h) for o in texts if o != t]) for t, h in zip(texts, heard)]
        hit = [hits(t, h) for t, h in zip(texts, heard)]
        hit_chance = [np.mean([hits(t, o) for o, u in zip(heard, texts) if u != t]) for t in texts]
        out["judges"][name] = {"took_part": name == made_by, "heard": heard, "cer": float(np.mean(cer)),
                               "median_cer": float(np.median(cer)), "chance_cer": float(np.mean(chance)),
                               "hit_rate": float(np.mean(hit)), "chance_rate": float(np.mean(hit_chance)),
                               "median_no_speech": None if no_speech is None else float(np.median(no_speech))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    encoders = {name: load_encoder(spec, "cpu") for name, spec in JUDGES.items()}
    rows = [judge_folder(folder, encoders) for folder in args.folders if (folder / "metrics.json").is_file()]
    print("| audiated on | job | judge | mean CER (median) | chance CER | hit rate | chance rate | no-speech (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for name, j in row["judges"].items():
            mark = " (took part)" if j["took_part"] else ""
            speech = "" if j["median_no_speech"] is None else f"{j['median_no_speech']:.2f}"
            print(f"| {row['model']} | {Path(row['folder']).parent.name}/{Path(row['folder']).name} | {name}{mark} | {j['cer']:.2f} ({j['median_cer']:.2f}) | "
                  f"{j['chance_cer']:.2f} | {j['hit_rate']:.2f} | {j['chance_rate']:.2f} | {speech} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
