"""`python -m audiation.examples`: the natural inputs that excite a unit most ("dataset examples").

    python -m audiation.examples model=tiny model.layer=4 units=0:8 data.path=audiation/assets/speech-slice
    python -m audiation.examples model=tiny model.layer=logits units=22 data.path=/data/LibriSpeech/dev-clean

Per unit, the job folder gets `examples/<layer>-U<unit>/<rank>.wav` (a clip centred on the peak frame),
`<rank>.png` (its spectrogram, peak marked) and one `examples.json` for the whole job. The work is
`audiation.jobs.examples_job` over the activation cache of `audiation.data.activations`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from audiation.config import configs


@hydra.main(config_path=configs.CONF, config_name="examples", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # here: a Tab's completion imports this module, not torch
    from audiation.config.job_plans import examples_plan
    from audiation.jobs.examples_job import examples_job

    summary, job_dir = configs.run_job(cfg, lambda job_dir, group: examples_job(examples_plan(cfg), job_dir, group),
                                       saved=lambda job_dir: f"no partial cache is kept, and {job_dir} holds what was written")
    print(f"audiation: top-{summary['top_k']} examples of {len(summary['units'])} unit(s) of {summary['layer']} "
          f"from {summary['files']} files in {job_dir}")


def cli() -> None:
    """The `audiation-examples` console script and `python -m audiation.examples`."""
    configs.command_line(main)


if __name__ == "__main__":
    # the importable module's `cli`, not this `__main__` copy's (why: `audiation.run`)
    from audiation.examples import cli as importable_cli

    importable_cli()
