"""`python -m audiation.<command> ...` without paying the imports each time: the suite's command lines (about
150) spent most of their 5-10 s each importing torch, transformers, Hydra and W&B. This process imports them
once, then forks a child per request that runs the command exactly as `python -m` would (`runpy`, as
`__main__`, with its own argv, environment, current folder, stdin, stdout and stderr), and says its exit
status. `conftest.run_module` is the only client: it asks another server where the variables read at import
differ, and runs a fresh interpreter only while mutmut maps the tests (see there).

A server on a Unix socket, so that any process can be a client at once: pytest's workers, and mutmut's
children, which are forked one per mutant from a process that imported the tests and so share one server.
It ends with the process that owns it, or when no request has come for IDLE_S seconds.

Arguments: the socket's path, its owner's pid, the files that keep what the imports print, then any modules
to import first (a test's). Protocol, one request per connection: a JSON line in {module, args, cwd, env,
stdout, stderr}; two lines out: the child's pid when it starts, its exit status when it ends (negative:
killed by that signal). What the imports here print is written first into every child's stdout and stderr, as each fresh
interpreter would print it again.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import runpy
import select
import signal
import sys
import threading
import time
import traceback

# The libraries every command imports; never the commands themselves (`runpy` warns about a module that is
# imported before it runs as __main__), nor W&B (its import makes a temporary folder that the first child to
# end would remove from under the others).
PRELOAD = ("torch", "transformers", "transformers.models.wav2vec2.modeling_wav2vec2",
           "transformers.models.whisper.modeling_whisper", "hydra", "omegaconf", "soundfile", "numpy",
           "matplotlib.pyplot", "audiation.jobs.audiate_job", "audiation.jobs.sweep_callbacks",
           "audiation.browser.page", "audiation.config.builder", "audiation.models.encoder")
IDLE_S = 600  # a suite's gaps between command lines are seconds; ten minutes later nobody is asking
COMMANDS = ("audiation.run", "audiation.examples", "audiation.features", "audiation.directions",
            "audiation.gallery", "audiation.report")


def _preload(out_file: str, err_file: str, *more: str) -> None:
    import importlib

    saved = os.dup(1), os.dup(2)
    for fd, path in ((1, out_file), (2, err_file)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    try:
        for name in (*more, *PRELOAD):
            importlib.import_module(name)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
    loaded = [name for name in (*COMMANDS, "wandb") if name in sys.modules]
    assert not loaded, f"preloading imported {loaded}, which each child must import itself (see PRELOAD)"


def _child(request: dict, preamble: tuple[str, str]) -> None:
    """Become `python -m <module> <args>`; never returns."""
    os.setsid()  # a group of its own: a timeout kills it and whatever it started
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path, text in ((1, request["stdout"], preamble[0]), (2, request["stderr"], preamble[1])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), fd)
        os.write(fd, text.encode())
    sys.stdin = io.TextIOWrapper(io.FileIO(0, closefd=False))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # as `python -m` puts it
    sys.argv = [request["module"], *request["args"]]  # runpy puts the module's file first
    code: object = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        # As a fresh interpreter ends: first the threads' shutdown (joins non-daemon threads and runs
        # `threading._register_atexit` hooks, which stop joblib's and concurrent.futures' worker pools), then
        # atexit (logging's flush, W&B's and the package's own)
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _serve(connection, preamble: tuple[str, str]) -> None:
    """One request, in a process of its own (the server goes on accepting)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this process waits for its child
    with connection, connection.makefile("rb") as lines:
        request = json.loads(lines.readline())
        pid = os.fork()
        if pid == 0:
            lines.close()
            connection.close()
            _child(request, preamble)
        connection.sendall(f"{pid}\n".encode())
        ended = os.pidfd_open(pid)
        # The client sends nothing more: the connection readable means it is gone (killed by mutmut's time
        # limit, say), and so is what it started
        if connection in select.select([ended, connection], [], [])[0]:
            os.killpg(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())


def main() -> None:
    import socket

    sys.path[0] = os.getcwd()
    path, owner, preamble_files = sys.argv[1], int(sys.argv[2]), (sys.argv[3], sys.argv[4])
    _preload(*preamble_files, *sys.argv[5:])
    preamble = tuple(open(name).read() for name in preamble_files)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # requests' processes reap themselves
    server = socket.socket(socket.AF_UNIX)
    if os.path.exists(path + ".new"):  # left by a server that was killed while it started
        os.unlink(path + ".new")
    server.bind(path + ".new")
    server.listen(64)
    os.replace(path + ".new", path)  # a client sees the path only once it can connect
    ours = os.stat(path).st_ino
    server.settimeout(1)
    last = time.monotonic()
    try:
        while time.monotonic() - last < IDLE_S:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                try:
                    os.kill(owner, 0)
                    continue
                except ProcessLookupError:
                    return
            last = time.monotonic()
            if os.fork() == 0:
                try:
                    server.close()
                    _serve(connection, preamble)
                finally:
                    os._exit(0)  # never back into this loop, whatever happened (a client gone: a broken pipe)
            connection.close()
    finally:
        if os.path.exists(path) and os.stat(path).st_ino == ours:  # not a successor's
            for name in (path, *preamble_files):
                os.unlink(name)
            try:
                os.unlink(os.path.join(os.path.dirname(path), "lock"))
                os.rmdir(os.path.dirname(path))
            except OSError:  # a client's files beside it
                pass


if __name__ == "__main__":
    main()
