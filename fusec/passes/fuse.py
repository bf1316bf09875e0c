"""Partition a graph into fusion groups: maximal elementwise regions, one kernel each.

Every op is elementwise in this version, so a group is "all the work for the
outputs of one shape": outputs of one shape share one index space and one
kernel. A shared subexpression feeding outputs of different shapes is
recomputed in each kernel rather than stored (an elementwise op costs less
than a round trip through memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx


@dataclass(frozen=True)
class FusionGroup:
    name: str
    shape: tuple  # the kernel's index space: every output of the group has it
    nodes: tuple  # compute nodes, in topological order
    inputs: tuple  # param nodes read, in signature order
    outputs: tuple  # (position in the graph's return, node id)
    reason: str  # why the group boundary is where it is


def fuse(g: nx.DiGraph) -> list[FusionGroup]:
    order = {n: i for i, n in enumerate(nx.lexicographical_topological_sort(g))}
    by_shape: dict[tuple, list[tuple[int, int]]] = {}
    for index, out in enumerate(g.graph["outputs"]):
        by_shape.setdefault(tuple(g.nodes[out]["shape"]), []).append((index, out))
    groups = []
    several = len(by_shape) > 1
    for k, (shape, outs) in enumerate(by_shape.items()):
        needed = set()
        for _, o in outs:
            needed |= nx.ancestors(g, o) | {o}
        nodes = tuple(
            sorted((n for n in needed if g.nodes[n]["op"] not in ("param", "const")), key=order.get)
        )
        inputs = tuple(p for p in g.graph["params"] if p in needed)
        reason = (
            f"outputs of shape {list(shape)}; other outputs have other shapes"
            if several
            else "every output has one shape: the whole graph is one kernel"
        )
        groups.append(FusionGroup(f"{g.graph['name']}_k{k}", shape, nodes, inputs, tuple(outs), reason))
    return groups
