"""Loaded by a child process a test starts (a command line, a judge's worker) while mutmut maps which tests
reach which function: tests/conftest.py puts this folder on PYTHONPATH then, and only then.

mutmut's tracer records a hit in its own process, reading its settings from the folder it was started in; a
child has neither. Here each function's first hit is appended at once to the file that the test's process
reads back into its map (at once: a worker is killed, not closed), so a mutant reached only in a child is
tested against the test that started it.
"""

import os
import sys

from mutmut.mutation import trampoline

_hits: set[str] = set()


def _record(name: str, caller: str | None = None) -> None:
    if name.startswith("__main__."):  # a function of the module run with -m: named by its module in the map
        main = getattr(sys.modules["__main__"], "__spec__", None)
        name = main.name + name[len("__main__"):] if main else name
    if name not in _hits:
        _hits.add(name)
        with open(os.environ["AUDIATION_MUTMUT_HITS"], "a") as out:
            out.write(f"{name}\n")


trampoline.record_trampoline_hit = _record
