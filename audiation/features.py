"""`python -m audiation.features`: a TopK sparse autoencoder on one layer's activations over a folder of audio.

    python -m audiation.features model=tiny model.layer=6 data.path=data/corpus/train features=1536 k=32
    python -m audiation.run model=tiny model.layer=6 objective=feature objective.sae=<that job folder> \\
        objective.unit=0:64 batch_size=64

The job folder gets `sae.safetensors` and `features.json` (see `audiation.jobs.features_job`); the layer's
activations are cached (`data.cache_dir`) and reused by any later job on the same data.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from audiation.config import configs


@hydra.main(config_path=configs.CONF, config_name="features", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # here: a Tab's completion imports this module, not torch
    from audiation.config.job_plans import features_plan
    from audiation.jobs.features_job import features_job

    summary, job_dir = configs.run_job(cfg, lambda job_dir, _group: features_job(features_plan(cfg), job_dir),
                                       saved=lambda job_dir: f"the layer's activation cache is kept; {job_dir} holds no SAE")
    print(f"audiation: SAE of {summary['layer']} ({summary['units']} units -> {summary['features']} features, "
          f"k={summary['k']}): variance explained {summary['variance_explained']:.3f} on "
          f"{len(summary['held_out_files'])} held-out files, dead {summary['dead_share']:.1%}, "
          f"{summary['seconds']:.0f} s; audiate with objective=feature objective.sae={job_dir}")


def cli() -> None:
    """The `audiation-features` console script and `python -m audiation.features`."""
    configs.command_line(main)


if __name__ == "__main__":
    # the importable module's `cli`, not this `__main__` copy's (why: `audiation.run`)
    from audiation.features import cli as importable_cli

    importable_cli()
