"""Greedy-CTC character error rate of a Wav2Vec2ForCTC model on a folder with metadata.tsv.

    python experiments/eval_tiny.py --model audiation/assets/tiny-w2v2-espeak \
        --data data/corpus/heldout [--json out.json]

CER = total edit distance / total reference characters (spaces count), overall, per engine (espeak,
flite, festival) and per voice.
"""
import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiation.hearing.verdicts import edit_distance


def normalize_text(t):
    return " ".join(t.lower().split())


def load_split(folder, limit=None):
    """Rows of metadata.tsv (column 'path' or 'file') with the waveform as float32 under 'audio'."""
    folder = Path(folder)
    rows = list(csv.DictReader(open(folder / "metadata.tsv"), delimiter="\t"))[:limit]
    for r in rows:
        r["audio"], sr = sf.read(folder / r.get("path", r.get("file")), dtype="float32")
        assert sr == 16000
    return rows


def zero_mean_unit_var(wavs):
    """Per-utterance normalisation + zero padding + attention mask, as Wav2Vec2FeatureExtractor
    with do_normalize=True does it; done in torch to keep the training loop cheap."""
    n = max(len(w) for w in wavs)
    x = torch.zeros(len(wavs), n)
    mask = torch.zeros(len(wavs), n, dtype=torch.long)
    for i, w in enumerate(wavs):
        w = torch.as_tensor(w, dtype=torch.float32)
        x[i, :len(w)] = (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)
        mask[i, :len(w)] = 1
    return x, mask


def greedy_decode(logits, lengths, id2char, blank=0):
    out = []
    for seq, n in zip(logits.argmax(-1), lengths):
        ids = torch.unique_consecutive(seq[:n]).tolist()
        s = "".join(id2char[i] for i in ids if i != blank and id2char[i] != "<unk>")
        out.append(" ".join(s.replace("|", " ").split()))
    return out


@torch.no_grad()
def transcribe(model, wavs, id2char, max_batch_s=32.0):
    """Greedy transcripts; batches are formed from length-sorted utterances to limit padding."""
    model.eval()
    order = sorted(range(len(wavs)), key=lambda i: len(wavs[i]))
    hyps = [None] * len(wavs)
    batch = []

    def flush():
        device = next(model.parameters()).device
        x, mask = (t.to(device) for t in zero_mean_unit_var([wavs[i] for i in batch]))
        logits = model(x, attention_mask=mask).logits
        lengths = model._get_feat_extract_output_lengths(mask.sum(-1)).tolist()
        for i, h in zip(batch, greedy_decode(logits, lengths, id2char)):
            hyps[i] = h

    for i in order:
        if batch and len(wavs[i]) * (len(batch) + 1) > max_batch_s * 16000:
            flush()
            batch = []
        batch.append(i)
    if batch:
        flush()
    return hyps


def cer_report(rows, hyps):
    """Overall, per-engine and per-voice CER (rows without an engine column are espeak-ng's)."""
    tot = defaultdict(lambda: [0, 0])
    for r, h in zip(rows, hyps):
        ref = normalize_text(r["text"])
        e = edit_distance(ref, h)
        engine = r.get("engine") or "espeak"
        for key in ("overall", f"engine:{engine}", f"voice:{engine}/{r['voice']}"):
            tot[key][0] += e
            tot[key][1] += len(ref)
    return {k: {"cer": e / n, "chars": n} for k, (e, n) in sorted(tot.items())}


def ctc_align(logp, target, blank=0):
    """Viterbi CTC forced alignment: per-frame token id (blank where the path is in a blank state)."""
    ext = [blank]
    for t in target:
        ext += [t, blank]
    S, T = len(ext), logp.shape[0]
    ext = np.array(ext)
    # transition from s-2 allowed when ext[s] is a non-blank different from ext[s-2]
    skip = np.zeros(S, bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    dp = np.full(S, -np.inf)
    dp[:2] = logp[0, ext[:2]]
    back = np.zeros((T, S), np.int64)
    for t in range(1, T):
        cand = np.stack([dp, np.r_[-np.inf, dp[:-1]], np.where(skip, np.r_[-np.inf, -np.inf, dp[:-2]], -np.inf)])
        k = cand.argmax(0)
        back[t] = np.arange(S) - k
        dp = cand[k, np.arange(S)] + logp[t, ext]
    s = S - 1 if S == 1 or dp[S - 1] >= dp[S - 2] else S - 2
    path = [s]
    for t in range(T - 1, 0, -1):
        s = back[t, s]
        path.append(s)
    return ext[np.array(path[::-1])]


def frame_labels(logits, text, vocab):
    """Characters per frame: forced-align the reference, then give each blank frame the label of the
    nearest emitted token (a letter's sound spans several frames but CTC emits it on one or two)."""
    target = [vocab.get(c, 1) for c in normalize_text(text).replace(" ", "|")]
    path = ctc_align(torch.log_softmax(logits, -1).numpy(), target)
    emitted = np.flatnonzero(path != 0)
    if len(emitted) == 0:
        return None
    nearest = emitted[np.abs(np.arange(len(path))[:, None] - emitted[None]).argmin(1)]
    return path[nearest]


@torch.no_grad()
def selective_units(model, rows, vocab, top=150, show=8):
    """For the CTC logits and the last transformer layer: each unit's `top` most active frames on
    `rows`, and the share of them carrying the unit's most frequent character (letters and ')."""
    id2char = {i: c for c, i in vocab.items()}
    model.eval()
    feats = {"logits": [], "last_layer": []}
    labels = []
    for r in rows:
        x, mask = zero_mean_unit_var([r["audio"]])
        out = model(x, attention_mask=mask, output_hidden_states=True)
        lab = frame_labels(out.logits[0], r["text"], vocab)
        if lab is None:
            continue
        labels.append(lab)
        feats["logits"].append(out.logits[0].numpy())
        feats["last_layer"].append(out.hidden_states[-1][0].numpy())
    labels = np.concatenate(labels)
    chars = [vocab[c] for c in "'abcdefghijklmnopqrstuvwxyz"]
    base = {c: np.mean(labels == c) for c in chars}
    result = {}
    for name, f in feats.items():
        f = np.concatenate(f)
        units = []
        for u in range(f.shape[1]):
            lab = labels[np.argsort(-f[:, u])[:top]]
            counts = {c: int(np.sum(lab == c)) for c in chars}
            c = max(counts, key=counts.get)
            units.append(dict(unit=u, char=id2char[c], share=counts[c] / top,
                              lift=counts[c] / top / max(base[c], 1e-9)))
        units.sort(key=lambda d: -d["share"])
        result[name] = units
        print(f"{name}: {f.shape[0]} frames; most letter-selective units (top {top} frames):")
        for d in units[:show]:
            tag = f" (vocab id {d['unit']} = {id2char[d['unit']]!r})" if name == "logits" else ""
            print(f"  unit {d['unit']:4d}{tag}: {d['char']!r} {d['share']:.0%} of top frames, "
                  f"lift {d['lift']:.1f}x over base rate")
    return result


def pocketsphinx_words(wavs):
    """What pocketsphinx's English word recognizer (its default language model) hears, lower case."""
    import os

    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000, logfn=os.devnull)
    texts = []
    for w in wavs:
        decoder.start_utt()
        decoder.process_raw((np.clip(w, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        texts.append(normalize_text(hyp.hypstr if hyp else ""))
    return texts


def whisper_words(wavs, batch=8):
    """What Whisper tiny.en (the project's judge: 680,000 h of real speech, its full 30-s window) hears, in the
    model's alphabet: lower case letters, apostrophes and spaces."""
    import re

    from audiation.hearing import judges

    hear = judges.load_whisper("cpu")
    texts = []
    for start in range(0, len(wavs), batch):
        chunk = wavs[start:start + batch]
        longest = max(len(w) for w in chunk)
        x, _ = judges.prepared(np.stack([np.pad(w, (0, longest - len(w))) for w in chunk]), 16000)
        heard = hear(torch.from_numpy(x), [judges.About()] * len(chunk))
        texts += [normalize_text(re.sub(r"[^a-z' ]", " ", h["whisper_transcript"].lower())) for h in heard]
    return texts


def main():
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="audiation/assets/tiny-w2v2-espeak")
    p.add_argument("--data", default="data/corpus/heldout")
    p.add_argument("--json", type=Path, default=None, help="write the report (and samples) here")
    p.add_argument("--show", type=int, default=10, help="print this many example transcripts")
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    p.add_argument("--sample", type=int, default=None, help="only a fixed random sample of N utterances (seed 0)")
    p.add_argument("--pocketsphinx", action="store_true",
                   help="also the CER of pocketsphinx's word recognizer (trained on real speech), for scale")
    p.add_argument("--whisper", action="store_true", help="also the CER of Whisper tiny.en, for scale")
    p.add_argument("--units", type=int, default=0,
                   help="also rank character-selective units on the first N utterances")
    a = p.parse_args()
    torch.set_num_threads(1)

    model = Wav2Vec2ForCTC.from_pretrained(a.model)
    vocab = Wav2Vec2Processor.from_pretrained(a.model).tokenizer.get_vocab()
    id2char = {i: c for c, i in vocab.items()}
    rows = load_split(a.data, a.limit)
    if a.sample is not None and a.sample < len(rows):
        import random
        rows = [rows[i] for i in sorted(random.Random(0).sample(range(len(rows)), a.sample))]
    hyps = transcribe(model, [r["audio"] for r in rows], id2char)
    rep = cer_report(rows, hyps)
    scale = cer_report(rows, pocketsphinx_words([r["audio"] for r in rows])) if a.pocketsphinx else {}
    whisper = cer_report(rows, whisper_words([r["audio"] for r in rows])) if a.whisper else {}
    for k, v in rep.items():
        print(f"{k:36s} CER {v['cer']:.3f}  ({v['chars']} chars)"
              + (f"   pocketsphinx {scale[k]['cer']:.3f}" if k in scale else "")
              + (f"   whisper {whisper[k]['cer']:.3f}" if k in whisper else ""))
    for r, h in list(zip(rows, hyps))[:a.show]:
        print(f"  {r['voice']:24s} ref: {r['text']!r:40s} hyp: {h!r}")
    units = selective_units(model, rows[:a.units], vocab) if a.units else None
    if a.json:
        samples = [dict(path=r.get("path", r.get("file")), voice=r["voice"], ref=r["text"], hyp=h)
                   for r, h in zip(rows, hyps)]
        a.json.write_text(json.dumps(dict(report=rep, pocketsphinx=scale or None, whisper=whisper or None, units=units,
                                          samples=samples),
                                     indent=1))


if __name__ == "__main__":
    main()
