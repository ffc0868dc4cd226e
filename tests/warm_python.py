"""`python -m audiation.<command> ...` without paying the imports each time: the suite's command lines (about
150) spent most of their 5-10 s each importing torch, transformers, Hydra and W&B. This process imports them
once, then forks a child per request that runs the command exactly as `python -m` would (`runpy`, as
`__main__`, with its own argv, environment, current folder, stdin, stdout and stderr), and says its exit
status. `conftest.run_module` is the only client; it falls back to a fresh interpreter wherever imports
would differ (see there).

Arguments: the files that keep what the imports print, then any modules to import first (a test's). Protocol,
one request at a time: a JSON line in on stdin {module, args, cwd, env, stdout, stderr, pid_file};
the child's pid written to pid_file; one line out when it ends: its exit status (negative: killed by that
signal). What the imports here print is written first into every child's stdout and stderr, as each fresh
interpreter would print it again.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import runpy
import sys
import threading
import traceback

# The libraries every command imports; never the commands themselves (`runpy` warns about a module that is
# imported before it runs as __main__), nor W&B (its import makes a temporary folder that the first child to
# end would remove from under the others).
PRELOAD = ("torch", "transformers", "transformers.models.wav2vec2.modeling_wav2vec2",
           "transformers.models.whisper.modeling_whisper", "hydra", "omegaconf", "soundfile", "numpy",
           "matplotlib.pyplot", "audiation.jobs.audiate_job", "audiation.jobs.sweep_callbacks",
           "audiation.browser.page", "audiation.config.builder", "audiation.models.encoder")
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


def main() -> None:
    sys.path[0] = os.getcwd()
    requests, replies = sys.stdin, os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the reply pipe is never a child's stdout
    preamble_files = sys.argv[1], sys.argv[2]
    _preload(*preamble_files, *sys.argv[3:])
    preamble = tuple(open(path).read() for path in preamble_files)
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.close(replies)
            _child(request, preamble)
        with open(request["pid_file"], "w") as handle:
            handle.write(str(pid))
        _, status = os.waitpid(pid, 0)
        os.write(replies, f"{os.waitstatus_to_exitcode(status)}\n".encode())


if __name__ == "__main__":
    main()
