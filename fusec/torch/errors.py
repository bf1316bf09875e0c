"""The one exception the lowering raises (its own module: lowerings and views use it)."""


class Unlowerable(Exception):
    """This use of an op has no IR spelling; the message says why."""
