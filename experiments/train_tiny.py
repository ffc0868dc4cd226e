"""Train a tiny wav2vec2 CTC character recogniser on the project's speech corpus (one CPU thread).

Architecture: wav2vec2-base's convolutional feature encoder geometry (320x downsampling, 20 ms
frames, group-norm first layer, post-LN transformer) scaled down to a 4-layer, 144-wide
transformer, so that tools written for wav2vec2-base run unchanged on it. Trained from scratch, or
fine-tuned from a saved model with --init.

    OMP_NUM_THREADS=1 python experiments/train_tiny.py --data data/corpus \
        --out audiation/assets/tiny-w2v2-espeak --steps 2600 --seed 0

With --teacher (the file of `whisper_targets.py` for the training split), a linear head on one layer also
learns to predict Whisper tiny.en's encoder output frame by frame (L1 - log sigmoid(cosine), as
DistilHuBERT), beside the CTC loss: Whisper, trained on 680,000 h of many people, lends tiny a
representation that does not change with the voice. The head is dropped when the model is saved.

The schedule depends only on --steps and --seed (not wall-clock). The model and processor are
saved to --out at every evaluation and at the end; the curve goes to <log>/curve.csv.
"""
import argparse
import csv
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import soxr
import torch
from tqdm import tqdm
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

sys.path.insert(0, str(Path(__file__).parent))
from eval_tiny import cer_report, load_split, transcribe, zero_mean_unit_var

SR = 16000
VOCAB = {"<pad>": 0, "<unk>": 1, "|": 2, "'": 3,
         **{c: 4 + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}}


def make_config(a):
    return Wav2Vec2Config(
        vocab_size=len(VOCAB), pad_token_id=0,
        # wav2vec2-base feature-encoder geometry (320x, 20 ms frames), narrower (its cost dominates on CPU)
        conv_dim=(a.conv_first,) + (a.conv_width,) * 6, conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_bias=False, feat_extract_norm="group",
        do_stable_layer_norm=a.pre_ln,
        hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.heads,
        intermediate_size=a.ffn, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, layerdrop=0.0,
        # SpecAugment-style time masking on the transformer input (training only)
        mask_time_prob=a.mask_time_prob, mask_time_length=5, mask_time_min_masks=0, mask_feature_prob=0.0,
        ctc_loss_reduction="mean", ctc_zero_infinity=True,
    )


def make_processor(tmpdir):
    (tmpdir / "vocab.json").write_text(json.dumps(VOCAB))
    tok = Wav2Vec2CTCTokenizer(str(tmpdir / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                               word_delimiter_token="|", bos_token=None, eos_token=None)
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0,
                                  do_normalize=True, return_attention_mask=True)
    return Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok)


def encode_text(t):
    return [VOCAB.get(c, 1) for c in t.lower().strip().replace(" ", "|")]


def make_batches(lengths, max_samples, rng):
    """Length-bucketed batches with <= max_samples of padded audio; jittered sort so that batch
    composition changes from epoch to epoch."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] * rng.uniform(0.9, 1.1))
    batches, cur, cur_max = [], [], 0
    for i in order:
        m = max(cur_max, lengths[i])
        if cur and m * (len(cur) + 1) > max_samples:
            batches.append(cur)
            cur, m = [], lengths[i]
        cur.append(i)
        cur_max = m
    batches.append(cur)
    rng.shuffle(batches)
    return batches


def augment(w, rng, speed=None, eq_db=0.0):
    """Leading silence (p .5, 0-150 ms) and white noise (p .5, 15-40 dB SNR); and the silence's samples.
    With `speed` (lo, hi): the utterance played at a random rate in that range (pitch, formants and tempo
    together, as a shorter or longer vocal tract and a faster or slower talker: Ko et al. 2015's speed
    perturbation). With `eq_db`: a random smooth spectral tilt of up to that many dB (p .5), since a held-out
    person here is also a held-out engine whose channel colours every sound."""
    if speed is not None:
        w = soxr.resample(w, SR * rng.uniform(*speed), SR).astype(np.float32)
    if eq_db and rng.random() < 0.5:
        spectrum = np.fft.rfft(w)
        position = np.log1p(np.arange(len(spectrum)) / len(spectrum) * 80) / math.log(81)  # 0..1, log-like
        gain_db = sum(rng.uniform(-1, 1) * np.cos(math.pi * k * position) for k in range(1, 4))
        gain_db *= rng.uniform(0.3, 1.0) * eq_db / max(1e-6, float(np.abs(gain_db).max()))
        w = np.fft.irfft(spectrum * 10 ** (gain_db / 20), len(w)).astype(np.float32)
    lead = rng.randint(0, int(0.15 * SR)) if rng.random() < 0.5 else 0
    if lead:
        w = np.concatenate([np.zeros(lead, np.float32), w])
    if rng.random() < 0.5:
        snr = rng.uniform(15, 40)
        p = float(np.mean(w ** 2)) + 1e-10
        w = w + np.random.default_rng(rng.getrandbits(32)).standard_normal(len(w)).astype(np.float32) \
            * math.sqrt(p / 10 ** (snr / 10))
    return w, lead


def load_teacher(path, rows):
    """Whisper's frames per utterance, standardised per dimension (the L1 term then weighs each alike)."""
    saved = np.load(path)
    if list(saved["paths"]) != [r.get("path", r.get("file")) for r in rows]:
        sys.exit(f"train_tiny: {path} was made for other utterances (run whisper_targets.py on this split again)")
    features = torch.from_numpy(saved["features"].astype(np.float32))
    features = (features - features.mean(0)) / (features.std(0) + 1e-5)
    offsets = saved["offsets"]
    return [features[offsets[i]:offsets[i + 1]] for i in range(len(rows))]


def distillation_loss(head, hidden, frames, leads, valid, teacher):
    """L1 - log sigmoid(cosine) between head(hidden) and the teacher's frames, over the frames both have.
    A leading silence of `lead` samples moves the utterance's frames by lead / 320."""
    predicted, wanted = [], []
    for row, (frames_of, lead) in enumerate(zip(frames, leads)):
        start = round(lead / 320)
        n = min(len(teacher[frames_of]), int(valid[row]) - start)
        predicted.append(hidden[row, start:start + n])
        wanted.append(teacher[frames_of][:n])
    p, t = head(torch.cat(predicted)), torch.cat(wanted).to(hidden.device)
    return (p - t).abs().mean() - torch.nn.functional.logsigmoid(torch.nn.functional.cosine_similarity(p, t, dim=-1)).mean()


def lr_at(step, steps, peak, warmup, floor=0.05):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/corpus"))
    p.add_argument("--out", type=Path, default=Path("audiation/assets/tiny-w2v2-espeak"))
    p.add_argument("--log-dir", type=Path, default=Path("data/train-tiny"))
    p.add_argument("--train-split", default="train",
                   help="the corpus folder to train on: train (tiny's voices) or train-listener (the listener's)")
    p.add_argument("--init", type=Path, default=None,
                   help="fine-tune this saved model (its architecture; the shape options are then ignored)")
    p.add_argument("--steps", type=int, default=2600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--batch-seconds", type=float, default=16.0)
    p.add_argument("--mask-time-prob", type=float, default=0.0)
    p.add_argument("--conv-lr-mult", type=float, default=0.1,
                   help="learning-rate factor for the conv feature encoder (cf. fairseq's feature_grad_mult)")
    p.add_argument("--hidden", type=int, default=144)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--conv-first", type=int, default=64, help="channels of the first conv layer")
    p.add_argument("--conv-width", type=int, default=128, help="channels of conv layers 2-7")
    p.add_argument("--pre-ln", action="store_true",
                   help="pre-LN transformer (do_stable_layer_norm, as wav2vec2-large-lv60) instead of post-LN")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=400)
    p.add_argument("--eval-n", type=int, default=200, help="held-out utterances used in periodic evals")
    p.add_argument("--teacher", type=Path, default=None,
                   help="Whisper's frames for the training split (experiments/whisper_targets.py), to distil")
    p.add_argument("--distill-weight", type=float, default=1.0)
    p.add_argument("--distill-layer", type=int, default=-1, help="the hidden state the head reads (-1: the last)")
    p.add_argument("--speed", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="speed perturbation: each utterance resampled at a random rate in [LO, HI] (e.g. 0.85 1.15)")
    p.add_argument("--eq-db", type=float, default=0.0, help="a random smooth spectral tilt of up to this many dB")
    p.add_argument("--extra", type=Path, default=None,
                   help="a folder of more training audio with its metadata.tsv (make_recordings.py's Whisper-labelled one)")
    p.add_argument("--extra-repeat", type=int, default=1, help="how often each --extra utterance is seen an epoch")
    a = p.parse_args()
    if a.extra is not None and a.teacher is not None:
        p.error("--teacher's frames are of the training split alone: --extra has none")
    if a.speed is not None and a.teacher is not None:
        p.error("--speed moves every frame, so the teacher's frames no longer line up: use one of them")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    rng = random.Random(a.seed)
    a.log_dir.mkdir(parents=True, exist_ok=True)
    a.out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    train = load_split(a.data / a.train_split)
    if a.extra is not None:  # real people with Whisper's transcripts (make_recordings.py), seen `extra_repeat` times an epoch
        train += load_split(a.extra) * a.extra_repeat
    heldout = load_split(a.data / "heldout")
    heldout = random.Random(a.seed).sample(heldout, min(a.eval_n, len(heldout)))
    wavs = [r["audio"] for r in train]
    labels = [encode_text(r["text"]) for r in train]
    slowest = 1.0 if a.speed is None else min(a.speed)
    lengths = [int(len(w) / slowest) + int(0.15 * SR) for w in wavs]  # budget for speed and leading silence
    print(f"loaded {len(train)} train / {len(heldout)} eval utterances in {time.time() - t0:.0f} s, "
          f"{sum(len(w) for w in wavs) / SR / 3600:.2f} h of training audio")

    processor = make_processor(a.log_dir)
    if a.init is not None:  # its units keep their roles, mostly: what was found in them need not start over
        model = Wav2Vec2ForCTC.from_pretrained(a.init)
        model.config.mask_time_prob = a.mask_time_prob
    else:
        model = Wav2Vec2ForCTC(make_config(a))
        # Start the output layer at the CTC blank prior (p(blank) ~ .7). From a uniform start the
        # fastest loss drop is to make the post-LN encoder output constant in time, and at a peak lr
        # of 2e-3 it collapsed that way in two runs (blank-only output, no recovery).
        with torch.no_grad():
            model.lm_head.bias.zero_()
            model.lm_head.bias[0] = math.log(0.7 / (0.3 / (len(VOCAB) - 1)))
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    teacher = None if a.teacher is None else load_teacher(a.teacher, train)
    head = None if teacher is None else torch.nn.Linear(model.config.hidden_size, teacher[0].shape[1])
    # At the full peak lr the un-normalised conv layers 1-6 grew their activations ~1000x within
    # 1,000 steps and the transformer output became input-independent (all blanks): give the
    # feature encoder a smaller learning rate, as wav2vec 2.0 damps its gradients.
    conv = {id(p) for p in model.wav2vec2.feature_extractor.parameters()}
    groups = []
    for is_conv in (False, True):
        for wd in (0.01, 0.0):
            ps = [p for p in model.parameters() if (id(p) in conv) == is_conv and (p.ndim >= 2) == (wd > 0)]
            groups.append({"params": ps, "weight_decay": wd, "lr_mult": a.conv_lr_mult if is_conv else 1.0})
    if head is not None:
        head.to(a.device)
        groups.append({"params": list(head.parameters()), "weight_decay": 0.0, "lr_mult": 1.0})
    model.to(a.device)
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.98))
    feat_abs = [0.0]  # mean |conv feature| of the current batch, logged to catch that blow-up early
    model.wav2vec2.feature_extractor.register_forward_hook(
        lambda m, i, o: feat_abs.__setitem__(0, o.detach().abs().mean().item()))
    id2char = {i: c for c, i in VOCAB.items()}

    def evaluate(step):
        hyps = transcribe(model, [r["audio"] for r in heldout], id2char)
        model.train()
        report = cer_report(heldout, hyps)
        engines = " ".join(f"{k[7:]} {v['cer']:.3f}" for k, v in report.items() if k.startswith("engine:"))
        return report["overall"]["cer"], f"({engines}) e.g. {hyps[:3]}"

    def save():
        model.save_pretrained(a.out, safe_serialization=True)
        processor.save_pretrained(a.out)
        processor.feature_extractor.save_pretrained(a.out)  # preprocessor_config.json, for older loaders

    curve = open(a.log_dir / "curve.csv", "w", newline="")
    log = csv.writer(curve)
    log.writerow(["step", "elapsed_s", "lr", "loss", "conv_feat_abs", "last_hidden_time_std", "heldout_cer",
                  "distill_loss"])
    batches, epoch, loss_ema, distill_ema = [], 0, None, None
    model.train()
    t0 = time.time()
    bar = tqdm(range(a.steps), desc="train", mininterval=30)
    for step in bar:
        if not batches:
            batches = make_batches(lengths, a.batch_seconds * SR, rng)
            epoch += 1
        idx = batches.pop()
        augmented, leads = zip(*(augment(wavs[i], rng, a.speed, a.eq_db) for i in idx))
        x, mask = (t.to(a.device) for t in zero_mean_unit_var(list(augmented)))
        lab = torch.full((len(idx), max(len(labels[i]) for i in idx)), -100, dtype=torch.long)
        for j, i in enumerate(idx):
            lab[j, :len(labels[i])] = torch.tensor(labels[i])
        lr = lr_at(step, a.steps, a.lr, a.warmup)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        out = model(x, attention_mask=mask, labels=lab.to(a.device), output_hidden_states=True)
        loss = out.loss
        if head is not None:
            valid = model._get_feat_extract_output_lengths(mask.sum(1))
            distill = distillation_loss(head, out.hidden_states[a.distill_layer], idx, leads, valid, teacher)
            loss = loss + a.distill_weight * distill
            distill_ema = distill.item() if distill_ema is None else 0.98 * distill_ema + 0.02 * distill.item()
        hid_std = out.hidden_states[-1][0].std(0).mean().item()  # ~0 means collapsed
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        ctc = out.loss.item()  # the curve keeps the CTC loss alone, comparable with runs without a teacher
        loss_ema = ctc if loss_ema is None else 0.98 * loss_ema + 0.02 * ctc
        bar.set_postfix(loss=f"{loss_ema:.3f}", feat=f"{feat_abs[0]:.2f}", hstd=f"{hid_std:.2f}", ep=epoch, lr=f"{lr:.1e}", refresh=False)
        cer = ""
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            cer, ex = evaluate(step)
            save()
            tqdm.write(f"step {step + 1} ({time.time() - t0:.0f} s) loss {loss_ema:.3f} "
                       f"held-out CER {cer:.3f} {ex}")
        if (step + 1) % 50 == 0 or cer != "":
            log.writerow([step + 1, round(time.time() - t0, 1), f"{lr:.3e}", f"{loss_ema:.4f}",
                          f"{feat_abs[0]:.3f}", f"{hid_std:.3f}", cer if cer == "" else f"{cer:.4f}",
                          "" if distill_ema is None else f"{distill_ema:.4f}"])
            curve.flush()
    print(f"done: {a.steps} steps, {epoch} epochs started, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
