"""Shape and dtype inference: NumPy broadcasting with symbolic sizes, PyTorch promotion."""

from __future__ import annotations

import functools
import math

import networkx as nx
import numpy as np

from ..diagnostics import CompileError, Diagnostic, error
from ..ir import dtypes as dt
from ..ir.graph import topological_order
from ..ir.registry import lookup


def fmt_shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def broadcast(shapes, pos, what="operands"):
    same = None  # the common case first: one shape, perhaps with scalars (literals) beside it
    for s in shapes:
        if s and s != same:
            if same is not None:
                break
            same = s
    else:
        return tuple(same or ())
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            shown = " and ".join(fmt_shape(s) for s in shapes)
            raise error(
                f"cannot broadcast {what} of shapes {shown}: "
                + " vs ".join(
                    dict.fromkeys(
                        str(s[len(s) - ndim + i])
                        for s in shapes
                        if len(s) - ndim + i >= 0 and s[len(s) - ndim + i] != 1
                    )
                )
                + (" in the last dimension" if i == ndim - 1 else f" in dimension {i - ndim}")
                + (
                    "; different size names may be different sizes, so use one name for"
                    " sizes that must be equal"
                    if all(isinstance(d, str) for d in dims)
                    else "; a size name is not assumed to equal a number, so write the number"
                    " if that is the size"
                    if any(isinstance(d, str) for d in dims)
                    else ""
                ),
                pos,
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


# Promotion is a pure function of a few dtype names, asked once per node.
_promote = functools.cache(dt.promote)


def operand_dtypes(rule: str, arg_dtypes: list[str], attrs: dict) -> tuple[list[str], str]:
    """(the dtype each operand is read as, the result dtype) for a dtype rule.

    Weak dtypes may remain while only literals meet; `dt.concrete` settles them.
    """
    if rule == "cast":
        return list(arg_dtypes), attrs["dtype"][1]
    if rule == "logical":
        return ["bool"] * len(arg_dtypes), "bool"
    if rule == "sum":
        common = _promote(*arg_dtypes)
        common = common if dt.is_float(common) else (dt.WEAK_INT if dt.is_weak(common) else "i64")
        return [common] * len(arg_dtypes), common
    if rule == "where":
        common = _promote(*arg_dtypes[1:])
        return ["bool", common, common], common
    if rule == "bounds":  # an infinite bound is an absent one: it lifts nothing
        bounds = [
            v for v in attrs.values() if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        weak = [_const_dtype(v) for v in bounds if not (isinstance(v, float) and math.isinf(v))]
        common = _promote(*arg_dtypes, *weak)
        if dt.category(common) == 0:
            common = (
                dt.WEAK_INT if dt.is_weak(common) else "i64"
            )  # torch: bool with int bounds is i64
        return [common] * len(arg_dtypes), common
    common = _promote(*arg_dtypes)
    if rule == "float":
        common = dt.to_float(common)
    if rule == "compare":
        return [common] * len(arg_dtypes), "bool"
    return [common] * len(arg_dtypes), common


def _const_dtype(value) -> str:
    if isinstance(value, bool):
        return dt.WEAK_BOOL
    if isinstance(value, int):
        return dt.WEAK_INT
    return dt.WEAK_FLOAT


def infer(g: nx.DiGraph) -> nx.DiGraph:
    """Annotate every node with `dtype` and `shape`; reject what does not type-check."""
    return infer_in_place(g.copy())


def infer_in_place(g: nx.DiGraph) -> nx.DiGraph:
    """`infer` on `g` itself, for a caller that holds the only reference (the
    pipeline: a copy of 40,000 nodes costs more than typing them)."""
    diags = []
    for p in g.graph["params"]:
        data = g.nodes[p]
        if data["dtype"] not in dt.DTYPES:
            diags.append(Diagnostic(f"unknown dtype {data['dtype']!r}", data["pos"]))
    for n in topological_order(g):
        infer_node(g, n)
    if diags:
        raise CompileError(diags)
    _settle_weak_outputs(g)
    return g


def infer_node(g: nx.DiGraph, n: int) -> None:
    """Type one node whose operands are typed (in place: passes that add nodes call it)."""
    data = g.nodes[n]
    if data["op"] == "param":
        return
    if data["op"] == "const":
        data["dtype"], data["shape"] = _const_dtype(data["value"]), ()
        return
    prim = lookup(data["op"])
    args = [g.nodes[a] for a in data["args"]]
    attrs = dict(data["attrs"])
    operand, result = operand_dtypes(prim.dtype_rule, [a["dtype"] for a in args], attrs)
    if prim.dtype_rule == "where" and dt.concrete(args[0]["dtype"]) != "bool":
        raise error(
            f"where's condition must be bool, got {dt.concrete(args[0]['dtype'])};"
            " compare it (c != 0) or cast it (cast(c, dtype=bool))",
            data["pos"],
        )
    if prim.dtype_rule == "float" and dt.category(result) != 2 and not dt.is_weak(result):
        raise error(f"{prim.name} needs a float operand, got {result}", data["pos"])
    if not prim.bool_operands and dt.category(operand[0]) == 0:
        hint = "; for a logical not, write logical_not(x)" if len(args) == 1 else ""
        raise error(
            f"{prim.name} of bool operands is not supported (torch refuses it too){hint};"
            " to compute with 0 and 1, cast to an integer dtype first (cast(b, dtype=i32))",
            data["pos"],
        )
    data["operand_dtypes"] = tuple(operand)
    data["dtype"] = result
    if prim.kind == "elementwise" and dt.category(operand[0]) == 1:
        _check_integer_attrs(prim, attrs, dt.concrete(operand[0]), data["pos"])
    if prim.kind == "gemm":
        got = [a["dtype"] for a in args]
        if not all(dt.is_float(d) and not dt.is_weak(d) for d in got) or len(set(got)) > 1:
            raise error(
                f"{prim.name} needs float tensors of one dtype, got {' and '.join(got)}",
                data["pos"],
            )
        try:
            data["shape"] = prim.gemm_shape(*(tuple(a["shape"]) for a in args), **attrs)
        except ValueError as e:
            raise error(f"{prim.name}: {e}", data["pos"]) from None
    elif prim.kind == "view":
        try:
            data["shape"] = prim.reduce_shape(tuple(args[0]["shape"]), attrs)
        except ValueError as e:
            raise error(f"{prim.name}: {e}", data["pos"]) from None
    elif prim.kind == "reduction":
        try:
            _, data["shape"] = prim.reduce_shape(tuple(args[0]["shape"]), attrs)
        except ValueError as e:
            raise error(f"{prim.name}: {e}", data["pos"]) from None
    else:
        data["shape"] = broadcast([a["shape"] for a in args], data["pos"])


def _check_integer_attrs(prim, attrs: dict, dtype: str, pos) -> None:
    """A numeric attribute an integer op computes with must fit its dtype
    (an infinite bound stands for the type's limit); torch refuses the rest."""
    info = np.iinfo(dt.NUMPY[dtype])
    for name, value in attrs.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isinf(value):
            continue
        if not info.min <= value <= info.max:
            raise error(
                f"{prim.name}'s {name}={value!r} does not fit {dtype}, the dtype it computes in"
                f" ({info.min} to {info.max})",
                pos,
            )


def _settle_weak_outputs(g: nx.DiGraph) -> None:
    # A literal-only output has no tensor to take its dtype from: settle it now.
    for n in g.graph["outputs"]:
        data = g.nodes[n]
        if dt.is_weak(data["dtype"]):
            data["dtype"] = dt.concrete(data["dtype"])
