"""Synthetic English speech corpus rendered with espeak-ng, for training a tiny CTC model.

Each utterance is 1-4 words spoken by one espeak-ng voice (base voice + variant) at a random
speed and pitch, resampled to 16 kHz mono, end-silence trimmed to ~80 ms, and kept only if it
lasts 0.6-3.2 s.

The held-out split is built to measure generalisation rather than memorisation: its base voices,
voice variants and speaking rates never occur in training, and half of its words come from a part
of the word pool that training never sees.

Word pool: Debian's `wamerican` list, restricted to lowercase alphabetic words of 2-7 letters
(lowercase excludes proper nouns and acronyms; short words are on average more common and make
the character-level task easier for a 1M-parameter model), of which a fixed random sample of
4,000 is kept. ~3% of training words get a possessive "'s" so the apostrophe token is trained.

    python experiments/make_corpus.py --out data/corpus --n-train 20000 --n-heldout 1500
    python experiments/make_corpus.py --out data/corpus --slice audiation/assets/speech-slice

Output: <out>/{train,heldout}/NNNNNN.flac and <out>/{train,heldout}/metadata.tsv with columns
path, text, voice, speed, pitch, split.
"""
import argparse
import csv
import multiprocessing
import random
import shutil
import subprocess
from pathlib import Path

import julius
import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

SR = 16000
ESPEAK_SR = 22050
WORDLIST = "/usr/share/dict/american-english"

# (base voices, variants, speed range(s), pitch range) per split. Speeds of the two splits are
# disjoint intervals; "" means the base voice without a variant.
TRAIN = dict(
    bases=["en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbcwmd"],
    variants=["", "f1", "f2", "f3", "f5", "m1", "m2", "m3", "m4", "m6", "m7", "klatt", "Annie",
              "andy", "max", "linda", "john"],
    # more speakers for --more-voices: every espeak-ng variant that is neither held out (nor a copy of
    # one, like edward2) nor a special effect (whisper, robots, croak)
    more_variants=["adam", "Alex", "Alicia", "Andrea", "antonio", "belinda", "benjamin", "boris",
                   "caleb", "david", "Gene", "iven", "iven3", "Jacky", "Lee", "marcelo", "Marco",
                   "Mario", "Michael", "michel", "miguel", "Mike", "Nguyen", "pablo", "pedro",
                   "quincy", "rob", "robert", "steph", "steph2", "zac", "anika", "grandpa", "grandma",
                   "klatt3", "klatt4", "norbert", "sandro", "shelby", "travis", "victor"],
    speeds=[(130, 200)],
    pitch=(30, 70),
)
HELDOUT = dict(
    bases=["en-029", "en-gb-x-gbclan"],
    variants=["f4", "m5", "m8", "klatt2", "edward", "aunty", "paul"],
    speeds=[(118, 129), (201, 212)],
    pitch=(25, 75),
)
N_POOL = 4000
N_HELDOUT_ONLY_WORDS = 800  # words that occur only in the held-out split


def word_pools(rng):
    words = sorted({w.strip() for w in open(WORDLIST, encoding="utf-8")
                    if w.strip().isascii() and w.strip().isalpha() and w.strip().islower()
                    and 2 <= len(w.strip()) <= 7})
    pool = rng.sample(words, N_POOL)
    return pool[N_HELDOUT_ONLY_WORDS:], pool[:N_HELDOUT_ONLY_WORDS]


_resample = julius.ResampleFrac(ESPEAK_SR, SR)  # built once: building its sinc kernels costs ~35 ms


def render(text, voice, speed, pitch):
    """espeak-ng -> float32 16 kHz mono; None if the result is out of the 0.6-3.2 s range."""
    raw = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                          "--stdout", text], capture_output=True, check=True).stdout
    # espeak writes a streaming WAV header with bogus sizes: read the PCM after the 44-byte header.
    x = np.frombuffer(raw[44:], dtype="<i2").astype(np.float32) / 32768.0
    x = _resample(torch.from_numpy(x)).numpy()
    # trim to ~80 ms of silence each side (threshold relative to the utterance's peak)
    env = np.abs(x)
    idx = np.flatnonzero(env > 0.02 * env.max()) if env.size else []
    if len(idx) == 0:
        return None
    pad = int(0.08 * SR)
    x = x[max(0, idx[0] - pad): idx[-1] + pad]
    return x if 0.6 <= len(x) / SR <= 3.2 else None


def candidates(cfg, word_sampler, rng):
    """An endless stream of (text, voice, speed, pitch); it never depends on what renders, so the
    corpus is the same whatever --jobs is."""
    while True:
        text = " ".join(word_sampler() for _ in range(rng.randint(1, 4)))
        var = rng.choice(cfg["variants"])
        voice = rng.choice(cfg["bases"]) + (f"+{var}" if var else "")
        speed = rng.randint(*rng.choice(cfg["speeds"]))
        pitch = rng.randint(*cfg["pitch"])
        yield text, voice, speed, pitch


def _render(candidate):
    return render(*candidate)


def make_split(name, n, cfg, word_sampler, out, rng, jobs):
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    rows, i = [], 0
    stream = candidates(cfg, word_sampler, rng)
    with multiprocessing.Pool(jobs) as pool, tqdm(total=n, desc=name) as bar:
        while len(rows) < n:
            # blocks in order keep the accepted utterances identical to a serial run
            block = [next(stream) for _ in range(256)]
            for (text, voice, speed, pitch), x in zip(block, pool.map(_render, block, chunksize=8)):
                if len(rows) == n:
                    break
                i += 1
                if x is None:
                    continue
                path = f"{len(rows):06d}.flac"
                sf.write(d / path, x, SR, subtype="PCM_16")
                rows.append(dict(path=path, text=text, voice=voice, speed=speed, pitch=pitch,
                                 split=name))
                bar.update(1)
    with open(d / "metadata.tsv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    print(f"{name}: {n} utterances kept of {i} rendered, "
          f"{sum(sf.info(d / r['path']).duration for r in rows) / 3600:.2f} h")


def make_slice(corpus, dest, n, seed):
    """Copy a fixed random subset of the held-out split (for tests/demos shipped in the package)."""
    src = corpus / "heldout"
    rows = list(csv.DictReader(open(src / "metadata.tsv"), delimiter="\t"))
    rows = sorted(random.Random(seed).sample(rows, n), key=lambda r: r["path"])
    dest.mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy(src / r["path"], dest / r["path"])
    with open(dest / "metadata.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["file", "text", "voice", "speed", "pitch"])
        w.writerows([r["path"], r["text"], r["voice"], r["speed"], r["pitch"]] for r in rows)
    size = sum((dest / r["path"]).stat().st_size for r in rows)
    print(f"slice: {n} utterances, {size / 1e6:.2f} MB of FLAC -> {dest}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/corpus"))
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--n-heldout", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slice", type=Path, default=None,
                   help="instead of generating, copy a subset of <out>/heldout to this folder")
    p.add_argument("--slice-n", type=int, default=160)  # ~4.5 MB of FLAC
    p.add_argument("--more-voices", action="store_true",
                   help="train on 41 more espeak-ng variants (none of them held out)")
    p.add_argument("--jobs", type=int, default=1, help="espeak-ng processes")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.slice is not None:
        return make_slice(a.out, a.slice, a.slice_n, a.seed)

    rng = random.Random(a.seed)
    train_words, heldout_words = word_pools(rng)

    def train_word():
        w = rng.choice(train_words)
        return w + "'s" if rng.random() < 0.03 else w

    def heldout_word():  # half unseen words, half training words
        return rng.choice(heldout_words if rng.random() < 0.5 else train_words)

    # held-out first so its content does not depend on --n-train
    train = dict(TRAIN, variants=TRAIN["variants"] + TRAIN["more_variants"] * a.more_voices)
    make_split("heldout", a.n_heldout, HELDOUT, heldout_word, a.out, random.Random(a.seed + 1), a.jobs)
    make_split("train", a.n_train, train, train_word, a.out, rng, a.jobs)


if __name__ == "__main__":
    main()
