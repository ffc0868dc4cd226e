"""The training script's speaker augmentation (experiments/train_tiny.py --voice-change): another pitch and
formants, the same words and length; an utterance Praat cannot change comes back as it was."""

from __future__ import annotations

import random
import sys

import numpy as np
import parselmouth
import soundfile as sf

from audiation.configs import ASSETS
from conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
from train_tiny import voice_changed  # noqa: E402


def _median_f0(x: np.ndarray) -> float:
    f0 = parselmouth.Sound(x.astype(np.float64), sampling_frequency=16000).to_pitch().selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))


def test_a_changed_voice_has_the_drawn_pitch_and_the_same_length():
    x = sf.read(sorted((ASSETS / "speech-slice").glob("*.flac"))[0], dtype="float32")[0]
    rng = random.Random(3)
    draws = random.Random(3)
    _formants, pitch = draws.uniform(0.85, 1.2), draws.uniform(85, 260)
    y = voice_changed(x, rng)
    assert y.dtype == np.float32 and np.isfinite(y).all() and abs(len(y) - len(x)) <= 160
    assert abs(_median_f0(y) - pitch) < 0.15 * pitch and abs(_median_f0(x) - pitch) > 0.3 * pitch


def test_an_utterance_praat_cannot_change_comes_back_unchanged():
    blip = (0.3 * np.sin(2 * np.pi * 150 * np.arange(100) / 16000)).astype(np.float32)  # too short for its pitch
    assert voice_changed(blip, random.Random(0)) is blip
