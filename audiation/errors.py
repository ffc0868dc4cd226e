"""The one exception type the command line turns into a one-line message and a non-zero exit."""


class AudiationError(Exception):
    """Bad input or an unrecoverable run state, explained in one line for the user."""
