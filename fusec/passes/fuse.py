"""Partition a graph into fusion groups, one kernel each.

An elementwise group is "all the work for the graph outputs of one shape":
outputs of one shape share one index space and one kernel. A reduction (here
autodiff's `sum_to`) ends a group: its kernel computes its elementwise
prologue (every elementwise op feeding it) and sums, and its result is stored
for the groups that read it. Shared subexpressions are recomputed in each
kernel that needs them rather than stored (an elementwise op costs less than a
round trip through memory); only reduction results are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..registry import lookup


@dataclass(frozen=True)
class FusionGroup:
    name: str
    shape: tuple  # the kernel's index space: the outputs' shape, or a reduction's operand's
    nodes: tuple  # compute nodes, in topological order
    inputs: tuple  # nodes read from memory: params in signature order, then stored values
    outputs: tuple  # (position in the graph's return, node id)
    reason: str  # why the group boundary is where it is
    kind: str = "elementwise"  # or "reduction"
    reduce: int | None = None  # the reduction node of a reduction group
    stores: tuple = ()  # nodes whose values later groups read (kept in temporary buffers)


def stored_nodes(g: nx.DiGraph) -> set:
    """Values that live in memory between kernels: the reductions' results."""
    return {n for n, d in g.nodes(data=True) if d["op"] not in ("param", "const") and lookup(d["op"]).kind == "reduction"}


def _region(g: nx.DiGraph, roots, stored: set) -> set:
    """`roots` and what they need, up to (and including) params and stored values."""
    seen, stack = set(), list(roots)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if g.nodes[n]["op"] == "param" or n in stored:
            continue
        stack.extend(g.nodes[n]["args"])
    return seen


def _split(g, region: set, stored: set, order: dict, skip=()) -> tuple[tuple, tuple]:
    compute = tuple(
        sorted(
            (n for n in region if g.nodes[n]["op"] not in ("param", "const") and n not in stored and n not in skip),
            key=order.get,
        )
    )
    params = [p for p in g.graph["params"] if p in region]
    inputs = tuple(params + sorted((n for n in region if n in stored and n not in skip), key=order.get))
    return compute, inputs


def fuse(g: nx.DiGraph) -> list[FusionGroup]:
    order = {n: i for i, n in enumerate(nx.lexicographical_topological_sort(g))}
    stored = stored_nodes(g)
    outputs = list(enumerate(g.graph["outputs"]))
    groups = []
    # Reductions first, in dependency order: later groups read what they store.
    for k, r in enumerate(sorted(stored, key=order.get)):
        (operand,) = g.nodes[r]["args"]
        region = _region(g, [operand], stored)
        nodes, inputs = _split(g, region, stored, order)
        outs = tuple((i, o) for i, o in outputs if o == r)
        used_later = any(True for _ in g.successors(r))
        groups.append(
            FusionGroup(
                f"{g.graph['name']}_r{k}",
                tuple(g.nodes[operand]["shape"]),
                nodes,
                inputs,
                outs,
                f"{g.nodes[r]['op']} to {list(g.nodes[r]['shape'])}: a reduction ends a group",
                kind="reduction",
                reduce=r,
                stores=(r,) if used_later else (),
            )
        )
    by_shape: dict[tuple, list[tuple[int, int]]] = {}
    for index, out in outputs:
        if out not in stored:
            by_shape.setdefault(tuple(g.nodes[out]["shape"]), []).append((index, out))
    several = len(by_shape) > 1 or bool(stored)
    for k, (shape, outs) in enumerate(by_shape.items()):
        region = _region(g, [o for _, o in outs], stored)
        nodes, inputs = _split(g, region, stored, order)
        reason = (
            f"outputs of shape {list(shape)}; other outputs have other shapes or are reductions"
            if several
            else "every output has one shape: the whole graph is one kernel"
        )
        groups.append(FusionGroup(f"{g.graph['name']}_k{k}", shape, nodes, inputs, tuple(outs), reason))
    return groups
