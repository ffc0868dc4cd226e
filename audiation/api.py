"""One call from a notebook (after Lucent's `render_vis(model, "mixed4a:476")`), no Hydra to learn:

    import audiation
    result = audiation.audiate("tiny", "L6:125", objective="channel", steps=200)
    result.signal          # (targets, samples) float32 at result.sample_rate
    result.records[0]      # the record the command line writes (activation, judges, ratios ...)
    result.folder          # every file, as `python -m audiation.run` leaves them

A target is `<layer>:<units>`: `L6:125`, `6:0:8` (units 0..7), `mlp4:12`, `conv2:3`, `logits:22`, or just a
layer (`L6`) for objective=layer. Any other option is a keyword with dots as double underscores
(`parameterization__seconds=2`) or a dict of dotted keys (`options={"quality.data": "clips/"}`); the
config is composed and checked exactly as the command line does it, so every check and default is the same.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiation.errors import AudiationError


@dataclass
class Audiation:
    signal: np.ndarray  # (targets, samples), the audiations as written to audio.wav
    records: list[dict]  # one per target, as in targets/<name>/target.json
    folder: Path  # the job folder with every file (audio, spectrograms, metrics.json, loss_curve.png)
    sample_rate: int

    @property
    def files(self) -> list[dict[str, Path]]:
        """Each target's files, as absolute paths."""
        return [{key: self.folder / path for key, path in r["files"].items()} for r in self.records]


def target_overrides(target: str) -> list[str]:
    """`L6:125` -> [model.layer=6, objective.unit=125]; `L6:0:8` -> units 0:8; `L6` -> the layer only."""
    match = re.fullmatch(r"(?:L(?=\d))?([A-Za-z]*\d*|logits)(?::(.+))?", str(target).strip())
    if not match or not match.group(1):
        raise AudiationError(f"target={target!r} is not <layer>[:<units>] (e.g. L6:125, mlp4:0:8, logits:22)")
    layer, units = match.groups()
    return [f"model.layer={layer}"] + ([f"objective.unit={units}"] if units else [])


def audiate(model: str = "tiny", target: str = "L6:125", objective: str = "channel", steps: int = 200,
            folder: str | Path | None = None, options: dict | None = None, **more) -> Audiation:
    """Audiate `target` of `model` (a config option of conf/model, e.g. tiny, whisper_tiny_en, random_base)
    and return the signals, their records and the folder. W&B is off unless `logger="wandb"` is given."""
    import soundfile as sf

    from audiation.config.configs import compose
    from audiation.jobs.audiate_job import audiate_folder
    from audiation.outputs import results

    values = {"logger": "none", **{k.replace("__", "."): v for k, v in more.items()}, **(options or {})}
    groups = [f"{key}={values.pop(key)}" for key in ("logger",) if key in values]  # config groups come first
    overrides = [f"model={model}", f"objective={objective}", *groups, *target_overrides(target),
                 f"steps={steps}", *(f"{key}={_value(value)}" for key, value in values.items())]
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="audiation-"))
    cfg = compose(*overrides)
    audiate_folder(cfg, folder)
    records = results.folder_records(folder)
    if not records:
        raise AudiationError(f"no target was completed in {folder}")
    waves = [sf.read(folder / r["files"]["wav"], dtype="float32") for r in records]
    return Audiation(np.stack([w for w, _ in waves]), records, folder, waves[0][1])


def _value(value) -> str:
    """An override's value as Hydra reads it: a list or tuple as `[a,b]`, anything else as its text."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)
