"""Fusion groups within the device's kernel-argument budget.

A kernel's arguments may take CL_DEVICE_MAX_PARAMETER_SIZE bytes in all
(1024 on AMD GPUs and the OpenCL minimum, 4352 on NVIDIA, 3840 on Intel's
CPU runtime): past it the build or the launch fails. Each argument counts 8
bytes (a pointer, a long; a scalar is at most that). An elementwise group
over the budget is split: a value whose inputs would not fit (a sum of 200
parameters) has its widest operands stored by an earlier kernel; then its
outputs and stored values, in topological order, are dealt into consecutive
kernels, each taking what fits. A reduction over it stores its prologue by
a kernel of its own (split so) and reads that (or the output the graph
returns); a GEMM or reduction still over it stores its result for a kernel
computing its epilogue (split so). A columns merge over it is not made.
Others (a row group) are not split: codegen refuses them with a
CompileError naming the kernel, never a driver error.
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from .fuse import FusionGroup, _region, view_root
from .fuse import _split as region_parts

ARG_BYTES = 8
ROW_COUNT_ARGS = 2  # a row-layout elementwise kernel's counts (codegen/row_layout.ROW_COUNTS)


def fixed_bytes(shape) -> int:
    """An elementwise kernel's arguments besides its memory: n, its extents, row counts."""
    return ARG_BYTES * (1 + len(shape) + ROW_COUNT_ARGS)


def group_bytes(g: nx.DiGraph, grp) -> int:
    """A conservative count of a group's kernel arguments (see the module's doc);
    a kind other than elementwise may add a few counts, extents and scratch buffers."""
    read = (*grp.inputs, *grp.epilogue_inputs, *grp.prologue_inputs, *grp.operands)
    written = len(grp.outputs) + len(grp.stores) + 2 * len(grp.sums)  # a sum's partials too
    extra = 0 if grp.kind == "elementwise" else ARG_BYTES * (8 + len(grp.shape))
    memory = len({view_root(g, n) for n in read}) + written
    return fixed_bytes(grp.shape) + ARG_BYTES * memory + extra


def within_budget(g: nx.DiGraph, groups: list, budget: int | None, order: dict, done=None) -> list:
    """`groups`, those over `budget` bytes of arguments split (see the module's doc;
    `order`: each node's position in a topological order of g; `done`: values
    earlier splits store, read rather than computed again)."""
    fitted, done = [], set() if done is None else done
    for grp in groups if budget is not None else ():
        (operand,) = g.nodes[grp.anchor]["args"] if grp.kind == "reduction" else (None,)
        over = group_bytes(g, grp) > budget
        if over and grp.nodes and operand is not None:
            why = f"the operand of {grp.name}, which would pass {group_bytes(g, grp)} bytes"
            pro = FusionGroup(f"{grp.name}_operand", grp.shape, grp.nodes, grp.inputs, (), why)
            if operand not in g.graph["outputs"]:  # else read from the output's buffer
                fitted += within_budget(g, [replace(pro, stores=(operand,))], budget, order, done)
            grp = replace(grp, nodes=(), inputs=(operand,))
        if grp.kind in ("gemm", "reduction") and group_bytes(g, grp) > budget:
            fitted, grp = _without_epilogue(g, grp, fitted)
        over = group_bytes(g, grp) > budget
        fitted += (
            _split(g, grp, budget, order, done) if over and grp.kind == "elementwise" else [grp]
        )
    return fitted if budget is not None else groups


def _without_epilogue(g, grp, fitted: list) -> tuple:
    """(`fitted` and a GEMM or reduction group storing its result, a group that
    computes its epilogue from that), or (fitted, grp) where it has none."""
    gemm, a = grp.kind == "gemm", grp.anchor
    nodes, inputs = (grp.nodes, grp.inputs) if gemm else (grp.epilogue, grp.epilogue_inputs)
    if not nodes:
        return fitted, grp
    mine = tuple(o for o in grp.outputs if o[1] == a)
    why = f"the epilogue of {grp.name}, which would pass {group_bytes(g, grp)} bytes"
    rest = tuple(o for o in grp.outputs if o[1] != a)
    epi = FusionGroup(
        f"{grp.name}_epilogue", tuple(g.nodes[a]["shape"]), nodes, (*inputs, a), rest, why
    )
    epi = replace(epi, stores=tuple(s for s in grp.stores if s != a))
    cut = dict(nodes=(), inputs=()) if gemm else dict(epilogue=(), epilogue_inputs=())
    return [*fitted, replace(grp, outputs=mine, stores=() if mine else (a,), **cut)], epi


def _split(g, grp, budget: int, order: dict, done: set) -> list:
    computed = set(grp.nodes)
    cuts = set(grp.stores)  # values stored anyway: a later kernel may read them
    reads: dict = {}  # computed node -> the memory it reads (as a kernel computing it would)

    def read_by(a) -> set:
        if a in cuts or a in done:
            return {a}
        if a in computed:
            return reads[a]
        return set() if g.nodes[a]["op"] == "const" else {view_root(g, a)}

    # (an op has a few operands: once they are stored, it fits; codegen checks)
    room = budget - fixed_bytes(grp.shape) - ARG_BYTES  # one output
    for n in grp.nodes:
        args = g.nodes[n]["args"]
        total = set().union(*map(read_by, args))
        # operands computed here that read the most are stored by an earlier kernel
        for a in sorted((a for a in args if a in computed), key=lambda a: -len(read_by(a))):
            if ARG_BYTES * len(total) <= room:
                break
            cuts.add(a)
            total = set().union(*map(read_by, args))
        reads[n] = total

    # a value also returned is read from the output's buffer (as fuse stores it)
    returned = {n for _, n in grp.outputs}
    items = sorted(
        [*grp.outputs, *((None, c) for c in cuts - returned - done)], key=lambda it: order[it[1]]
    )
    chunks, memory = [], set()
    for item in items:
        node, shape = item[1], tuple(g.nodes[item[1]]["shape"])
        mine = reads[node] if node in computed else {view_root(g, node)}
        outs = len(chunks[-1][1]) + 1 if chunks else 1
        fits = fixed_bytes(shape) + ARG_BYTES * (len(memory | mine) + outs) <= budget
        if not chunks or chunks[-1][0] != shape or not fits:
            chunks.append((shape, []))
            memory = set()
        chunks[-1][1].append(item)
        memory |= mine

    stored = {n for n in grp.inputs if g.nodes[n]["op"] != "param"} | cuts | done
    done |= cuts - returned
    why = f"{grp.reason}; one kernel's arguments would pass {group_bytes(g, grp)} bytes"
    parts = []
    for k, (shape, chunk) in enumerate(chunks):
        roots = [n for _, n in chunk]
        nodes, inputs = region_parts(g, _region(g, roots, stored), stored, order, roots=roots)
        outputs = tuple((i, n) for i, n in chunk if i is not None)
        part = FusionGroup(f"{grp.name}_{k}", shape, nodes, inputs, outputs, why)
        stores = tuple(n for i, n in chunk if i is None)
        parts.append(replace(part, stores=stores, reason=f"{why}: part {k + 1} of {len(chunks)}"))
    return parts
