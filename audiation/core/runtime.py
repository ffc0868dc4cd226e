"""Where the work runs and how it talks: the device, CPU threads, GPU matmul precision, and the console.

`configure` is the one place threads and TF32 are set. `ConsoleHandler` is the logging handler Hydra's
job logging uses (conf/shared.yaml): "audiation: <message>" lines on stderr, written through tqdm so a
progress bar is never broken by them; records logged with `extra=FILE_ONLY` go to the job's log file only.
"""

from __future__ import annotations

import logging
import sys

import torch
from tqdm.auto import tqdm

from audiation.errors import AudiationError


def resolve_device(device: str) -> str:
    """`auto` = CUDA when available, else CPU; a CUDA device asked for on a machine without one is an error."""
    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AudiationError(f"device={device} but no CUDA device is available (use device=auto or cpu)")
    return device


def configure(device: str, threads: int | None = None, tf32: bool = True, autotune: bool = False) -> None:
    """CPU threads are set on purpose: beside a busy process, more threads can be several times slower.
    On GPUs, TF32 matmuls cost nothing that matters here and are much faster on Ampere and later.
    `autotune`: cuDNN's autotuner picks the fastest conv algorithm per shape; right for the optimisation
    loop (one shape, many steps), wrong for dataset passes (a new length per file, each tuned anew)."""
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(tf32)
        torch.backends.cudnn.benchmark = autotune


def autocast(device: str | torch.device, precision: str):
    """bfloat16 autocast for `precision="bf16"`, a no-op context for fp32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


FILE_ONLY = {"file_only": True}


def duration(seconds: float) -> str:
    """A time as people say it on the console: 40 s, 3.5 min, 1.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class ConsoleHandler(logging.Handler):
    """One line per message on stderr, through `tqdm.write`, so a progress bar is redrawn below it."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "file_only", False):  # for the job's log file: the console has it already
            return
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)
