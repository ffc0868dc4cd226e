"""The one exception type the command lines turn into a one-line message, and how they exit.

`run_or_exit` runs an entry point's job: bad input (and an OSError such as a full disk) exits 2 with
one line on stderr, Ctrl-C exits 130 and SIGTERM (what SLURM and `kill` send) 143, each after the job
has saved what it had: SIGTERM is raised in the main thread as `Terminated`, a KeyboardInterrupt, so it
takes the same saving path; signals after the first are only remembered.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable


class AudiationError(Exception):
    """Bad input or an unrecoverable run state, explained in one line for the user."""


def shown(value) -> str:
    """A value as an error's one line shows it: as typed, or quoted with escapes when it holds a line break or
    another character that does not print."""
    text = str(value)
    return text if text.isprintable() else repr(text)


class JobRefused(Exception):
    """A sweep's job that stopped with one line (already printed): the job ends, its siblings go on (a
    SystemExit would end the whole sweep, parallel siblings included)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interruption so every `except KeyboardInterrupt` saves work for it too."""


BAD_INPUT, INTERRUPTED, TERMINATED = 2, 130, 143  # the exit codes of one line, Ctrl-C and SIGTERM


def exit_code(kind: type[BaseException] | None) -> int:
    """The exit code `run_or_exit` ends with after an exception of this type (0 for none): what a W&B run is
    finished with, so the dashboard says what the console did."""
    if kind is None:
        return 0
    if issubclass(kind, KeyboardInterrupt):
        return TERMINATED if issubclass(kind, Terminated) else INTERRUPTED
    return BAD_INPUT if issubclass(kind, (AudiationError, OSError, JobRefused)) else 1


_received: set[int] = set()  # the signals that stopped this process's job: the loop re-raises a plain KeyboardInterrupt


def _stop(signum, _frame):
    """Ctrl-C or SIGTERM: the first one stops the job; more of them (Ctrl-C pressed four times) are only
    remembered, so they cannot cut short the saving that the first one started."""
    first = not _received
    _received.add(signum)
    if first:
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def failure_note(what: str, error: BaseException) -> str:
    """One line for a record's note: what failed and why (its error's first line, cut at 100 characters)."""
    return f"{what} failed ({type(error).__name__}: {(str(error).splitlines() or [''])[0][:100]})"


def raise_stop() -> None:
    """The interruption a signal that was held back stands for: Terminated for SIGTERM, else Ctrl-C's."""
    raise Terminated if signal.SIGTERM in _received else KeyboardInterrupt


class Shielded:
    """A stretch of work that Ctrl-C or SIGTERM must not cut short (writing what was saved, or a step of
    the loop inside a library's locks): a signal meanwhile is remembered in `came`, and the previous
    handlers are back afterwards."""

    def __enter__(self):
        self.came, self.previous = False, {}

        def remember(signum, _frame):
            _received.add(signum)
            self.came = True

        try:
            for signum in STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, remember)
        except ValueError:  # not the main thread: nothing to shield
            self.previous = {}
        return self

    def raise_if_came(self):
        """Raise the interruption that came meanwhile, here: a point where the work can stop cleanly."""
        if self.came:
            raise_stop()

    def __exit__(self, *_exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False


def run_or_exit(job: Callable, *args, saved: Callable[[], str], on_stop: Callable[[], None] | None = None,
                in_sweep: bool = False):
    """Run `job(*args)`. On bad input print one line and exit 2 (in a sweep, raise JobRefused instead: the
    sweep ends with exit 2 after its other jobs; so does any other failure of a sweep's job); when interrupted (Ctrl-C: 130, SIGTERM: 143) call
    `on_stop`, then print one line with `saved()` (what was saved) and exit."""
    _received.clear()
    previous = {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS}
    try:
        return job(*args)
    except (AudiationError, OSError) as error:  # OSError: a full disk, a read-only folder: not a bug
        message = str(error)
        if isinstance(error, OSError):
            where = f" ({error.filename})" if error.filename else ""
            message = f"{error.strerror or error}{where}; what was complete before stays complete"
        print(f"audiation: error: {message}", file=sys.stderr)
        if in_sweep:
            raise JobRefused(message) from None
        sys.exit(BAD_INPUT)
    except Exception as error:  # a bug: alone it is a traceback; in a sweep it ends its own job, not the sweep
        if not in_sweep:
            raise
        logging.getLogger(__name__).error("the job failed", exc_info=True, extra={"file_only": True})
        first = (str(error).splitlines() or [""])[0]
        line = f"{type(error).__name__}: {first} (a bug; its traceback is in the job's log)"
        print(f"audiation: error: {line}", file=sys.stderr)
        raise JobRefused(line) from None
    except KeyboardInterrupt as interruption:
        for signum in STOP_SIGNALS:  # saving must not be interrupted again
            signal.signal(signum, signal.SIG_IGN)
        terminated = isinstance(interruption, Terminated) or signal.SIGTERM in _received
        if on_stop is not None:
            on_stop()
        print(f"audiation: {'terminated (SIGTERM)' if terminated else 'interrupted'}; {saved()}", file=sys.stderr)
        sys.exit(TERMINATED if terminated else INTERRUPTED)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
