"""The one exception type the command lines turn into a one-line message, and how they exit.

`run_or_exit` runs an entry point's job: bad input exits 2 with one line on stderr, Ctrl-C exits 130
and SIGTERM (what SLURM and `kill` send) 143, each after the job has saved what it had: SIGTERM is
raised in the main thread as `Terminated`, a KeyboardInterrupt, so it takes the same saving path.
"""

from __future__ import annotations

import signal
import sys
from typing import Callable


class AudiationError(Exception):
    """Bad input or an unrecoverable run state, explained in one line for the user."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interruption so every `except KeyboardInterrupt` saves work for it too."""


_received = set()  # the signals that stopped this process's job: the loop re-raises a plain KeyboardInterrupt


def _terminate(signum, _frame):
    _received.add(signum)
    raise Terminated


class Shielded:
    """A stretch of work that a SIGTERM must not cut short (writing what was saved): a SIGTERM meanwhile
    is remembered in `came`, and the previous handler is back afterwards."""

    def __enter__(self):
        self.came, self.previous = False, signal.getsignal(signal.SIGTERM)

        def remember(signum, _frame):
            _received.add(signum)
            self.came = True

        try:
            signal.signal(signal.SIGTERM, remember)
        except ValueError:  # not the main thread: nothing to shield
            self.previous = None
        return self

    def __exit__(self, *_exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def run_or_exit(job: Callable, *args, saved: Callable[[], str], on_stop: Callable[[], None] | None = None):
    """Run `job(*args)`. On bad input print one line and exit 2; when interrupted (Ctrl-C: 130, SIGTERM:
    143) call `on_stop`, then print one line with `saved()` (what was saved) and exit."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return job(*args)
    except AudiationError as error:
        print(f"audiation: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interruption:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # saving must not be interrupted again
        terminated = isinstance(interruption, Terminated) or signal.SIGTERM in _received
        if on_stop is not None:
            on_stop()
        print(f"audiation: {'terminated (SIGTERM)' if terminated else 'interrupted'}; {saved()}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
