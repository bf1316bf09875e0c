"""The dataflow graph (networkx) and its invariants.

A graph is an `nx.DiGraph` whose nodes are integers in definition order. Each
node carries `op` ("param", "const", or a registry op), `args` (the operand
node ids, in order: the source of truth, since an op may use one value twice),
`attrs` (a sorted tuple of (name, value) pairs), `pos`, and after inference
`dtype` and `shape`. Edges mirror `args`. Graph attributes: `name`, `params`
(node ids in signature order), `outputs` (node ids, in return order),
`pos`, and `next_node` (the id `add_node` gives next).
"""

from __future__ import annotations

import networkx as nx
from networkx.classes.reportviews import InDegreeView

from ..diagnostics import Pos
from .registry import lookup


def new_graph(name: str, pos: Pos | None = None) -> nx.DiGraph:
    return nx.DiGraph(name=name, params=[], outputs=[], pos=pos, next_node=0)


def add_node(g: nx.DiGraph, op: str, args=(), attrs=(), pos=None, **extra) -> int:
    # A counter, not max(g.nodes): that made building an n-node graph O(n^2)
    # (10,000 statements took 11 s). Ids stay in definition order and are never
    # reused, so a removed node's id is not handed out again.
    node = g.graph.get("next_node")
    if node is None or node in g:  # a graph not made by new_graph
        node = max(g.nodes, default=-1) + 1
    g.graph["next_node"] = node + 1
    g.add_node(node, op=op, args=tuple(args), attrs=tuple(sorted(attrs)), pos=pos, **extra)
    for a in args:
        g.add_edge(a, node)
    return node


def topological_order(g: nx.DiGraph) -> list:
    """`list(nx.topological_sort(g))`, in exactly its order (its generations
    one after another, each in the order networkx finds it: passes that keep
    the first of equal nodes depend on it); raises nx.NetworkXUnfeasible on a
    cycle. Unlike networkx it leaves no degree view cached on `g`: that view
    refers back to the graph, so a graph sorted once could only be freed by
    the cycle collector, never as soon as a pass drops it."""
    in_degree = InDegreeView(g)
    waiting = {n: d for n, d in in_degree if d}
    order = [n for n, d in in_degree if not d]
    succ = dict(g.adjacency())  # node -> its successors' dict: plain lookups, no view per node
    for n in order:  # appended to while read: the next generation follows this one
        for child in succ[n]:
            left = waiting[child] - 1
            if left:
                waiting[child] = left
            else:
                del waiting[child]
                order.append(child)
    if waiting:
        raise nx.NetworkXUnfeasible("Graph contains a cycle")
    return order


def replace_uses(g: nx.DiGraph, old: int, new: int) -> None:
    """Point every consumer of `old` (and the outputs) at `new`."""
    for user in list(g.successors(old)):
        data = g.nodes[user]
        data["args"] = tuple(new if a == old else a for a in data["args"])
        g.remove_edge(old, user)
        g.add_edge(new, user)
    g.graph["outputs"] = [new if o == old else o for o in g.graph["outputs"]]


def ir_repr(value) -> str:
    """An attribute value as it is spelled in IR text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple) and value[:1] == ("dtype",):
        return value[1]
    return repr(value)


def verify(g: nx.DiGraph) -> None:
    """Invariants every pass must keep. A failure is a bug in fusec, not the user's."""
    ordered = True  # every operand made before its user: ids fall along each edge, no cycle
    for n, data in g.nodes(data=True):
        assert "op" in data and "args" in data, f"node {n} lacks op/args"
        assert set(g.predecessors(n)) == set(data["args"]), f"node {n}: edges differ from args"
        if data["args"] and max(data["args"]) >= n:
            ordered = False  # as after widen: only a sort can tell
        if data["op"] not in ("param", "const"):
            assert lookup(data["op"]) is not None, f"node {n}: unknown op {data['op']}"
    if not ordered:
        try:
            topological_order(g)
        except nx.NetworkXUnfeasible:
            raise AssertionError("graph has a cycle") from None
    for n in g.graph["outputs"] + g.graph["params"]:
        assert n in g, f"graph refers to missing node {n}"


def dump(g: nx.DiGraph) -> str:
    """A readable listing of a graph, one node a line (for --emit graph)."""

    def ty(data):
        shape = data.get("shape")
        dims = f"[{', '.join(str(d) for d in shape)}]" if shape else ""
        return f"{data.get('dtype', '?')}{dims}"

    def ref(n):
        return f"%{n}"

    params = ", ".join(f"%{p} {g.nodes[p]['name']}: {ty(g.nodes[p])}" for p in g.graph["params"])
    lines = [f"graph {g.graph['name']}({params}) {{"]
    for n in nx.lexicographical_topological_sort(g):
        data = g.nodes[n]
        if data["op"] == "param":
            continue
        if data["op"] == "const":
            rhs = f"const {data['value']!r}"
        else:
            attrs = "".join(f", {k}={v!r}" for k, v in data["attrs"])
            rhs = f"{data['op']}({', '.join(ref(a) for a in data['args'])}{attrs})"
        name = f"  # {data['name']}" if data.get("name") else ""
        lines.append(f"  %{n} = {rhs} : {ty(data)}{name}")
    lines.append(f"  return {', '.join(ref(o) for o in g.graph['outputs'])}")
    lines.append("}")
    return "\n".join(lines)
