"""Where the work runs: the device, CPU threads and GPU matmul precision. `configure` is the one place
threads and TF32 are set. (How the work talks is `audiation.console`, which imports no torch.)
"""

from __future__ import annotations

import torch

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
