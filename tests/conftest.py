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
# A mutant can ask for any amount of memory (two of sae's took 11 and 20 GiB within a minute, on a 24-GiB
# machine): under mutmut each process, and every process it starts, gets at most this much data, past which an
# allocation fails, and so does the test. mutmut's clean run (the suite under the same limit) shows it is enough.
MUTANT_DATA_BYTES = 8 * 2**30
if "MUTANT_UNDER_TEST" in os.environ:
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (MUTANT_DATA_BYTES, MUTANT_DATA_BYTES))
CONF = ROOT / "conf"
# Phone labels spell the words CMUdict lacks with Debian's espeak-ng, so values pinned on them rest on it: skipped
# on a workstation without it, failing in CI (CI=true, which installs it).
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None and not os.environ.get("CI"),
                                  reason="phone labels need Debian's espeak-ng (make system-packages)")


@pytest.fixture(autouse=True, scope="session")
def _quiet_offline_home(tmp_path_factory):
    """W&B and matplotlib write to $HOME unless told otherwise; keep tests inside a temp folder."""
    home = tmp_path_factory.mktemp("home")
    # mutmut forks a pytest session per mutant from its fork server, each with its own temporary folder (and
    # this file imported again): what the libraries read at import points into a folder named for the fork server
    # instead, so that its sessions share one warm server (one per session, ~700 MB each for ten minutes: 14 of
    # them, 9.8 GiB, three minutes into a sitting)
    read_at_import = Path(tempfile.gettempdir()) / f"audiation-home-{os.getppid()}" \
        if "MUTANT_UNDER_TEST" in os.environ else home
    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "MPLCONFIGDIR", "HF_HOME"):
        os.environ[name] = str((read_at_import if name.startswith(_READ_AT_IMPORT) else home) / name.lower())
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


def fastest_first(nodeids: list[str], seconds: dict[str, float]) -> list[str]:
    """The order a mutant's tests run in: each file's tests together (their module fixtures, which mutmut's
    timings leave out, set up once), fastest first, the files in the order of their fastest test."""
    files: dict[str, list[str]] = {}
    for nodeid in nodeids:
        files.setdefault(nodeid.split("::")[0], []).append(nodeid)
    ordered = sorted(files.values(), key=lambda ids: min(seconds.get(i, 0.0) for i in ids))
    return [i for ids in ordered for i in sorted(ids, key=lambda i: seconds.get(i, 0.0))]


def pytest_collection_modifyitems(items):
    """mutmut stops a mutant's run at its first failing test, and its fork server (pyproject's process_isolation)
    passes the tests in a set's order, which its plain fork runner sorts fastest first: sorted here, from the
    timings in mutmut's stats file (the run's folder is mutmut's), a killed mutant costs its cheapest failing test."""
    stats = Path("mutmut-stats.json")
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", "") or not stats.exists():
        return
    import json

    order = fastest_first([item.nodeid for item in items], json.loads(stats.read_text())["duration_by_test"])
    position = {nodeid: n for n, nodeid in enumerate(order)}
    items.sort(key=lambda item: position[item.nodeid])


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
# another warm process (or, while mutmut maps the tests, a fresh interpreter: its tracer starts with the child)
_READ_AT_IMPORT = ("HF_", "HUGGINGFACE", "TRANSFORMERS", "PYTHON", "OMP_", "MKL", "CUDA", "TORCH_", "MPL")
_OWNER = os.getpid()


class WarmPython:
    """A client of `tests/warm_python.py`, which has imported the libraries once and forks a child per command
    line (5-10 s saved each). A server is found by a socket named for the process that imported the tests
    and for what the imports read (the variables above), so that the processes forked from it, such as
    mutmut's one per mutant, share it; the first to need it starts it, and it ends with that process."""

    def __init__(self, env: dict[str, str], preload: tuple[str, ...] = ()):
        import hashlib

        read = sorted((k, v) for k, v in env.items() if k.startswith(_READ_AT_IMPORT))
        key = hashlib.sha256(repr((sys.executable, _OWNER, read, preload)).encode()).hexdigest()[:16]
        self.folder = Path(tempfile.gettempdir()) / f"audiation-warm-{key}"
        self.socket, self.env, self.preload = self.folder / "socket", env, preload

    def _connect(self):
        import fcntl
        import socket
        import time

        self.folder.mkdir(exist_ok=True)
        with open(self.folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starts the server; the others wait for it
            for attempt in range(2):
                connection = socket.socket(socket.AF_UNIX)
                try:
                    connection.connect(str(self.socket))
                    return connection
                except (FileNotFoundError, ConnectionRefusedError):  # none yet, or one that ended
                    connection.close()
                if attempt == 0:
                    self.socket.unlink(missing_ok=True)
                    server = subprocess.Popen(
                        [sys.executable, str(ROOT / "tests" / "warm_python.py"), str(self.socket), str(_OWNER),
                         str(self.folder / "preload.out"), str(self.folder / "preload.err"), *self.preload],
                        cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, start_new_session=True)
                    while not self.socket.exists() and server.poll() is None:
                        time.sleep(0.05)
            said = (self.folder / "preload.err").read_text()[-2000:] if (self.folder / "preload.err").exists() else ""
            raise RuntimeError(f"tests/warm_python.py did not start (exit status {server.poll()}): {said}")

    def run(self, module: str, args: list[str], cwd: Path, env: dict[str, str], timeout: float):
        import json
        import select
        import signal

        out, err = (Path(tempfile.mkstemp(prefix="audiation-warm-", suffix=f".{name}")[1]) for name in ("out", "err"))
        request = {"module": module, "args": args, "cwd": str(cwd), "env": env, "stdout": str(out),
                   "stderr": str(err)}
        command = [sys.executable, "-m", module, *args]
        try:
            with self._connect() as connection, connection.makefile("rb") as replies:
                connection.sendall((json.dumps(request) + "\n").encode())
                pid = int(replies.readline())
                if not select.select([connection], [], [], timeout)[0]:
                    os.killpg(pid, signal.SIGKILL)
                    replies.readline()
                    raise subprocess.TimeoutExpired(command, timeout, out.read_bytes(), err.read_bytes())  # as subprocess's
                code = int(replies.readline())
            return subprocess.CompletedProcess(command, code, out.read_text(), err.read_text())
        finally:
            out.unlink()
            err.unlink()


def run_module(module: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in a process of its own, offline and quiet (`env`: default `child_env()`),
    as `subprocess.run(..., capture_output=True, text=True, timeout=timeout)` would give it. Forked from a warm
    process that has the libraries imported (`tests/warm_python.py`); under mutmut, from one that imported
    mutmut's copy, with the mutant switched on by the child's `MUTANT_UNDER_TEST` (mutmut's switch reads it at
    each call), except while mutmut maps the tests: there a fresh interpreter, which its tracer starts with."""
    env = child_env() if env is None else env
    if "AUDIATION_MUTMUT_HITS" in env:
        return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    # The server imports unmutated (a mutant of code run at import is tested by a fresh interpreter's tests)
    server_env = {k: v for k, v in env.items() if k != "MUTANT_UNDER_TEST"}
    return WarmPython(server_env).run(module, list(args), cwd or ROOT, env, timeout)


@pytest.fixture(scope="session")
def small_encoder():
    from audiation.models.encoder import load_encoder

    return load_encoder(spec("model=random_small"), "cpu")
