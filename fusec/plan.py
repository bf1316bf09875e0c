"""The launch plan: what a framework needs to run the kernels without fusec.

Plain JSON-able data: kernels in launch order, each with its arguments (in
order, with dtype and shape in terms of the graph's symbolic sizes) and its
global size as an expression over those sizes.
"""

from __future__ import annotations

import math

import networkx as nx

from .codegen import COMPUTE, STORAGE, ElementwiseKernel

PLAN_VERSION = 1
# What the kernels must be built with (the runtime builds with the same).
BUILD_OPTIONS = "-cl-std=CL1.2"
CTYPE_BYTES = {"char": 1, "uchar": 1, "half": 2, "int": 4, "float": 4, "long": 8, "double": 8}


def _dims(shape) -> list:
    return [d if isinstance(d, int) else str(d) for d in shape]


def size_expr(shape) -> str:
    """The element count of a shape as an expression over its symbols: "B*256"."""
    consts = math.prod(d for d in shape if isinstance(d, int))
    syms = [str(d) for d in shape if not isinstance(d, int)]
    parts = syms + ([str(consts)] if consts != 1 or not syms else [])
    return "*".join(parts)


def make_plan(g: nx.DiGraph, kernels: list[ElementwiseKernel]) -> dict:
    params = [g.nodes[p] for p in g.graph["params"]]
    outputs = [g.nodes[o] for o in g.graph["outputs"]]
    plan_kernels = []
    for k in kernels:
        grp = k.group
        w = k.elements_per_item
        args = []
        for name, kind, dtype in k.args:
            # ctype: the C type passed by value, or a buffer's element type in memory
            ctype = "long" if kind in ("size", "dim") else (COMPUTE if kind == "scalar" else STORAGE)[dtype]
            arg = {"name": name, "kind": kind, "dtype": dtype, "ctype": ctype, "bytes": CTYPE_BYTES[ctype]}
            if kind == "size":
                arg["value"] = size_expr(grp.shape)
            elif kind == "dim":
                arg["value"] = str(_dims(grp.shape)[int(name[1:])])
            elif kind == "output":
                arg["output"] = int(name[3:])
            else:
                arg["param"] = name
            args.append(arg)
        plan_kernels.append(
            {
                "name": grp.name,
                "ops": [g.nodes[n]["op"] for n in grp.nodes],
                "args": args,
                "elements": size_expr(grp.shape),
                "elements_per_work_item": w,
                # ceil(n / w) work-items in one dimension; a local size is left to the driver
                # ceil(n / w) work-items, rounded up to whole work-groups
                "global_size": f"ceil(ceil(({size_expr(grp.shape)}) / {w}) / {k.local_size}) * {k.local_size}",
                "local_size": [k.local_size],
                "reads": [g.nodes[p]["name"] for p in grp.inputs],
                "writes": [f"out{i}" for i, _ in grp.outputs],
                "why": grp.reason,
            }
        )
    return {
        "version": PLAN_VERSION,
        "graph": g.graph["name"],
        "build_options": BUILD_OPTIONS,
        "params": [
            {
                "name": p["name"],
                "dtype": p["dtype"],
                "shape": _dims(p["shape"]),
                # arrays: the element type in memory; scalars: the type passed by value
                "ctype": (STORAGE if p["shape"] else COMPUTE)[p["dtype"]],
            }
            for p in params
        ],
        "outputs": [
            {"dtype": o["dtype"], "shape": _dims(o["shape"]), "ctype": STORAGE[o["dtype"]]}
            for o in outputs
        ],
        "kernels": plan_kernels,
    }
