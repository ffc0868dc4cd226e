"""audiation: feature visualization for speech models, by optimising the input waveform.

The core takes plain objects: `model` (loading, layers, the cut forward), `objectives` (what is
maximised), `parameterizations` (the signal), `augmentations`, `randomness` (per-target streams),
`trainer` (the loop), `quality`. Around it: `builder` (the one config boundary), `jobs` (what a command
does with a folder), `results` (the on-disk format), `outputs` (files), `activations` (dataset caches),
`tracking` (W&B), `page` (the unit browser), `probes` (directions). Command lines: `run`, `examples`,
`directions`, `gallery`, `report`.
"""

import logging
import os

# Idle OpenMP threads spin by default; beside another busy process that made 2 threads up to 7x slower
# than 1 on this project's CPUs. Passive waiting must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from audiation import configs  # noqa: E402,F401  (registers the ${asset:...} config resolver)
from audiation.runtime import ConsoleHandler  # noqa: E402


def _default_console() -> None:
    """Used as a library, the package's messages are "audiation: ..." lines on stderr, INFO and up. Under a
    command line, Hydra's job logging (conf/hydra/job_logging) replaces this with its own handlers."""
    logger = logging.getLogger("audiation")
    if not logger.handlers:
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("audiation: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


_default_console()


def __getattr__(name: str):
    """`audiation.audiate(...)` (the notebook entry, `audiation.api`), imported on first use."""
    if name in ("audiate", "Audiation"):
        from audiation import api

        return getattr(api, name)
    raise AttributeError(f"module 'audiation' has no attribute {name!r}")
