"""Simplification: constant folding, identities, common subexpressions, dead code.

Each step is a function Graph -> Graph on a copy. Identities are data: a list
of (name, match) pairs, where `match(g, node)` returns the node that can stand
for `node`, or None.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from ..ir import dtypes as dt
from ..ir.graph import replace_uses
from ..ir.registry import lookup


def _const(g, n):
    data = g.nodes[n]
    return data["value"] if data["op"] == "const" else None


def _is_const(g, n, value) -> bool:
    v = _const(g, n)
    return v is not None and not isinstance(v, bool) and v == value


def fold_constants(g: nx.DiGraph) -> nx.DiGraph:
    """Evaluate ops whose operands are all literals, with the op's NumPy reference."""
    g = g.copy()
    for n in list(nx.topological_sort(g)):
        data = g.nodes[n]
        if data["op"] in ("param", "const") or not data["args"]:
            continue
        if not all(g.nodes[a]["op"] == "const" for a in data["args"]):
            continue
        prim = lookup(data["op"])
        if prim.kind != "elementwise":
            continue
        operand = data.get("operand_dtypes") or [g.nodes[a]["dtype"] for a in data["args"]]
        # Weak literals compute in double/int64, as Python numbers would.
        arrays = [
            np.asarray(g.nodes[a]["value"], dtype=_fold_dtype(t))
            for a, t in zip(data["args"], operand, strict=True)
        ]
        with np.errstate(all="ignore"):
            value = prim.numpy(*arrays, **dict(data["attrs"]))
        value = np.asarray(value).item()
        if dt.category(data["dtype"]) == 0:
            value = bool(value)
        elif dt.category(data["dtype"]) == 1:
            value = int(value)
        else:
            value = float(value)
        data.update(op="const", args=(), attrs=(), value=value)
        for a in list(g.predecessors(n)):
            g.remove_edge(a, n)
    return g


def _fold_dtype(t: str):
    return {"weak_float": np.float64, "weak_int": np.int64, "weak_bool": np.bool_}.get(
        t, dt.NUMPY.get(t, np.float64)
    )


def _same_type(g, a, b) -> bool:
    x, y = g.nodes[a], g.nodes[b]
    return x["dtype"] == y["dtype"] and x["shape"] == y["shape"]


def _unary_twice(op):
    def match(g, n):
        data = g.nodes[n]
        if data["op"] == op and g.nodes[data["args"][0]]["op"] == op:
            return data["args"][0]
        return None

    return match


def _neg_neg(g, n):
    data = g.nodes[n]
    if data["op"] == "neg":
        inner = g.nodes[data["args"][0]]
        if inner["op"] == "neg":
            return inner["args"][0]
    return None


def _neutral(op, value, sides):
    """`x op value` -> x when the result has x's dtype and shape."""

    def match(g, n):
        data = g.nodes[n]
        if data["op"] != op:
            return None
        for keep, other in sides:
            x, c = data["args"][keep], data["args"][other]
            if _is_const(g, c, value) and _same_type(g, x, n):
                return x
        return None

    return match


# (name, match). Order matters only for readability; the pass runs to a fixed point.
# x + 0 -> x also turns -0.0 + 0 (which IEEE makes +0.0) into -0.0; PyTorch's
# compilers make the same trade, and docs/ir.md says so.
IDENTITIES = [
    ("relu(relu(x)) -> relu(x)", _unary_twice("relu")),
    ("--x -> x", _neg_neg),
    ("x*1 -> x", _neutral("mul", 1, [(0, 1), (1, 0)])),
    ("x/1 -> x", _neutral("div", 1, [(0, 1)])),
    ("x+0 -> x", _neutral("add", 0, [(0, 1), (1, 0)])),
    ("x-0 -> x", _neutral("sub", 0, [(0, 1)])),
    ("x**1 -> x", _neutral("pow", 1, [(0, 1)])),
]


def apply_identities(g: nx.DiGraph) -> nx.DiGraph:
    g = g.copy()
    changed = True
    while changed:
        changed = False
        for n in list(nx.topological_sort(g)):
            for _, match in IDENTITIES:
                repl = match(g, n)
                if repl is not None and repl != n:
                    replace_uses(g, n, repl)
                    g.remove_node(n)  # nothing uses it now; keeps the fixed point finite
                    changed = True
                    break
    return eliminate_dead_code(g)


def _cse_key(data):
    if data["op"] == "const":
        v = data["value"]
        shown = "nan" if isinstance(v, float) and math.isnan(v) else repr(v)
        return ("const", type(v).__name__, shown, data["dtype"])
    return (data["op"], data["args"], data["attrs"])


def eliminate_common_subexpressions(g: nx.DiGraph) -> nx.DiGraph:
    g = g.copy()
    seen: dict = {}
    for n in list(nx.topological_sort(g)):
        data = g.nodes[n]
        if data["op"] == "param":
            continue
        key = _cse_key(data)
        if key in seen:
            replace_uses(g, n, seen[key])
        else:
            seen[key] = n
    return eliminate_dead_code(g)


def eliminate_dead_code(g: nx.DiGraph) -> nx.DiGraph:
    g = g.copy()
    live = set(g.graph["outputs"]) | set(g.graph["params"])
    for o in g.graph["outputs"]:
        live |= nx.ancestors(g, o)
    g.remove_nodes_from([n for n in list(g.nodes) if n not in live])
    return g


STEPS = (
    ("fold_constants", fold_constants),
    ("identities", apply_identities),
    ("cse", eliminate_common_subexpressions),
    ("dce", eliminate_dead_code),
)


def simplify(g: nx.DiGraph) -> nx.DiGraph:
    for _, step in STEPS:
        g = step(g)
    return g
