"""Building objects from config groups.

Hydra's `instantiate` turns keyword arguments into config nodes, which mangles live objects (tensors,
generators, dataclasses). So a group's `_target_` is looked up and called directly with the group's
plain values plus the live objects.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

ASSETS = Path(__file__).resolve().parent / "assets"
# The Hydra config groups, by absolute path: entry points then find them however they are imported.
CONF = str(Path(__file__).resolve().parents[1] / "conf")

# `${asset:name}` in a config is a folder shipped inside the package (the project's own model and data),
# found wherever the package is installed.
OmegaConf.register_new_resolver("asset", lambda name: str(ASSETS / name), replace=True)


def construct(group: DictConfig, *args, drop: tuple[str, ...] = (), **live):
    """Call `group._target_` with the group's values (minus `drop`), overridden by `live`."""
    values = OmegaConf.to_container(group, resolve=True)
    target = get_method(values.pop("_target_"))
    for key in drop:
        values.pop(key, None)
    return target(*args, **{**values, **live})


def hydra_job_folder() -> tuple[Path, str | None]:
    """The running Hydra job's output folder, and in a multirun the sweep folder's name: the W&B group,
    stable across launchers (a `${now:}` name would differ from job to job)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    group = Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None
    return Path(hydra_cfg.runtime.output_dir), group
