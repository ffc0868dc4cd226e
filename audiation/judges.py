"""Judges: what tools built for real human speech hear in an audiation, whatever model made it.

- pocketsphinx (CMU's recognizer, trained on English speech): the ARPAbet phones it hears, and the one
  spanning the target frame of a unit audiation;
- silero-vad (a neural speech detector): the mean speech probability over 32 ms windows;
- Praat (parselmouth): median F0 and the share of voiced frames, harmonicity, median F1 and F2.

Their models ship inside their wheels; nothing is fetched. `Judges` loads them once and judges one
signal in about 50 ms per second of audio on one thread; `speech_log_probability` is silero's verdict
with its graph kept, for `regularizer.speech`.
"""

from __future__ import annotations

import math
import os
import threading
import warnings

import numpy as np
import torch

SAMPLE_RATE = 16000  # every judge's rate
VAD_WINDOW = 512  # silero's window at 16 kHz
MIN_SECONDS = 0.1
PITCH_FLOOR_HZ = 60.0  # Praat's default 75 Hz misses low male voices (86 Hz espeak-ng: 14% voiced)
PHONE_FRAME_SECONDS = 0.01  # pocketsphinx's frame
NOT_PHONES = {"SIL", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+NOISE+", "+UH+", "+UM+", "+SMACK+"}

FIELDS = ("phones", "phone_at_target", "speech_probability", "f0_hz", "voiced_share", "hnr_db", "f1_hz",
          "f2_hz")


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def load_vad() -> torch.jit.ScriptModule:
    """silero's TorchScript model from its wheel (its loader's deprecation warnings kept off the console)."""
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from silero_vad import load_silero_vad  # importing it sets torch's threads to 1: put them back
        torch.set_num_threads(threads)
        return load_silero_vad()


_vad: torch.jit.ScriptModule | None = None


def shared_vad() -> torch.jit.ScriptModule:
    """One silero model for the optimisation loop (`regularizer.speech`); the judges have their own."""
    global _vad
    if _vad is None:
        _vad = load_vad()
    return _vad


def speech_log_probability(vad, signal: torch.Tensor) -> torch.Tensor:
    """Mean log speech probability per row of `signal` (batch, samples at 16 kHz), differentiable. The
    model is stateful: its state is reset first, so rows and calls do not leak into each other. Each row
    is heard at a normal level (peak 0.5), with a fixed dither at -80 dB: the model's spectrum magnitude
    has a NaN gradient wherever a window is exactly zero."""
    vad.reset_states()
    usable = signal.shape[-1] // VAD_WINDOW * VAD_WINDOW
    signal = 0.5 * signal[..., :usable] / signal[..., :usable].abs().amax(-1, keepdim=True).clamp_min(1e-8)
    dither = torch.randn(usable, generator=torch.Generator().manual_seed(0)).to(signal) * 1e-4
    windows = (signal + dither).reshape(signal.shape[0], -1, VAD_WINDOW)
    probabilities = torch.stack([vad(windows[:, i], SAMPLE_RATE).reshape(-1) for i in range(windows.shape[1])], 1)
    return probabilities.clamp_min(1e-6).log().mean(1)


class Judges:
    """The three judges, loaded once (the recognizer's decoder costs ~0.15 s)."""

    def __init__(self):
        from pocketsphinx import Decoder, get_model_path
        model = get_model_path()
        self.decoder = Decoder(samprate=SAMPLE_RATE, allphone=os.path.join(model, "en-us", "en-us-phone.lm.bin"),
                               lm=None, logfn=os.devnull)
        self.vad = load_vad()

    def __call__(self, signal: np.ndarray, sample_rate: int, target_seconds: float | None = None) -> dict:
        """The judges' numbers for one signal; all null, with `judges_note` saying why, when there is
        nothing to judge (NaN, under 0.1 s, silence)."""
        x = np.asarray(signal, dtype=np.float32).reshape(-1)
        note = ("not finite" if not np.all(np.isfinite(x)) else
                f"under {MIN_SECONDS} s" if len(x) < MIN_SECONDS * sample_rate else
                "silent" if float(np.abs(x).max()) < 1e-4 else None)
        if note:
            return {**dict.fromkeys(FIELDS), "judges_note": note}
        if sample_rate != SAMPLE_RATE:
            import soxr
            x = soxr.resample(x, sample_rate, SAMPLE_RATE).astype(np.float32)
        # Each judge hears the signal at a normal level: the recognizer's features and Praat's
        # thresholds assume it, and an audiation's level is arbitrary.
        x = 0.5 * x / float(np.abs(x).max())
        phones, at_target = self.phones(x, target_seconds)
        with torch.no_grad():
            speech = float(speech_log_probability(self.vad, torch.from_numpy(x)[None]).exp())
        return {"phones": phones, "phone_at_target": at_target, "speech_probability": round(speech, 4),
                **praat(x), "judges_note": None}

    def phones(self, x: np.ndarray, target_seconds: float | None) -> tuple[list[str], str | None]:
        """The phones pocketsphinx's phone recognizer hears (silence and noise left out), and the segment
        (silence included) spanning `target_seconds`."""
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        segments = [(s.word, s.start_frame, s.end_frame) for s in self.decoder.seg()]
        at_target = None
        if target_seconds is not None:
            frame = int(target_seconds / PHONE_FRAME_SECONDS)
            at_target = next((phone for phone, start, end in segments if start <= frame <= end), None)
        return [phone for phone, _, _ in segments if phone not in NOT_PHONES], at_target


def praat(x: np.ndarray) -> dict:
    """Praat's median F0 and voiced share, mean harmonicity (of the frames it could measure) and the
    median F1 and F2 (over voiced frames; over all frames when none is voiced)."""
    import parselmouth
    sound = parselmouth.Sound(x.astype(np.float64), sampling_frequency=SAMPLE_RATE)
    pitch = sound.to_pitch(pitch_floor=PITCH_FLOOR_HZ)
    f0 = pitch.selected_array["frequency"]
    voiced = f0 > 0
    # 20 ms steps (Praat's defaults are 10 and 6 ms): a third of the cost, and a median needs no more
    hnr = sound.to_harmonicity(time_step=0.02).values.reshape(-1)
    hnr = hnr[hnr > -200]  # Praat's -200 dB: a frame it could not measure
    formant = sound.to_formant_burg(time_step=0.02)
    times = pitch.xs()[voiced] if voiced.any() else np.array(formant.xs())
    formants = {n: np.array([formant.get_value_at_time(n, t) for t in times]) for n in (1, 2)}

    def median(values):
        values = values[np.isfinite(values)]
        return float(np.median(values)) if values.size else None

    return {"f0_hz": _rounded(median(f0[voiced]), 1), "voiced_share": round(float(voiced.mean()), 3),
            "hnr_db": _rounded(float(hnr.mean()) if hnr.size else None, 2),
            "f1_hz": _rounded(median(formants[1]), 1), "f2_hz": _rounded(median(formants[2]), 1)}


_shared: Judges | None = None
_lock = threading.Lock()


def judge(signal: np.ndarray, sample_rate: int, target_seconds: float | None = None) -> dict:
    """The process's `Judges` (loaded on the first call, kept for the next jobs) applied to one signal;
    one call at a time, as pocketsphinx's decoder and silero's state cannot be shared."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = Judges()
        return _shared(signal, sample_rate, target_seconds)
