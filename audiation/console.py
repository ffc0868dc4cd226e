"""How the work talks: `ConsoleHandler` is the logging handler Hydra's job logging uses
(conf/hydra/job_logging): "audiation: <message>" lines on stderr, written through tqdm so a progress bar is
never broken by them; records logged with `extra=FILE_ONLY` go to the job's log file only. No torch here:
`import audiation` and a command line's Tab completion stay fast.
"""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

FILE_ONLY = {"file_only": True}


def duration(seconds: float) -> str:
    """A time as people say it on the console: 40 s, 3.5 min, 1.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class ConsoleHandler(logging.Handler):
    """One line per message on stderr, through `tqdm.write`, so a progress bar is redrawn below it."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "file_only", False):  # for the job's log file: the console has it already
            return
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)
