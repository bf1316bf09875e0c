"""The launch plan: what a framework needs to run the kernels without fusec.

Plain JSON-able data: kernels in launch order, each with its arguments (in
order, with dtype and shape in terms of the graph's symbolic sizes) and its
global size as an expression over those sizes.
"""

from __future__ import annotations

import math

import networkx as nx

from ..passes.fuse import view_root
from . import column_rows, gemm_layouts
from .kernel_args import Count, Extent, KernelArg, Output, Param, Stored
from .opencl_c import COMPUTE, CTYPE_BYTES, STORAGE, temp_name

PLAN_VERSION = 1
# What the kernels must be built with (the runtime builds with the same).
BUILD_OPTIONS = "-cl-std=CL1.2"


def _dims(shape) -> list:
    return [d if isinstance(d, int) else str(d) for d in shape]


def size_expr(shape) -> str:
    """The element count of a shape as an expression over its symbols: "B*256"."""
    consts = math.prod(d for d in shape if isinstance(d, int))
    syms = [str(d) for d in shape if not isinstance(d, int)]
    parts = syms + ([str(consts)] if consts != 1 or not syms else [])
    return "*".join(parts)


def make_plan(g: nx.DiGraph, kernels: list) -> dict:
    params = [g.nodes[p] for p in g.graph["params"]]
    outputs = [g.nodes[o] for o in g.graph["outputs"]]
    plan_kernels, scratch = [], []
    for k in kernels:
        grp = k.group
        scratch += [
            {
                "name": temp_name(n),
                "ctype": STORAGE[g.nodes[n]["dtype"]],
                "elements": size_expr(g.nodes[n]["shape"]),
            }
            for n in grp.stores
        ]
        if grp.kind == "reduction":
            launches, more = _reduction_launches(g, k)
            plan_kernels += launches
            scratch += more
            continue
        if grp.kind == "columns":
            launches, more = k.plan_launches(
                lambda a, values, k=k: _arg(g, k, a, values), _reads(g, grp), size_expr
            )
            plan_kernels += launches
            scratch += more
            continue
        if grp.kind == "gemm":
            launches, more = _gemm_launches(g, k)
            if k.tail is not None:  # the row kernel after it runs inside (gemm_rows.py)
                rows = _rows_launch(g, k.tail.rows)
                main = launches[-1]
                main["ops"] += rows["ops"]
                main["reads"] += [r for r in rows["reads"] if r not in main["writes"]]
                main["writes"] += rows["writes"]
                main["why"] += "; then " + rows["why"] + ", per row in the same work-item"
            plan_kernels += launches
            scratch += more
            continue
        if grp.kind == "rows":
            if k.in_gemm is None:
                plan_kernels.append(_rows_launch(g, k))
            continue
        w = k.elements_per_item
        # a launch over rows (broadcast operands) names its row counts
        counts = k.count_exprs(size_expr) if k.split is not None else {}
        items = k.work_items(counts, size_expr(grp.shape))
        plan_kernels.append(
            {
                "name": grp.name,
                "ops": [g.nodes[n]["op"] for n in grp.nodes],
                "args": [_arg(g, k, a, counts) for a in k.args],
                "elements": size_expr(grp.shape),
                "elements_per_work_item": w,
                # ceil(n / w) work-items (per row, over the rows), rounded up to whole work-groups
                "global_size": f"ceil(({items}) / {k.local_size}) * {k.local_size}",
                "local_size": [k.local_size],
                "reads": _reads(g, grp),
                "writes": [f"out{i}" for i, _ in grp.outputs],
                "why": grp.reason,
            }
        )
    plan = {
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
    if scratch:
        plan["scratch"] = scratch
    if "grad_of" in g.graph:
        plan["gradients"] = _gradient_notes(g, kernels)
    return plan


def _memory_name(g, node: int) -> str:
    """How the plan names the memory a kernel reads a value from."""
    if g.nodes[node]["op"] == "param":
        return g.nodes[node]["name"]
    if node in g.graph["outputs"]:
        return f"out{g.graph['outputs'].index(node)}"
    return temp_name(node)


def _reads(g, grp) -> list[str]:
    return [_memory_name(g, view_root(g, p)) for p in grp.inputs]


# the plan's name for each kind of argument (docs/plan.md)
_EXTENT_KINDS = {
    "group": ("size", "dim"),
    "prologue": ("psize", "pdim"),
    "result": ("osize", "odim"),
}


def _arg(g, k, arg: KernelArg, values: dict) -> dict:
    """One argument of a launch, as the plan describes it."""
    src = arg.source
    out = {
        "name": arg.name,
        "kind": "",
        "dtype": arg.dtype,
        "ctype": arg.ctype,
        "bytes": CTYPE_BYTES[arg.ctype],
    }
    if isinstance(src, Extent):
        # the kernel's own index space, a GEMM prologue's (x) or a reduction epilogue's (its result)
        shape = {
            "group": k.group.shape,
            "prologue": g.nodes[k.group.operands[0]]["shape"] if k.group.operands else (),
            "result": g.nodes[k.group.anchor]["shape"] if k.group.anchor is not None else (),
        }[src.space]
        size_kind, dim_kind = _EXTENT_KINDS[src.space]
        out["kind"] = size_kind if src.axis is None else dim_kind
        out["value"] = size_expr(shape) if src.axis is None else str(_dims(shape)[src.axis])
    elif isinstance(src, Count):
        out["kind"], out["value"] = "count", values[src.name]
    elif isinstance(src, Param):
        out["kind"], out["param"] = ("scalar" if src.by_value else "buffer"), src.name
    elif isinstance(src, Output):
        out["kind"], out["output"] = "output", src.index
    elif isinstance(src, Stored) and not src.write and src.node in g.graph["outputs"]:
        # a stored value that is also a graph output: read from the output's buffer
        out["kind"], out["output"] = "output", g.graph["outputs"].index(src.node)
    elif isinstance(src, Stored):
        out["kind"], out["scratch"] = ("store" if src.write else "temp"), arg.name
    elif src.role == "partial":
        out["kind"], out["scratch"] = "partial", f"{k.group.name}_partial"
    else:  # w's column panels, or x's row panels
        out["kind"], out["scratch"] = "packed", f"{k.group.name}_{src.role}"
    return out


def _reduction_launches(g, k) -> tuple[list, list]:
    """A reduction group's two launches, and the scratch buffers they use."""
    grp, ls = k.group, k.local_size
    shape = grp.shape
    m = size_expr(tuple(shape[i] for i in k.kept))
    r = size_expr(tuple(shape[i] for i in k.axes))
    from .reduction import MIN_STEPS_PER_ITEM

    per_chunk = f"ceil(({m}) / {k.outputs_per_item})"
    chunks = f"max(1, min(ceil({k.fill_items} / {per_chunk}), ceil(({r}) / {MIN_STEPS_PER_ITEM})))"
    items, pls = f"ceil(({m}) / {k.outputs_per_item})*({chunks})", ls
    if k.streams_rows:  # codegen/column_rows.py: one work-item per work-group
        chunks = k.streamed_chunks_expr(m, r)
        items, pls = column_rows.items_expr(k, {"cols": m, "chunks": chunks}), 1
    values = {"m": m, "r": r, "chunks": chunks}
    node = g.nodes[grp.anchor]
    writes = [f"out{i}" for i, _ in grp.outputs] + [temp_name(n) for n in grp.stores]
    common = {"elements_per_work_item": 1, "local_size": [ls], "why": grp.reason}
    launches = [
        {
            "name": f"{grp.name}_partial",
            "ops": [g.nodes[n]["op"] for n in grp.nodes] + [node["op"]],
            "args": [_arg(g, k, a, values) for a in k.partial_args],
            "elements": f"({m})*({chunks})",
            # work-items: outputs_per_item outputs each, for each chunk
            "global_size": f"ceil(({items}) / {pls}) * {pls}",
            "reads": _reads(g, grp),
            "writes": [f"{grp.name}_partial"],
            **common,
            "local_size": [pls],
        },
        {
            "name": f"{grp.name}_finish",
            "ops": [node["op"]],
            "args": [_arg(g, k, a, values) for a in k.finish_args],
            "elements": m,
            "global_size": f"ceil(({m}) / {ls}) * {ls}",
            "reads": [f"{grp.name}_partial"],
            "writes": writes,
            **common,
        },
    ]
    scratch = [
        {
            "name": f"{grp.name}_partial",
            "ctype": COMPUTE[node["dtype"]],
            "elements": f"({m})*({chunks})",
        }
    ]
    return launches, scratch


def _rows_launch(g, k) -> dict:
    """A row group's one launch: a row per work-item (CPUs) or per work-group (GPUs)."""
    grp, ls = k.group, k.local_size
    counts = k.count_exprs(size_expr)
    items = k.work_items(counts)
    return {
        "name": grp.name,
        "ops": [g.nodes[n]["op"] for n in (*grp.reductions, *grp.nodes, *grp.epilogue)],
        "args": [_arg(g, k, a, counts) for a in k.all_args],
        "elements": counts["rows"],  # rows of no elements still have their sums (0)
        "elements_per_work_item": None,
        "global_size": f"ceil(({items}) / {ls}) * {ls}",
        "local_size": [ls],
        "reads": _reads(g, grp) + [_memory_name(g, view_root(g, p)) for p in grp.epilogue_inputs],
        "writes": [f"out{i}" for i, _ in grp.outputs] + [temp_name(n) for n in grp.stores],
        "why": grp.reason,
    }


def _gemm_launches(g, k) -> tuple[list, list]:
    """A GEMM kernel with its epilogue over a 2-D grid, after the kernel that
    packs w where the layout wants that (every call: w may have changed)."""
    grp = k.group
    m, n, kk = size_expr(k.m_dims), size_expr(k.n_dims), size_expr(k.k_dims)
    values = {"M": m, "N": n, "K": kk}
    packed_name, xpacked_name = f"{grp.name}_packed", f"{grp.name}_xpacked"

    def arg(spec):
        return _arg(g, k, spec, values)

    args = [arg(spec) for spec in k.main_args]
    global_size, local_size = k.geometry_exprs(m, n, kk)
    x_reads = [_memory_name(g, grp.operands[0])]
    if grp.prologue:  # x is computed as it is loaded, from these
        x_reads = [_memory_name(g, p) for p in grp.prologue_inputs]
    w_read = _memory_name(g, grp.operands[1])
    launches, scratch = [], []
    if k.packs:
        pack_global, pack_local = gemm_layouts.pack_geometry_exprs(k.layout, n, kk)
        launches.append(
            {
                "name": f"{grp.name}_pack",
                "ops": ["pack"],
                "args": [arg(spec) for spec in k.pack_args],
                "elements": f"({n})*({kk})",
                "elements_per_work_item": None,
                "global_size": pack_global,
                "local_size": pack_local,
                "reads": [w_read],
                "writes": [packed_name],
                "why": "the GEMM's layout reads w as column panels",
            }
        )
        scratch.append(
            {
                "name": packed_name,
                "ctype": COMPUTE[k.dtype],
                "elements": gemm_layouts.packed_elements_expr(k.layout, n, kk),
            }
        )
        w_read = packed_name
    if k.packs_x:
        xpack_global, xpack_local = gemm_layouts.xpack_geometry_exprs(k.layout, m, kk)
        launches.insert(
            0,
            {
                "name": f"{grp.name}_xpack",
                "ops": ["pack"],
                "args": [arg(spec) for spec in k.xpack_args],
                "elements": f"({m})*({kk})",
                "elements_per_work_item": None,
                "global_size": xpack_global,
                "local_size": xpack_local,
                "reads": x_reads,
                "writes": [xpacked_name],
                "why": "the GEMM reads a transposed x as row panels",
            },
        )
        scratch.append(
            {
                "name": xpacked_name,
                "ctype": COMPUTE[k.dtype],
                "elements": gemm_layouts.packed_x_elements_expr(k.layout, m, kk),
            }
        )
        x_reads = [xpacked_name]
    launches.append(
        {
            "name": grp.name,
            "ops": [g.nodes[x]["op"] for x in grp.prologue]
            + [g.nodes[grp.anchor]["op"]]
            + [g.nodes[x]["op"] for x in grp.nodes],
            "args": args,
            "elements": size_expr(grp.shape),
            "elements_per_work_item": None,
            "global_size": global_size,
            "local_size": local_size,
            "reads": x_reads + [w_read] + _reads(g, grp),
            "writes": [f"out{i}" for i, _ in grp.outputs] + [temp_name(x) for x in grp.stores],
            "why": grp.reason,
        }
    )
    return launches, scratch


def _gradient_notes(g, kernels) -> dict:
    """What a backward graph keeps in memory between kernels and which forward
    ops each kernel recomputes rather than reading them back."""
    forward = set(g.graph.get("forward_nodes", ()))
    notes = {
        "of": list(g.graph["grad_of"]),
        "saved": [temp_name(n) for k in kernels for n in k.group.stores],
        "recomputed": {
            k.group.name: [g.nodes[n]["op"] for n in k.group.nodes if n in forward] for k in kernels
        },
    }
    # one pass writing the full-shape outputs (dx) and summing over the rows (dw, db, a loss)
    fused = [k for k in kernels if k.group.kind == "columns"]
    if fused:
        notes["fused"] = [_fused_note(g, k) for k in fused]
    return notes


def _fused_note(g, k) -> dict:
    grp = k.group
    results = {r for r, _ in grp.sums}
    return {
        "group": grp.name,
        "launches": list(k.entry_points),
        "space": _dims(grp.shape),
        "writes": [f"out{i}" for i, n in grp.outputs if n not in results],
        "sums": [
            {"output": f"out{i}", "shape": _dims(g.nodes[n]["shape"])}
            for i, n in grp.outputs
            if n in results
        ],
    }
