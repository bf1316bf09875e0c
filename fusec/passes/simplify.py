"""Simplification: constant folding, identities, common subexpressions, nested
sums folded into one, dead code.

Each step is a function Graph -> Graph on a copy. Identities are data: a list
of (name, match) pairs, where `match(g, node)` returns the node that can stand
for `node`, or None.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from ..diagnostics import error
from ..ir import dtypes as dt
from ..ir.graph import add_node, replace_uses, topological_order
from ..ir.ops.reductions import sum_to_axes
from ..ir.registry import lookup
from .infer import infer, infer_node


def _const(g, n):
    data = g.nodes[n]
    return data["value"] if data["op"] == "const" else None


def _is_const(g, n, value) -> bool:
    v = _const(g, n)
    return v is not None and not isinstance(v, bool) and v == value


def fold_constants(g: nx.DiGraph) -> nx.DiGraph:
    """Evaluate ops whose operands are all literals, with the op's NumPy reference.

    Literals fold as Python numbers would (docs/ir.md): integers in int64, where
    a result that int64 cannot hold is an error, not a wrapped value; an integer
    to a negative power is a float (`2 ** -1` is 0.5). Then every integer
    literal must fit the dtype it is used as (`k + 3000000000` with `k: i32` is
    an error, as torch refuses it).
    """
    return _fold_constants(g.copy())


def _fold_constants(g: nx.DiGraph) -> nx.DiGraph:
    retype = False
    nodes = dict(g.nodes(data=True))  # plain dict lookups; the loop adds no node
    for n in topological_order(g):
        data = nodes[n]
        if data["op"] in ("param", "const") or not data["args"]:
            continue
        if not all(nodes[a]["op"] == "const" for a in data["args"]):
            continue
        prim = lookup(data["op"])
        if prim.kind != "elementwise":
            continue
        operand = data.get("operand_dtypes") or [nodes[a]["dtype"] for a in data["args"]]
        values = [nodes[a]["value"] for a in data["args"]]
        attrs = dict(data["attrs"])
        category = dt.category(data["dtype"])
        for a in data["args"]:  # 2**63 (only its negation is an int64) must not reach NumPy
            _check_range(nodes[a], "i64")
        try:
            try:
                value = _evaluate(prim, values, [_fold_dtype(t) for t in operand], attrs)
            except ValueError:  # NumPy refuses an integer to a negative power: Python gives a float
                value, category = _evaluate(prim, values, [np.float64] * len(values), attrs), 2
                retype = True
        except (TypeError, ValueError, OverflowError, ArithmeticError) as e:
            raise error(
                f"{prim.name} cannot be computed on these literals ({e})", data["pos"]
            ) from None
        if category == 0:
            value = bool(value)
        elif category == 1:
            exact = _evaluate(prim, values, [np.float64] * len(values), attrs)
            if not math.isfinite(exact) or abs(exact - value) > 2**53:  # it wrapped
                raise error(
                    f"this constant expression overflows int64 (it is about {exact:.6g}):"
                    " integer literals fold in int64; write a float literal (2.0 ** 70)"
                    " to compute in double",
                    data["pos"],
                )
            value = int(value)
        else:
            value = float(value)
        data.update(op="const", args=(), attrs=(), value=value)
        for a in list(g.predecessors(n)):
            g.remove_edge(a, n)
    if retype:  # a literal changed kind (2 ** -1): its users' dtypes follow
        g = infer(g)
    check_literal_ranges(g)
    return g


def _evaluate(prim, values, dtypes, attrs):
    arrays = [np.asarray(v, dtype=t) for v, t in zip(values, dtypes, strict=True)]
    with np.errstate(all="ignore"):
        return np.asarray(prim.numpy(*arrays, **attrs)).item()


def _fold_dtype(t: str):
    return {"weak_float": np.float64, "weak_int": np.int64, "weak_bool": np.bool_}.get(
        t, dt.NUMPY.get(t, np.float64)
    )


INT_RANGES = {t: (int(np.iinfo(dt.NUMPY[t]).min), int(np.iinfo(dt.NUMPY[t]).max)) for t in dt.INTS}


def check_literal_ranges(g: nx.DiGraph) -> None:
    """Every integer literal fits the integer dtype it is read as (int64 where
    it meets no tensor); what does not would wrap silently in the kernel."""
    nodes = dict(g.nodes(data=True))  # a plain dict: this reads every operand of every node
    # (a literal's data, the dtype it is read as, where that use is written)
    uses: list[tuple[dict, str, object]] = []
    for data in nodes.values():
        if data["op"] in ("param", "const"):
            continue
        for i, (a, t) in enumerate(
            zip(data["args"], data.get("operand_dtypes") or (), strict=False)
        ):
            literal = nodes[a]
            if literal["op"] != "const":
                continue  # only literals can be out of range
            uses.append((literal, dt.concrete(t), a, data))
            value = literal["value"]
            negative_int = isinstance(value, int) and not isinstance(value, bool) and value < 0
            if negative_int and dt.category(t) == 1:
                prim = lookup(data["op"])
                if prim.inputs[i] in prim.int_nonnegative:
                    raise error(
                        f"an integer to a negative integer power is not allowed, as in torch"
                        f" ({prim.name}); write {value}.0 for a float result",
                        _use_pos(g, a, data),
                    )
    uses += [(nodes[o], dt.concrete(nodes[o]["dtype"]), o, None) for o in g.graph["outputs"]]
    for literal, dtype, a, user in uses:
        _check_range(literal, dtype, lambda: _use_pos(g, a, user) if user else None)  # noqa: B023


def _use_pos(g: nx.DiGraph, literal: int, user: dict):
    """Where a literal's use is written: a literal written several times is one
    node (at its first spelling), so a use elsewhere is shown at its operation."""
    return g.nodes[literal]["pos"] if g.out_degree(literal) == 1 else user["pos"]


def _check_range(data: dict, dtype: str, where=lambda: None) -> None:
    """`where()`: the position to show, when it is not the literal's own."""
    value = data.get("value")
    if data["op"] != "const" or isinstance(value, bool) or not isinstance(value, int):
        return
    lo, hi = (
        INT_RANGES.get(dtype, INT_RANGES["i64"]) if dt.category(dtype) == 1 else INT_RANGES["i64"]
    )
    if not lo <= value <= hi:
        used = f"{dtype}, the dtype it is used as here" if dt.category(dtype) == 1 else "int64"
        raise error(
            f"integer literal {value} is out of range for {used} ({lo} to {hi});"
            + (" cast the tensor to i64 first" if dtype == "i32" else " write a float literal"),
            where() or data["pos"],
        )


def _same_type(g, a, b) -> bool:
    x, y = g.nodes[a], g.nodes[b]
    return x["dtype"] == y["dtype"] and x["shape"] == y["shape"]


def _for_op(op: str):
    """Marks a rule that can only match nodes of `op`: the sweep tries it on
    those alone (a rule without the mark is tried on every node)."""

    def mark(match):
        match.op = op
        return match

    return mark


def _unary_twice(op):
    @_for_op(op)
    def match(g, n):
        data = g.nodes[n]
        if data["op"] == op and g.nodes[data["args"][0]]["op"] == op:
            return data["args"][0]
        return None

    return match


@_for_op("neg")
def _neg_neg(g, n):
    data = g.nodes[n]
    if data["op"] == "neg":
        inner = g.nodes[data["args"][0]]
        if inner["op"] == "neg":
            return inner["args"][0]
    return None


def _neutral(op, value, sides):
    """`x op value` -> x when the result has x's dtype and shape."""

    @_for_op(op)
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
    return _apply_identities(g.copy())


def _first_match(g: nx.DiGraph, n: int, rules_for: dict):
    op = g.nodes[n]["op"]
    rules = rules_for.get(op)
    if rules is None:  # IDENTITIES in order, less those marked for another op
        rules = rules_for[op] = [m for _, m in IDENTITIES if getattr(m, "op", op) == op]
    for match in rules:
        repl = match(g, n)
        if repl is not None and repl != n:
            return repl
    return None


def _apply_identities(g: nx.DiGraph) -> nx.DiGraph:
    """One sweep in topological order is the fixed point: a rule reads a node
    and its operands, which the sweep has settled already, and a replacement
    changes only the node's consumers, which it visits later. (A second sweep
    to confirm that cost a third of simplify.) A node a rule makes is not in
    the sweep's order, so it is matched as it replaces one."""
    order = topological_order(g)
    swept = set(order)
    rules_for: dict = {}
    for n in order:
        while (repl := _first_match(g, n, rules_for)) is not None:
            replace_uses(g, n, repl)
            g.remove_node(n)  # nothing uses it now
            if repl in swept:
                break
            n = repl
            swept.add(n)
    return _remove_dead(g)


def _cse_key(data):
    if data["op"] == "const":
        v = data["value"]
        shown = "nan" if isinstance(v, float) and math.isnan(v) else repr(v)
        return ("const", type(v).__name__, shown, data["dtype"])
    return (data["op"], data["args"], data["attrs"])


def eliminate_common_subexpressions(g: nx.DiGraph) -> nx.DiGraph:
    return _eliminate_common_subexpressions(g.copy())


def _eliminate_common_subexpressions(g: nx.DiGraph) -> nx.DiGraph:
    seen: dict = {}
    for n in topological_order(g):
        data = g.nodes[n]
        if data["op"] == "param":
            continue
        key = _cse_key(data)
        if key in seen:
            replace_uses(g, n, seen[key])
        else:
            seen[key] = n
    return _remove_dead(g)


def _has_op(g: nx.DiGraph, ops) -> bool:
    return any(op in ops for _, op in g.nodes(data="op"))


def collapse_broadcasts(g: nx.DiGraph) -> nx.DiGraph:
    return _collapse_broadcasts(g.copy())


def _broadcast_of(g, n):
    """(a, zeros) when n is `a + zeros_like(z)` (a broadcast to z's shape), else None."""
    data = g.nodes[n]
    if data["op"] != "add":
        return None
    for a, zeros in (data["args"], reversed(data["args"])):
        if g.nodes[zeros]["op"] == "zeros_like" and g.nodes[zeros]["shape"] == data["shape"]:
            return a, zeros
    return None


def _collapse_broadcasts(g: nx.DiGraph) -> nx.DiGraph:
    """`unsqueeze(a + zeros_like(z)) + zeros_like(y)` -> `unsqueeze(a) + zeros_like(y)`
    where the outer broadcast covers the inner one (same rank, dtype).

    Autodiff's cotangent of `sum(sum(v, axis=1), axis=0)` broadcasts the scalar
    to the row sum's shape, then to v's: the first `zeros_like` reads the row
    sum, a reduction, which the backward then waits for, though only its shape
    matters. The second broadcast alone gives the same values."""
    if not _has_op(g, ("zeros_like",)):
        return g  # a scan is cheaper than the sort below
    outputs = set(g.graph["outputs"])
    for n in list(topological_order(g)):
        if n not in g or _broadcast_of(g, n) is None:
            continue
        user, (inner, _) = n, _broadcast_of(g, n)
        chain = []  # views between the two broadcasts, outermost first
        while g.nodes[inner]["op"] == "unsqueeze" and g.out_degree(inner) == 1:
            chain.append(inner)
            user, (inner,) = inner, g.nodes[inner]["args"]
        found = _broadcast_of(g, inner) if g.out_degree(inner) == 1 else None
        if found is None or inner in outputs:
            continue
        a = found[0]
        same = g.nodes[a]["dtype"] == g.nodes[inner]["dtype"]
        if not same or len(g.nodes[a]["shape"]) != len(g.nodes[inner]["shape"]):
            continue
        data = g.nodes[user]
        data["args"] = tuple(a if x == inner else x for x in data["args"])
        g.remove_edge(inner, user)
        g.add_edge(a, user)
        for v in reversed(chain):  # the views' shapes follow a's
            infer_node(g, v)
    return _remove_dead(g)


def merge_sums(g: nx.DiGraph) -> nx.DiGraph:
    return _merge_sums(g.copy())


def _merge_sums(g: nx.DiGraph) -> nx.DiGraph:
    """`sum_to(a) + sum_to(b)` -> `sum_to(a + b)` (a, b of one shape and dtype,
    each sum read only there): a parameter used twice (`x * w + w`) gets one
    summed-back gradient, not two sums and an add after them."""
    if not _has_op(g, ("sum_to",)):
        return g
    outputs = set(g.graph["outputs"])

    def single_sum(n):
        data = g.nodes[n]
        return data["op"] == "sum_to" and g.out_degree(n) == 1 and n not in outputs

    changed = True
    while changed:
        changed = False
        for n in list(topological_order(g)):
            data = g.nodes[n]
            if data["op"] != "add" or len(set(data["args"])) != 2:
                continue
            s1, s2 = data["args"]
            if not (single_sum(s1) and single_sum(s2)):
                continue
            (a,), (b,) = g.nodes[s1]["args"], g.nodes[s2]["args"]
            same = g.nodes[s1]["attrs"] == g.nodes[s2]["attrs"] and _same_type(g, a, b)
            if not same or g.nodes[a]["dtype"] != data["dtype"]:
                continue
            total = add_node(g, "add", (a, b), (), data["pos"])
            infer_node(g, total)
            merged = add_node(g, "sum_to", (total,), g.nodes[s1]["attrs"], data["pos"])
            infer_node(g, merged)
            replace_uses(g, n, merged)
            g.remove_nodes_from([n, s1, s2])
            changed = True
    return g


def fold_nested_sums(g: nx.DiGraph) -> nx.DiGraph:
    """`sum(sum(x, axis=1), axis=0)` -> one `sum_to` over both axes: one pass
    over x, not a second reduction kernel reading the first one's result."""
    return _remove_dead(_fold_nested_sums(g.copy()))


_SUMS = ("sum", "sum_to")


def _reduced_axes(shape, data) -> tuple[list[int], list[int]]:
    """The axes of `shape` a sum or sum_to node removes or keeps as 1, and for
    each axis of its result, the axis of `shape` it is."""
    attrs = dict(data["attrs"])
    axes, result = lookup(data["op"]).reduce_shape(tuple(shape), attrs)
    if data["op"] == "sum_to":
        return list(axes), list(range(len(shape) - len(result), len(shape)))
    kept = attrs["keepdim"]
    return list(axes), [i for i in range(len(shape)) if kept or i not in axes]


def _fold_nested_sums(g: nx.DiGraph) -> nx.DiGraph:
    """In place. Floats only: an integer sum is i64 whatever it sums (the
    inner sum's dtype is not its operand's), and a sum over a literal size-1
    axis is left alone (sum_to keeps such an axis); the inner sum must have no
    other use, else it is computed anyway."""
    if not _has_op(g, _SUMS):
        return g
    outputs = set(g.graph["outputs"])
    for n in list(topological_order(g)):
        data = g.nodes[n]
        if data["op"] not in _SUMS:
            continue
        inner = data["args"][0]
        idata = g.nodes[inner]
        if idata["op"] not in _SUMS or inner in outputs or g.out_degree(inner) != 1:
            continue
        x = idata["args"][0]
        xdata = g.nodes[x]
        if not (dt.is_float(data["dtype"]) and data["dtype"] == idata["dtype"] == xdata["dtype"]):
            continue
        axes, position = _reduced_axes(xdata["shape"], idata)
        outer_axes, _ = _reduced_axes(idata["shape"], data)
        axes = sorted(set(axes) | {position[a] for a in outer_axes})
        target = tuple(data["shape"])
        if sum_to_axes(tuple(xdata["shape"]), target) != tuple(axes):
            continue
        data.update(op="sum_to", args=(x,), attrs=(("shape", target),))
        data["operand_dtypes"] = idata["operand_dtypes"]
        g.remove_edge(inner, n)
        g.add_edge(x, n)
    return g


def eliminate_dead_code(g: nx.DiGraph) -> nx.DiGraph:
    g = g.copy()
    _remove_dead(g)
    return g


def _remove_dead(g: nx.DiGraph) -> nx.DiGraph:
    """In place, on a copy a step has made already: a copy of a 100,000-node
    graph costs a quarter of a second."""
    live = set(g.graph["outputs"]) | set(g.graph["params"])
    stack = list(g.graph["outputs"])
    while stack:  # one walk from all outputs (nx.ancestors per output repeats shared parts)
        for a in g.predecessors(stack.pop()):
            if a not in live:
                live.add(a)
                stack.append(a)
    g.remove_nodes_from([n for n in list(g.nodes) if n not in live])
    return g


STEPS = (
    ("fold_constants", fold_constants),
    ("identities", apply_identities),
    ("cse", eliminate_common_subexpressions),
    ("nested_sums", fold_nested_sums),
    ("broadcasts", collapse_broadcasts),
    ("sums", merge_sums),
    ("dce", eliminate_dead_code),
)


# the same steps, each working in place on the copy simplify makes once
_IN_PLACE = (
    _fold_constants,
    _apply_identities,
    _eliminate_common_subexpressions,
    _fold_nested_sums,
    _collapse_broadcasts,
    _merge_sums,
    _remove_dead,
)


def simplify(g: nx.DiGraph) -> nx.DiGraph:
    """STEPS in order, on one copy of `g`: a copy per step cost most of the time
    checking 10,000 statements took (a 40,000-node copy is ~0.1 s)."""
    return simplify_in_place(g.copy())


def simplify_in_place(g: nx.DiGraph) -> nx.DiGraph:
    """`simplify` on `g` itself, for a caller that holds the only reference."""
    for step in _IN_PLACE:
        g = step(g)
    return g
