"""The suite's command lines run forked from a warm process (`warm_python.py`): each must look exactly as a
fresh `python -m` would to the test that reads it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, WarmPython, child_env, run_module

BAD = ["model=random_small", "logger=none", "model.layer=mlp9"]
# Not under mutmut: no mutant changes the runner
pytestmark = pytest.mark.skipif("MUTANT_UNDER_TEST" in os.environ, reason="the runner's own tests reach no module of the package")


def _fresh(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=child_env(), capture_output=True, text=True,
                          timeout=120)


def test_a_warm_command_says_what_a_fresh_one_says(tmp_path):
    warm = run_module("audiation.run", *BAD, f"hydra.run.dir={tmp_path / 'warm'}")
    fresh = _fresh("audiation.run", *BAD, f"hydra.run.dir={tmp_path / 'warm'}")
    assert (warm.returncode, warm.stdout, warm.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr) == (
        2, "", "audiation: error: model.layer=mlp9 is not a layer of this model "
               "(valid: 0..3, conv1..conv7, mlp1..mlp3)\n")
    assert not (tmp_path / "warm").exists()


def test_a_warm_command_has_its_own_folder_environment_and_exit_status(tmp_path):
    (tmp_path / "probe.py").write_text(
        "import atexit, os, sys\natexit.register(print, 'at exit')\n"
        "print(os.getcwd(), os.environ['PROBE'], os.environ.get('WANDB_SILENT'), sys.argv[1:], sys.path[0])\n"
        "print('to stderr', file=sys.stderr)\nraise SystemExit(int(sys.argv[1]))\n")
    env = {**child_env(), "PROBE": "here"}
    done = run_module("probe", "3", "x", cwd=tmp_path, env=env)
    assert done.returncode == 3 and done.stderr == "to stderr\n"
    assert done.stdout == f"{tmp_path} here true ['3', 'x'] {tmp_path}\nat exit\n"
    env = {**env, "PROBE": "there"}
    del env["WANDB_SILENT"]
    again = run_module("probe", "0", cwd=tmp_path, env=env)
    assert again.returncode == 0 and again.stdout.split()[1:3] == ["there", "None"]


def test_a_warm_command_that_raises_prints_its_traceback_and_exits_1(tmp_path):
    (tmp_path / "boom.py").write_text("raise ValueError('planted')\n")
    done = run_module("boom", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("Traceback") and "ValueError: planted" in done.stderr


def test_a_warm_command_past_its_timeout_is_killed_with_what_it_started(tmp_path):
    (tmp_path / "hang.py").write_text(
        "import subprocess, sys, time\nchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\ntime.sleep(60)\n")
    started = time.time()
    with pytest.raises(subprocess.TimeoutExpired) as stopped:
        run_module("hang", cwd=tmp_path, timeout=3)
    assert time.time() - started < 30
    grandchild = Path("/proc") / stopped.value.output.decode().split()[0]
    time.sleep(0.5)
    assert not grandchild.exists() or "State:\tZ" in (grandchild / "status").read_text()  # dead (or unreaped)
    (tmp_path / "boom.py").write_text("raise SystemExit(4)\n")
    assert run_module("boom", cwd=tmp_path).returncode == 4  # the warm process serves the next command


def test_what_the_imports_print_starts_every_commands_output(tmp_path):
    """A warning printed while a library is imported is printed by every fresh interpreter: each child's
    output starts with it, so a test that counts a command's lines still sees it."""
    (tmp_path / "noisy.py").write_text("import sys\nprint('imported')\nprint('a warning', file=sys.stderr)\n")
    (tmp_path / "quiet.py").write_text("print('ran')\n")
    warm = WarmPython({**child_env(), "PYTHONPATH": str(tmp_path)}, preload=("noisy",))
    done = warm.run("quiet", [], tmp_path, warm.env, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "imported\nran\n", "a warning\n")


def test_a_warm_command_ends_as_a_fresh_one_does_after_its_threads_and_worker_pools(tmp_path):
    """A fresh interpreter joins its threads and stops its pools (`threading._register_atexit`: joblib's
    loky, concurrent.futures) before atexit; a child that skipped that hung with joblib's workers alive."""
    (tmp_path / "pool.py").write_text(
        "import atexit, threading, time\nfrom concurrent.futures import ProcessPoolExecutor\n"
        "atexit.register(print, 'at exit')\n"
        "threading.Thread(target=lambda: (time.sleep(1), print('thread done', flush=True))).start()\n"
        "pool = ProcessPoolExecutor(1)\nprint(pool.submit(abs, -2).result(), flush=True)\n")
    warm = run_module("pool", cwd=tmp_path, timeout=60)
    fresh = _fresh("pool", cwd=tmp_path)
    assert (warm.returncode, warm.stdout) == (fresh.returncode, fresh.stdout) == (0, "2\nthread done\nat exit\n")


def test_warm_commands_run_at_once_from_several_processes(tmp_path):
    """mutmut forks a process per mutant from one that imported the tests, and runs two at once: they share
    one server, and neither waits for the other's command."""
    (tmp_path / "slow.py").write_text("import sys, time\ntime.sleep(3)\nprint(sys.argv[1])\n")
    run_module("slow", "0", cwd=tmp_path, timeout=60)  # the server started
    started = time.time()
    pids = []
    for n in range(2):
        pid = os.fork()
        if pid == 0:
            done = run_module("slow", str(n), cwd=tmp_path, timeout=60)
            os._exit(0 if (done.returncode, done.stdout) == (0, f"{n}\n") else 1)
        pids.append(pid)
    assert run_module("slow", "2", cwd=tmp_path, timeout=60).stdout == "2\n"
    assert [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids] == [0, 0]
    assert time.time() - started < 8  # at once: 3 s each, not 9 s in turn


def test_a_warm_command_ends_when_its_client_is_killed(tmp_path):
    """mutmut kills a mutant's process at its time limit: the command that process was waiting for goes too
    (a fresh `subprocess.run` would have left it running)."""
    (tmp_path / "hang.py").write_text(  # written whole, then renamed: a reader never sees an empty pid
        "import os, pathlib, time\npathlib.Path('pid.part').write_text(str(os.getpid()))\n"
        "os.rename('pid.part', 'pid')\ntime.sleep(60)\n")
    client = os.fork()
    if client == 0:
        run_module("hang", cwd=tmp_path, timeout=60)
        os._exit(0)
    deadline = time.time() + 30
    while not (tmp_path / "pid").exists() and time.time() < deadline:
        time.sleep(0.1)
    command = Path("/proc") / (tmp_path / "pid").read_text()
    os.kill(client, 9)
    os.waitpid(client, 0)
    time.sleep(1)
    try:
        state = (command / "status").read_text()
    except FileNotFoundError:  # reaped between the kill and the read
        state = "State:\tgone"
    assert "State:\tZ" in state or "State:\tgone" in state


def test_the_sessions_mutmut_forks_one_per_mutant_share_one_warm_server(tmp_path):
    """Each pytest session has its own temporary folder, and the variables read at import pointed into it: a
    server per mutant, each ~700 MB for ten minutes (14 of them, 9.8 GiB, three minutes into a sitting)."""
    (tmp_path / "tests").mkdir()
    for name in ("conftest.py", "warm_python.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path / "tests")
    (tmp_path / "hello.py").write_text("print('hi')\n")
    (tmp_path / "tests" / "test_hello.py").write_text(
        "from conftest import run_module\n\n\ndef test_hello():\n"
        f"    assert run_module('hello', cwd={str(tmp_path)!r}).stdout == 'hi\\n'\n")
    # as mutmut's fork server: the tests collected once, then a session per mutant forked from it (where pytest
    # imports the conftest again, and the test module keeps the one it imported first)
    forks = """
import os, pytest
pytest.main(["--collect-only", "-qqq", "-p", "no:cacheprovider", "tests"])
codes = []
for n in (1, 2):
    pid = os.fork()
    if pid == 0:
        os.environ["MUTANT_UNDER_TEST"] = f"audiation.x_none__mutmut_{n}"
        os._exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_hello.py::test_hello"]))
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
def argv(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except OSError:
        return []
servers = {a[2] for a in map(argv, os.listdir("/proc")) if len(a) > 3 and a[1].endswith(b"warm_python.py")
           and a[3] == str(os.getpid()).encode()}
print(codes, len(servers))
"""
    done = subprocess.run([sys.executable, "-c", forks], cwd=tmp_path, env=child_env(), capture_output=True,
                          text=True, timeout=240)
    assert done.stdout.splitlines()[-1:] == ["[0, 0] 1"], done.stdout + done.stderr
