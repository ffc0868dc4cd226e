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
from audiation.errors import run_or_exit


@hydra.main(config_path=configs.CONF, config_name="examples", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # here: a Tab's completion imports this module, not torch
    from audiation.config.job_plans import examples_plan
    from audiation.jobs.examples_job import examples_job

    job_dir, group = configs.hydra_job_folder()

    def job():
        try:
            summary = examples_job(examples_plan(cfg), job_dir, group)
        except BaseException:
            configs.discard_if_empty(job_dir)
            raise
        configs.save_job_config(job_dir, cfg)
        return summary

    summary = run_or_exit(job, saved=lambda: f"no partial cache is kept, and {job_dir} holds what was written")
    print(f"audiation: top-{summary['top_k']} examples of {len(summary['units'])} unit(s) of {summary['layer']} "
          f"from {summary['files']} files in {job_dir}")


def cli() -> None:
    """The `audiation-examples` console script and `python -m audiation.examples`."""
    import sys

    from audiation.config.checks import check_output_overrides

    run_or_exit(check_output_overrides, sys.argv[1:], saved=lambda: "nothing was written")
    main()


if __name__ == "__main__":
    cli()
