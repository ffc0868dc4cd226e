"""Random streams: a target draws the same numbers alone or in any batch, the numbers are a pure function
of (seed, key, draw, index) in integer arithmetic (so no device can change them), and a step's number of
random calls does not grow with the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose

from audiation.config.builder import build_batch, plan
from audiation.core import randomness
from audiation.core.randomness import Streams
from audiation.core.render import audiate


def test_a_row_draws_the_same_alone_or_in_any_batch():
    alone, batch = Streams(7, [3]), Streams(7, [9, 3, 1])
    for _ in range(3):  # successive draws, as successive steps make them
        torch.testing.assert_close(alone.uniform(5)[0], batch.uniform(5)[1], rtol=0, atol=0)
        torch.testing.assert_close(alone.normal(4, 2)[0], batch.normal(4, 2)[1], rtol=0, atol=0)


def test_the_bits_are_the_pure_integer_hash_of_seed_key_draw_and_index():
    """The same formula in Python integers and in int64 tensor ops: nothing depends on a device's RNG."""
    streams = Streams(5, [11, 12])
    bits = streams._bits(6)
    for row, key in enumerate([11, 12]):
        salt = randomness._mix(0)  # draw number 0
        expected = [randomness._mix(randomness._mix(randomness.row_seed(5, key) ^ salt) ^ randomness._mix(i)) >> 8
                    for i in range(6)]
        assert bits[row].tolist() == expected


def test_draws_look_uniform_and_normal_and_differ_between_rows_keys_and_draws():
    streams = Streams(0, [0, 1])
    uniform = streams.uniform(200_000)
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.005
    normal = streams.normal(200_000)
    assert abs(normal.mean()) < 0.01 and abs(normal.std() - 1) < 0.01
    assert abs(((normal > 1.96).float().mean()) - 0.025) < 0.002  # the tail, not only the moments
    assert not torch.equal(normal[0], normal[1])
    assert not torch.equal(streams.normal(10), streams.normal(10))
    assert not torch.equal(Streams(1, [0]).normal(10), Streams(0, [0]).normal(10))


def test_random_calls_per_step_do_not_grow_with_the_batch_and_torch_rng_is_never_used(small_encoder, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the loop must not use torch's global or per-row generators")

    counts = {}
    for size in (1, 8):
        cfg = compose("model=random_small", "logger=none", "objective=channel", "augmentation=strong", "steps=4",
                      "parameterization.seconds=0.25")
        cfg.objective.unit = f"0:{size}"
        job = plan(cfg)
        batch = build_batch(job, job.targets)
        before = batch.streams.draws
        with monkeypatch.context() as patched:
            for name in ("rand", "randn", "randint", "normal"):
                patched.setattr(torch, name, forbidden)
            audiate(small_encoder, job.layer, batch, job.settings)
        counts[size] = (batch.streams.draws - before) / 4
    assert counts[1] == counts[8] == 2  # one uniform draw (stretch, shift, gain) and one normal (noise)


def test_the_streams_are_pinned_so_a_changed_constant_cannot_silently_change_every_seeds_audio():
    """Values computed once (2026-12-02) and written down: resumed folders and published seeds depend on them."""
    assert [randomness.row_seed(0, 0), randomness.row_seed(3, 7), randomness.row_seed(2**32 - 1, 5)] == [
        0, 3496911307, 1995790572]
    streams = Streams(3, [1, 7])
    np.testing.assert_allclose(streams.uniform(3).numpy(), [[0.10851026, 0.42934066, 0.51111954],
                                                            [0.81190675, 0.60463727, 0.47418511]], rtol=0, atol=1e-7)
    np.testing.assert_allclose(streams.normal(4).numpy(), [[0.26230901, 1.02202749, -1.05240583, -1.81023014],
                                                           [0.71939242, -1.29759133, -0.57681876, -0.02908173]],
                               rtol=0, atol=1e-6)
    # a normal's tails come from the smallest integers, where a shifted offset shows (bits + 2: 4.88476)
    assert float(Streams(3, [1]).normal(1 << 20).abs().max()) == pytest.approx(4.888371, rel=1e-5)
