"""The one exception type that the CLI turns into a one-line message instead of a traceback."""


class FraudstreamError(Exception):
    """A failure the user can act on: bad argument, missing tool, broker that will not start."""
