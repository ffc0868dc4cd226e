"""`python -m audiation.gallery <folder>`: write the gallery page of a sweep, a job, or a folder of them.

    python -m audiation.gallery outputs/sweeps/2026-01-01_12-00-00          # writes <folder>/index.html
    python -m audiation.gallery outputs/runs/2026-01-01/12-00-00 --out /tmp/units.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiation.errors import run_or_exit
from audiation.page import write_gallery


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m audiation.gallery", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a sweep or job folder (searched recursively)")
    parser.add_argument("--out", type=Path, help="the HTML file to write (default: <folder>/index.html)")
    args = parser.parse_args(argv)
    print(run_or_exit(write_gallery, args.folder, args.out, saved=lambda: "no page was written"))


if __name__ == "__main__":
    main()
