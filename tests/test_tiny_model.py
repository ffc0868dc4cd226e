"""The project's own trained model (audiation/assets/tiny-w2v2-espeak): it loads offline, it hears the
held-out speech slice as its model card says, and its units mean something."""

from __future__ import annotations

import csv
import re
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from audiation.configs import ASSETS
from audiation.model import load_encoder
from audiation.run import run_job
from conftest import compose

CARD = ASSETS / "tiny-w2v2-espeak" / "MODEL_CARD.md"
SLICE = ASSETS / "speech-slice"


def character_error_rate(pairs: list[tuple[str, str]]) -> float:
    def distance(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            previous, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
        return row[-1]

    return sum(distance(ref, hyp) for ref, hyp in pairs) / sum(len(ref) for ref, _ in pairs)


@pytest.fixture(scope="module")
def tiny():
    return load_encoder(compose("model=tiny").model, "cpu")


def test_the_shipped_model_hears_the_slice_at_the_cards_cer(tiny):
    rows = list(csv.DictReader(open(SLICE / "metadata.tsv"), delimiter="\t"))
    pairs = []
    for row in rows:
        audio, rate = sf.read(SLICE / row["file"], dtype="float32")
        assert rate == 16000
        pairs.append((row["text"], tiny.transcribe(torch.from_numpy(audio)[None])[0]))
    card_cer = float(re.search(r"speech-slice CER: ([0-9.]+)", CARD.read_text()).group(1))
    assert character_error_rate(pairs) == pytest.approx(card_cer, abs=0.01)


def test_audiating_the_s_output_gives_audio_the_model_hears_as_s(tmp_path, tiny):
    s = tiny.vocabulary.index("s")
    metrics = run_job(compose("model=tiny", "model.layer=logits", "objective=channel", f"objective.unit={s}",
                              "optimizer.steps=150", "logger=none", "threads=1"), tmp_path, None)
    signal, rate = sf.read(metrics["targets"][0]["files"]["wav"], dtype="float32")
    heard = tiny.transcribe(torch.from_numpy(signal)[None])[0]
    letters = Counter(c for c in heard if c.isalpha())
    assert letters and letters.most_common(1)[0][0] == "s", heard
    spectrum = np.abs(np.fft.rfft(signal)) ** 2
    frequencies = np.fft.rfftfreq(len(signal), 1 / rate)
    assert spectrum[frequencies > 3000].sum() / spectrum.sum() > 0.5  # an "s" is a hiss above 3 kHz
