"""A small folder of English voices built from recordings of people (flite's awb, rms, slt and kal), for
`quality.data` and the Whisper study: each voice says the same everyday phrases and common-word sentences,
with their transcripts and speakers in `metadata.tsv`.

    python experiments/make_people.py --out data/people [--per-voice 40]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import COMMON, PHRASES, SR, flite, trim

VOICES = ("awb", "rms", "slt", "kal16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-voice", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    texts = PHRASES[:args.per_voice // 2]
    texts += [" ".join(rng.choice(COMMON) for _ in range(rng.randint(3, 6))) for _ in range(args.per_voice - len(texts))]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice in VOICES:
            for n, text in enumerate(texts):
                signal = trim(flite(text, voice, 1.0, 1.0, tmp))
                if signal is None:
                    continue
                name = f"{voice}-{n:03d}.flac"
                sf.write(args.out / name, signal, SR, subtype="PCM_16")
                rows.append([name, text, voice, voice.rstrip("16")])
    with open(args.out / "metadata.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["file", "text", "voice", "speaker"])
        writer.writerows(rows)
    print(f"{len(rows)} utterances of {len(VOICES)} voices in {args.out}")


if __name__ == "__main__":
    main()
