"""audiation: feature visualization for speech models, by optimising the input waveform.

Where each idea lives: `model` (loading, layers, the truncated forward), `objectives` (what is maximised),
`parameterizations` (the learnable signal), `augmentations`, `trainer` (the loop), `outputs` (files on
disk), `tracking` (Weights & Biases), `run` (the Hydra command line).
"""

import os

# Idle OpenMP threads spin by default; beside another busy process that made 2 threads up to 7x slower
# than 1 on this project's CPUs. Passive waiting must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from audiation import configs  # noqa: E402,F401  (registers the ${asset:...} config resolver)
