"""f16 GEMMs compute in f32: their operands are cast up as they are read, and
the result is rounded to f16 once, where it is stored.

fusec's GEMM kernels multiply f32 and f64. Rather than a third variant that
loads halves in every layout, an f16 `linear`/`matmul` becomes the f32 GEMM
between casts: each operand is stored as f32 by one elementwise pass (not
converted in the GEMM's inner loop, see fuse.gemm_prologue), and the cast
back runs in the epilogue with the rest. PyTorch's CPU f16 matmul also
accumulates in f32.
"""

from __future__ import annotations

import networkx as nx

from ..ir.graph import add_node, replace_uses
from ..ir.registry import lookup


def _cast(g: nx.DiGraph, arg: int, to: str, pos, connect: bool = True) -> int:
    data = g.nodes[arg]
    return add_node(
        g,
        "cast",
        (arg,) if connect else (),
        (("dtype", ("dtype", to)),),
        pos,
        infix=None,
        operand_dtypes=(data["dtype"],),
        dtype=to,
        shape=tuple(data["shape"]),
    )


def widen_f16_gemms(g: nx.DiGraph) -> nx.DiGraph:
    """The graph with every f16 GEMM computed in f32 between casts (a copy)."""
    gemms = [
        n
        for n, d in g.nodes(data=True)
        if d["op"] not in ("param", "const")
        and lookup(d["op"]).kind == "gemm"
        and d["dtype"] == "f16"
    ]
    if not gemms:
        return g
    g = g.copy()
    widened: dict[int, int] = {}  # f16 value -> its f32 cast, one per value
    for n in gemms:
        data = g.nodes[n]
        for a in data["args"]:
            if a not in widened:
                widened[a] = _cast(g, a, "f32", data["pos"])
        # consumers read the result rounded once (in the epilogue); the GEMM the f32 casts
        result = _cast(g, n, "f16", data["pos"], connect=False)
        replace_uses(g, n, result)
        g.nodes[result]["args"] = (n,)
        g.add_edge(n, result)
        for a in set(data["args"]):  # linear(x, x): one edge for two uses
            g.remove_edge(a, n)
        data["args"] = tuple(widened[a] for a in data["args"])
        for c in data["args"]:
            g.add_edge(c, n)
        data["operand_dtypes"] = ("f32",) * len(data["args"])
        data["dtype"] = "f32"
    return g
