"""Neurons against SAE features on the same layer and data: purity of their top frames, and how far their
audiations go past the natural maximum (issue 21's comparison; results in experiments/RESULTS.md).

Per layer of `model=tiny`:
1. an SAE (`python -m audiation.features`: 8 x 192 features, k=32) on the training audio, timed, with its
   fraction of variance explained on held-out files and its dead share;
2. purity: every frame of the audio gets the character tiny itself emits there (greedy CTC at the logits
   layer; the nearest non-blank emission within +-`--reach` frames, else none). For each unit (192
   neurons, or the live features) its `--top` highest frames: purity = the share of them that carry its
   most common character; lift = that character's share among them over its share among all labelled
   frames. Medians over units, and the share of units with lift >= 3;
3. audiation: `--audiate` random live features and as many neurons, kind=unit (one frame), `--steps`
   steps, with quality.data = the held-out audio: the median activation ratio (final / natural maximum).

    python experiments/features_vs_neurons.py --data data/corpus-small/train --heldout data/corpus-small/heldout \\
        --layers 1,2,3,4,5,6 --out outputs/features-vs-neurons
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiation.config import builder
from audiation.config.configs import compose
from audiation.core import sae
from audiation.data import audio_files
from audiation.data.activations import derived_cache, open_cache
from audiation.models.encoder import load_config, parse_layer, vocabulary


def frame_labels(logits: np.ndarray, blank: int, reach: int) -> np.ndarray:
    """Per frame, the nearest non-blank greedy emission within `reach` frames (-1: none)."""
    best = logits.argmax(axis=1)
    labels = np.full(len(best), -1)
    distance = np.full(len(best), reach + 1)
    for shift in range(-reach, reach + 1):
        source = np.roll(best, shift)
        closer = (source != blank) & (abs(shift) < distance)
        labels[closer], distance[closer] = source[closer], abs(shift)
    return labels


def purity(columns, labels: np.ndarray, top: int, base: np.ndarray) -> tuple[list[float], list[float]]:
    """(purity, lift) of each unit's `top` frames (units with no labelled top frame are left out)."""
    purities, lifts = [], []
    for _unit, values in columns:
        chosen = labels[np.argpartition(values, -top)[-top:]]
        known = chosen[chosen >= 0]
        if not len(known):
            continue
        counts = np.bincount(known, minlength=len(base))
        mode = counts.argmax()
        purities.append(counts[mode] / top)
        lifts.append((counts[mode] / len(known)) / max(base[mode], 1e-9))
    return purities, lifts


def audiate(layer: int, objective: list[str], units: list[int], heldout: str, cache: Path, steps: int, out: Path) -> list:
    """Ratios of a job's audiations to the natural maximum on the held-out audio (a subprocess: one thread)."""
    command = [sys.executable, "-m", "audiation.run", "model=tiny", f"model.layer={layer}", *objective,
               f"objective.unit=[{','.join(map(str, units))}]", f"steps={steps}", "logger=none", "threads=1",
               "quality.draws=0", f"quality.data={heldout}", f"quality.cache_dir={cache}", "examples.top_k=0",
               f"batch_size={len(units)}", f"hydra.run.dir={out}"]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return [t.get("activation_ratio") for t in json.loads((out / "metrics.json").read_text())["targets"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--layers", default="1,2,3,4,5,6")
    parser.add_argument("--out", default="outputs/features-vs-neurons")
    parser.add_argument("--features", type=int, default=1536)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--sae-steps", type=int, default=2000)
    parser.add_argument("--top", type=int, default=50)
    parser.add_argument("--reach", type=int, default=2)
    parser.add_argument("--audiate", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out, cache_dir = Path(args.out), Path(args.out) / "cache"
    cfg = compose("model=tiny")
    spec = builder.model_spec(cfg.model)
    config = load_config(spec)
    files = audio_files.list_audio(args.data)
    logits = open_cache(spec, parse_layer("logits", config), config, files, cache_dir)
    tokens = vocabulary(spec, config.vocab_size)
    blank = config.pad_token_id or 0
    labels = frame_labels(np.asarray(logits.activations, dtype=np.float32), blank, args.reach)
    skip = {i for i, t in enumerate(tokens) if t in ("|", " ", "<unk>", "<s>", "</s>", "'")} | {blank}
    labels[np.isin(labels, list(skip))] = -1
    base = np.bincount(labels[labels >= 0], minlength=len(tokens)) / max((labels >= 0).sum(), 1)
    rows = []
    for layer in [int(x) for x in args.layers.split(",")]:
        folder = out / f"sae-L{layer}"
        started = time.perf_counter()
        if not (folder / sae.SUMMARY).is_file():
            subprocess.run([sys.executable, "-m", "audiation.features", "model=tiny", f"model.layer={layer}",
                            f"data.path={args.data}", f"data.cache_dir={cache_dir}", f"features={args.features}",
                            f"k={args.k}", f"steps={args.sae_steps}", "threads=1", f"hydra.run.dir={folder}"],
                           check=True, cwd=ROOT, capture_output=True)
        summary = json.loads((folder / sae.SUMMARY).read_text())
        layer_cache = open_cache(spec, parse_layer(str(layer), config), config, files, cache_dir)
        dictionary = sae.load(folder)
        features = derived_cache(layer_cache, lambda x: dictionary.pre(torch.from_numpy(x)).numpy(),
                                 f"sae-{sae.content_digest(folder)}", f"features of {folder}")
        live = [i for i, f in enumerate(summary["firing_frequency"]) if f > 0]
        neuron_purity, neuron_lift = purity(layer_cache.columns(list(range(layer_cache.num_units))), labels, args.top, base)
        feature_purity, feature_lift = purity(features.columns(live), labels, args.top, base)
        rng = np.random.default_rng(layer)
        chosen = {"neurons": sorted(rng.choice(layer_cache.num_units, args.audiate, replace=False).tolist()),
                  "features": sorted(rng.choice(live, args.audiate, replace=False).tolist())}
        ratios = {"neurons": audiate(layer, ["objective=unit"], chosen["neurons"], args.heldout, cache_dir,
                                     args.steps, out / f"audiate-L{layer}-neurons"),
                  "features": audiate(layer, ["objective=feature", f"objective.sae={folder.resolve()}",
                                              "objective.kind=unit"], chosen["features"], args.heldout, cache_dir,
                                      args.steps, out / f"audiate-L{layer}-features")}
        row = {"layer": f"L{layer}", "frames": summary["train_frames"], "sae_seconds": summary["seconds"],
               "variance_explained": summary["variance_explained"], "dead_share": summary["dead_share"],
               "neuron_purity": statistics.median(neuron_purity), "feature_purity": statistics.median(feature_purity),
               "neuron_lift3": float(np.mean(np.array(neuron_lift) >= 3)),
               "feature_lift3": float(np.mean(np.array(feature_lift) >= 3)),
               "neuron_ratio": statistics.median([r for r in ratios["neurons"] if r is not None]),
               "feature_ratio": statistics.median([r for r in ratios["features"] if r is not None]),
               "seconds": round(time.perf_counter() - started)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
