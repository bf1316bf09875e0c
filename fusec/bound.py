"""Bound graphs: a compiled graph with some parameters fixed (`CompiledGraph.bind`).

A layer's weights, say: bound values are copied to the device once, a GEMM
packs a bound weight once, and what depends on bound values alone is
computed by the first call and kept (`CompiledGraph._run` consults this).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

from .diagnostics import CallError
from .runtime.arguments import bind_arguments, check_argument

if TYPE_CHECKING:
    from .api import CompiledGraph


class BoundGraph:
    """A compiled graph with some parameters fixed (`CompiledGraph.bind`); called
    with the others, positionally in the graph's order or by name."""

    def __init__(self, graph: CompiledGraph, constants: dict):
        import pyopencl.array as cla

        self.graph = graph
        self.name = graph.name
        bad = [k for k in constants if k not in graph.param_names]
        if bad:
            raise CallError(f"{graph.name}() has no parameter {bad[0]!r} (parameters: {', '.join(graph.param_names)})")
        self.param_names = [n for n in graph.param_names if n not in constants]
        self.on_device = any(isinstance(v, cla.Array) for v in constants.values())
        runtime = graph.runtime
        self.sizes: dict[str, int] = {}
        self.values: dict = {}
        self.buffers: dict = {}
        for p in graph.params:
            if p["name"] not in constants:
                continue
            value = check_argument(p, constants[p["name"]], self.sizes, runtime.context)
            if p["shape"]:  # a private device copy: the caller may change theirs
                value = value.copy() if isinstance(value, cla.Array) else cla.to_device(runtime.queue, value)
                if value.size:
                    self.buffers[p["name"]] = value.data
            self.values[p["name"]] = value
        self.packed: dict = {}  # GEMM group name -> its w, packed at the first call
        # Values computed from bound parameters alone (a weight's cast to f32,
        # w * 2), and the kernels that compute nothing else: run once, kept.
        g = graph.graph
        self.constant_nodes = set()
        for n in nx.topological_sort(g):
            data = g.nodes[n]
            if data["op"] == "const" or (data["op"] == "param" and data["name"] in constants) or (
                data["op"] != "param" and data["args"] and all(a in self.constant_nodes for a in data["args"])
            ):
                self.constant_nodes.add(n)
        self.constant_kernels = {
            k.group.name for k in graph.kernels
            if not k.group.outputs and k.group.stores and all(n in self.constant_nodes for n in _reads(k.group))
        }
        self.kept: dict = {}  # constant kernel -> {node: buffer} of what it stored at the first call

    def __call__(self, *args, **kwargs):
        import pyopencl.array as cla

        bound = bind_arguments(self.name, self.param_names, args, kwargs)
        on_device = any(isinstance(v, cla.Array) for v in bound.values()) if bound else self.on_device
        return self.graph._run(bound, on_device, pinned=self)

    def __repr__(self) -> str:
        return f"<fusec graph {self.name} with {', '.join(self.values)} bound>"


def _reads(group) -> set:
    """The nodes a fusion group reads from memory."""
    return {*group.inputs, *group.operands, *group.epilogue_inputs, *group.prologue_inputs}
