"""The training script's augmentations (experiments/train_tiny.py): speed perturbation moves pitch and length
together by its rate, the spectral tilt stays within its bound, and a speed with a teacher is refused."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

SCRIPT = ROOT / "experiments" / "train_tiny.py"
SR = 16000


@pytest.fixture(scope="module")
def train_tiny():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("train_tiny", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(SR * seconds)) / SR)).astype(np.float32)


def _peak_hz(w: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(w * np.hanning(len(w))))
    return float(np.argmax(spectrum) * SR / len(w))


class _Rng(random.Random):
    """A random source whose uniform draws are fixed (the rate, the tilt) and whose coin flips never add the
    leading silence or the noise, so that only the augmentation under test acts."""

    def __init__(self, uniform: float):
        super().__init__(0)
        self.fixed = uniform

    def uniform(self, a, b):
        return self.fixed if a <= self.fixed <= b else (a + b) / 2

    def random(self):
        return 0.99


@pytest.mark.parametrize("rate", [0.85, 1.15])
def test_speed_perturbation_scales_pitch_and_length_by_its_rate(train_tiny, rate):
    out, lead = train_tiny.augment(_tone(200.0), _Rng(rate), speed=(0.85, 1.15))
    assert lead == 0
    assert len(out) == pytest.approx(SR / rate, rel=0.01)
    assert _peak_hz(out) == pytest.approx(200.0 * rate, abs=3.0)


def test_a_spectral_tilt_changes_the_colour_within_its_bound_and_keeps_the_length(train_tiny):
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    rng = _Rng(1.0)
    flips = iter([0.0, 0.99, 0.99])   # the tilt's coin says yes, the silence's and the noise's no
    rng.random = lambda: next(flips)
    out, _ = train_tiny.augment(noise, rng, eq_db=6.0)
    assert len(out) == len(noise)
    gain_db = 20 * np.log10(np.abs(np.fft.rfft(out))[1:] / np.abs(np.fft.rfft(noise))[1:])
    assert np.abs(gain_db).max() == pytest.approx(6.0, abs=0.05)   # all three cosines at 1: the full bound
    assert np.abs(gain_db).max() <= 6.0 + 1e-3


def test_no_augmentation_asked_leaves_the_signal_as_it_was(train_tiny):
    w = _tone(300.0)
    out, lead = train_tiny.augment(w, _Rng(1.0))
    np.testing.assert_array_equal(out, w)
    assert lead == 0


@pytest.mark.parametrize("option,message", [(["--speed", "0.9", "1.1"], "--speed moves every frame"),
                                            (["--extra", "more"], "--extra has none")])
def test_an_option_the_teacher_cannot_follow_is_refused_in_one_line(tmp_path, option, message):
    done = subprocess.run([sys.executable, str(SCRIPT), *option, "--teacher", str(tmp_path / "t.npz"),
                           "--data", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]


def test_a_recordings_text_is_the_objects_name_as_spoken():
    spec = importlib.util.spec_from_file_location("make_recordings", ROOT / "experiments" / "make_recordings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [module.text_of(stem) for stem in ("ball", "pizzeria_olive", "moon_fallingstar", "egypt_sphynx",
                                              "tv_bicycle", "moon_moonwalker")] == \
        ["ball", "olive", "falling star", "sphinx", "bicycle", "moonwalker"]
