"""How a short audiation should meet Whisper's 30-s window: cut the positional table, or pad with silence.

For each `model.window` (cut, or the signal padded with silence to N seconds, 30 = Whisper's own
preprocessing), on 1-s pieces of natural speech (the shipped speech slice):
- how far a layer's activations move from those of the full 30-s window: the relative error
  ||a - a_full|| / ||a_full|| over the pieces' frames, and the median over units of each unit's correlation
  with its full-window activations;
- the cost of one forward+backward at that layer (batch 8, one thread), against the cut window's.

    OMP_NUM_THREADS=1 python experiments/whisper_window.py [--pieces 24] [--layers 2 4 mlp4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiation.data import audio_files
from audiation.models.encoder import ModelSpec, load_encoder, parse_layer


def pieces(folder: Path, count: int, seconds: float = 1.0) -> torch.Tensor:
    """`count` 1-s pieces of speech, the loudest second of each file."""
    rows = []
    for path in audio_files.list_audio(folder)[:count]:
        signal = audio_files.read_audio(path, 16000)
        n = int(seconds * 16000)
        if len(signal) < n:
            continue
        energy = np.convolve(signal ** 2, np.ones(n), "valid")[::160]
        start = int(np.argmax(energy)) * 160
        rows.append(signal[start:start + n])
    return torch.from_numpy(np.stack(rows)).float()


def step_seconds(encoder, layer, batch: torch.Tensor, repeats: int = 3) -> float:
    """Median wall of one forward+backward of `batch` at `layer`."""
    times = []
    for _ in range(repeats + 1):
        signal = batch.clone().requires_grad_(True)
        started = time.perf_counter()
        encoder(signal, layer).pow(2).mean().backward()
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]))  # the first warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=24)
    parser.add_argument("--layers", nargs="+", default=["2", "4", "mlp4"])
    parser.add_argument("--windows", nargs="+", default=["cut", "2", "5", "10", "full"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    speech = pieces(ROOT / "audiation" / "assets" / "speech-slice", args.pieces)
    encoders = {w: load_encoder(ModelSpec("openai/whisper-tiny.en", normalize=False, window=w), "cpu")
                for w in args.windows}
    config = encoders["full"].config
    print(f"{len(speech)} one-second pieces of speech; Whisper tiny.en; torch threads 1")
    print("| layer | window | relative error vs full | median unit correlation | step (s, batch 8) | step / cut |")
    print("|---|---|---|---|---|---|")
    for name in args.layers:
        layer = parse_layer(name, config)
        with torch.no_grad():
            full = encoders["full"](speech, layer).flatten(0, 1).double()
        cut_step = None
        for window in args.windows:
            with torch.no_grad():
                acts = encoders[window](speech, layer).flatten(0, 1).double()
            error = float((acts - full).norm() / full.norm())
            a, b = acts - acts.mean(0), full - full.mean(0)
            corr = (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0)).clamp(min=1e-12)
            seconds = step_seconds(encoders[window], layer, speech[:8])
            cut_step = cut_step or seconds
            print(f"| {layer.label} | {window} | {error:.3f} | {float(corr.median()):.3f} | {seconds:.3f} | "
                  f"{seconds / cut_step:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
