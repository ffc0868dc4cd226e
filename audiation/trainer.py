"""The optimisation loop: parameterization -> augmentation -> encoder -> objective -> one backward.

Every row of the batch is one target with its own loss; the summed loss gives each row exactly its own
gradient. Loss terms stay on the device and are fetched every `log_every` steps, which is also when the
loop checks for NaN/inf and keeps a copy of the last finite parameters: no other host-device syncs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from audiation.errors import AudiationError
from audiation.model import Encoder, Layer
from audiation.objectives import Objective


@dataclass
class Result:
    """What one batch of targets produced. Arrays are per row; history is (steps, rows) per term."""

    signal: np.ndarray
    initial: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    history: dict[str, np.ndarray]
    steps: int
    seconds: float
    stopped: str | None = None  # why the loop ended early: "interrupted" or a NaN/inf message


@torch.no_grad()
def evaluate(encoder: Encoder, layer: Layer, objective: Objective, signal: torch.Tensor):
    """Objective terms on the clean signal (no augmentation): the reported numbers."""
    _, terms = objective(encoder(signal, layer).float(), signal)
    return {name: value.float().cpu().numpy() for name, value in terms.items()}


def audiate(
    encoder: Encoder,
    layer: Layer,
    objective: Objective,
    parameterization: torch.nn.Module,
    augment: Callable[[torch.Tensor, list], torch.Tensor],
    generators: list[torch.Generator],
    optimizer: torch.optim.Optimizer,
    steps: int,
    log_every: int = 10,
    on_log: Callable[[int, dict[str, np.ndarray], Callable[[], np.ndarray]], None] | None = None,
    description: str = "audiating",
    precision: str = "fp32",
) -> Result:
    """Maximise `objective` for `steps` steps. Ctrl-C or a non-finite loss ends the loop early; the
    result then holds the last finite signal and says why in `stopped`.

    `on_log(first_step, terms, current_signal)` gets each fetched block of steps: terms are
    (steps, rows) arrays; `current_signal()` computes the signal on demand (for media).
    `precision="bf16"` runs the encoder under bfloat16 autocast; the objective stays in float32.
    """
    autocast = torch.autocast(next(parameterization.parameters()).device.type, dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    started = time.perf_counter()
    initial = evaluate(encoder, layer, objective, parameterization())
    names = list(initial) + ["loss"]
    history = None
    fetched: dict[str, list[np.ndarray]] = {name: [] for name in names}
    last_finite = {k: v.detach().clone() for k, v in parameterization.state_dict().items()}
    done, stopped, step = 0, None, 0

    def current_signal() -> np.ndarray:
        with torch.no_grad():
            return parameterization().float().cpu().numpy()

    def fetch(upto: int):
        """Bring steps [done, upto) to the host, check them, and remember these parameters as good."""
        nonlocal done, last_finite
        chunk = history[done:upto].float().cpu().numpy()  # the loop's one sync
        bad = ~np.isfinite(chunk).all(axis=(1, 2))
        if bad.any():
            first = done + int(np.argmax(bad))
            raise FloatingPointError(f"the loss became NaN/inf at step {first + 1}")
        for i, name in enumerate(names):
            fetched[name].append(chunk[:, i])
        state = {k: v.detach().clone() for k, v in parameterization.state_dict().items()}
        if all(torch.isfinite(v).all() for v in state.values()):  # a finite loss can still step to inf
            last_finite = state
        if on_log is not None:
            on_log(done, {name: chunk[:, i] for i, name in enumerate(names)}, current_signal)
        done = upto

    bar = tqdm(range(steps), desc=description, unit="step", dynamic_ncols=True, leave=False)
    try:
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            signal = parameterization()
            with autocast:
                activations = encoder(augment(signal, generators), layer)
            total, terms = objective(activations.float(), signal)
            loss = -total  # maximise the objective
            loss.sum().backward()
            optimizer.step()
            row = torch.stack([terms[n] for n in names[:-1]] + [loss]).detach()
            if history is None:
                history = torch.empty((steps, *row.shape), device=row.device, dtype=row.dtype)
            history[step] = row
            if (step + 1) % log_every == 0 or step + 1 == steps:
                fetch(step + 1)
                bar.set_postfix(loss=f"{fetched['loss'][-1][-1].mean():.3g}",
                                activation=f"{fetched['activation'][-1][-1].mean():.3g}")
    except KeyboardInterrupt:
        stopped = "interrupted"
        if history is not None and step > done:
            try:
                fetch(step)
            except FloatingPointError:
                pass
    except FloatingPointError as error:
        stopped = str(error)
    finally:
        bar.close()
    if stopped:
        parameterization.load_state_dict(last_finite)
    with torch.no_grad():
        signal = parameterization()
    final = evaluate(encoder, layer, objective, signal)
    return Result(
        signal=signal.float().cpu().numpy(),
        initial=initial,
        final=final,
        history={name: np.concatenate(parts) if parts else np.zeros((0, len(generators)))
                 for name, parts in fetched.items()},
        steps=done,
        seconds=time.perf_counter() - started,
        stopped=stopped,
    )


def largest_batch(encoder: Encoder, layer: Layer, num_samples: int, limit: int, device: str,
                  precision: str = "fp32") -> int:
    """The largest power-of-two batch (up to `limit`) whose forward+backward fits in GPU memory.

    On the CPU, batching barely lowers the cost per target, so this is simply min(limit, 16).
    """
    if not device.startswith("cuda"):
        return min(limit, 16)

    def probe(size: int):
        wave = torch.randn(size, num_samples, device=device, requires_grad=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            encoder(wave, layer).float().pow(2).mean().backward()
        torch.cuda.synchronize(device)

    fits, size = 0, 1
    while True:
        try:
            probe(size)
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        fits = size
        if size == limit:
            break
        size = min(2 * size, limit)
    if not fits:
        free, total = torch.cuda.mem_get_info(device)
        raise AudiationError(f"batch_size=auto: even one target of {num_samples} samples at layer {layer.label} "
                             f"does not fit in GPU memory ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free)")
    return fits
