"""Judges: what tools built for real human speech hear in an audiation, whatever model made it.

- pocketsphinx (CMU's recognizer, trained on English speech): the ARPAbet phones it hears, and the one
  spanning the target frame of a unit audiation;
- silero-vad (a neural speech detector): the mean speech probability over 32 ms windows;
- Praat (parselmouth): median F0 and the share of voiced frames, harmonicity, median F1 and F2.

`JUDGES` lists them, each a `Judge` (its record fields and its loader), of two kinds:
- neural judges (`batched=True`) hear a whole batch at once on the run's device, on the file writer's
  thread (on a GPU on a CUDA stream of their own, off the optimisation's);
- CPU judges hear one signal at a time in worker processes (`Workers`), fed by the writer through a
  bounded queue: the loop never waits for them, only the job's end does.
A job's `Panel` runs both, after the target's files are written; a judge that raises, hangs or kills its
process costs only its own fields of that signal (null, and `judges_note` says why).

Their models ship inside their wheels; nothing is fetched. `judge` hears one signal with every judge in
this process; `speech_log_probability` is silero's verdict with its graph kept, for `regularizer.speech`.
torch is imported where it is used, never at the top: a worker runs this file alone, without the package
(which imports torch), so it starts in ~0.3 s and ~100 MB instead of ~2.5 s and ~250 MB.

Why ~470 lines in one module: a worker process runs this one file, without the package, so the CPU
judges, what they share with the neural ones (preparing a signal, a failure as a note, the verdict's
fields) and the workers' own loop must all be in it.
"""

from __future__ import annotations

import inspect
import math
import os
import pickle
import queue
import re
import select
import signal as signals_
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

SAMPLE_RATE = 16000  # every judge's rate
VAD_WINDOW = 512  # silero's window at 16 kHz
MIN_SECONDS = 0.1
PITCH_FLOOR_HZ = 60.0  # Praat's default 75 Hz misses low male voices (86 Hz espeak-ng: 14% voiced)
PHONE_FRAME_SECONDS = 0.01  # pocketsphinx's frame
QUEUE_SIGNALS = 1024  # the CPU judges' queue: a whole batch of 768 and more (64 MB of 1-s signals) before
# the writer waits for them; their backlog beyond that stays in the writer's queue, as the batches it holds
TIMEOUT_SECONDS = 120.0  # per signal in a worker (~0.05 s a second of audio): a judge hung in C is given up


class About(NamedTuple):
    """What a judge may need to know of a target besides its signal."""
    target_seconds: float | None = None  # the target frame's centre (unit audiations)
    text: str | None = None  # what it should say (objective=text)


@dataclass(frozen=True)
class Judge:
    """One judge: the record fields it fills and `load(device)`, which returns its hearing function (once
    per process). Signals reach it at 16 kHz with a peak of 0.5, never NaN, silent or under 0.1 s.

    - `batched` (a neural judge): `hear(signals: Tensor[rows, samples] on device, abouts) -> [dict per row]`;
    - otherwise (a CPU judge): `hear(signal: np.ndarray, about) -> dict`, in a worker process, so `load`
      is a module-level function of a file that runs without the package (as this one does)."""
    name: str
    fields: tuple[str, ...]
    load: Callable
    batched: bool = False


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


# --- pocketsphinx: also the phone recognizer of `phones.Aligner` ---------------------------------------


def phone_recognizer():
    """pocketsphinx's phone recognizer: its English acoustic model with the phone language model."""
    from pocketsphinx import Decoder, get_model_path
    return Decoder(samprate=SAMPLE_RATE, allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"),
                   lm=None, logfn=os.devnull)


def phone_of(token: str) -> str | None:
    """The ARPAbet phone a pocketsphinx token names, stress digits dropped; None for silence and its noise
    tokens (`SIL`, `+NSN+`, `+BREATH+`, ...). The judge and the phone labels of the data share this rule."""
    return None if token == "SIL" or token.startswith("+") else re.sub(r"\d", "", token)


def pcm(x: np.ndarray) -> bytes:
    """16-bit PCM, as pocketsphinx reads it."""
    return (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()


def decode(decoder, audio: bytes) -> None:
    """One whole utterance through a pocketsphinx decoder."""
    decoder.start_utt()
    decoder.process_raw(audio, full_utt=True)
    decoder.end_utt()


def recognized(decoder, audio: bytes) -> list[tuple[str, int, int]]:
    """[(phone, first frame, last frame)] the phone recognizer hears, silence and noise included. Each
    signal is heard as by a fresh decoder: its features (the live cepstral mean among them) would carry
    over from the last signal, and which worker heard what last is chance."""
    decoder.reinit_feat()
    decode(decoder, audio)
    return [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]


def load_pocketsphinx(device: str):
    decoder = phone_recognizer()  # ~0.15 s

    def hear(x: np.ndarray, about: About) -> dict:
        """The phones heard (silence and noise left out), and the segment (silence included) spanning
        the target frame."""
        segments = recognized(decoder, pcm(x))
        at_target = None
        if about.target_seconds is not None:
            frame = int(about.target_seconds / PHONE_FRAME_SECONDS)
            at_target = next((phone for phone, start, end in segments if start <= frame <= end), None)
        return {"phones": [phone for phone, _, _ in segments if phone_of(phone)], "phone_at_target": at_target}

    return hear


# --- silero-vad -----------------------------------------------------------------------------------------


def load_vad():
    """silero's TorchScript model from its wheel (its loader's deprecation warnings kept off the console)."""
    import torch
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from silero_vad import load_silero_vad  # importing it sets torch's threads to 1: put them back
        torch.set_num_threads(threads)
        return load_silero_vad()


_vad = None


def shared_vad():
    """One silero model for the optimisation loop (`regularizer.speech`); the judges have their own."""
    global _vad
    if _vad is None:
        _vad = load_vad()
    return _vad


def speech_log_probability(vad, signal):
    """Mean log speech probability per row of `signal` (batch, samples at 16 kHz), differentiable. The
    model is stateful: its state is reset first, so rows and calls do not leak into each other. Each row
    is heard at a normal level (peak 0.5), with a fixed dither at -80 dB: the model's spectrum magnitude
    has a NaN gradient wherever a window is exactly zero."""
    import torch
    vad.reset_states()
    usable = signal.shape[-1] // VAD_WINDOW * VAD_WINDOW
    signal = 0.5 * signal[..., :usable] / signal[..., :usable].abs().amax(-1, keepdim=True).clamp_min(1e-8)
    dither = torch.randn(usable, generator=torch.Generator().manual_seed(0)).to(signal) * 1e-4
    windows = (signal + dither).reshape(signal.shape[0], -1, VAD_WINDOW)
    probabilities = torch.stack([vad(windows[:, i], SAMPLE_RATE).reshape(-1) for i in range(windows.shape[1])], 1)
    return probabilities.clamp_min(1e-6).log().mean(1)


def load_silero(device: str):
    vad = load_vad()

    def hear(signals, abouts: list[About]) -> list[dict]:
        """Batched over the rows (~1.5 ms a 1-s target at 32 rows, 16 ms alone), on the CPU whatever the
        device: its TorchScript model is only known to work there."""
        import torch
        with torch.no_grad():
            speech = speech_log_probability(vad, signals.float().cpu()).exp()
        return [{"speech_probability": round(float(p), 4)} for p in speech]

    return hear


# --- Praat ------------------------------------------------------------------------------------------------


# Below this share of voiced frames, an F0 or formant would rest on a few frames (an F0 of 586 Hz from 2.6%
# of an audiation's frames read as a finding): they are null, and the voiced share says why.
MIN_VOICED_SHARE = 0.1


def praat(x: np.ndarray) -> dict:
    """Praat's voiced share and mean harmonicity (of the frames it could measure), and over voiced frames,
    when at least MIN_VOICED_SHARE of them are, the median F0, F1 and F2 (else null)."""
    import parselmouth
    sound = parselmouth.Sound(x.astype(np.float64), sampling_frequency=SAMPLE_RATE)
    pitch = sound.to_pitch(pitch_floor=PITCH_FLOOR_HZ)
    f0 = pitch.selected_array["frequency"]
    voiced = f0 > 0
    # 20 ms steps (Praat's defaults are 10 and 6 ms): a third of the cost, and a median needs no more
    hnr = sound.to_harmonicity(time_step=0.02).values.reshape(-1)
    hnr = hnr[hnr > -200]  # Praat's -200 dB: a frame it could not measure
    formant = sound.to_formant_burg(time_step=0.02)
    enough = voiced.mean() >= MIN_VOICED_SHARE
    times = pitch.xs()[voiced] if enough else np.array([])
    formants = {n: np.array([formant.get_value_at_time(n, t) for t in times]) for n in (1, 2)}

    def median(values):
        values = values[np.isfinite(values)]
        return float(np.median(values)) if values.size else None

    return {"f0_hz": _rounded(median(f0[voiced]) if enough else None, 1), "voiced_share": round(float(voiced.mean()), 3),
            "hnr_db": _rounded(float(hnr.mean()) if hnr.size else None, 2),
            "f1_hz": _rounded(median(formants[1]), 1), "f2_hz": _rounded(median(formants[2]), 1)}


def load_praat(device: str):
    return lambda x, about: praat(x)


# --- Whisper ----------------------------------------------------------------------------------------------

WHISPER = "openai/whisper-tiny.en"  # trained on 680,000 h of real speech; offline from its PyPI package


def load_whisper(device: str):
    """Whisper tiny.en hears each batch in its full 30-s window, as it is used: greedy transcripts (key-value
    cache), the no-speech probability, and for texts the CER. ~0.4 s a target on one CPU thread."""
    from audiation.hearing.verdicts import character_error_rate
    from audiation.models.encoder import ModelSpec, load_encoder  # inside: the workers run this file alone

    whisper = load_encoder(ModelSpec(WHISPER, normalize=False), device)

    def hear(signals, abouts: list[About]) -> list[dict]:
        texts, no_speech = whisper.hear(signals.to(next(whisper.parameters()).dtype))
        return [{"whisper_transcript": text, "whisper_no_speech": round(float(p), 4),
                 "whisper_cer": None if about.text is None else round(character_error_rate(about.text, text), 4)}
                for text, p, about in zip(texts, no_speech, abouts)]

    return hear


# --- the judges: a new one is one entry here (and its fields in record_schema) ----------------------------

JUDGES = (
    Judge("pocketsphinx", ("phones", "phone_at_target"), load_pocketsphinx),
    Judge("silero", ("speech_probability",), load_silero, batched=True),
    Judge("praat", ("f0_hz", "voiced_share", "hnr_db", "f1_hz", "f2_hz"), load_praat),
    Judge("whisper", ("whisper_transcript", "whisper_no_speech", "whisper_cer"), load_whisper, batched=True),
)
FIELDS = tuple(field for judge in JUDGES for field in judge.fields)


# --- hearing ----------------------------------------------------------------------------------------------


def prepared(signals: np.ndarray, sample_rate: int) -> tuple[np.ndarray, list[str | None]]:
    """The rows at 16 kHz and a peak of 0.5, and per row why there is nothing to judge (not finite,
    under 0.1 s, silent), else None. The recognizer's features and Praat's thresholds assume a normal
    level, and an audiation's level is arbitrary."""
    x = np.asarray(signals, dtype=np.float32).reshape(len(signals), -1)
    finite = np.isfinite(x).all(axis=1)
    x = np.where(finite[:, None], x, 0)
    peaks = np.abs(x).max(axis=1, initial=0)
    notes = ["not finite" if not ok else f"under {MIN_SECONDS} s" if x.shape[1] < MIN_SECONDS * sample_rate else
             "silent" if peak < 1e-4 else None for ok, peak in zip(finite, peaks)]
    if sample_rate != SAMPLE_RATE and x.shape[1]:
        import soxr
        x = soxr.resample(np.ascontiguousarray(x.T), sample_rate, SAMPLE_RATE).T
    return np.ascontiguousarray(x * (0.5 / np.maximum(np.abs(x).max(axis=1, initial=0), 1e-4))[:, None],
                                dtype=np.float32), notes


_loaded: dict = {}  # (judge, device) -> its hearing function, loaded once per process
_lock = threading.Lock()  # one hearing at a time: silero's state and pocketsphinx's decoder cannot be shared


def hearer(judge: Judge, device: str = "cpu") -> Callable:
    if (judge, device) not in _loaded:
        _loaded[judge, device] = judge.load(device)
    return _loaded[judge, device]


def _failure(judge: Judge, error: BaseException) -> str:
    return f"{judge.name} failed: {type(error).__name__}: {str(error)[:200]}"


def hear_one(judges: list[Judge], x: np.ndarray, about: About) -> tuple[dict, list[str]]:
    """({judge: its fields}, failure notes) of the CPU judges on one prepared signal."""
    heard, notes = {}, []
    for judge in judges:
        try:
            out = hearer(judge)(x, about)
            heard[judge.name] = {field: out[field] for field in judge.fields}
        except Exception as error:
            notes.append(_failure(judge, error))
    return heard, notes


def hear_batch(judges: list[Judge], x: np.ndarray, abouts: list[About], device: str) -> tuple[list[dict], list[str]]:
    """([{judge: its fields} per row], failure notes for every row) of the neural judges on prepared rows."""
    heard, notes = [{} for _ in abouts], []
    if not judges or not abouts:
        return heard, notes
    import torch
    stream = torch.cuda.Stream(device) if device.startswith("cuda") else None  # off the optimisation's stream
    with _lock, torch.no_grad(), torch.cuda.stream(stream) if stream else nullcontext():
        batch = torch.from_numpy(x).to(device)
        for judge in judges:
            try:
                rows = hearer(judge, device)(batch, abouts)
                fields = [{field: row[field] for field in judge.fields} for row in rows]
                if len(fields) != len(abouts):
                    raise ValueError(f"{len(fields)} verdicts for {len(abouts)} signals")
            except Exception as error:
                notes.append(_failure(judge, error))
                continue
            for row, part in zip(heard, fields):
                row[judge.name] = part
    return heard, notes


def verdict(judges: tuple[Judge, ...], heard: dict, notes: list[str]) -> dict:
    """A signal's record fields, in the judges' order; what no judge gave is null, and `judges_note` says why."""
    return {**{field: heard.get(judge.name, {}).get(field) for judge in judges for field in judge.fields},
            "judges_note": "; ".join(notes) or None}


def judge(signal: np.ndarray, sample_rate: int, target_seconds: float | None = None) -> dict:
    """Every judge on one signal, in this process and on the CPU (jobs use a `Panel`)."""
    x, (note,) = prepared(np.asarray(signal, dtype=np.float32).reshape(1, -1), sample_rate)
    if note:
        return verdict(JUDGES, {}, [note])
    about = About(target_seconds)
    (neural,), failed = hear_batch([j for j in JUDGES if j.batched], x, [about], "cpu")
    with _lock:
        cpu, more = hear_one([j for j in JUDGES if not j.batched], x[0], about)
    return verdict(JUDGES, {**neural, **cpu}, failed + more)


# --- the CPU judges' worker processes ---------------------------------------------------------------------

# A worker is a fresh interpreter running this file alone: multiprocessing's would import the package and
# the main module, torch with them, in every worker; and its Pool waits forever on a worker that died. The
# file is loaded under its own module name, so that code (and mutation testing's switches) see one module.
_WORKER = ("import importlib.util, sys\n"
           "spec = importlib.util.spec_from_file_location('audiation.hearing.judges', sys.argv[1])\n"
           "module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
           "spec.loader.exec_module(module)\n"
           "module.serve()\n")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(loop_threads: int) -> int:
    """The CPU judges' workers while a job optimises: the cores left by the loop's threads, the writer's
    thread and other work on the machine (the load average), at least one."""
    return max(1, cores() - max(loop_threads + 1, round(os.getloadavg()[0])))


class Workers:
    """CPU judges in worker processes, one per core: while jobs optimise only `busy` of them judge at once
    (the cores the loop leaves), and in `wait()` (a job's end: the loop is idle) all of them. `put`
    queues one prepared signal (it blocks while the queue, `QUEUE_SIGNALS` long, is full); `done(heard,
    notes)` is called with its verdicts on the thread that serves that worker. A worker that dies or hangs
    on a signal gives it a note and is replaced."""

    def __init__(self, judges: list[Judge], busy: int, timeout: float = TIMEOUT_SECONDS):
        # The loader's own file (unwrapped: a decorated loader's wrapper is written elsewhere).
        self.specs = [(j.name, j.fields, inspect.getsourcefile(inspect.unwrap(j.load)), j.load.__name__, j.batched)
                      for j in judges]
        self.timeout, self.busy, self.count = timeout, busy, max(busy, cores())
        self.permits = threading.Semaphore(busy)  # taken while a worker judges
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIGNALS)
        self.threads = [threading.Thread(target=self._serve, name="audiation-judges", daemon=True)
                        for _ in range(self.count)]
        for thread in self.threads:
            thread.start()

    def put(self, x: np.ndarray, about: About, done: Callable[[dict, list[str]], None]) -> None:
        self.queue.put((x, tuple(about), done))

    def wait(self) -> None:
        extra = self.count - self.busy
        self.permits.release(extra)
        self.queue.join()
        for _ in range(extra):  # every worker is idle now, holding none
            self.permits.acquire()

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()

    def _serve(self) -> None:
        process = None
        while (item := self.queue.get()) is not None:
            x, about, done = item
            with self.permits:
                try:
                    process = process or self._start()
                    heard, notes = self._exchange(process, x, about)
                except (OSError, EOFError, pickle.UnpicklingError) as error:  # TimeoutError is an OSError
                    heard, notes = {}, [f"the CPU judges' process failed on this signal: {_why(process, error)}"]
                    process = _stop(process)
            try:
                done(heard, notes)
            finally:
                self.queue.task_done()
        _stop(process)
        self.queue.task_done()

    def _start(self) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", _WORKER, __file__], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE)
        pickle.dump(self.specs, process.stdin)
        return process

    def _exchange(self, process: subprocess.Popen, x: np.ndarray, about: tuple) -> tuple[dict, list[str]]:
        pickle.dump((x, about), process.stdin)
        process.stdin.flush()
        if not select.select([process.stdout], [], [], self.timeout)[0]:
            raise TimeoutError(f"no verdict in {self.timeout:g} s")
        return pickle.load(process.stdout)


def _why(process: subprocess.Popen | None, error: BaseException) -> str:
    """A worker's failure in words: its exit code when it ended (it closed its pipe: it is ending)."""
    if process is not None and not isinstance(error, TimeoutError):
        try:
            return f"it ended, exit code {process.wait(timeout=5)}"
        except subprocess.TimeoutExpired:
            pass
    return f"{error}" if isinstance(error, TimeoutError) else f"{type(error).__name__}: {error}"


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None:
        process.kill()
        process.wait()


def _module_at(path: str):
    """The module of a judge's file, as the worker runs it: this one, or another file run alone."""
    import importlib.util
    if os.path.samefile(path, __file__):
        return sys.modules[__name__]
    spec = importlib.util.spec_from_file_location(f"audiation_judge_{len(sys.modules)}", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve() -> None:
    """A worker process: the judges' specs, then (signal, about) -> (heard, notes) until the pipe closes."""
    signals_.signal(signals_.SIGINT, signals_.SIG_IGN)  # Ctrl-C is the job's to handle: it waits for verdicts
    incoming, outgoing = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a judge's own prints go to stderr, never into the verdicts
    judges = [Judge(name, fields, getattr(_module_at(path), load), batched)
              for name, fields, path, load, batched in pickle.load(incoming)]
    while True:
        try:
            x, about = pickle.load(incoming)
        except EOFError:  # the job is over (or dead)
            return
        pickle.dump(hear_one(judges, x, About(*about)), outgoing)
        outgoing.flush()


# --- a job's judges ---------------------------------------------------------------------------------------


class Panel:
    """The judges of a process's jobs on one device: the neural ones here, the CPU ones in `Workers`."""

    def __init__(self, judges: tuple[Judge, ...], device: str, busy: int, timeout: float = TIMEOUT_SECONDS):
        self.judges, self.device = tuple(judges), device
        self.neural = [j for j in self.judges if j.batched]
        cpu = [j for j in self.judges if not j.batched]
        self.workers = Workers(cpu, busy, timeout) if cpu else None
        self._error: BaseException | None = None

    def hear(self, signals: np.ndarray, sample_rate: int, abouts: list[About],
             done: Callable[[int, dict], None]) -> Hearing:
        """Start judging a batch (rows of `signals`): see `Hearing`."""
        return Hearing(self, signals, sample_rate, abouts, done)

    def deliver(self, done, row: int, heard: dict, notes: list[str]) -> None:
        """`done(row, verdict)`; its failure is kept for `wait()`, as a worker's thread must go on."""
        try:
            # every judge's fields, null for those turned off: every record has the same keys
            done(row, verdict((*self.judges, *(j for j in JUDGES if j not in self.judges)), heard, notes))
        except BaseException as error:
            self._error = self._error or error

    def wait(self) -> None:
        """Until every verdict so far is done; then the first failure of a `done`, if any, is raised."""
        if self.workers is not None:
            self.workers.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()


class Hearing:
    """One batch before its judges. `written(row)` (once the row's files are written) hands the row to the
    CPU judges at once, so they work while the writer writes the next rows; `all_written()` (after the
    last) runs the neural judges on the batch, on the calling thread. `done(row, verdict)` is called once
    per row, with every field and `judges_note`, when both kinds have heard it: on a worker's thread or on
    the caller's. Only `written` may wait, while the workers' queue is full."""

    def __init__(self, panel: Panel, signals: np.ndarray, sample_rate: int, abouts: list[About],
                 done: Callable[[int, dict], None]):
        self.panel, self.signals, self.sample_rate, self.abouts, self.done = panel, signals, sample_rate, abouts, done
        self.x, self.notes = None, None
        self.heard = [{} for _ in abouts]
        self.failed: list[dict[str, list[str]]] = [{"neural": [], "cpu": []} for _ in abouts]
        self.waiting = [2 for _ in abouts]  # the CPU and the neural judges
        self.lock = threading.Lock()

    def _prepare(self) -> None:  # on the writer's thread, not the loop's
        if self.x is None:
            self.x, self.notes = prepared(self.signals, self.sample_rate)
            self.signals = None  # the prepared copy is all the judges need

    def written(self, row: int) -> None:
        self._prepare()
        if self.notes[row] is not None:  # nothing to judge: the note is the verdict
            self.panel.deliver(self.done, row, {}, [self.notes[row]])
        elif self.panel.workers is None:
            self._heard(row, "cpu", {}, [])
        else:
            self.panel.workers.put(self.x[row], self.abouts[row], lambda heard, notes: self._heard(row, "cpu", heard, notes))

    def all_written(self) -> None:
        self._prepare()
        rows = [row for row, note in enumerate(self.notes) if note is None]
        heard, failed = hear_batch(self.panel.neural, self.x[rows], [self.abouts[row] for row in rows], self.panel.device)
        for row, part in zip(rows, heard):
            self._heard(row, "neural", part, failed)

    def _heard(self, row: int, kind: str, heard: dict, notes: list[str]) -> None:
        with self.lock:
            self.heard[row].update(heard)
            self.failed[row][kind] = notes
            self.waiting[row] -= 1
            if self.waiting[row]:
                return
        self.panel.deliver(self.done, row, self.heard[row], [*self.failed[row]["neural"], *self.failed[row]["cpu"]])


_panels: dict = {}


def chosen(speech_tools: bool, whisper: bool) -> tuple[Judge, ...]:
    """The judges a job asks for: `quality.judges` (pocketsphinx, silero, Praat), `quality.whisper`."""
    return tuple(j for j in JUDGES if (whisper if j.name == "whisper" else speech_tools))


def panel(device: str, loop_threads: int, judges: tuple[Judge, ...] = JUDGES) -> Panel:
    """This process's `Panel` of `judges` on `device`, made at its first job and kept for the next (its
    workers and models load once)."""
    if (judges, device) not in _panels:
        _panels[judges, device] = Panel(judges, device, worker_count(loop_threads))
    return _panels[judges, device]
