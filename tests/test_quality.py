"""Quality numbers and the sweep report."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from audiation.configs import ASSETS
from audiation.objectives import Geometry
from audiation.quality import silence_ratio_db
from audiation.report import write_report
from audiation.jobs import audiate_folder
from conftest import compose


def test_silence_ratio_compares_power_away_from_and_at_the_frame():
    geometry = Geometry(16000, 49, 32, 320, 400, 16000)
    signal = np.full((2, 16000), 0.01)
    signal[:, 24 * 320:24 * 320 + 400] = 0.1  # 20 dB louder at frame 24
    signal[1] = 0.1
    assert silence_ratio_db(signal, geometry, 24) == pytest.approx([-20.0, 0.0])


def test_every_target_gets_quality_numbers_and_a_sweep_gets_a_report(tmp_path):
    for layer in (1, 2):
        audiate_folder(compose("model=random_small", "logger=none", f"model.layer={layer}", "objective.unit=0:3",
                        "steps=5", "quality.draws=2"), tmp_path / f"job{layer}", None)
    report = write_report(tmp_path).read_text()
    for layer in ("L1", "L2"):
        assert f"| selectivity | {layer} | 3 |" in report and f"| robust_activation | {layer} | 3 |" in report
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report.csv").read_text().count("\n") == 1 + 4 * 2  # header + 4 measures x 2 layers


def test_activation_ratio_is_final_over_the_datasets_max(tmp_path, monkeypatch):
    import audiation.jobs

    stats = {"max": np.linspace(-1, 2, 32), "p99": np.full(32, 0.5), "mean_abs": np.ones(32)}
    monkeypatch.setattr(audiation.jobs, "open_cache", lambda *args: SimpleNamespace(stats=stats))
    (tmp_path / "data").mkdir()  # a folder with audio in it; its statistics are the ones above
    shutil.copy(ASSETS / "speech-slice" / "000002.flac", tmp_path / "data")
    metrics = audiate_folder(compose("model=random_small", "logger=none", "objective=channel", "objective.unit=[0,31]",
                                     "steps=3", f"quality.data={tmp_path / 'data'}", "examples.top_k=0"),
                             tmp_path / "job", None)
    low, high = metrics["targets"]
    assert low["activation_ratio"] is None  # the unit never fires on the data: no ratio (null, not NaN)
    assert high["activation_ratio"] == pytest.approx(high["final_activation"] / 2.0)
    assert high["activation_ratio_p99"] == pytest.approx(high["final_activation"] / 0.5)


def _measured(encoder, *overrides):
    import torch

    from audiation import quality
    from audiation.builder import build_batch, plan
    from audiation.trainer import evaluate

    cfg = compose("model=random_small", "logger=none", "objective.unit=0:2", *overrides)
    plan_ = plan(cfg)
    batch = build_batch(cfg, plan_, plan_.targets)
    signal = np.random.default_rng(0).standard_normal((2, plan_.geometry.num_samples)).astype(np.float32) * 0.1
    final = evaluate(encoder, plan_.layer, batch.objective, torch.from_numpy(signal))
    settings = quality.QualitySettings(draws=3, seed=int(cfg.seed))
    return final, quality.measure(encoder, plan_.layer, batch, signal, final, plan_.geometry, plan_.frame, settings)


def test_selectivity_is_the_activation_over_its_neighbours_and_robustness_uses_fresh_augmentations(small_encoder):
    final, scores = _measured(small_encoder)
    for row, score in enumerate(scores):
        assert score["selectivity"] == pytest.approx(final["activation"][row] / final["neighbours"][row], rel=1e-6)
        assert abs(score["robust_activation"] - final["activation"][row]) > 1e-4  # shifted and noisy: not clean
    clean, same = _measured(small_encoder, "augmentation=none")
    assert [s["robust_activation"] for s in same] == pytest.approx(list(clean["activation"]), rel=1e-5)
