"""`python -m audiation.directions`: a direction in a layer's space that separates two sets of speech.

    python -m audiation.directions model=tiny model.layer=3 positive=audiation/assets/pitch-contrast/high \
        negative=audiation/assets/pitch-contrast/low out=high-pitch.npy
    python -m audiation.run model=tiny model.layer=3 objective=direction objective.direction=high-pitch.npy

Prints how well the direction separates held-out clips (AUC) for the mean-difference baseline and the
regularised linear probe, and writes the chosen one (`method`, default probe) as a unit-length .npy. The
work is `audiation.jobs.directions_job` over `audiation.core.probes` and the activation cache.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from audiation.config import configs


@hydra.main(config_path=configs.CONF, config_name="directions", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # here: a Tab's completion imports this module, not torch
    from audiation.config.job_plans import direction_run, directions_plan
    from audiation.jobs.audiate_job import audiate_folder
    from audiation.jobs.directions_job import directions_job

    def work(job_dir, _group):
        audiate = (lambda directions, folder: audiate_folder(direction_run(cfg, directions), folder)["targets"]
                   ) if cfg.audiate else None
        return directions_job(directions_plan(cfg, job_dir), job_dir, audiate)

    summary, _job_dir = configs.run_job(cfg, work, saved=lambda _job_dir: "no direction was written")
    auc = summary["held_out_auc"]
    print(f"audiation: {summary['layer']} direction ({summary['method']}) in {summary['out']}; held-out AUC "
          f"probe {auc['probe']:.3f}, mean difference {auc['mean']:.3f} "
          f"({summary['held_out_clips']['positive']} + {summary['held_out_clips']['negative']} clips)")
    by_speaker = summary["leave_one_speaker_out_auc"]
    if by_speaker:
        print(f"audiation: leave-one-speaker-out AUC probe {by_speaker['probe']:.3f}, mean difference "
              f"{by_speaker['mean']:.3f} ({by_speaker['speakers']} speakers)")
    for way in summary.get("audiated") or []:
        print(f"audiation: audiated {way['way']}: F0 {way['f0_hz']} Hz, voiced {way['voiced_share']}, "
              f"activation {way['final_activation']:.3g}: {way['audio']}")


def cli() -> None:
    """The `audiation-directions` console script and `python -m audiation.directions`."""
    configs.command_line(main)


if __name__ == "__main__":
    # the importable module's `cli`, not this `__main__` copy's (why: `audiation.run`)
    from audiation.directions import cli as importable_cli

    importable_cli()
