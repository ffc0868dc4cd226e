"""Every path of the project on CUDA, in a few minutes: what ran, how long, pass or fail and why.

    python experiments/gpu_check.py            # or: make gpu-check
    python experiments/gpu_check.py --device cpu --steps 2   # the same checks on CPU (a dry run; CI's slow tests)

CI has no GPU, so this is how the GPU path is kept correct: run it whenever a session has one, and record
the table with the card in experiments/RESULTS.md. Each check runs a real job through the library (as
`python -m audiation.run` would, W&B offline) into a temporary folder and checks what it wrote; a failure
is reported with its reason and the next check runs. The exit status is the number of failures.

Models: `model=tiny` (the shipped trained model: fast, offline, meaningful units) for most paths,
`model=random_base` (wav2vec2-base's size) for batch_size=auto and bf16, where size matters.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from audiation.config import configs
from audiation.config.builder import model_spec
from audiation.config.configs import ASSETS
from audiation.config.job_plans import examples_plan
from audiation.core.randomness import Streams
from audiation.jobs.audiate_job import audiate_folder
from audiation.jobs.examples_job import examples_job
from audiation.models.encoder import load_config

SLICE = ASSETS / "speech-slice"


def job(folder: Path, *overrides: str, units: str | None = None) -> dict:
    unit = [] if units is None else [f"objective.unit={units}"]
    return audiate_folder(configs.compose("model=tiny", "logger=wandb", "logger.mode=offline", *overrides, *unit),
                          folder)


def rises(metrics: dict, every: bool = True) -> str:
    """Pass when every target's activation rose (or, for random models, the mean did); else say which not."""
    targets = metrics["targets"]
    assert all(t["stopped"] is None for t in targets), "a target stopped early"
    gains = np.array([t["final_activation"] - t["initial_activation"] for t in targets])
    assert np.isfinite(gains).all(), "non-finite activations"
    if every:
        flat = [t["name"] for t, gain in zip(targets, gains) if not gain > 0]
        assert not flat, f"activation did not rise for {flat[:3]}"
        return f"{len(targets)} target(s) rose"
    assert gains.mean() > 0, f"the mean activation fell ({gains.mean():.3g})"
    return f"mean gain {gains.mean():.3g} over {len(targets)} targets"


def checks(device: str, steps: int, work: Path):
    common = (f"device={device}", f"steps={steps}")

    def streams_match():
        cpu = Streams(3, [1, 7, 9]).normal(1000)
        other = Streams(3, [1, 7, 9], device).normal(1000).cpu()
        error = (cpu - other).abs().max().item()
        assert error < 1e-5, f"CPU and {device} draws differ by {error}"
        return f"max |cpu - {device}| = {error:.1e}"

    def objective(name, *extra, min_steps: int = 1):
        """A check that the objective's activation rises; `min_steps`: what the path needs to rise for sure
        (a raw waveform or strong augmentation can dip in Adam's first steps)."""
        folder = work / "-".join([name, *extra]).replace("/", "_").replace("=", "_")
        return lambda: rises(job(folder, f"objective={name}", *extra, f"device={device}",
                                 f"steps={max(steps, min_steps)}"))

    tiny = configs.compose("model=tiny")
    width = load_config(model_spec(tiny.model)).hidden_size  # the direction's size: the model's own
    np.save(work / "direction.npy", np.random.default_rng(0).standard_normal(width).astype(np.float32))

    def resumed():
        folder = work / "resume"
        first = job(folder, "objective=channel", "batch_size=2", *common, units="0:4")
        (folder / "targets" / first["targets"][-1]["name"] / "target.json").unlink()
        second = job(folder, "objective=channel", "batch_size=2", *common, units="0:4")
        assert second["run"]["audiated_now"] == 1 and len(second["targets"]) == 4, second["run"]
        return f"redid 1 of {len(first['targets'])}"

    def auto_batch():
        metrics = audiate_folder(_random_base(device, steps, "batch_size=auto", "objective=channel", units="0:96",
                                              layer=12), work / "auto")
        return f"chose batch {metrics['run']['batch_size']}; " + rises(metrics, every=False)

    def bf16():
        metrics = audiate_folder(_random_base(device, steps, "precision=bf16", "objective=channel", "batch_size=16",
                                              units="0:16", layer=6), work / "bf16")
        return rises(metrics, every=False)

    def words():  # a CTC likelihood can dip in Adam's first steps from noise: at least 20 steps
        metrics = job(work / "text", "objective=text", "objective.text=[moon,fish]", f"device={device}",
                      f"steps={max(steps, 20)}")
        return rises(metrics) + "; heard " + ", ".join(repr(t["transcript"]) for t in metrics["targets"])

    def samples():
        metrics = job(work / "samples", "objective=channel", "samples=3", "diversity=1", *common, units="0:2")
        assert len(metrics["targets"]) == 6 and all(t["sibling_similarity"] is not None for t in metrics["targets"])
        return rises(metrics, every=False)

    def examples():
        cfg = configs.compose("model=tiny", "model.layer=4", "units=0:4", f"data.path={SLICE}", "logger=none",
                              f"data.cache_dir={work / 'cache'}", f"device={device}", config_name="examples")
        summary = examples_job(examples_plan(cfg), work / "examples")
        assert len(summary["units"]) == 4 and all(len(u["examples"]) == 5 for u in summary["units"])
        return f"{summary['frames']} frames cached"

    return [
        ("random streams: same numbers on CPU and device", streams_match),
        ("objective=unit", objective("unit", "objective.unit=64")),
        ("objective=channel", objective("channel", "objective.unit=64")),
        ("objective=layer (conv3)", objective("layer", "model.layer=conv3")),
        ("objective=direction", objective("direction", f"objective.direction={work / 'direction.npy'}")),
        ("objective=channel at logits", objective("channel", "model.layer=logits", "objective.unit=22")),
        ("objective=text (CTC)", words),
        ("MLP neurons (model.layer=mlp4)", objective("channel", "model.layer=mlp4", "objective.unit=100")),
        ("samples=3 diversity=1", samples),
        ("parameterization.init + regularizer.stay_close",
         objective("channel", f"parameterization.init={SLICE / '000092.flac'}", "regularizer.stay_close=1",
                   "objective.unit=7")),
        ("parameterization=waveform", objective("channel", "parameterization=waveform", "objective.unit=5",
                                                        min_steps=20)),
        ("parameterization=speech + regularizer.speech (experiment=heard)",
         objective("channel", "experiment=heard", "objective.unit=5", min_steps=20)),
        ("augmentation=none", objective("channel", "augmentation=none", "objective.unit=5")),
        ("augmentation=strong", objective("channel", "augmentation=strong", "objective.unit=5", min_steps=20)),
        ("precision=bf16 (random_base L6, 16 targets)", bf16),
        ("compile=true", objective("channel", "compile=true", "objective.unit=5")),
        ("batch_size=auto (random_base L12, 96 targets)", auto_batch),
        ("quality.data (dataset max ratios)", objective("unit", f"quality.data={SLICE}",
                                                        f"quality.cache_dir={work / 'cache'}", "objective.unit=3")),
        ("audiation.examples", examples),
        ("a resumed job", resumed),
    ]


def _random_base(device: str, steps: int, *overrides: str, units: str, layer: int):
    return configs.compose("model=random_base", f"model.layer={layer}", "logger=wandb", "logger.mode=offline",
                           f"device={device}", f"steps={steps}", *overrides, f"objective.unit={units}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"gpu_check on {args.device} ({name}), torch {torch.__version__}, {args.steps} steps per job")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, check in checks(args.device, args.steps, Path(folder)):
            started = time.perf_counter()
            try:
                detail, ok = check(), True
            except Exception as error:
                detail, ok = f"{type(error).__name__}: {error}".splitlines()[0][:160], False
                traceback.print_exc(limit=-3)
            rows.append({"check": label, "seconds": round(time.perf_counter() - started, 2), "ok": ok, "detail": detail})
            print(f"{'PASS' if ok else 'FAIL'}  {rows[-1]['seconds']:7.2f} s  {label}: {detail}", flush=True)
    failures = sum(not r["ok"] for r in rows)
    print(f"\n{len(rows) - failures} passed, {failures} failed, {sum(r['seconds'] for r in rows):.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "name": name, "torch": torch.__version__,
                                         "rows": rows}, indent=1))
    raise SystemExit(failures)


if __name__ == "__main__":
    main()
