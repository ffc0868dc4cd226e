"""Real recordings of people, for measuring what the models hear (no model trains on them), as 16 kHz FLAC with
a metadata.tsv that eval_tiny.py reads, one voice per person:

- the 72 English words of KTuberling (Debian's `ktuberling-data`, GPL-2+): one voice saying object names
  (engine `ktuberling`); the text is the object's name as the game files it (`pizzeria_olive` -> "olive"),
  spelled as spoken where the file name is not (SPOKEN);
- the English voice packs of Hedgewars (`hedgewars-data`, GPL-2 and others): ten actors, each saying its own
  lines in character for the game's 45 events (the file names the event, not the words: "Byebye.ogg" is "see
  ya" in one pack), so they have no transcript. They go to a second folder, labelled by Whisper tiny.en (its
  CER on the KTuberling words, whose text is known, is what such a label is worth: eval_tiny.py --whisper),
  as training audio of real people (`train_tiny.py --extra`); clips Whisper hears nothing in are left out.

    apt-get install ktuberling-data hedgewars-data
    python experiments/make_recordings.py --out data/recordings
    python experiments/eval_tiny.py --model audiation/assets/tiny-w2v2-espeak --data data/recordings --whisper
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


HEDGEWARS = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
PACKS = ("British", "Classic", "Default", "HillBilly", "Mobster", "Pirate", "Robot", "Russian", "Singer", "Surfer")
EVENTS = {"Amazing": "amazing", "Boring": "boring", "Brilliant": "brilliant", "Bugger": "bugger", "Byebye": "bye bye",
           "Comeonthen": "come on then", "Coward": "coward", "Cutitout": "cut it out", "Drat": "drat",
           "Enemydown": "enemy down", "Excellent": "excellent", "Fire": "fire", "Firstblood": "first blood",
           "Flawless": "flawless", "Flyaway": "fly away", "Gonnagetyou": "gonna get you", "Grenade": "grenade",
           "Hello": "hello", "Hurry": "hurry", "Illgetyou": "i'll get you", "Incoming": "incoming",
           "Justyouwait": "just you wait", "Kamikaze": "kamikaze", "Leavemealone": "leave me alone", "Melon": "melon",
           "Missed": "missed", "Nutter": "nutter", "Ohdear": "oh dear", "Oops": "oops", "Ouch": "ouch",
           "Reinforcements": "reinforcements", "Revenge": "revenge", "Runaway": "run away", "Sameteam": "same team",
           "Solong": "so long", "Stupid": "stupid", "Takecover": "take cover", "Thisoneismine": "this one is mine",
           "Traitor": "traitor", "Victory": "victory", "Watchit": "watch it", "Watchthis": "watch this",
           "Whatthe": "what the", "Yessir": "yes sir", "Youllregretthat": "you'll regret that"}


def read16k(file: Path) -> np.ndarray:
    x, rate = sf.read(file, dtype="float32")
    return soxr.resample(x.mean(axis=1) if x.ndim > 1 else x, rate, 16000).astype(np.float32)


def text_of(stem: str) -> str:
    for scene in SCENES:
        if stem.startswith(scene):
            stem = stem[len(scene):]
    return SPOKEN.get(stem, stem.replace("_", " "))


def write(folder: Path, rows: list[tuple[np.ndarray, str, str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.tsv", "w", newline="") as handle:
        table = csv.writer(handle, delimiter="\t", lineterminator="\n")
        table.writerow(["path", "text", "engine", "voice", "split"])
        for number, (signal, text, engine, voice) in enumerate(rows):
            sf.write(folder / f"{number:04d}.flac", signal, 16000)
            table.writerow([f"{number:04d}.flac", text, engine, voice, folder.name])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/recordings"), help="the KTuberling words (held out)")
    p.add_argument("--labelled", type=Path, default=Path("data/recordings-whisper"),
                   help="the Hedgewars lines, with Whisper's transcripts")
    a = p.parse_args()
    words = sorted(SOUNDS.glob("*.ogg"))
    lines = [(pack, HEDGEWARS / pack / f"{event}.ogg") for pack in PACKS for event in EVENTS
             if (HEDGEWARS / pack / f"{event}.ogg").exists()]
    if not words or not lines:
        sys.exit("make_recordings: needs Debian's ktuberling-data and hedgewars-data (apt-get install ktuberling-data "
                 "hedgewars-data)")
    write(a.out, [(read16k(file), text_of(file.stem), "ktuberling", "en") for file in words])
    sys.path.insert(0, str(Path(__file__).parent))
    from eval_tiny import whisper_words

    signals = [read16k(file) for _, file in lines]
    heard = whisper_words(signals)
    labelled = [(signal, text, "hedgewars", pack) for (pack, _), signal, text in zip(lines, signals, heard) if text]
    write(a.labelled, labelled)
    print(f"{len(words)} KTuberling words in {a.out}; {len(labelled)} of {len(lines)} Hedgewars lines "
          f"({sum(len(x) for x, *_ in labelled) / 16000 / 60:.1f} min) in {a.labelled}, as Whisper hears them")


if __name__ == "__main__":
    main()
