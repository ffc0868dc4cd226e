"""Loaded by a child `python -m audiation...` that a test starts while mutmut maps which tests reach which
function (tests/conftest.py puts this folder on the child's PYTHONPATH then, and only then).

mutmut's tracer records a hit in its own process, reading its settings from the folder it was started in; a
child has neither. Here each hit is kept and, at the child's exit, appended to the file the test's process
reads back into its map, so a mutant reached only through a command line is tested against that test.
"""

import atexit
import os
import sys

from mutmut.mutation import trampoline

_hits: set[str] = set()


def _record(name: str, caller: str | None = None) -> None:
    _hits.add(name)


def _write() -> None:
    # A function of the module run with `-m` is named `__main__.` here, and by its module in mutmut's map
    main = getattr(sys.modules["__main__"], "__spec__", None)
    names = {main.name + name[len("__main__"):] if main and name.startswith("__main__.") else name for name in _hits}
    with open(os.environ["AUDIATION_MUTMUT_HITS"], "a") as out:
        out.write("".join(f"{name}\n" for name in sorted(names)))


trampoline.record_trampoline_hit = _record
atexit.register(_write)
