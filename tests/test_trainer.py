"""The loop's failure paths: NaN/inf names its step and keeps the last finite signal; Ctrl-C keeps
what exists."""

from __future__ import annotations

import os
import signal

import numpy as np
import torch

from audiation.core.augmentations import Augment
from audiation.core.objectives import Objective, Target
from audiation.core.parameterizations import FFT
from audiation.core.randomness import Streams
from audiation.core.render import Batch, LoopSettings, audiate
from audiation.models.encoder import Layer


def _run(encoder, objective, steps=30, log_every=5, on_log=None):
    streams = Streams(0, [0])
    signal = FFT(streams, seconds=0.5, sample_rate=16000)
    optimizer = torch.optim.Adam(signal.parameters(), lr=0.05)
    batch = Batch([Target("test", Layer("transformer", 2), 0)], streams, signal, Augment(16000), objective, optimizer)
    return audiate(encoder, Layer("transformer", 2), batch, LoopSettings(steps, log_every), on_log)


def _failing_at(step_to_fail, error=None):
    calls = {"n": 0}

    def term(acts, _signal):
        calls["n"] += 1
        if calls["n"] - 1 == step_to_fail:  # call 0 is the initial evaluation; call k is step k
            if error:
                raise error
            return acts[:, 0, 0] * float("nan")
        return acts[:, 0, 0]

    return Objective("activation", term)


def test_nan_stops_with_the_step_and_keeps_a_finite_signal(small_encoder):
    result = _run(small_encoder, _failing_at(13))
    assert result.stopped == "the loss became NaN/inf at step 13"
    assert result.steps == 10  # the last block of steps that was checked finite
    assert np.isfinite(result.signal).all() and np.abs(result.signal).max() > 0


def test_ctrl_c_keeps_the_signal_so_far(small_encoder):
    result = _run(small_encoder, _failing_at(8, KeyboardInterrupt()))
    assert result.stopped == "interrupted"
    assert result.steps == 7 and np.isfinite(result.signal).all()
    assert len(result.history["activation"]) == 7


def test_a_signal_stops_the_loop_between_steps_never_inside_a_callback(small_encoder):
    """W&B's logging runs inside the loop: an interruption raised in it could leave a lock held, and the
    wrap-up that saves the signal would wait on that lock for ever (CI once hung so after SIGTERM)."""
    finished = []

    def on_log(first_step, _terms, _signal):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(10000))  # Python code, where an interruption raised by the handler would land
        finished.append(first_step)

    before = signal.getsignal(signal.SIGINT)  # Python's, or SIG_IGN in a job started in the background
    result = _run(small_encoder, _failing_at(-1), on_log=on_log)
    assert finished == [0] and result.stopped == "interrupted" and result.steps == 5
    assert signal.getsignal(signal.SIGINT) is before  # the loop's handler is gone


def test_a_signal_during_the_last_step_still_stops_the_job(small_encoder):
    def on_log(first_step, _terms, _signal):
        if first_step == 25:  # the last block of 30 steps
            os.kill(os.getpid(), signal.SIGINT)

    result = _run(small_encoder, _failing_at(-1), on_log=on_log)
    # every step ran: the batch is whole (not "interrupted"), and the result asks the job to stop after it
    assert result.stopped is None and result.steps == 30 and result.stop_asked


def test_with_clean_optimises_the_mean_of_the_augmented_and_the_clean_signals_objective(small_encoder):
    """augmentation.with_clean: the encoder hears [augmented; clean] in one batch, and the loss is the mean
    of both halves' objectives (the reported terms stay the augmented signal's)."""
    heard, scores = [], []

    class Recording(torch.nn.Module):
        def forward(self, wave, layer):
            heard.append(wave.detach().clone())
            return small_encoder(wave, layer)

    def term(acts, _signal):
        scores.append(acts[:, :, 0].mean(dim=1).detach())
        return acts[:, :, 0].mean(dim=1)

    streams = Streams(0, [0, 1])
    signal = FFT(streams, seconds=0.5, sample_rate=16000)
    augment = Augment(16000, noise_snr_db=10, with_clean=True)
    batch = Batch([Target(f"t{i}", Layer("transformer", 2), i) for i in range(2)], streams, signal, augment,
                  Objective("activation", term), torch.optim.Adam(signal.parameters(), lr=0.05))
    result = audiate(Recording(), Layer("transformer", 2), batch, LoopSettings(1, 1))
    step = heard[1]  # heard[0] is the initial evaluation
    assert step.shape[0] == 4 and torch.equal(step[2:], heard[0])  # the clean rows are the signal itself
    assert not torch.allclose(step[:2], step[2:])  # the first rows are augmented
    augmented, clean = scores[1], scores[2]
    torch.testing.assert_close(torch.from_numpy(result.history["loss"][0]), -(augmented + clean) / 2)
    torch.testing.assert_close(torch.from_numpy(result.history["activation"][0]), augmented)


def test_batch_candidates_are_16_and_up_powers_of_two_and_half_again_and_the_whole_job():
    from audiation.core.render import batch_candidates

    assert batch_candidates(100) == [16, 24, 32, 48, 64, 96, 100]
    assert batch_candidates(768) == [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768]
    assert batch_candidates(10) == [10]
    assert batch_candidates(100_000)[-3:] == [32768, 49152, 100_000]  # 2**15 and 1.5 x 2**15, the largest timed


def test_on_the_cpu_the_fastest_batch_is_at_most_16():
    from audiation.core.render import fastest_batch

    assert fastest_batch(None, Layer("transformer", 1), 16000, 100, "cpu") == 16
    assert fastest_batch(None, Layer("transformer", 1), 16000, 5, "cpu") == 5


def test_the_cheapest_batch_weighs_whole_job_cost_and_stops_at_the_first_size_too_large():
    from audiation.core.render import cheapest_batch

    # 100 targets; per-step seconds not monotonic in the size, as fp32 convs were on an H200
    seconds = {16: 1.0, 24: 1.4, 32: 4.0, 48: 2.0, 64: 2.2, 96: 9.0, 100: 5.0}
    assert cheapest_batch(100, seconds.get) == 64  # 2 x 2.2 = 4.4 beats 1 x 5.0, 3 x 2.0, 7 x 1.0, 5 x 1.4
    released = []

    def out_of_memory_from_96(size):
        if size >= 96:
            raise MemoryError
        return seconds[size]

    assert cheapest_batch(100, out_of_memory_from_96, release=lambda: released.append(1)) == 64
    assert len(released) == 6  # after every timing, the failed one too
    timed = []
    assert cheapest_batch(100, lambda size: timed.append(size) or 1.0) == 100
    assert timed == [16, 24, 32, 48, 64, 96, 100]

    def none_fit(size):
        raise MemoryError

    assert cheapest_batch(100, none_fit) is None


def test_a_nan_in_the_first_block_keeps_the_starting_signal(small_encoder):
    start = FFT(Streams(0, [0]), seconds=0.5, sample_rate=16000)().detach().numpy()
    result = _run(small_encoder, _failing_at(2))
    assert result.stopped == "the loss became NaN/inf at step 2" and result.steps == 0
    np.testing.assert_array_equal(result.signal, start)


def test_bf16_runs_the_encoder_under_autocast(small_encoder):
    # The feature encoder's last conv: past it, random_small's positional conv has 8 channels per group,
    # and oneDNN's bf16 grouped conv is wrong below 16 (error ~100% on Intel AMX CPUs, torch 2.13; fine
    # on AMD and for the real models: tiny 24, the listener 32, wav2vec2-base 48 per group).
    layer = Layer("conv", 6)

    def run(precision):
        streams = Streams(0, [0])
        signal = FFT(streams, seconds=0.5, sample_rate=16000)
        batch = Batch([Target("test", layer, 0)], streams, signal, Augment(16000),
                      Objective("activation", lambda acts, _s: acts[:, :, 0].mean(dim=1)),
                      torch.optim.Adam(signal.parameters(), lr=0.05))
        return audiate(small_encoder, layer, batch, LoopSettings(3, 1, precision))

    fp32, bf16 = run("fp32"), run("bf16")
    assert not np.array_equal(fp32.history["activation"], bf16.history["activation"])  # rounded to bf16
    np.testing.assert_allclose(fp32.history["activation"], bf16.history["activation"], atol=0.1)


def test_a_row_whose_objective_cannot_move_is_stalled_and_the_others_are_not(small_encoder):
    streams = Streams(0, [0, 1])
    signal = FFT(streams, seconds=0.5, sample_rate=16000)
    alive = torch.tensor([1.0, 0.0])  # row 1's activation does not depend on the signal at all
    batch = Batch([Target("test", Layer("transformer", 2), k) for k in (0, 1)], streams, signal, Augment(16000),
                  Objective("activation", lambda acts, _s: acts[:, :, 0].mean(dim=1) * alive),
                  torch.optim.Adam(signal.parameters(), lr=0.05))
    signals = []
    result = audiate(small_encoder, Layer("transformer", 2), batch, LoopSettings(4, 2),
                     on_log=lambda first, terms, current: signals.append(current()))
    assert result.stalled.tolist() == [False, True]
    assert [s.shape for s in signals] == [(2, 8000), (2, 8000)]  # on_log can ask for the signal so far
    assert 0 <= result.seconds < 60 and result.steps == 4


def test_an_interruption_before_the_first_step_keeps_an_empty_history(small_encoder):
    result = _run(small_encoder, _failing_at(1, KeyboardInterrupt()))
    assert result.stopped == "interrupted" and result.steps == 0 and result.stalled is None
    assert all(values.shape == (0, 1) for values in result.history.values())
