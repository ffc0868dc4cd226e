"""The one exception type the command line turns into a one-line message and a non-zero exit."""

import sys


class AudiationError(Exception):
    """Bad input or an unrecoverable run state, explained in one line for the user."""


def run_or_exit(job, *args, interrupted: str):
    """Run an entry point's job: bad input exits 2 with one line on stderr, Ctrl-C exits 130."""
    try:
        return job(*args)
    except AudiationError as error:
        print(f"audiation: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"audiation: interrupted; {interrupted}", file=sys.stderr)
        sys.exit(130)
