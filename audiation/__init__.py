"""audiation: feature visualization for speech models, by optimising the input waveform.

The layers, each importing only those below it (tests/test_structure.py holds this):
- commands: `run`, `examples`, `features`, `directions`, `gallery`, `report` (thin command lines), and
  `api` (`audiation.audiate(...)`, one call from a notebook);
- `jobs/`: what each command does with its folder; `browser/`: the unit browser page;
- `config/`: the schema, the checks and the plan: the one place a config is read;
- `outputs/`: files, records, W&B; `hearing/`: quality, judges, phone names, verdicts;
- `data/`: natural audio and activation caches; `core/`: objectives, parameterizations, augmentations,
  the render loop (config-free); `models/`: layers, the encoder, one file per model family;
- `errors`: the one exception a user sees.
"""

import logging
import os

# Idle OpenMP threads spin by default; beside another busy process that made 2 threads up to 7x slower
# than 1 on this project's CPUs. Passive waiting must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from audiation.config import configs  # noqa: F401  (registers the ${asset:...} config resolver)
from audiation.console import ConsoleHandler


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
