"""`python -m audiation.run`: one Hydra job = one layer, one objective, one or many targets.

    python -m audiation.run objective=channel model.layer=8
    python -m audiation.run objective=unit model.layer=3 objective.unit=42
    python -m audiation.run --multirun model.layer=1,6,12 objective.unit=0,1,2
    python -m audiation.run model.layer=8 objective.unit=0:768 batch_size=64   # the fast path

The job validates its config from the model's config file alone, before any weights load; then it
audiates its targets batch by batch, writes every target's files as soon as its batch ends (a rerun into
the same folder skips targets already complete), and finally the job's metrics, loss curve and W&B run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from audiation import objectives, outputs, quality, tracking
from audiation.configs import CONF, construct, hydra_job_folder
from audiation.errors import AudiationError, run_or_exit
from audiation.model import Layer, frame_geometry, load_config, load_encoder, num_frames, num_units, parse_layer
from audiation.parameterizations import row_generators
from audiation.trainer import Result, audiate, largest_batch


# The per-target numbers in the W&B table (beside audio and spectrogram): what users sort by.
TABLE_COLUMNS = ("name", "layer", "unit", "objective", "initial_activation", "final_activation",
                 "robust_activation", "selectivity", "silence_ratio_db", "activation_ratio", "activation_ratio_p99")


@dataclass
class Plan:
    """A validated job: everything decided before the model's weights are loaded."""

    layer: Layer
    targets: list[objectives.Target]
    geometry: objectives.Geometry
    frame: int | None  # the target frame of unit audiation, else None
    device: str
    batch_size: int | str  # "auto": the largest that fits, found once the model is loaded


def _positive(value, name: str, kind=float):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise AudiationError(f"{name}={value} must be a positive number") from None
    if not number > 0:
        raise AudiationError(f"{name}={value} must be > 0")
    return number


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AudiationError(f"device={device} but no CUDA device is available (use device=auto or cpu)")
    return device


def plan(cfg: DictConfig) -> Plan:
    """Check every user-facing value, reading only the model's config file. Raises AudiationError."""
    _positive(cfg.optimizer.steps, "optimizer.steps", int)
    seconds = _positive(cfg.parameterization.seconds, "parameterization.seconds")
    _positive(cfg.optimizer.lr, "optimizer.lr")
    for key, value in cfg.regularizer.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AudiationError(f"regularizer.{key}={value} must be a number")
    batch_size = "auto" if cfg.batch_size == "auto" else _positive(cfg.batch_size, "batch_size", int)
    if cfg.precision not in ("fp32", "bf16"):
        raise AudiationError(f"precision={cfg.precision} is not one of fp32, bf16")
    if cfg.quality.data and not Path(cfg.quality.data).expanduser().is_dir():
        raise AudiationError(f"quality.data={cfg.quality.data} is not a folder")
    device = resolve_device(str(cfg.device))
    config = load_config(cfg.model)
    layer = parse_layer(cfg.model.layer, config)
    sample_rate = cfg.model.sample_rate
    samples = round(seconds * sample_rate)
    hop, field = frame_geometry(layer, config)
    geometry = objectives.Geometry(layer, samples, num_frames(layer, config, samples), num_units(layer, config),
                                   hop, field, sample_rate)
    targets = objectives.expand_targets(cfg.objective, layer, geometry.num_units)
    frame = None
    if "frame" in cfg.objective:
        frame = geometry.middle_frame() if cfg.objective.frame is None else int(cfg.objective.frame)
        if not 0 <= frame < geometry.num_frames:
            raise AudiationError(f"objective.frame={frame} is out of range ({seconds:g} s at layer "
                                 f"{layer.label} has frames 0..{geometry.num_frames - 1})")
    return Plan(layer, targets, geometry, frame, device, batch_size)


def set_backends(cfg: DictConfig, device: str) -> None:
    """CPU threads are set on purpose: beside a busy process, more threads can be several times slower.
    On GPUs, TF32 matmuls are ~free accuracy-wise for this use and much faster on Ampere and later."""
    if device == "cpu" and cfg.threads != "auto":
        torch.set_num_threads(_positive(cfg.threads, "threads", int))
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(cfg.tf32)


def _target_files(folder: Path, target: objectives.Target, result: Result, row: int, job: Plan, extra: dict):
    """Write one target's audio, spectrogram and record (the record last: its presence means complete)."""
    mark = None if job.frame is None else (job.frame * job.geometry.hop + job.geometry.field / 2) / job.geometry.sample_rate
    files = outputs.write_audio(folder, result.signal[row], job.geometry.sample_rate)
    files["spectrogram"] = outputs.write_spectrogram(folder / "spectrogram.png", result.signal[row],
                                                     job.geometry.sample_rate, target.name, mark)
    record = {
        "name": target.name,
        "layer": target.layer.label,
        "unit": target.unit,
        "direction_index": None if target.vector is None else target.key,
        "objective": target.objective,
        "frame": job.frame,
        "initial_activation": float(result.initial["activation"][row]),
        "final_activation": float(result.final["activation"][row]),
        "initial_terms": {k: float(v[row]) for k, v in result.initial.items()},
        "final_terms": {k: float(v[row]) for k, v in result.final.items()},
        "steps": result.steps,
        "stopped": result.stopped,
        **extra,
        "files": files,
    }
    if result.stopped is None:  # only a finished target counts as complete when a sweep resumes
        outputs.write_json(folder / "target.json", record)
    return record


def _choices(cfg: DictConfig) -> dict:
    """The options a user filters and compares runs by."""
    model = f"random:{cfg.model.name}" if cfg.model.random_init else cfg.model.name
    return {"model": model, "parameterization": cfg.parameterization._target_.rsplit(".", 1)[-1],
            "augmentation": cfg.augmentation.name}


def _run_name(targets: list[objectives.Target]) -> str:
    """`L8-U42-channel` for one target, `L8-U0..L8-U63-channel` for a batch."""
    first, last = targets[0].name, targets[-1].name
    return first if len(targets) == 1 else f"{first.rsplit('-', 1)[0]}..{last}"


def _audiate_batch(cfg: DictConfig, job: Plan, encoder, batch: list[objectives.Target], tracker, label: str,
                   unit_stats):
    generators = row_generators(cfg.seed, [t.key for t in batch], job.device)
    sample_rate = job.geometry.sample_rate
    parameterization = construct(cfg.parameterization, generators=generators, sample_rate=sample_rate,
                                 device=job.device)
    augment = construct(cfg.augmentation, sample_rate=sample_rate).to(job.device)
    objective = objectives.build(cfg.objective, cfg.regularizer, job.geometry, batch, job.device)
    optimizer = construct(cfg.optimizer, parameterization.parameters(), drop=("steps",))
    names, offset = [t.name for t in batch], tracker.step

    def on_log(first_step, terms, current_signal):
        tracker.log_steps(offset + first_step, terms, names)
        last_step = first_step + len(terms["loss"])
        if last_step < cfg.optimizer.steps and tracker.wants_media(last_step):  # the end is logged below
            tracker.log_media(offset + last_step, list(zip(names, current_signal())))

    result = audiate(encoder, job.layer, objective, parameterization, augment, generators, optimizer,
                     cfg.optimizer.steps, cfg.log_every, on_log, label, cfg.precision)
    tracker.step = offset + result.steps
    tracker.log_media(tracker.step, list(zip(names, result.signal)))
    scores = quality.measure(encoder, job.layer, objective, augment, result.signal, batch, result.final,
                             job.geometry, job.frame, cfg.seed, cfg.quality.draws, unit_stats)
    return result, scores


def _unit_statistics(cfg: DictConfig, job: Plan) -> dict[str, np.ndarray] | None:
    """Each unit's max and 99th percentile over `quality.data` (cached), for activation ratios."""
    if not cfg.quality.data:
        return None
    from audiation.examples import unit_statistics

    return unit_statistics(cfg.model, job.layer, cfg.quality.data, cfg.quality.cache_dir, job.device)


def run_job(cfg: DictConfig, job_dir: Path, group: str | None) -> dict:
    job = plan(cfg)
    set_backends(cfg, job.device)
    choices = _choices(cfg)
    targets_dir = job_dir / "targets"
    todo = [t for t in job.targets if not (targets_dir / t.name / "target.json").is_file()]
    if len(todo) < len(job.targets):
        print(f"audiation: {len(job.targets) - len(todo)} of {len(job.targets)} targets already complete "
              f"in {targets_dir}; audiating the other {len(todo)}", file=sys.stderr)
    name = _run_name(job.targets)
    objective = job.targets[0].objective
    flat = {"layer": job.layer.label, "unit": OmegaConf.to_container(cfg.objective).get("unit"),
            "objective": objective, **choices, "steps": cfg.optimizer.steps, "lr": cfg.optimizer.lr,
            "seconds": cfg.parameterization.seconds, "seed": cfg.seed, "targets": len(job.targets)}
    tracker = tracking.Tracker()
    if todo:
        tracker = tracking.start(cfg.logger, job_dir=job_dir, name=name, group=group, job_type=objective,
                                 tags=[choices["model"].split("/")[-1], choices["parameterization"]],
                                 config={**flat, "config": OmegaConf.to_container(cfg, resolve=True)},
                                 sample_rate=job.geometry.sample_rate)
    fresh, histories, seconds, steps, stopped = [], [], 0.0, 0, None
    with tracker:
        encoder = load_encoder(cfg.model, job.device, cfg.compile) if todo else None
        unit_stats = _unit_statistics(cfg, job) if todo else None
        if job.batch_size == "auto" and todo:
            job.batch_size = largest_batch(encoder, job.layer, job.geometry.num_samples, len(todo), job.device,
                                           cfg.precision)
            print(f"audiation: batch_size=auto chose {job.batch_size}", file=sys.stderr)
        batches = [todo[i:i + job.batch_size] for i in range(0, len(todo), job.batch_size)]
        for number, batch in enumerate(batches, 1):
            label = f"{_run_name(batch)} [{number}/{len(batches)}]"
            result, scores = _audiate_batch(cfg, job, encoder, batch, tracker, label, unit_stats)
            seconds, steps = seconds + result.seconds, steps + result.steps
            histories.append(result.history)
            fresh += [_target_files(targets_dir / t.name, t, result, i, job, {**choices, **scores[i]})
                      for i, t in enumerate(batch)]
            if result.stopped:
                stopped = result.stopped
                break

        records = _completed(targets_dir, job.targets, fresh)
        metrics = {
            "run": {"name": name, "group": group, "layer": job.layer.label, "objective": objective, **choices,
                    "device": job.device, "seed": cfg.seed, "steps": cfg.optimizer.steps,
                    "batch_size": job.batch_size, "targets": len(job.targets), "audiated_now": len(fresh),
                    "wall_seconds": seconds, "steps_per_second": steps / seconds if seconds else None,
                    "target_steps_per_second": sum(r["steps"] for r in fresh) / seconds if seconds else None,
                    "stopped": stopped},
            "targets": records,
        }
        outputs.write_json(job_dir / "metrics.json", metrics)
        if histories:
            outputs.write_loss_curve(job_dir / "loss_curve.png", _join(histories), name)
        tracker.log_targets([{**{k: r.get(k) for k in TABLE_COLUMNS}, "audio": r["files"]["wav_16bit"],
                              "spectrogram": r["files"]["spectrogram"]} for r in records])
        if stopped == "interrupted":
            raise KeyboardInterrupt
        if stopped:
            raise AudiationError(f"job {name}: {stopped}; the last finite signal was saved in {targets_dir}")
    return metrics


def _completed(targets_dir: Path, targets, fresh: list[dict]) -> list[dict]:
    """Every target's record in target order: this run's, or the one a previous run left complete."""
    by_name = {r["name"]: r for r in fresh}
    records = []
    for target in targets:
        path = targets_dir / target.name / "target.json"
        if target.name in by_name:
            records.append(by_name[target.name])
        elif path.is_file():
            records.append(json.loads(path.read_text()))
    return records


def _join(histories: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack the rows of every batch side by side (batches that stopped early are padded with NaN)."""
    steps = max(len(next(iter(h.values()))) for h in histories)
    joined = {}
    for name in histories[0]:
        parts = [np.pad(h[name], ((0, steps - len(h[name])), (0, 0)), constant_values=np.nan) for h in histories]
        joined[name] = np.concatenate(parts, axis=1)
    return joined


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    job_dir, group = hydra_job_folder()
    metrics = run_or_exit(run_job, cfg, job_dir, group, interrupted=f"what was finished is saved in {job_dir}")
    run = metrics["run"]
    print(f"audiation: {run['targets']} target(s) of {run['name']} in {job_dir} "
          f"({run['wall_seconds']:.1f} s, {run['steps_per_second'] or 0:.2f} steps/s)")


if __name__ == "__main__":
    # Call the copy of `main` in the importable module `audiation.run`, not this `__main__` one: parallel
    # launchers (joblib, submitit) pickle the task function, and only an importable one pickles by name.
    from audiation.run import main as importable_main

    importable_main()
