"""What the README promises and no other test checked: bf16, tf32, compile and batch_size=auto through the
real loop, W&B's job type and logger.mode=auto, run.log, gain_db, the high-frequency regulariser and its
cutoff, the spectrogram picture, the gallery command with --embed and --shared-scale, the report's share
above 1."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import compose, run_cli, run_module
from PIL import Image

from audiation.config import builder
from audiation.core.augmentations import Augment
from audiation.core.randomness import Streams
from audiation.jobs.audiate_job import audiate_folder
from audiation.outputs import disk
from audiation.report import write_report

SMALL = ["model=random_small", "logger=none", "threads=1", "quality.draws=0"]


def _rose(metrics: dict) -> bool:
    """Finite, and on average higher (a random model's units do not all rise in 3 steps)."""
    gains = [t["final_activation"] - t["initial_activation"] for t in metrics["targets"]]
    return bool(np.isfinite(gains).all() and np.mean(gains) > 0)


def test_bf16_tf32_and_batch_size_auto_run_the_real_loop_on_cpu(tmp_path):
    metrics = audiate_folder(compose(*SMALL, "precision=bf16", "tf32=false", "batch_size=auto", "objective=channel",
                                     "objective.unit=0:20", "steps=3"), tmp_path)
    assert metrics["run"]["batch_size"] == 16 and metrics["run"]["batch_steps"] == 2 * 3  # CPU: min(targets, 16)
    assert _rose(metrics) and all(t["settings"]["precision"] == "bf16" for t in metrics["targets"])


@pytest.mark.slow
def test_compile_runs_the_real_loop_and_gives_the_eager_result(tmp_path):
    eager = audiate_folder(compose(*SMALL, "objective=channel", "steps=3"), tmp_path / "eager")
    compiled = audiate_folder(compose(*SMALL, "objective=channel", "steps=3", "compile=true"), tmp_path / "compiled")
    assert compiled["targets"][0]["final_activation"] == pytest.approx(eager["targets"][0]["final_activation"],
                                                                       rel=1e-3)


def test_wandb_gets_the_objective_as_job_type_and_auto_mode_is_offline_without_a_login(tmp_path, monkeypatch):
    import wandb

    seen = {}
    real = wandb.init

    def init(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    audiate_folder(compose("model=random_small", "logger=wandb", "logger.mode=auto", "objective=channel", "steps=2"),
                   tmp_path / "job", "my-sweep")
    assert seen["job_type"] == "channel" and seen["mode"] == "offline" and seen["group"] == "my-sweep"
    assert seen["dir"] == str(tmp_path / "job") and list((tmp_path / "job" / "wandb").glob("offline-run-*"))


def test_a_job_keeps_its_log_in_run_log(tmp_path):
    result = run_cli(*SMALL, "steps=2", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "run.log").read_text()
    assert "loading model random_small" in log and "[INFO]" in log


def test_gain_db_scales_each_row_within_its_range():
    # Seeded, and compared as products: an unseeded randn can draw an exact 0, and out / signal is then 0/0.
    signal = torch.randn(64, 4000, generator=torch.Generator().manual_seed(0))
    augment = Augment(16000, gain_db=6.0)
    out = augment(signal, Streams(0, list(range(64))))
    gains = out.norm(dim=1) / signal.norm(dim=1)
    gains_db = 20 * torch.log10(gains)
    assert gains_db.abs().max() <= 6.0 + 1e-4 and gains_db.max() > 4 and gains_db.min() < -4
    torch.testing.assert_close(out, signal * gains[:, None])  # one gain per row


def test_the_high_frequency_regulariser_is_subtracted_at_its_cutoff():
    cfg = compose(*SMALL, "objective=channel", "regularizer.high_frequency=2", "regularizer.cutoff_hz=3000")
    plan = builder.plan(cfg)
    objective = builder.build_batch(plan, plan.targets).objective
    assert repr(objective) == "1*activation + -2*high_frequency"
    t = torch.arange(plan.geometry.num_samples) / 16000
    signal = torch.sin(2 * torch.pi * 2000 * t) + torch.sin(2 * torch.pi * 4000 * t)
    acts = torch.zeros(1, plan.geometry.num_frames, plan.geometry.num_units)
    total, terms = objective(acts, signal[None])
    assert terms["high_frequency"].item() == pytest.approx(0.5, abs=1e-3)
    assert total.item() == pytest.approx(-1.0, abs=2e-3)


def test_a_spectrogram_picture_has_its_axes_size_and_the_dashed_target_frame(tmp_path):
    signal = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    path = tmp_path / "s.png"
    disk.write_spectrogram(path, signal, 16000, "title", mark_seconds=0.5)
    image = Image.open(path)
    assert image.mode == "P" and image.size == (disk.MARGIN_LEFT + 401 + disk.MARGIN_RIGHT,
                                                disk.MARGIN_TOP + 201 + disk.MARGIN_BOTTOM)
    pixels = np.asarray(image)
    column = pixels[disk.MARGIN_TOP:disk.MARGIN_TOP + 201, disk.MARGIN_LEFT + 200]
    cyan = column == disk.CYAN
    assert 0.4 < cyan.mean() < 0.8 and not cyan.all()  # dashed: 4 of every 6 rows
    bar = pixels[disk.MARGIN_TOP:disk.MARGIN_TOP + 201, disk.MARGIN_LEFT + 401 + 12]  # the dB scale
    assert bar[0] == disk.COLOURS - 1 and bar[-1] == 0 and np.all(np.diff(bar.astype(int)) <= 0)
    assert path.stat().st_size < 60_000


def test_the_gallery_command_embeds_and_draws_a_shared_scale(tmp_path):
    audiate_folder(compose(*SMALL, "objective=channel", "objective.unit=0:2", "steps=2"), tmp_path / "job")
    result = run_module("audiation.gallery", str(tmp_path / "job"), "--embed", "--shared-scale", "--out",
                        str(tmp_path / "units.html"), timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    page = (tmp_path / "units.html").read_text()
    assert page.count("data:audio/wav;base64,") == 2 and page.count("data:image/png;base64,") == 2
    assert len(list((tmp_path / "units.shared").glob("*.png"))) == 2


def test_the_report_gives_the_share_of_targets_above_the_natural_maximum(tmp_path):
    records = [{"name": f"L1-U{u}-unit", "layer": "L1", "unit": u, "activation_ratio": ratio}
               for u, ratio in enumerate([0.5, 1.5, 2.0, None])]
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {}, "targets": records}))
    write_report(tmp_path)
    with open(tmp_path / "report.csv") as handle:
        (row,) = [r for r in csv.DictReader(handle) if r["measure"] == "activation_ratio"]
    assert row["targets"] == "3" and float(row["share_above_1"]) == pytest.approx(2 / 3)
    assert float(row["median"]) == pytest.approx(1.5)
