"""The one exception type the runtime raises for problems a user can fix."""


class FerEdgeError(Exception):
    """A user-facing error: its message is one sentence saying what went wrong and where."""
