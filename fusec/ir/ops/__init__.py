"""The built-in ops, one registry entry each, grouped by the spec's table."""

from . import activations, arithmetic, conversion, linalg, logic, math, reductions  # noqa: F401
