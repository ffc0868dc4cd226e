"""Whisper tiny.en's encoder output for every utterance of a corpus split: targets for distilling it into
tiny (`train_tiny.py --teacher`), as DistilHuBERT learns from HuBERT's layers.

Utterances are packed one after another into 30-s windows (0.2 s of silence between them), so the teacher
runs once per window, as Whisper's own preprocessing would feed it, instead of once per padded utterance.
Each utterance starts on a multiple of 320 samples, so its frames are the window's frames from
start / 320 on: frame t is centred on sample 320 t, within 200 samples of wav2vec2's frame t.

    OMP_NUM_THREADS=1 python experiments/whisper_targets.py --data data/corpus --split train

Output: <data>/<split>/whisper-targets.npz: `features` (all frames, 384; float16), `offsets` (utterance i's
frames are features[offsets[i]:offsets[i + 1]]), `paths` (the metadata's rows, in order).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from eval_tiny import load_split

from audiation.models.encoder import ModelSpec, load_encoder
from audiation.models.families import whisper

HOP = 320  # samples per frame of Whisper's encoder and of wav2vec2
WINDOW = whisper.WINDOW_SECONDS * whisper.SAMPLE_RATE
GAP = 10 * HOP


def windows(lengths: list[int]):
    """[(utterance indices, their start samples)] packing the utterances in order into 30-s windows."""
    packed, current, starts, at = [], [], [], 0
    for i, n in enumerate(lengths):
        if current and at + n > WINDOW:
            packed.append((current, starts))
            current, starts, at = [], [], 0
        current.append(i)
        starts.append(at)
        at += -(-(n + GAP) // HOP) * HOP
    packed.append((current, starts))
    return packed


def teacher_frames(model, audio: list[np.ndarray]) -> list[np.ndarray]:
    """The encoder's output frames of each utterance, run on the windows that pack them."""
    out: list[np.ndarray] = [None] * len(audio)  # type: ignore[list-item]
    for indices, starts in tqdm(windows([len(a) for a in audio]), desc="windows", mininterval=30):
        end = starts[-1] + len(audio[indices[-1]])
        signal = torch.zeros(1, -(-end // HOP) * HOP)
        for i, s in zip(indices, starts):
            signal[0, s:s + len(audio[i])] = torch.from_numpy(audio[i])
        with torch.no_grad():
            encoded = whisper.encode(model, whisper.log_mel(signal))[0].numpy()
        for i, s in zip(indices, starts):
            out[i] = encoded[s // HOP: s // HOP + -(-len(audio[i]) // HOP)].astype(np.float16)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/corpus"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default="openai/whisper-tiny.en")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = load_split(args.data / args.split)
    model = load_encoder(ModelSpec(args.model, normalize=False), "cpu").model
    started = time.time()
    frames = teacher_frames(model, [r["audio"] for r in rows])
    offsets = np.cumsum([0] + [len(f) for f in frames])
    target = args.data / args.split / "whisper-targets.npz"
    np.savez(target, features=np.concatenate(frames), offsets=offsets,
             paths=np.array([r.get("path", r.get("file")) for r in rows]))
    print(f"{len(rows)} utterances, {offsets[-1]} frames of {frames[0].shape[1]} in {time.time() - started:.0f} s "
          f"-> {target}")


if __name__ == "__main__":
    main()
