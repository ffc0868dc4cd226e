"""Where the work runs (`audiation.core.runtime`) and what `import audiation` sets up before any work."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, child_env

import audiation
from audiation.core import runtime
from audiation.errors import AudiationError


@pytest.mark.parametrize("cuda,asked,device", [
    (False, "auto", "cpu"), (True, "auto", "cuda"), (False, "cpu", "cpu"), (True, "cuda:1", "cuda:1"),
    (True, "cpu", "cpu")])
def test_the_device_is_the_one_asked_for_and_auto_is_cuda_only_when_there_is_one(monkeypatch, cuda, asked, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert runtime.resolve_device(asked) == device


@pytest.mark.parametrize("asked", ["cuda", "cuda:0"])
def test_a_cuda_device_on_a_machine_without_one_is_one_line(monkeypatch, asked):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AudiationError) as refused:
        runtime.resolve_device(asked)
    assert str(refused.value) == f"device={asked} but no CUDA device is available (use device=auto or cpu)"


@pytest.fixture
def settings_kept():
    """torch's process-wide settings, put back after the test changes them."""
    kept = (torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark)
    yield
    torch.set_num_threads(kept[0])
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = kept[1:]


def _gpu_settings():
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)


@pytest.mark.parametrize("tf32,autotune", [(True, False), (False, True), (True, True), (False, False)])
def test_on_a_gpu_tf32_and_the_autotuner_are_set_as_asked_and_threads_left(settings_kept, tf32, autotune):
    threads = torch.get_num_threads()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not tf32
    torch.backends.cudnn.benchmark = not autotune
    runtime.configure("cuda:0", threads=threads + 1, tf32=tf32, autotune=autotune)
    assert _gpu_settings() == (tf32, tf32, autotune) and torch.get_num_threads() == threads


@pytest.mark.parametrize("threads", [None, 0])
def test_on_a_cpu_threads_are_set_only_when_asked_and_gpu_settings_left(settings_kept, threads):
    torch.set_num_threads(1)
    gpu = _gpu_settings()
    runtime.configure("cpu", threads=threads, tf32=not gpu[0], autotune=not gpu[2])
    assert torch.get_num_threads() == 1 and _gpu_settings() == gpu
    runtime.configure("cpu", threads=2)
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_bf16_autocasts_and_fp32_does_not(device):
    with runtime.autocast(device, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with runtime.autocast(device, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_as_a_library_the_package_speaks_in_audiation_lines_on_stderr_once():
    logger = logging.getLogger("audiation")
    [handler] = [h for h in logger.handlers if isinstance(h, audiation.ConsoleHandler)]
    assert handler.formatter._fmt == "audiation: %(message)s"
    assert logger.level == logging.INFO and logger.propagate is False
    audiation._default_console()  # a second call (a reload) adds no second handler
    assert sum(isinstance(h, audiation.ConsoleHandler) for h in logger.handlers) == 1


def test_a_fresh_import_sets_passive_waiting_and_speaks_info_but_not_debug():
    env = {k: v for k, v in child_env().items() if k != "OMP_WAIT_POLICY"}
    code = ("import os, logging, audiation; print(os.environ['OMP_WAIT_POLICY']); audiation._default_console(); "
            "log = logging.getLogger('audiation.x'); log.info('said'); log.debug('not said')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout == "PASSIVE\n" and done.stderr == "audiation: said\n"


def test_the_notebook_call_is_the_packages_and_an_unknown_name_says_so():
    from audiation import api

    assert audiation.audiate is api.audiate and audiation.Audiation is api.Audiation
    with pytest.raises(AttributeError, match=r"^module 'audiation' has no attribute 'audiat'$"):
        audiation.audiat  # noqa: B018


def test_a_console_message_that_cannot_be_formatted_is_said_by_logging_not_raised(capsys):
    handler = audiation.ConsoleHandler()
    bad = logging.LogRecord("audiation", logging.WARNING, __file__, 1, "%d targets", ("x",), None)
    handler.emit(bad)  # the run goes on
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err and "Message: '%d targets'\nArguments: ('x',)" in err
    handler.emit(logging.LogRecord("audiation", logging.INFO, __file__, 1, "said", (), None))
    quiet = logging.LogRecord("audiation", logging.INFO, __file__, 1, "in the log file only", (), None)
    quiet.file_only = True
    handler.emit(quiet)
    assert capsys.readouterr().err == "said\n"


def test_bf16_is_bfloat16_on_every_device_type_not_autocasts_default_there():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA here: the context is off, and its dtype still chosen
        assert runtime.autocast("cuda", "bf16").fast_dtype == torch.bfloat16  # CUDA's default is float16
    assert runtime.autocast("cpu", "bf16").fast_dtype == torch.bfloat16
    assert runtime.autocast("cpu", "bf16")._enabled and not runtime.autocast("cpu", "fp32")._enabled
