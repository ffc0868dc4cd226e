"""Real recordings of a person, for measuring what the models hear (no model trains on them): the 72 English
words of KTuberling (Debian's `ktuberling-data`, GPL-2+), each a real voice saying one object's name, as 16 kHz
FLAC with a metadata.tsv that eval_tiny.py reads (engine `ktuberling`, voice `en`).

    apt-get install ktuberling-data
    python experiments/make_recordings.py --out data/recordings
    python experiments/eval_tiny.py --model audiation/assets/tiny-w2v2-espeak --data data/recordings

The text is the object's name as the game files it (`pizzeria_olive` -> "olive"), spelled as spoken where
the file name is not (SPOKEN).
"""
import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SOUNDS = Path("/usr/share/ktuberling/sounds/en")
SCENES = ("egypt_", "moon_", "pizzeria_", "tv_")
SPOKEN = {"fallingstar": "falling star", "palmtree": "palm tree", "broccolli": "broccoli", "sphynx": "sphinx"}


def text_of(stem: str) -> str:
    for scene in SCENES:
        if stem.startswith(scene):
            stem = stem[len(scene):]
    return SPOKEN.get(stem, stem.replace("_", " "))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/recordings"))
    a = p.parse_args()
    files = sorted(SOUNDS.glob("*.ogg"))
    if not files:
        sys.exit(f"make_recordings: no recordings in {SOUNDS} (apt-get install ktuberling-data)")
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "metadata.tsv", "w", newline="") as handle:
        rows = csv.writer(handle, delimiter="\t", lineterminator="\n")
        rows.writerow(["path", "text", "engine", "voice", "split"])
        for number, file in enumerate(files):
            x, rate = sf.read(file, dtype="float32")
            x = soxr.resample(x.mean(axis=1) if x.ndim > 1 else x, rate, 16000).astype(np.float32)
            sf.write(a.out / f"{number:03d}.flac", x, 16000)
            rows.writerow([f"{number:03d}.flac", text_of(file.stem), "ktuberling", "en", "heldout"])
    print(f"{len(files)} recordings in {a.out}")


if __name__ == "__main__":
    main()
