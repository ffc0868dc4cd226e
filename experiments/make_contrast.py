"""A small paralinguistic contrast set rendered with espeak-ng: the same sentences, high vs low pitch.

    python experiments/make_contrast.py --out audiation/assets/pitch-contrast --per-class 32 --seed 0

Writes `<out>/high/*.flac` and `<out>/low/*.flac` (16 kHz mono) and `<out>/metadata.tsv` (file, text,
voice, speaker, speed, pitch). Each pair shares its text, voice and speed; only espeak-ng's pitch (`-p`,
0-99) differs: 80-95 for high, 5-20 for low. Six voices speak on both sides (the `speaker` column), so a
direction can be scored on a voice it was not fitted on (leave one speaker out). It is the data of `python -m audiation.directions`' tests and
README example: a direction that separates the two sets is a pitch direction, not a words direction.
Needs the Debian package espeak-ng (`make system-packages`).
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

WORDS = ("the quick brown fox jumps over a lazy dog while seven bright stars shine above the quiet harbour "
         "and children sing songs about rivers mountains green fields old ships morning bread").split()
VOICES = ("en-us", "en", "en-us+m3", "en+f2", "en-us+f4", "en+m5")
RATE = 16000


def render(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's WAV on stdout -> float32 at 16 kHz, trimmed to 50 ms around the speech."""
    raw = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         capture_output=True, check=True).stdout
    rate = int.from_bytes(raw[24:28], "little")  # espeak's streaming header has bogus sizes, a true rate
    signal = soxr.resample(np.frombuffer(raw[44:], dtype="<i2").astype(np.float32) / 32768, rate, RATE)
    loud = np.flatnonzero(np.abs(signal) > 0.02 * np.abs(signal).max())
    pad = int(0.05 * RATE)
    return signal[max(0, loud[0] - pad): loud[-1] + pad]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.per_class):
        text = " ".join(rng.sample(WORDS, rng.randint(3, 5)))
        voice, speed = rng.choice(VOICES), rng.randint(140, 180)
        for group, (low, high) in (("high", (80, 95)), ("low", (5, 20))):
            pitch = rng.randint(low, high)
            path = args.out / group / f"{i:03d}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, render(text, voice, speed, pitch), RATE)
            rows.append({"file": f"{group}/{path.name}", "text": text, "voice": voice, "speaker": voice,
                         "speed": speed, "pitch": pitch})
    with open(args.out / "metadata.tsv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} clips in {args.out}")


if __name__ == "__main__":
    main()
