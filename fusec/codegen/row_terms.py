"""A row sum split into sums of what varies along the row (row_passes.py).

`sum(c1 * u + c2 * v)` over a row, with c1 and c2 constant along it (they
read only earlier reductions' results and [B, 1] values), is
`c1 * sum(u) + c2 * sum(v)`. LayerNorm's backward sums
`-(g * w * rs + 2 * c * (x - mean))` with c computed from the sum before it:
as written it must wait for that sum's pass; split, `sum(g * w)` and
`sum(x - mean)` read only the mean and share the variance's pass. The
constants are applied once per row, after the pass (torch's LayerNorm
backward factors its sums the same way). Only a split that lets the sum
read fewer reductions is used.
"""

from __future__ import annotations

from ..ir import dtypes as dt

LINEAR = ("sum", "sum_to", "mean")  # reductions that are sums (mean: divided after)


def row_constant(kernel, n) -> bool:
    """Whether node n has one value per row in the group's space."""
    shape = tuple(kernel.g.nodes[n]["shape"])
    space, split = kernel.group.shape, kernel.split
    aligned = (1,) * (len(space) - len(shape)) + shape
    return all(d == 1 for d in aligned[split:])


class Split:
    """A sum's operand as terms (constant, varying node): the constant an
    expression tree over row-constant nodes (None for 1); a varying node None
    for a term constant along the row."""

    def __init__(self, kernel, member):
        self.kernel, self.member = kernel, member
        self.dtype = kernel.g.nodes[member]["dtype"]

    def _arith(self, n) -> bool:
        return n in self.kernel.group.nodes and self.kernel.g.nodes[n]["dtype"] == self.dtype

    def const(self, n):
        """n as an expression tree over row-constant leaves, or None."""
        k = self.kernel
        if n in k.held:
            return ("leaf", n)
        if n in k.group.inputs:
            return None
        if n not in k.group.nodes:
            return ("leaf", n)  # a literal
        data = k.g.nodes[n]
        if data["dtype"] != self.dtype:
            return None
        op, args = data["op"], data["args"]
        if op == "zeros_like":
            return ("zero",)
        if row_constant(k, n):
            return ("leaf", n)
        if op in ("add", "sub", "mul", "div"):
            a, b = (self.const(x) for x in args)
            return None if a is None or b is None else (op, a, b)
        if op in ("neg", "stop_gradient"):
            a = self.const(args[0])
            return None if a is None else (a if op == "stop_gradient" else ("neg", a))
        return None

    def terms(self, n) -> list:
        """[(constant or None, varying node or None)] adding up to n."""
        c = self.const(n)
        if c is not None:
            return [] if c == ("zero",) else [(c, None)]
        if not self._arith(n):
            return [(None, n)]
        data = self.kernel.g.nodes[n]
        op, args = data["op"], data["args"]
        if op in ("add", "sub") and any(self.const(x) is not None for x in args):
            # x - mean stays one term: sum(x) - mean * n would cancel catastrophically
            return [(None, n)]
        if op == "add":
            return self.terms(args[0]) + self.terms(args[1])
        if op == "sub":
            return self.terms(args[0]) + _scaled(self.terms(args[1]), "neg", None)
        if op == "neg":
            return _scaled(self.terms(args[0]), "neg", None)
        if op == "stop_gradient":
            return self.terms(args[0])
        if op in ("mul", "div"):
            a, b = args
            cb = self.const(b)
            if cb is not None:
                return _scaled(self.terms(a), op, cb)
            ca = self.const(a) if op == "mul" else None
            if ca is not None:
                return _scaled(self.terms(b), "mul", ca)
        return [(None, n)]


def _scaled(terms: list, op: str, c) -> list:
    out = []
    for t, v in terms:
        t = t if t is not None else ("one",)
        out.append((("neg", t) if op == "neg" else (op, t, c), v))
    return out


def split_sum(kernel, member, members_read) -> list | None:
    """The terms of a sum's operand grouped by varying node [(constant, node)],
    where reading them needs fewer reductions than the operand; else None."""
    data = kernel.g.nodes[member]
    if data["op"] not in LINEAR or not dt.is_float(data["dtype"]):
        return None
    (operand,) = data["args"]
    if data["operand_dtypes"][0] != data["dtype"]:
        return None
    terms = Split(kernel, member).terms(operand)
    grouped: dict = {}
    for c, v in terms:
        c = c if c is not None else ("one",)
        grouped[v] = ("add", grouped[v], c) if v in grouped else c
    varying = [v for v in grouped if v is not None]
    before = members_read(kernel, operand)
    after = set().union(*(members_read(kernel, v) for v in varying)) if varying else set()
    if not after < before:
        return None
    return [(c, v) for v, c in grouped.items()]


def render_const(c, leaf) -> str:
    """C for a constant tree; `leaf(node)` names a leaf's scalar value."""
    kind = c[0]
    if kind in ("one", "zero"):
        return "1" if kind == "one" else "0"
    if kind == "leaf":
        return leaf(c[1])
    if kind == "neg":
        return f"(-{render_const(c[1], leaf)})"
    sign = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
    return f"({render_const(c[1], leaf)} {sign} {render_const(c[2], leaf)})"


def const_leaves(c) -> list:
    if c[0] == "leaf":
        return [c[1]]
    return [n for x in c[1:] if isinstance(x, tuple) for n in const_leaves(x)]
