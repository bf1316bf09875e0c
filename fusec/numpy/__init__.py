"""The NumPy front end: `@fusec.jit`, `fusec.evaluate` and `fusec.<op>` functions.

Each traces Python into ordinary IR text and compiles it with `fusec.compile`
(the same pipeline and kernel cache as IR files). See docs/numpy.md.
"""

from __future__ import annotations

import difflib
import functools
import inspect

import numpy as np

from ..diagnostics import TraceError
from ..ir.registry import all_primitives, generation, lookup
from .array import TracedArray
from .evaluate import evaluate
from .jit import JitFunction, jit
from .locate import trace_error, user_location

__all__ = ["JitFunction", "TraceError", "TracedArray", "evaluate", "jit", "op_function"]


class UnknownOp(TraceError, AttributeError):
    """`fusec.<name>` naming no op: an AttributeError (hasattr and getattr's default
    work), and the TraceError at the user's line that frontends.md asks of an
    unknown function in a traced function."""


def op_function(name: str):
    """`fusec.<name>`: the registry's op as a function. On traced arrays (inside
    `@fusec.jit`) it writes IR; on arrays it runs now, as a one-op jitted graph."""
    prim = lookup(name)
    if prim is None or prim.internal:
        ops = [n for n, p in all_primitives().items() if not p.internal]
        near = difflib.get_close_matches(name, ops, n=1)
        hint = f"; did you mean fusec.{near[0]}?" if near else ""
        raise UnknownOp(
            f"module 'fusec' has no attribute {name!r} (and fusec has no op {name!r}){hint}",
            *user_location(),
        )
    required = [i for i in prim.inputs if i not in prim.optional_inputs]

    def op(*operands, **attrs):
        if not len(required) <= len(operands) <= len(prim.inputs):
            raise trace_error(
                f"fusec.{name}() takes {len(required)} operand(s) ({', '.join(prim.inputs)}), got {len(operands)}"
            )
        tracer = next((o.tracer for o in operands if isinstance(o, TracedArray)), None)
        if tracer is not None:
            return tracer.emit(name, operands, attrs)
        # array-likes as NumPy's own functions take them: np.exp([1.0, 2.0]) works
        operands = [np.asarray(o) if isinstance(o, list | tuple) else o for o in operands]
        return _eager(name, len(operands), tuple(sorted(attrs.items())), generation())(*operands)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (
        prim.doc or f"fusec's {name} op ({', '.join(prim.inputs)}); attributes: {dict(prim.attrs)}"
    )
    return op


@functools.lru_cache(maxsize=256)
def _eager(name, count, attrs, _generation) -> JitFunction:
    function = op_function(name)

    def one_op(*xs):
        return function(*xs, **dict(attrs))

    one_op.__name__ = f"eager_{name}"
    # named positional parameters x0, x1, ...: the traced graph's parameter names
    one_op.__signature__ = inspect.Signature(
        [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(count)]
    )
    return jit(one_op)
