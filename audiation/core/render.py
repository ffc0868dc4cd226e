"""The optimisation loop: parameterization -> augmentation -> encoder -> objective -> one backward.

Every row of the batch is one target with its own loss; the summed loss gives each row exactly its own
gradient. Loss terms stay on the device and are fetched every `log_every` steps, which is also when the
loop checks for NaN/inf and keeps a copy of the last finite parameters: no other host-device syncs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from audiation import errors
from audiation.core.objectives import Objective, Target
from audiation.core.randomness import Streams
from audiation.core.runtime import autocast
from audiation.errors import AudiationError
from audiation.models.encoder import Encoder, Layer


@dataclass
class Batch:
    """One batch of targets and everything the loop needs for them, one row per target."""

    targets: list[Target]
    streams: Streams
    parameterization: torch.nn.Module  # () -> (rows, samples)
    augment: Callable[[torch.Tensor, Streams], torch.Tensor]
    objective: Objective
    optimizer: torch.optim.Optimizer

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    log_every: int = 10  # steps between fetching loss terms from the device: the loop's only sync
    precision: str = "fp32"  # "bf16": the encoder under bfloat16 autocast; the objective stays float32


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
    stalled: np.ndarray | None = None  # per row: the optimisation did not move the target at all
    stop_asked: bool = False  # Ctrl-C or SIGTERM came after the last step began: the batch is whole; stop after it


@torch.no_grad()
def evaluate(encoder: Encoder, layer: Layer, objective: Objective, signal: torch.Tensor):
    """Objective terms on the clean signal (no augmentation): the reported numbers."""
    _, terms = objective(encoder(signal, layer).float(), signal)
    return {name: value.float().cpu().numpy() for name, value in terms.items()}


def audiate(
    encoder: Encoder,
    layer: Layer,
    batch: Batch,
    settings: LoopSettings,
    on_log: Callable[[int, dict[str, np.ndarray], Callable[[], np.ndarray]], None] | None = None,
    description: str = "audiating",
    bar: tqdm | None = None,
) -> Result:
    """Maximise the batch's objective for `settings.steps` steps. Ctrl-C (or SIGTERM, which the command
    line turns into KeyboardInterrupt) or a non-finite loss ends the loop early; the result then holds
    the last finite signal and says why in `stopped`.

    `on_log(first_step, terms, current_signal)` gets each fetched block of steps: terms are
    (steps, rows) arrays; `current_signal()` computes the signal on demand (for media).
    """
    objective, parameterization, optimizer = batch.objective, batch.parameterization, batch.optimizer
    steps, log_every = settings.steps, settings.log_every
    mixed = autocast(batch.streams.device, settings.precision)
    started = time.perf_counter()
    initial = evaluate(encoder, layer, objective, parameterization())
    names = list(initial) + ["loss"]
    history: torch.Tensor | None = None  # allocated at the first step, when a row's shape is known
    fetched: dict[str, list[np.ndarray]] = {name: [] for name in names}
    last_finite = {k: v.detach().clone() for k, v in parameterization.state_dict().items()}
    done, stopped, step = 0, None, 0

    def current_signal() -> np.ndarray:
        with torch.no_grad():
            return parameterization().detach().float().cpu().numpy()

    def fetch(upto: int):
        """Bring steps [done, upto) to the host, check them, and remember these parameters as good."""
        nonlocal done, last_finite
        assert history is not None  # called only after a step wrote its row
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

    with_clean = getattr(batch.augment, "with_clean", False)  # also score the clean signal (augmentations)
    own_bar = bar is None
    bar = progress_bar(steps, description) if bar is None else bar
    bar.set_description(description, refresh=False)
    # A signal stops the loop between steps: raised anywhere else it could leave a lock of W&B's or tqdm's
    # held, and the wrap-up that saves the signal would wait on it for ever. One that comes after the last
    # step has begun waits until the result is made (the batch is whole) and is handed on in `stop_asked`.
    with errors.Shielded() as signals:
        try:
            for step in range(steps):
                signals.raise_if_came()
                optimizer.zero_grad(set_to_none=True)
                signal = parameterization()
                heard = batch.augment(signal, batch.streams)
                with mixed:
                    activations = encoder(torch.cat([heard, signal]) if with_clean else heard, layer).float()
                total, terms = objective(activations[:len(signal)], signal)
                if with_clean:  # the mean of the augmented and the clean signal's objective
                    total = (total + objective(activations[len(signal):], signal)[0]) / 2
                loss = -total  # maximise the objective
                loss.sum().backward()
                optimizer.step()
                row = torch.stack([terms[n] for n in names[:-1]] + [loss]).detach()
                if history is None:
                    history = torch.empty((steps, *row.shape), device=row.device, dtype=row.dtype)
                history[step] = row
                bar.update()
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
            if own_bar:
                bar.close()
        if stopped:
            parameterization.load_state_dict(last_finite)
        with torch.no_grad():
            signal = parameterization()
        final = evaluate(encoder, layer, objective, signal)
        # Adam's state overflows on huge gradients (e.g. regularizer.power=1e38) and then steps by exactly 0.
        state_finite = all(torch.isfinite(v).all() for state in optimizer.state.values() for v in state.values()
                           if torch.is_tensor(v))
        stalled = (final["activation"] == initial["activation"]) | (not state_finite) if done else None
        result = Result(
            signal=signal.detach().float().cpu().numpy(),
            initial=initial,
            final=final,
            history={name: np.concatenate(parts) if parts else np.zeros((0, len(batch.targets)))
                     for name, parts in fetched.items()},
            steps=done,
            seconds=time.perf_counter() - started,
            stopped=stopped,
            stalled=stalled,
        )
    result.stop_asked = signals.came and stopped is None
    return result


def progress_bar(total_steps: int, description: str) -> tqdm:
    """The console's bar over `total_steps` optimisation steps (a job's: every batch's). Its rate is the
    mean since it began (`smoothing=0`), so the time spent between batches (measures, files) is in its ETA."""
    return tqdm(total=total_steps, desc=description, unit="step", dynamic_ncols=True, leave=False, smoothing=0)


def batch_candidates(limit: int) -> list[int]:
    """Batch sizes worth timing: 16 and up (smaller ones never win on a GPU), powers of two and 1.5x them,
    and `limit` itself (all targets in one batch)."""
    sizes = {size for k in range(4, 16) for size in (2**k, 3 * 2 ** (k - 1)) if size <= limit}
    return sorted(sizes | {limit})


def fastest_batch(encoder: Encoder, layer: Layer, num_samples: int, targets: int, device: str,
                  precision: str = "fp32") -> int:
    """The batch size that audiates `targets` targets soonest: each candidate's forward+backward is timed
    until one no longer fits in GPU memory, and the cost of the whole job (batches needed x time per
    batch) decides. Per-target cost is not monotonic in the batch size on GPUs (fp32 batches 128-256 were
    10x slower per target than 64 or 768 on an H200), so the largest that fits is not the answer.

    On the CPU, batching barely lowers the cost per target, so this is simply min(targets, 16).
    """
    if not device.startswith("cuda"):
        return min(targets, 16)

    def seconds_per_step(size: int) -> float:
        wave = torch.randn(size, num_samples, device=device, requires_grad=True)
        times = []
        for _ in range(2):  # the first run pays for cuDNN's algorithm search
            start = time.perf_counter()
            with autocast(device, precision):
                encoder(wave, layer).float().pow(2).mean().backward()
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        return times[-1]

    chosen = cheapest_batch(targets, seconds_per_step, torch.cuda.OutOfMemoryError, torch.cuda.empty_cache)
    if chosen is None:
        free, total = torch.cuda.mem_get_info(device)
        raise AudiationError(f"batch_size=auto: even {min(targets, 16)} targets of {num_samples} samples at layer "
                             f"{layer.label} do not fit in GPU memory ({free / 2**30:.1f} of {total / 2**30:.1f} GiB "
                             "free); set batch_size lower")
    return chosen


def cheapest_batch(targets: int, seconds_per_step: Callable[[int], float], too_large: type[BaseException] = MemoryError,
                   release: Callable[[], None] = lambda: None) -> int | None:
    """The candidate size with the lowest whole-job cost (batches needed x seconds per step), timing
    candidates in increasing size until one raises `too_large`; None when even the first does.
    `release` runs after each timing (the GPU's cache of freed memory)."""
    costs: dict[int, float] = {}
    for size in batch_candidates(targets):
        try:
            costs[size] = -(-targets // size) * seconds_per_step(size)
        except too_large:
            break
        finally:
            release()
    return min(costs, key=costs.__getitem__) if costs else None
