"""Tracing Python into IR text: a `Tracer` writes one IR statement per op that a
`TracedArray` (a proxy standing for an array of known dtype and symbolic shape)
takes part in.

Dtypes and shapes are followed during the trace with the registry's own rules
(`operand_dtypes`, `reduce_shape`, `gemm_shape`), so that `x.ndim`, `x.dtype`
and NumPy's `axis=None` mean what they mean in NumPy, and a mistake is
reported at the user's line rather than as a diagnostic on generated text.
"""

from __future__ import annotations

import math

import numpy as np

from ..diagnostics import CompileError, TraceError
from ..ir import dtypes as dt
from ..ir.keywords import KEYWORDS
from ..ir.registry import lookup
from ..passes.infer import operand_dtypes
from .array import TracedArray
from .locate import trace_error, user_location


def ir_name(name: str, taken) -> str:
    """A valid IR identifier for a Python name: not an op, a keyword, or taken."""
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "_"
    if name[0].isdigit():
        name = "_" + name
    while name in KEYWORDS or lookup(name) is not None or name in taken:
        name += "_"
    return name


def literal_text(value) -> str:
    """A Python number as an IR literal (weak: it takes the dtype of the tensor it meets)."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    return text if any(c in text for c in ".en") else text + ".0"


def attr_text(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, np.dtype | type):
        return ir_dtype(value)
    return literal_text(value)


def ir_dtype(value) -> str:
    """An IR dtype name for a NumPy dtype, a scalar type, or an IR dtype name."""
    if isinstance(value, str) and value in dt.DTYPES:
        return value
    try:
        return dt.FROM_NUMPY[np.dtype(value)]
    except (TypeError, KeyError):
        raise trace_error(f"fusec has no dtype {value!r} (it has {', '.join(dt.DTYPES)})") from None


def broadcast_shapes(shapes) -> tuple:
    """NumPy broadcasting of shapes whose sizes are ints or symbol names."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(dims) > 1:
            raise trace_error(
                "operands could not be broadcast together with shapes "
                + " ".join(f"({', '.join(map(str, s))})" for s in shapes)
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


class Tracer:
    """IR statements of one graph being traced, each with the user's line."""

    def __init__(self):
        self.params: list[str] = []  # "name: f32[N0, 1]"
        self.statements: list[str] = []
        self.locations: list[tuple] = []  # the user's (file, line, text) for each statement
        self.taken: set[str] = set()

    def parameter(self, name: str, dtype: str, shape: tuple) -> TracedArray:
        name = ir_name(name, self.taken)
        self.taken.add(name)
        dims = f"[{', '.join(map(str, shape))}]" if shape else ""
        self.params.append(f"{name}: {dtype}{dims}")
        return TracedArray(self, name, dtype, shape)

    def emit(self, op: str, operands, attrs=None) -> TracedArray:
        """`t = op(operands..., attrs...)`, its dtype and shape checked as fusec will."""
        prim = lookup(op)
        if prim is None or prim.internal:
            raise trace_error(f"fusec has no op {op!r}")
        attrs = {k: v for k, v in (attrs or {}).items() if v is not None}
        for operand in operands:
            if isinstance(operand, TracedArray) and operand.tracer is not self:
                raise trace_error(
                    "an array traced by another function was used here (a leaked tracer)"
                )
        values = [self._operand(o, op) for o in operands]
        bad = [k for k in attrs if k not in prim.attrs]
        if bad:
            raise trace_error(
                f"{op}() has no attribute {bad[0]!r} (attributes: {', '.join(prim.attrs) or 'none'})"
            )
        dtypes = [v[1] for v in values]
        shapes = [v[2] for v in values]
        if op == "cast":
            dtype = ir_dtype(attrs.get("dtype"))
            attrs["dtype"] = dtype
        else:
            _, dtype = operand_dtypes(prim.dtype_rule, dtypes, {})
        full = {**prim.attrs, **attrs}
        try:
            if prim.kind == "gemm":
                # a GEMM's optional operands (linear's bias) are added by its lowering
                shape = broadcast_shapes(
                    [tuple(prim.gemm_shape(*shapes[:2], **attrs)), *shapes[2:]]
                )
            elif prim.kind == "view":  # its reduce_shape gives the shape alone
                shape = tuple(prim.reduce_shape(shapes[0], full))
            elif prim.reduce_shape is not None:
                shape = tuple(prim.reduce_shape(shapes[0], full)[1])
            else:
                shape = broadcast_shapes(shapes)
        except ValueError as e:
            raise trace_error(f"{op}: {e}") from None
        name = f"t{len(self.statements)}"
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        args = [v[0] for v in values] + [
            f"{k}={v if op == 'cast' else attr_text(v)}" for k, v in attrs.items()
        ]
        self.statements.append(f"{name} = {op}({', '.join(args)})")
        self.locations.append(user_location())
        return TracedArray(self, name, dtype, shape)

    def _operand(self, value, op):
        if isinstance(value, TracedArray):
            return value.name, value._dtype, value.shape_symbols
        if isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating):
            kind = (
                dt.WEAK_BOOL
                if isinstance(value, bool | np.bool_)
                else dt.WEAK_INT
                if isinstance(value, int | np.integer)
                else dt.WEAK_FLOAT
            )
            return literal_text(value), kind, ()
        if (
            isinstance(value, np.ndarray) and value.ndim == 0
        ):  # a NumPy scalar, as a ufunc passes it
            return self._operand(value.item(), op)
        if isinstance(value, np.ndarray):
            raise trace_error(
                f"{op}: a NumPy array that is not an argument of the traced function (a global or a"
                " closure) cannot be traced; pass it as an argument"
            )
        raise trace_error(f"{op}: cannot trace an operand of type {type(value).__name__}")

    def text(self, graph_name: str, outputs) -> str:
        lines = [f"graph {graph_name}({', '.join(self.params)}) {{"]
        lines += [f"    {s}" for s in self.statements]
        lines.append(f"    return {', '.join(o.name for o in outputs)}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def located(self, error: CompileError) -> TraceError:
        """A compile error in the traced text, at the user's line that made the statement."""
        diag = error.diagnostics[0]
        index = diag.pos.line - 2 if diag.pos is not None else -1  # line 1 is the graph's head
        location = self.locations[index] if 0 <= index < len(self.locations) else (None, None, "")
        return TraceError(diag.message, *location)
