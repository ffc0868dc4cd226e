"""`python -m audiation.gallery <folder> [<folder> ...]`: write the unit browser of runs, sweeps or
examples jobs (several folders: the same targets side by side).

    python -m audiation.gallery outputs/sweeps/2026-01-01_12-00-00          # writes <folder>/index.html
    python -m audiation.gallery outputs/runs/2026-01-01/12-00-00 --embed --out /tmp/units.html
    python -m audiation.gallery outputs/runs/seed0 outputs/runs/seed1 --out compare.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiation.browser.page import write_gallery
from audiation.errors import run_or_exit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m audiation.gallery", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="sweep, job or examples folders (searched recursively)")
    parser.add_argument("--out", type=Path, help="the HTML file to write (default: <first folder>/index.html)")
    parser.add_argument("--embed", action="store_true", help="put audio and images inside the page (small runs)")
    parser.add_argument("--shared-scale", action="store_true",
                        help="draw every audiation's spectrogram on one dB scale, so colours compare across cards")
    args = parser.parse_args(argv)
    print(run_or_exit(write_gallery, args.folders, args.out, args.embed, args.shared_scale,
                      saved=lambda: "no page was written"))


if __name__ == "__main__":
    # the importable module's `main`, not this `__main__` copy's (why: `audiation.run`)
    from audiation.gallery import main as importable_main

    importable_main()
