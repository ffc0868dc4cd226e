"""`python -m audiation.report <sweep folder>`: how far a sweep's audiations go, layer by layer.

Reads every job's metrics.json under the folder and writes the report of `audiation.jobs.sweep_report`
(each quality number per layer in `report.md`, on stdout, and in `report.csv`; a box plot per measure in
`report.png`), as every multirun does when it ends.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiation.errors import run_or_exit
from audiation.jobs.sweep_report import write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m audiation.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a sweep or run folder")
    args = parser.parse_args(argv)
    path = run_or_exit(write_report, args.folder, saved=lambda: "no report was written")
    print(path.read_text(), end="")
    print(f"audiation: report in {path} (and report.csv, report.png)")


if __name__ == "__main__":
    # the importable module's `main`, not this `__main__` copy's (why: `audiation.run`)
    from audiation.report import main as importable_main

    importable_main()
