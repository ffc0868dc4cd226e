"""Shared fixtures. Nothing here touches the network: models are random-initialised configs or the
project's own shipped model, and W&B runs offline into temporary folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

import audiation  # noqa: F401  (registers config resolvers before any compose)

# CI draws the same examples every run (and keeps no example database), so a red build is one to reproduce
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# Phone labels spell the words CMUdict lacks with Debian's espeak-ng, so values pinned on them rest on it: skipped
# on a workstation without it, failing in CI (CI=true, which installs it).
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None and not os.environ.get("CI"),
                                  reason="phone labels need Debian's espeak-ng (make system-packages)")


@pytest.fixture(autouse=True, scope="session")
def _quiet_offline_home(tmp_path_factory):
    """W&B and matplotlib write to $HOME unless told otherwise; keep tests inside a temp folder."""
    home = tmp_path_factory.mktemp("home")
    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "MPLCONFIGDIR", "HF_HOME"):
        os.environ[name] = str(home / name.lower())
    os.environ.update(WANDB_SILENT="true", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    # Whisper judges every audiation by default (~3 s to load, ~0.4 s a target on one thread): the suite turns
    # it off as a user can (conf/config.yaml), and the tests about it ask for it with quality.whisper=true
    os.environ["AUDIATION_WHISPER_JUDGE"] = "false"
    os.environ.pop("WANDB_API_KEY", None)
    import torch

    torch.set_num_threads(1)  # tests run beside other work; one thread is the predictable choice


@pytest.fixture(autouse=True)
def _seeded(request):
    """Each test draws the same numbers every run (seeded by its own name, so tests do not share draws):
    a test that fails on one draw fails on every machine, and an unseeded `randn` cannot make CI flaky."""
    import random
    import zlib

    import numpy as np
    import torch

    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def compose(*overrides: str, config_name: str = "config"):
    """The job config exactly as `python -m audiation.run <overrides>` would see it."""
    from audiation.config.configs import compose as compose_config

    return compose_config(*overrides, config_name=config_name)


def spec(*overrides: str):
    """The ModelSpec of `model=...` overrides."""
    from audiation.config.builder import model_spec

    return model_spec(compose(*overrides).model)


def child_env(**changes: str | None) -> dict[str, str]:
    """The environment of a child process a test starts: offline, quiet, one thread, with `changes` (None
    removes a variable). Under mutmut the child imports mutmut's mutated copy wherever it starts, and while
    mutmut maps the tests it reports the functions it ran (`mutmut_child/`), so that a mutant reached only
    through a command line is tested by the test that runs that command line."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    if "MUTANT_UNDER_TEST" in env:
        paths = [str(ROOT)]
        if env["MUTANT_UNDER_TEST"] == "stats":
            paths.append(str(ROOT / "tests" / "mutmut_child"))
            env["AUDIATION_MUTMUT_HITS"] = str(_CHILD_HITS)
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


_CHILD_HITS = Path(tempfile.gettempdir()) / f"audiation-mutmut-hits-{os.getpid()}"
if os.environ.get("MUTANT_UNDER_TEST") == "stats":  # processes the package starts itself (judges' workers) too
    os.environ.update({k: v for k, v in child_env().items() if k in ("PYTHONPATH", "AUDIATION_MUTMUT_HITS")})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """While mutmut maps the tests, the functions this test's children ran are added to what it ran itself
    (mutmut gives them to the test when it ends)."""
    try:
        return (yield)
    finally:
        if _CHILD_HITS.exists():
            from mutmut.state import state

            state()._stats.update(_CHILD_HITS.read_text().split())
            _CHILD_HITS.unlink()


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m audiation.run` in a subprocess, offline and quiet."""
    return run_module("audiation.run", *args, cwd=cwd, timeout=timeout)


# Variables that a library reads when it is imported: a child with other values than the warm process's needs
# an interpreter of its own
_READ_AT_IMPORT = ("HF_", "HUGGINGFACE", "TRANSFORMERS", "PYTHON", "OMP_", "MKL", "CUDA", "TORCH_", "MUTANT_UNDER_TEST")


class _WarmPython:
    """One per test process: `tests/warm_python.py`, which has imported the libraries once and forks a child
    per command line (5-10 s saved each)."""

    def __init__(self, env: dict[str, str] | None = None, preload: list[str] = ()):
        self.folder = Path(tempfile.mkdtemp(prefix="audiation-warm-"))
        self.env = env or child_env()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "warm_python.py"), str(self.folder / "preload.out"),
             str(self.folder / "preload.err"), *preload], cwd=ROOT, env=self.env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, bufsize=0)
        self.count = 0

    def serves(self, env: dict[str, str]) -> bool:
        changed = {k for k in env.keys() | self.env.keys() if env.get(k) != self.env.get(k)}
        return self.process.poll() is None and not any(k.startswith(_READ_AT_IMPORT) for k in changed)

    def run(self, module: str, args: list[str], cwd: Path, env: dict[str, str], timeout: float):
        import json
        import select
        import signal

        self.count += 1
        out, err, pid_file = (self.folder / f"{self.count}.{name}" for name in ("out", "err", "pid"))
        request = {"module": module, "args": args, "cwd": str(cwd), "env": env, "stdout": str(out),
                   "stderr": str(err), "pid_file": str(pid_file)}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        command = [sys.executable, "-m", module, *args]
        if not select.select([self.process.stdout], [], [], timeout)[0]:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            self.process.stdout.readline()
            raise subprocess.TimeoutExpired(command, timeout, out.read_bytes(), err.read_bytes())  # as subprocess's
        code = int(self.process.stdout.readline())
        result = subprocess.CompletedProcess(command, code, out.read_text(), err.read_text())
        for path in (out, err, pid_file):
            path.unlink()
        return result

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


_warm: list[_WarmPython] = []


def run_module(module: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in a process of its own, offline and quiet (`env`: default `child_env()`),
    as `subprocess.run(..., capture_output=True, text=True, timeout=timeout)` would give it. Forked from a warm
    process that has the libraries imported (`tests/warm_python.py`), except under mutmut (its children import
    the mutant's copy) or with another value for a variable read at import: there a fresh interpreter."""
    env = child_env() if env is None else env
    cwd = cwd or ROOT
    if "MUTANT_UNDER_TEST" not in os.environ:
        if not _warm:
            import atexit

            _warm.append(_WarmPython())
            atexit.register(_warm[0].close)
        if _warm[0].serves(env):
            return _warm[0].run(module, list(args), cwd, env, timeout)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def small_encoder():
    from audiation.models.encoder import load_encoder

    return load_encoder(spec("model=random_small"), "cpu")
