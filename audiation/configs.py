"""Building objects from config groups.

Hydra's `instantiate` turns keyword arguments into config nodes, which mangles live objects (tensors,
generators, dataclasses). So a group's `_target_` is looked up and called directly with the group's
plain values plus the live objects.
"""

from __future__ import annotations

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf


def construct(group: DictConfig, *args, drop: tuple[str, ...] = (), **live):
    """Call `group._target_` with the group's values (minus `drop`), overridden by `live`."""
    values = OmegaConf.to_container(group, resolve=True)
    target = get_method(values.pop("_target_"))
    for key in drop:
        values.pop(key, None)
    return target(*args, **{**values, **live})
