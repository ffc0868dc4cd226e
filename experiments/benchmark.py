"""Cost of one audiation step against its floor and against a straight port of the 2021 seed.

    python experiments/benchmark.py                                   # CUDA if present: batches 1,16,64
    python experiments/benchmark.py --device cpu --batches 1,4 --repeats 5 --warmup 1 --json out.json

Model: wav2vec2-base's architecture with random weights (`model=random_base`: the same compute as the real
checkpoint, no download); 1 s of audio (16,000 samples). Seconds per step, median and min, for each
(layer, batch) cell and three methods:

- step: the project's own loop, run for real: `audiation.core.render.audiate` on objects built by
  `audiation.config.builder.build_batch` from the composed config, as every job builds them (`objective=channel`, one unit per
  row, `parameterization=fft`, `augmentation=standard`, Adam, small `power` and `high_frequency`
  regularisers, `log_every` = all steps so it syncs once). An optimizer post-step hook marks the end of
  every step; one step is the time from the end of one to the end of the next, i.e. exactly one pass of
  the loop body (zero_grad, FFT parameterization, Augment, encoder cut at the layer, objective, backward,
  Adam, history row). The no-grad evaluations `audiate` runs before and after the loop are outside every
  interval.
- floor: forward + backward to the input through the same encoder cut after the layer, weights frozen,
  loss = activations.sum(). No audiation step can be cheaper.
- naive: a straight port of the seed, for ONE target (its cost per target-step): the full
  `Wav2Vec2ForCTC` with trainable weights, `output_hidden_states=True`, a complex spectrum through `ifft`
  scaled by 1/(1+|f|), roll + noise augmentation, then 4 more Adam steps on an L2 penalty of the signal
  (the seed's regulariser ran as extra optimizer steps).

Interleaving: floor and naive run inside that hook, between two steps of the loop, in alternating order,
so the three share every slow or fast stretch of a shared machine. On CUDA every timed piece ends with a
synchronize (the real loop syncs every `log_every` steps instead; one sync per step costs ~nothing at
these sizes).

Ratios: step/floor of the medians and of the minima (on a shared CPU noise only ever adds time, so the
minima are the better estimate of the uncontended cost), and of the medians of process CPU seconds (on a
CPU with one thread: the work done, without the waits for a core that another process causes); naive
per target over step per target, i.e. naive / (step / batch).

Files (`--files`, default on): what a job costs around the loop, per target, measured end to end: a
1-target job and a 32-target job of `model=random_small` (1 step, W&B offline, quality numbers on), and
(wall - loop) of the 32-target job minus that of the 1-target job, over 31: the cost each extra target
adds in spectrograms, PNGs, WAVs, records, quality numbers and the W&B table. And random draws per step
(calls to `Streams`, each a fixed few kernels) at batch 1 and batch 32: they must not grow with the batch.

Judges (`--judges`, default on): each judge's cost per 1-second target on one thread, on speech and on
noise (neural judges alone and batched over 32); and what they add to a job's wall per extra target:
2-step jobs of 1 and `--judges-targets` targets (32; 768 on a GPU), with every judge off, with pocketsphinx,
silero and Praat on, and with Whisper too (the default), interleaved in one run (aim on 2 CPU cores: <= 40 ms
per extra target; on a GPU: a 768-target job with all of them <= 1.15x with them off). `--judges-memory`: the
peak memory of that job in each state, its judges' workers apart.
`--no-cells --no-files --no-memory` leaves only the judges:

    python experiments/benchmark.py --device cpu --no-cells --no-files --no-memory

Peak memory, per batch size in a fresh spawned process (a process's peak only ever grows, so one process
cannot give per-size peaks): the project step at the deepest requested layer, and naive once. On CPU it
is the whole process's peak RSS, torch and the weights included; on CUDA `torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from tqdm.auto import tqdm

from audiation.config import configs
from audiation.config.builder import build_batch, model_spec, plan
from audiation.core.render import audiate
from audiation.core.runtime import configure, resolve_device
from audiation.models.encoder import Layer, load_config, load_encoder


def compose(model: str, layer: int, batch: int, device: str, steps: int):
    cfg = configs.compose(
        f"model={model}", f"model.layer={layer}", "objective=channel", "parameterization=fft",
        "augmentation=standard", "optimizer=adam", "logger=none", f"device={device}", f"batch_size={batch}",
        "regularizer.power=0.01", "regularizer.high_frequency=0.01", f"steps={steps}", f"log_every={steps}",
        f"objective.unit=0:{batch}")  # one unit per row
    return cfg


def sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --- the three methods --------------------------------------------------------------------------------------


def project_loop(cfg, encoder, label: str):
    """The project's loop on one batch of targets, built as every job builds it."""
    job = plan(cfg)
    return audiate(encoder, job.layer, build_batch(job, job.targets), job.settings, description=label)


def floor_method(encoder, layer: int, batch: int, samples: int, device: str):
    """One step of the floor per call (as naive_method's function: one step of naive)."""
    target = Layer("transformer", layer)
    wave = torch.randn(batch, samples, device=device, requires_grad=True)

    def run():
        wave.grad = None
        encoder(wave, target).sum().backward()

    return run


class SeedSignal(torch.nn.Module):
    """The seed's parameterization: a full complex spectrum scaled by 1/(1+|f|), f in cycles/sample."""

    def __init__(self, samples: int, device: str):
        super().__init__()
        self.real = torch.nn.Parameter(1e-3 * torch.randn(samples, device=device))
        self.imag = torch.nn.Parameter(1e-3 * torch.randn(samples, device=device))
        self.register_buffer("scale", 1 / (1 + torch.fft.fftfreq(samples, device=device).abs()))

    def forward(self):
        return torch.fft.ifft(torch.complex(self.real, self.imag) * self.scale).real


def build_naive(model_cfg, device: str):
    """The same architecture (Wav2Vec2Config() for random_base) with a CTC head, random weights."""
    from transformers import Wav2Vec2ForCTC

    # eval() as from_pretrained leaves it (no dropout or time masking); weights keep requires_grad=True.
    return Wav2Vec2ForCTC(load_config(model_spec(model_cfg))).to(device).eval()


def naive_method(model, layer: int, samples: int, device: str, extra_steps: int = 4, max_shift: int = 160):
    signal = SeedSignal(samples, device)
    optimizer = torch.optim.Adam(signal.parameters(), lr=0.01)

    def augment(x):
        shift = int(torch.randint(-max_shift, max_shift + 1, ()))
        return torch.roll(x, shift) + 7e-4 * torch.randn_like(x)

    def run():
        optimizer.zero_grad()
        model.zero_grad(set_to_none=True)  # the seed let weight grads pile up; dropping them is cheaper
        hidden = model(augment(signal())[None], output_hidden_states=True).hidden_states[layer]
        hidden[0, :, 0].mean().backward()  # the sign does not change the cost
        optimizer.step()
        for _ in range(extra_steps):  # the seed's regulariser: separate optimizer steps
            optimizer.zero_grad()
            signal().pow(2).mean().backward()
            optimizer.step()

    return run


# --- timing -----------------------------------------------------------------------------------------------


def clock() -> tuple[float, float]:
    """Wall and process CPU seconds. With one thread on a shared CPU, CPU time leaves out the time the
    thread waited for a core, so it is the steadier measure of the work itself; on CUDA only wall counts."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    now = clock()
    return now[0] - start[0], now[1] - start[1]


def timed(run, device: str) -> tuple[float, float]:
    sync(device)
    start = clock()
    run()
    sync(device)
    return since(start)


def time_cell(cfg, encoder, others: dict, label: str) -> dict[str, list[tuple[float, float]]]:
    """Run the project's loop for cfg.steps steps; between two steps, run `others` once each.

    Returns (wall, CPU) seconds per step for "step" (steps - 1 intervals: the first step has no start
    mark) and for each of `others` (one per interval)."""
    device = cfg.device
    times = {"step": [], **{name: [] for name in others}}
    order, marks, busy = list(others), [], False

    def between_steps(*_):
        nonlocal busy
        if busy:  # the naive method's own Adam steps come through this global hook too
            return
        busy = True
        sync(device)
        if marks:
            times["step"].append(since(marks[-1]))
        if len(times["step"]) < cfg.steps - 1:
            order.reverse()  # alternate which method follows the step
            for name in order:
                times[name].append(timed(others[name], device))
        marks.append(clock())
        busy = False

    handle = register_optimizer_step_post_hook(between_steps)
    try:
        result = project_loop(cfg, encoder, label)
    finally:
        handle.remove()
    assert result.stopped is None and len(times["step"]) == cfg.steps - 1, result.stopped
    return times


def rss_gb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process. Not ru_maxrss: Linux carries it over from the
    parent through fork+exec, so a spawned child would report the parent's size."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) * 1024 / 1e9


def memory_probe(method: str, model: str, layer: int, batch: int, device: str, threads: int):
    """Runs in a fresh spawned process: (memory after setup, peak over two steps), GB."""
    torch.set_num_threads(threads)
    cfg = compose(model, layer, batch, device, steps=2)
    cuda = device.startswith("cuda")
    if method == "naive":
        naive = naive_method(build_naive(cfg.model, device), layer, plan(cfg).geometry.num_samples, device)
    else:
        encoder = load_encoder(model_spec(cfg.model), device)

    def run():
        if method == "naive":
            naive(), naive()
        else:
            project_loop(cfg, encoder, "memory")

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    setup = torch.cuda.memory_allocated() / 1e9 if cuda else rss_gb("VmRSS")
    run()
    return setup, torch.cuda.max_memory_allocated() / 1e9 if cuda else rss_gb("VmHWM")


def judged_job_memory(targets: int, judged: str, device: str) -> tuple[float, float]:
    """Runs in a fresh spawned process: peak RSS (GB) of a 2-step `targets`-target job, and the sum of its
    judges' workers' peaks (read while they are alive, after the job)."""
    import tempfile

    from audiation.jobs.audiate_job import audiate_folder

    units = min(targets, 32)  # random_small's layer has 32 units: more targets are samples of them
    cfg = configs.compose("model=random_small", "objective=channel", "steps=2", "logger=none", f"device={device}",
                          f"batch_size={targets}", "threads=1", *JUDGED[judged], f"samples={targets // units}")
    cfg.objective.unit = f"0:{units}"
    with tempfile.TemporaryDirectory() as folder:
        audiate_folder(cfg, Path(folder))

    def peak(pid: str) -> float:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024 / 1e9

    return rss_gb("VmHWM"), sum(peak(pid) for pid in child_pids())


def child_pids() -> list[str]:
    """This process's children alive now: the judges' workers."""
    return [pid for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()]


def in_fresh_process(function, *args):
    pool = mp.get_context("spawn").Pool(1)
    try:
        return pool.apply(function, args)
    finally:
        pool.close()  # a clean exit, not Pool.__exit__'s terminate(): that leaks the child's semaphores
        pool.join()


# --- around the loop ---------------------------------------------------------------------------------------


def files_cost(device: str, targets: int = 32, repeats: int = 3) -> dict:
    """Seconds per extra target outside the loop: ((wall - loop) at `targets`) - ((wall - loop) at 1), / (targets - 1).
    The job's own clock (metrics.json) is used, so model loading and imports are outside both."""
    import tempfile

    from audiation.jobs.audiate_job import audiate_folder

    def outside_loop(count: int) -> float:
        cfg = configs.compose("model=random_small", "objective=channel", "steps=1", "logger=wandb",
                              "logger.mode=offline", f"device={device}", f"batch_size={count}", "threads=1")
        cfg.objective.unit = f"0:{count}"
        with tempfile.TemporaryDirectory() as folder:
            run = audiate_folder(cfg, Path(folder))["run"]
        return run["wall_seconds"] - run["loop_seconds"]

    outside_loop(1)  # warm-up: W&B, Pillow and matplotlib imports, the colour map
    one = [outside_loop(1) for _ in range(repeats)]
    many = [outside_loop(targets) for _ in range(repeats)]
    per_target = (statistics.median(many) - statistics.median(one)) / (targets - 1)
    return {"targets": targets, "outside_loop_1": one, f"outside_loop_{targets}": many, "per_target": per_target}


def judges_cost(device: str, repeats: int = 20, batch: int = 32) -> dict:
    """Milliseconds per 1-second target for each judge of `audiation.hearing.judges.JUDGES`, after loading, on one
    thread in this process: on speech (the shipped slice) and on noise, as audiations are either. A CPU
    judge hears one signal at a time (as in its worker); a neural judge a batch of 1 and of `batch` (as a
    job's batch reaches it), per target. Wall median and process-CPU median."""
    import numpy as np
    import soundfile as sf

    from audiation.config.configs import ASSETS
    from audiation.hearing import judges

    speech = [x[:16000] for x in (sf.read(p, dtype="float32")[0] for p in sorted((ASSETS / "speech-slice").glob("*.flac")))
              if len(x) >= 16000][:repeats]
    noise = [np.random.default_rng(i).standard_normal(16000).astype(np.float32) * 0.1 for i in range(repeats)]
    out = {}
    missing = unavailable_judges(device)
    for name, why in missing.items():
        out[name] = {"unavailable": why}
    for kind, signals in (("speech", speech), ("noise", noise)):
        x, _ = judges.prepared(np.stack(signals), 16000)
        for judge in judges.JUDGES:
            if judge.name in missing:
                continue
            hear = judges.hearer(judge, device if judge.batched else "cpu")  # loading, outside the timing
            if judge.batched:
                for rows in (1, batch):
                    tiled = torch.from_numpy(np.resize(x, (rows, x.shape[1]))).to(device)
                    with torch.no_grad():
                        hear(tiled, [judges.About(0.5)] * rows)
                        times = [timed(lambda: hear(tiled, [judges.About(0.5)] * rows), device) for _ in range(3)]
                    out[f"{judge.name} x{rows} {kind}"] = _ms([(w / rows, c / rows) for w, c in times])
            else:
                hear(x[0], judges.About(0.5))
                out[f"{judge.name} {kind}"] = _ms([timed(lambda row=row: hear(row, judges.About(0.5)), "cpu") for row in x])
    return out


def unavailable_judges(device: str) -> dict[str, str]:
    """The judges that cannot load on this machine (a package or model that did not travel to a lent GPU, say),
    each with why: measured without them, and said so, rather than not at all."""
    from audiation.hearing import judges

    missing = {}
    for judge in judges.JUDGES:
        try:
            judges.hearer(judge, device if judge.batched else "cpu")
        except Exception as error:
            missing[judge.name] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return missing


def _ms(times: list[tuple[float, float]]) -> dict:
    return {"median_ms": 1000 * statistics.median(w for w, _ in times), "min_ms": 1000 * min(w for w, _ in times),
            "cpu_median_ms": 1000 * statistics.median(c for _, c in times), "n": len(times)}


def process_tree_cpu() -> float:
    """CPU seconds of this process and of its children alive now (the judges' workers): on a shared CPU,
    the work done, whatever the wait for a core."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu(pid: str) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            return 0.0
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    return time.process_time() + sum(cpu(pid) for pid in child_pids())


# What each state of the judges sets: none of them; pocketsphinx, silero and Praat (`quality.judges`); those
# and Whisper tiny.en (`quality.whisper`), the default.
JUDGED = {"off": ("quality.judges=false", "quality.whisper=false"),
          "judges": ("quality.judges=true", "quality.whisper=false"),
          "all": ("quality.judges=true", "quality.whisper=true")}


def judges_wall(device: str, targets: int = 32, repeats: int = 5) -> dict:
    """What the judges add to a job's wall per extra target: 2-step jobs of `model=random_small` (1 s,
    threads=1, logger=none) of 1 and of `targets` targets in each state of `JUDGED`, interleaved; per extra
    target (median wall at `targets` - median wall at 1) / (targets - 1), each state against "off". The wall
    is the whole `audiate_folder` call (model loading included: it cancels in the difference). Then the first
    verdict of a fresh panel (its workers starting), once per process in a job."""
    import tempfile

    import numpy as np

    from audiation.hearing import judges
    from audiation.jobs.audiate_job import audiate_folder

    def job(count: int, state: str) -> tuple[float, float]:
        cfg = configs.compose("model=random_small", "objective=channel", "steps=2", "logger=none", f"device={device}",
                              f"batch_size={count}", "threads=1", *JUDGED[state])
        cfg.objective.unit = f"0:{count}"
        with tempfile.TemporaryDirectory() as folder:
            start, cpu = time.perf_counter(), process_tree_cpu()
            audiate_folder(cfg, Path(folder))
            return time.perf_counter() - start, process_tree_cpu() - cpu

    missing = unavailable_judges(device)
    states = [state for state in JUDGED if not (state == "all" and "whisper" in missing)]
    cells = [(count, state) for count in (1, targets) for state in states]
    for cell in cells:  # warm-up: the panel's workers and models, imports, the colour map
        job(*cell)
    walls, cpus = {cell: [] for cell in cells}, {cell: [] for cell in cells}
    for repeat in range(repeats):
        for cell in cells if repeat % 2 == 0 else cells[::-1]:
            wall, cpu = job(*cell)
            walls[cell].append(wall)
            cpus[cell].append(cpu)

    def per_extra_target(times: dict, state: str) -> float:
        return (statistics.median(times[targets, state]) - statistics.median(times[1, state])) / (targets - 1)

    per_target = {state: per_extra_target(walls, state) for state in states}
    median = {cell: statistics.median(v) for cell, v in walls.items()}

    fresh = judges.Panel(judges.JUDGES, device, 1)
    start = time.perf_counter()
    hearing = fresh.hear(np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32), 16000,
                         [judges.About()], lambda *_: None)
    hearing.written(0)
    hearing.all_written()
    fresh.wait()
    first_verdict = time.perf_counter() - start
    fresh.close()
    return {"targets": targets, "walls": {f"{count} {state}": v for (count, state), v in walls.items()},
            "per_target": per_target,
            "added_per_target": {state: per_target[state] - per_target["off"] for state in states if state != "off"},
            "wall_ratio": {state: median[targets, state] / median[targets, "off"] for state in states if state != "off"},
            "first_verdict_seconds": first_verdict,
            "cpu": {f"{count} {state}": v for (count, state), v in cpus.items()},
            "cpu_per_target": {state: per_extra_target(cpus, state) for state in states},
            "unavailable": missing,
            "workers": (judges.panel(device, 1).workers.busy, judges.panel(device, 1).workers.count)}


def draws_per_step(device: str, batches=(1, 32), steps: int = 3) -> dict[int, float]:
    """Calls to the batch's random streams per optimisation step, at each batch size."""
    counts = {}
    for batch in batches:
        cfg = compose("random_small", 2, batch, device, steps)
        cfg.augmentation.stretch, cfg.augmentation.gain_db = 0.1, 6.0  # every augmentation draws
        job = plan(cfg)
        objects = build_batch(job, job.targets)
        before = objects.streams.draws
        audiate(load_encoder(job.spec, device), job.layer, objects, job.settings, description=f"draws x{batch}")
        counts[batch] = (objects.streams.draws - before) / steps
    return counts


# --- main -------------------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="random_base", help="a conf/model option (random_small for a smoke run)")
    parser.add_argument("--layers", type=ints, default=[1, 6, 12])
    parser.add_argument("--batches", type=ints, default=None, help="default 1,16,64 on CUDA, 1,4 on CPU")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    # One thread by default: beside another busy process, 2 threads were up to 7x slower than 1 on this
    # kind of 2-core machine (OpenMP threads spin-wait on the busy core), and 1 thread gives stable ratios.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--files", action=argparse.BooleanOptionalAction, default=True,
                        help="also time everything around the loop per target, and count random draws per step")
    parser.add_argument("--cells", action=argparse.BooleanOptionalAction, default=True,
                        help="time the step against the floor and the seed (--no-cells: only what else is asked)")
    parser.add_argument("--judges", action=argparse.BooleanOptionalAction, default=True,
                        help="each judge's cost per target, and what the judges add to a job's wall")
    parser.add_argument("--judges-repeats", type=int, default=5, help="interleaved repeats of --judges' jobs")
    parser.add_argument("--judges-targets", type=int, default=32, help="the many-target job of --judges (768 on a GPU)")
    parser.add_argument("--judges-memory", action=argparse.BooleanOptionalAction, default=False,
                        help="peak memory of a --judges-targets job with judges on and off, in fresh processes")
    parser.add_argument("--json", type=Path, default=None, help="save the raw per-step times here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    batches = args.batches or ([1, 16, 64] if device.startswith("cuda") else [1, 4])
    steps = args.warmup + args.repeats + 1
    cfg = compose(args.model, args.layers[0], 1, device, steps)
    configure(device, args.threads, cfg.tf32)  # as every job sets it; applies to all three methods alike
    samples = round(cfg.parameterization.seconds * cfg.model.sample_rate)  # conf: 1 s at 16 kHz
    encoder = load_encoder(model_spec(cfg.model), device) if args.cells else None
    naive_model = build_naive(cfg.model, device) if args.naive and args.cells else None

    cells, rows = [], []
    for batch, layer in tqdm([(b, n) for b in batches for n in args.layers] if args.cells else [], desc="cells"):
        others = {"floor": floor_method(encoder, layer, batch, samples, device)}
        if args.naive:
            others["naive"] = naive_method(naive_model, layer, samples, device)
        cell_cfg = compose(args.model, layer, batch, device, steps)
        times = {k: v[args.warmup:] for k, v in time_cell(cell_cfg, encoder, others, f"L{layer} x{batch}").items()}
        wall = {k: [w for w, _ in v] for k, v in times.items()}
        cpu = {k: [c for _, c in v] for k, v in times.items()}
        cells.append({"layer": layer, "batch": batch, "seconds": wall, "cpu_seconds": cpu})
        rows.append((layer, batch, {k: (statistics.median(v), min(v), statistics.median(cpu[k]))
                                    for k, v in wall.items()}))

    name = torch.cuda.get_device_name() if device.startswith("cuda") else cpu_name()
    print(f"\n{args.model}, {samples} samples, {device} ({name}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {args.repeats} repeats after {args.warmup} warm-up; s/step")
    header = (f"{'layer':>5} {'batch':>5} {'floor med/min':>14} {'step med/min':>14}  {'naive med':>9}  "
              f"{'step/floor med/min/cpu':>22}  {'naive/step per unit med/cpu':>27}")
    print(header + "\n" + "-" * len(header) if rows else "(no cells)")
    on_cpu = device == "cpu"  # process CPU time means nothing while the host waits for a GPU
    for layer, batch, stat in rows:
        (fmed, fmin, fcpu), (smed, smin, scpu) = stat["floor"], stat["step"]
        naive = f"{stat['naive'][0]:9.3f}" if "naive" in stat else f"{'-':>9}"
        per_unit = f"{stat['naive'][0] / (smed / batch):18.1f}x" if "naive" in stat else f"{'-':>19}"
        per_unit_cpu = f"{stat['naive'][2] / (scpu / batch):5.1f}x" if "naive" in stat and on_cpu else "    -"
        ratio_cpu = f"{scpu / fcpu:4.2f}" if on_cpu else "   -"
        print(f"{layer:5d} {batch:5d} {fmed:7.3f}/{fmin:6.3f} {smed:7.3f}/{smin:6.3f}  {naive}  "
              f"{smed / fmed:12.2f}/{smin / fmin:4.2f}/{ratio_cpu}  {per_unit} /{per_unit_cpu}")
    if rows:
        print("(ratios of medians, and of minima; cpu: of medians of process CPU seconds)")

    memory, around = {}, {}

    def save():  # after the timings and again after the memory probes, so a failed probe loses nothing
        if args.json:
            args.json.write_text(json.dumps({
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device,
                "device_name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
                "model": args.model, "samples": samples, "warmup": args.warmup, "repeats": args.repeats,
                "cells": cells, "memory_gb": memory, "around_the_loop": around}, indent=1))

    if args.files:
        around["draws_per_step"] = draws_per_step(device)
        around["files"] = files_cost(device)
        files, count = around["files"], around["files"]["targets"]
        print(f"\naround the loop (model=random_small, 1 s, W&B offline): {files['per_target'] * 1000:.1f} ms per extra "
              f"target (outside-loop seconds, median of 3: 1 target {statistics.median(files['outside_loop_1']):.2f}, "
              f"{count} targets {statistics.median(files[f'outside_loop_{count}']):.2f})")
        print("random draws per step: " + ", ".join(f"batch {b}: {n:g}" for b, n in around["draws_per_step"].items()))
    if args.judges:
        around["judges"] = judges_cost(device)
        print("\neach judge per 1-second target (ms, wall median/min, CPU median; xN: batched over N targets):")
        for kind, v in around["judges"].items():
            print(f"  {kind:24s} " + (f"not measured, it cannot load here ({v['unavailable']})" if "unavailable" in v else
                                       f"{v['median_ms']:6.1f}/{v['min_ms']:6.1f}  {v['cpu_median_ms']:6.1f}"))
        around["judges_wall"] = wall = judges_wall(device, args.judges_targets, args.judges_repeats)
        count = wall["targets"]
        print(f"\njudges off, on (pocketsphinx, silero, Praat) and all (Whisper too), 2-step jobs of 1 and {count} targets "
              "(model=random_small, 1 s, threads=1; "
              f"judges' workers: {wall['workers'][0]} while optimising, {wall['workers'][1]} at the end), interleaved, "
              f"median of {args.judges_repeats}:")
        for key, v in wall["walls"].items():
            print(f"  {key:8s} {statistics.median(v):6.2f} s  (min {min(v):.2f})")
        for state, added in wall["added_per_target"].items():
            print(f"  {state} against off, per extra target: {1000 * wall['per_target'][state]:.1f} ms against "
                  f"{1000 * wall['per_target']['off']:.1f}: they add {1000 * added:.1f} ms; the {count}-target job takes "
                  f"{wall['wall_ratio'][state]:.2f}x; CPU per extra target (this process and the judges' workers) "
                  f"{1000 * wall['cpu_per_target'][state]:.1f} ms against {1000 * wall['cpu_per_target']['off']:.1f}")
        print(f"  a fresh panel's first verdict (its worker starting): {wall['first_verdict_seconds']:.2f} s")
        for name, why in wall["unavailable"].items():
            print(f"  not heard in these jobs: {name}, which cannot load here ({why})")
    if args.judges_memory:
        around["judges_memory_gb"] = {state: in_fresh_process(judged_job_memory, args.judges_targets, state, device)
                                      for state in JUDGED}
        print(f"\npeak memory of a 2-step {args.judges_targets}-target job, GB (the job's process, its judges' "
              "workers): " + ", ".join(f"judges {state} {job:.2f}, {workers:.2f}"
                                       for state, (job, workers) in around["judges_memory_gb"].items()))
    save()
    if args.memory:
        deepest = max(args.layers)
        for batch in tqdm(batches, desc="memory"):
            memory[f"step L{deepest} x{batch}"] = in_fresh_process(memory_probe, "step", args.model, deepest, batch,
                                                                  device, args.threads)
        if args.naive:
            memory[f"naive L{deepest} x1"] = in_fresh_process(memory_probe, "naive", args.model, deepest, 1, device,
                                                              args.threads)
        save()
    if memory:
        unit = "GB allocated" if device.startswith("cuda") else "GB RSS of the whole process"
        print(f"\npeak memory, {unit} (in brackets: after setup, before the first step)")
        for key, (setup, peak) in memory.items():
            print(f"  {key:16s} {peak:6.2f}  ({setup:.2f})")


if __name__ == "__main__":
    main()
