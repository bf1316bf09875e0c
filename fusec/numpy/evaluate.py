"""`fusec.evaluate(expr)`: numexpr's expression language, compiled by fusec.

The expression is parsed with Python's `ast` (never `eval`); a whitelist of
nodes is interpreted over traced arrays by a `@fusec.jit` function whose
parameters are the expression's names, so a call is cached by expression
(the parse and the jitted function) and by signature (the compiled graph).
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import sys
import threading

import numpy as np

from ..diagnostics import CallError, TraceError
from .jit import JitFunction, jit
from .numpy_ops import UFUNCS, reduction


def _reduce(name, x, axis=None):  # numexpr's reductions: no axis is every axis
    return reduction(name)(x, axis)


# numexpr's function names that fusec lacks (a clear error rather than "unknown")
MISSING = {"fmod", "contains", "prod", "hypot", "copysign", "nextafter", "signbit", "ones_like"}
COMPLEX = {"complex", "imag"}  # fusec has no complex dtypes
FUNCTIONS = {
    **{
        name: UFUNCS[name]
        for name in (
            "sin",
            "cos",
            "tan",
            "sinh",
            "cosh",
            "tanh",
            "arcsin",
            "arccos",
            "arctan",
            "arctan2",
            "arcsinh",
            "arccosh",
            "arctanh",
            "log",
            "log10",
            "log1p",
            "exp",
            "expm1",
            "sqrt",
            "abs",
            "floor",
            "ceil",
            "maximum",
            "minimum",
            "sign",
            "log2",
            "isnan",
            "isinf",
            "isfinite",
        )
    },
    "round": UFUNCS["rint"],  # numexpr's round is NumPy's: halves to even, as fusec's round
    "trunc": lambda x: FUNCTIONS["where"](
        UFUNCS["less"](x, 0), UFUNCS["ceil"](x), UFUNCS["floor"](x)
    ),
    "copy": lambda x: x,
    "where": lambda c, a, b: _tracer_of(c, a, b).emit("where", (c, a, b)),
    # fusec has no complex dtypes: real arrays are their own real part and conjugate
    "conj": lambda x: x,
    "real": lambda x: x,
    **{name: functools.partial(_reduce, name) for name in ("sum", "max", "min")},
}


BINARY = {
    ast.Add: "add",
    ast.Sub: "subtract",
    ast.Mult: "multiply",
    ast.Div: "divide",
    ast.Pow: "power",
    ast.Mod: "remainder",  # numexpr's float %: a - floor(a / b) * b
    ast.BitAnd: "bitwise_and",
    ast.BitOr: "bitwise_or",
}
COMPARE = {
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
}


def _tracer_of(*xs):
    tracer = next((x.tracer for x in xs if hasattr(x, "tracer")), None)
    if tracer is None:
        raise _error("this function needs at least one array operand")
    return tracer


class ExpressionError(TraceError):
    """An expression `fusec.evaluate` cannot compile, pointing at the culprit's column."""


_local = threading.local()


def _current() -> list[str]:
    """This thread's expressions being interpreted (for error messages)."""
    return _local.__dict__.setdefault("stack", [])


def _error(message: str, node=None) -> ExpressionError:
    expr = _current()[-1] if _current() else ""
    col = getattr(node, "col_offset", None)
    caret = f"\n    {expr}\n    {' ' * col}^" if col is not None else f"\n    {expr}"
    err = ExpressionError(f"{message}{caret}")
    err.message, err.expression, err.column = message, expr, col
    return err


class Interpreter(ast.NodeVisitor):
    """Evaluates a numexpr expression's tree over traced arrays and numbers."""

    def __init__(self, values: dict):
        self.values = values

    def generic_visit(self, node):
        raise _error(f"{type(node).__name__} is not part of numexpr's expression language", node)

    def visit_Expression(self, node):
        return self.visit(node.body)

    def visit_Constant(self, node):
        if isinstance(node.value, bool | int | float):
            return node.value
        raise _error(f"constant {node.value!r}: only numbers and booleans", node)

    def visit_Name(self, node):
        return self.values[node.id]

    def visit_BinOp(self, node):
        op = BINARY.get(type(node.op))
        if op is None:
            raise _error(f"operator {type(node.op).__name__} is not supported by fusec", node)
        return _apply(op, UFUNCS[op], node, self.visit(node.left), self.visit(node.right))

    def visit_UnaryOp(self, node):
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return _apply("negative", UFUNCS["negative"], node, operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Invert):
            return _apply("invert", UFUNCS["invert"], node, operand)
        raise _error("`not` is not numexpr's: use ~", node)

    def visit_Compare(self, node):
        result, left = None, self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            if type(op) not in COMPARE:
                raise _error(f"comparison {type(op).__name__} is not supported", node)
            right = self.visit(comparator)
            name = COMPARE[type(op)]
            part = _apply(name, UFUNCS[name], node, left, right)
            result = (
                part
                if result is None
                else _apply("logical_and", UFUNCS["logical_and"], node, result, part)
            )
            left = right
        return result

    def visit_BoolOp(self, node):
        raise _error("`and`/`or` are not numexpr's: use & and |", node)

    def visit_Call(self, node):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name in MISSING:
            raise _error(
                f"fusec has no {name} (numexpr's function): it is not in fusec's op registry", node
            )
        if name in COMPLEX:
            raise _error(f"{name}: fusec has no complex dtypes", node)
        if name not in FUNCTIONS:
            near = difflib.get_close_matches(name or "", FUNCTIONS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise _error(f"unknown function {ast.unparse(node.func)!r}{hint}", node)
        args = [self.visit(a) for a in node.args]
        kwargs = {k.arg: self.visit(k.value) for k in node.keywords}
        return _apply(name, FUNCTIONS[name], node, *args, **kwargs)


def _apply(name, function, node, *args, **kwargs):
    if not any(hasattr(a, "tracer") for a in args):
        # constants alone are folded here, in double, as numexpr folds them
        fold = getattr(np, name, None)
        if fold is None or kwargs:
            raise _error(f"{name} of constants alone", node)
        try:
            return fold(*(np.float64(a) if isinstance(a, float) else a for a in args)).item()
        except ValueError:  # `2 ** -1`: NumPy refuses negative integer powers; numexpr gives 0.5
            return fold(*(np.float64(a) if isinstance(a, int) else a for a in args)).item()
    try:
        return function(*args, **kwargs)
    except ExpressionError:
        raise
    except TraceError as e:  # positioned in the expression, not in fusec's interpreter
        raise _error(e.message, node) from None
    except TypeError as e:
        raise _error(str(e), node) from None


@functools.lru_cache(maxsize=512)
def _compiled(expr: str) -> tuple[tuple[str, ...], JitFunction]:
    """The expression's names (in order of first use) and its jitted function."""
    _current().append(expr)
    try:
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError as e:
            raise _error(f"syntax error: {e.msg}", _syntax_position(expr, e)) from None
        names = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node not in (
                getattr(c, "func", None) for c in ast.walk(tree)
            ):
                if node.id not in names:
                    names.append(node.id)
    finally:
        _current().pop()

    def expression(*arrays):
        _current().append(expr)
        try:
            return Interpreter(dict(zip(names, arrays, strict=True))).visit(tree)
        finally:
            _current().pop()

    expression.__name__ = "expr"
    expression.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_ONLY) for n in names]
    )
    return tuple(names), jit(expression)


def _syntax_position(expr: str, e: SyntaxError):
    """Where Python's parser stopped, as a node-like column in `expr` (None
    past its first line; it parsed `expr.strip()`)."""
    if e.lineno != 1:
        return None
    stripped = expr.strip()  # offset 0: the expression ended too soon
    col = (e.offset - 1 if e.offset else len(stripped)) + len(expr) - len(expr.lstrip())
    return ast.Constant(value=None, col_offset=min(col, len(expr.rstrip())))


def _first_use(expr: str, name: str):
    """The first Name node of `name` in the expression (for its column)."""
    tree = ast.parse(expr.strip(), mode="eval")
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == name]
    first = min(uses, key=lambda n: n.col_offset)
    return ast.Constant(value=None, col_offset=first.col_offset + len(expr) - len(expr.lstrip()))


@functools.lru_cache(maxsize=512)
def _fold(expr: str):
    _current().append(expr)
    try:
        return Interpreter({}).visit(ast.parse(expr.strip(), mode="eval"))
    finally:
        _current().pop()


def _constant_dtype(value) -> type:
    """numexpr's types for constants: bool, int32 (int64 past its range), double."""
    if isinstance(value, bool):
        return np.bool_
    if isinstance(value, int):
        return np.int32 if -(2**31) <= value < 2**31 else np.int64
    return np.float64


CASTINGS = ("no", "equiv", "safe", "same_kind", "unsafe")


def evaluate(expr: str, local_dict=None, global_dict=None, out=None, order="K", casting="safe"):
    """numexpr's `evaluate`: the value of `expr` over the arrays it names, taken
    from `local_dict`/`global_dict`, by default the caller's locals and globals.
    `casting` applies to `out` of another dtype, as numexpr's; results are C-ordered
    (`order` 'K', 'A' or 'C')."""
    if order not in ("K", "A", "C"):
        raise CallError(f"order={order!r}: fusec's results are C-contiguous ('K', 'A' or 'C')")
    if casting not in CASTINGS:
        raise CallError(f"casting={casting!r}: one of {', '.join(CASTINGS)}")
    names, function = _compiled(expr)
    if not names:  # constants alone (`sin(1.0)`): folded, a 0-d array as numexpr's
        value = np.asarray(_fold(expr), dtype=_constant_dtype(_fold(expr)))
        if out is None:
            return value
        out[...] = value
        return out
    if local_dict is None or global_dict is None:
        frame = sys._getframe(1)
        local_dict = frame.f_locals if local_dict is None else local_dict
        global_dict = frame.f_globals if global_dict is None else global_dict
    values = []
    for name in names:
        if name in local_dict:
            value = local_dict[name]
        elif name in global_dict:
            value = global_dict[name]
        else:
            _current().append(expr)
            try:
                raise _error(f"name {name!r} is not defined", _first_use(expr, name))
            finally:
                _current().pop()
        # numexpr takes any sequence NumPy does (np.asarray)
        values.append(np.asarray(value) if isinstance(value, list | tuple) else value)
    try:
        try:
            return function(*values, out=out)
        except CallError as e:
            if not isinstance(out, np.ndarray):
                raise
            # numexpr's `casting` (default 'safe': a float32 result into a float64 `out`)
            result = function(*values)
            if result.shape != out.shape or not np.can_cast(result.dtype, out.dtype, casting):
                raise e from None
            np.copyto(out, result, casting=casting)
            return out
    except ExpressionError:
        raise
    except TraceError as e:  # found when the traced text compiles: name the expression
        _current().append(expr)
        try:
            raise _error(e.message) from None
        finally:
            _current().pop()
