"""Row group -> OpenCL C: chained reductions over each row, then the row's outputs, one kernel.

The index space is the reductions' operand: `rows` rows of `inner`
contiguous elements (passes/rows.py). For each row, in one kernel:

1. the reductions in passes over the row (row_passes.py): each one's
   prologue (the elementwise ops feeding it, over the row) combined into an
   accumulator; the earlier passes' results are registers, splatted where the
   prologue reads them (softmax's sum reads the max). Reductions that read
   none of each other's results share a pass. The row is read again for
   each pass: from cache, it was just read;
2. the values over the row that read them (softmax's output), stored;
3. the reductions' results and the values computed from them over the result
   (the epilogue), stored once per row.

Two layouts, chosen by the device:
- CPUs: one row per work-item, explicit vectors of the device's width
  (`vec_type_hint` tells Intel's CPU runtime the kernel is vectorised
  already), the lanes combined at the end, a scalar tail;
- GPUs: one work-group per row, each work-item striding over the row, the
  work-group's values combined through local memory (a tree), every barrier
  reached by the whole work-group.
Both combine in a fixed order: results do not depend on timing.
"""

from __future__ import annotations

import dataclasses
import math

import networkx as nx

from ..ir import dtypes as dt
from ..ir.registry import lookup
from ..passes.fuse import FusionGroup, view_root
from .device import DeviceInfo
from .elementwise import ElementwiseKernel
from .kernel_args import Count, KernelArg, Launch, trial_kind
from .opencl_c import COMPUTE, CTYPE_BYTES
from .reduction import _Epilogue
from .row_layout import ROW_COUNTS
from .row_passes import pass_lines, row_passes

GPU_ROW_ITEMS = 256  # work-items per row on GPUs (at most the device's work-group size)


GPU_MIN_ROW_ITEMS = 32  # a warp (NVIDIA), half a wavefront (AMD)


def gpu_row_items(device: DeviceInfo, row_length=None) -> int:
    """Work-items per row on GPUs: a power of two (the local tree halves it)
    within the device's work-group size; for a row of known length, no more
    than it has vectors (a 10-class softmax takes 32, not 256)."""
    limit = min(GPU_ROW_ITEMS, device.max_work_group_size)
    if isinstance(row_length, int):
        vectors = -(-row_length // max(device.vector_width, 1))
        limit = min(limit, max(GPU_MIN_ROW_ITEMS, vectors))
    return 1 << (max(limit, 1).bit_length() - 1)


def cpu_row_width(g: nx.DiGraph, group: FusionGroup, device: DeviceInfo) -> int:
    """Lanes per vector along a row on CPUs: the SIMD register's (16 floats with
    AVX-512: a row's exp-heavy passes are compute-bound; 4096 x 1024 softmax
    took 3.1-3.2 ms at 16, 3.6-4.0 at 8, Intel's CPU runtime on a loaded Zen 5),
    within the widest vector its compiler takes (integers: twice that where
    `wide_int_vectors`)."""
    values = (*group.inputs, *group.nodes, *group.reductions, *(n for _, n in group.outputs))
    lanes = device.native_vector_width
    for n in values:
        dtype = dt.concrete(g.nodes[n]["dtype"])
        room = device.max_vector_bytes * (
            2 if device.wide_int_vectors and not dt.is_float(dtype) else 1
        )
        lanes = min(lanes, room // CTYPE_BYTES[COMPUTE[dtype]])
    return max(device.vector_width, 1 << (max(lanes, 1).bit_length() - 1))


# Rows known to be shorter than one vector along the row keep the device's
# width and no vec_type_hint on CPUs: Intel's CPU runtime then vectorises
# across rows (work-items). Kernel time, 4096 rows, min of 30 interleaved
# rounds, loaded Zen 5: softmax over 10 columns 0.059 ms that way, 0.130
# with 16 lanes along the row (all of it the scalar tail); 16: 0.049 vs
# 0.048; 32: 0.147 vs 0.113; 64: 0.123 vs 0.085 (log_softmax fwd+bwd: 10:
# 0.107 vs 0.215; 32: 0.123 vs 0.100; 64: 0.203 vs 0.141). Rows of 64 took
# this path until the row passes had four accumulators (row_passes.py).


def row_length(g: nx.DiGraph, group: FusionGroup) -> int | None:
    """Elements per row, where the shape says it (None for a symbolic size)."""
    data = g.nodes[group.reductions[0]]
    shape = tuple(g.nodes[data["args"][0]]["shape"])
    axes = lookup(data["op"]).reduce_shape(shape, dict(data["attrs"]))[0]
    row = [shape[i] for i in axes]
    return math.prod(row) if all(isinstance(d, int) for d in row) else None


class RowReductionKernel(ElementwiseKernel):
    def __init__(self, g: nx.DiGraph, group: FusionGroup, device: DeviceInfo):
        length = row_length(g, group)
        width = cpu_row_width(g, group, device) if device.is_cpu else device.vector_width
        short = length is not None and length < width
        self.vectorised = device.is_cpu and device.vector_width > 1 and not short
        if self.vectorised:
            device = dataclasses.replace(device, vector_width=width)
        row_nodes = set(group.nodes)
        # values over the row are this kernel's; the members and the values over
        # the result are the epilogue's (stored once per row)
        self.row_outputs = tuple((i, n) for i, n in group.outputs if n in row_nodes)
        self.row_stores = tuple(n for n in group.stores if n in row_nodes)
        over_row = dataclasses.replace(group, outputs=self.row_outputs, stores=self.row_stores)
        super().__init__(g, over_row, device)
        self.group = group
        (self.split,) = {len(group.shape) - len(self._axes(r)) for r in group.reductions}
        self.args += [KernelArg(name, Count(name), "i64") for name in ROW_COUNTS]
        self.epi = _Epilogue(
            g,
            FusionGroup(
                f"{group.name}_epilogue",
                tuple(g.nodes[group.anchor]["shape"]),
                group.epilogue,
                group.epilogue_inputs,
                tuple(o for o in group.outputs if o not in self.row_outputs),
                "",
                stores=tuple(n for n in group.stores if n not in self.row_stores),
            ),
            device,
        )
        # each member's result is a register of the row, r<node>; so are its views
        self.held = {r: f"r{r}" for r in group.reductions}
        for n in g.nodes:
            root = view_root(g, n)
            if root != n and root in self.held:
                self.held[n] = self.held[root]
        self.items_per_row = 1 if device.is_cpu else gpu_row_items(device, length)
        self.loaded: dict[int, str] = {}
        self.stash = self._choose_stash()
        # the GEMM kernel that runs this kernel's rows after its own (gemm_rows.py)
        self.in_gemm = None

    def _axes(self, r: int) -> tuple:
        data = self.g.nodes[r]
        shape = tuple(self.g.nodes[data["args"][0]]["shape"])
        return lookup(data["op"]).reduce_shape(shape, dict(data["attrs"]))[0]

    # -- sizes and launches ---------------------------------------------------------

    @property
    def all_args(self) -> list[KernelArg]:
        return self.args + self.epi.args

    @property
    def local_size(self) -> int:
        return self.device.local_size if self.device.is_cpu else self.items_per_row

    @property
    def elements_per_item(self) -> int:
        return self.device.vector_width

    def work_items(self, counts: dict, n=None) -> object:
        """Work-items before rounding to whole work-groups: one per row (CPUs),
        a work-group per row (GPUs); `counts`: numbers or the plan's expressions."""
        rows, per_row = counts["rows"], self.items_per_row
        if isinstance(rows, int):
            return rows * per_row
        return f"({rows})*{per_row}" if per_row > 1 else rows

    def launches(self, shape, sizes=None) -> list[Launch]:
        counts = self.counts(shape)
        if counts["rows"] == 0 or self.in_gemm is not None:
            return []
        ls = self.local_size
        items = self.work_items(counts)
        return [Launch(self.group.name, tuple(self.all_args), (-(-items // ls) * ls,), (ls,))]

    def trial_launches(self) -> list[tuple[str, list[str], tuple]]:
        if self.in_gemm is not None:  # no entry point of its own (gemm_rows.py)
            return []
        return [(self.group.name, [trial_kind(a) for a in self.all_args], (self.local_size,))]

    # -- source -----------------------------------------------------------------------

    def _needs(self, roots, loaded=()) -> set:
        """The nodes and inputs computing `roots` needs, the members (and `loaded`) given."""
        need, stack = set(), list(roots)
        while stack:
            n = stack.pop()
            if n in need or n in self.held or n in loaded:
                continue
            need.add(n)
            if n in self.group.nodes:
                stack.extend(self.g.nodes[n]["args"])
        return need

    def _choose_stash(self) -> tuple[int, int] | None:
        """(member, output number): a member's operand (softmax's exp(x - max))
        that the row's outputs read too, kept in that output's memory as the
        member's pass computes it, and read back by the output pass instead of
        computed again (an exp per element less). Only where nothing after the
        member reads memory but that (a row whose output is its input, `out=x`,
        stays right) and the output stores the compute type (f32, f64)."""
        roots = [n for _, n in self.row_outputs] + list(self.row_stores)
        for k, r in enumerate(self.group.reductions):
            (operand,) = self.g.nodes[r]["args"]
            if operand not in self.group.nodes or operand not in self._needs(roots):
                continue
            later = [self.g.nodes[m]["args"][0] for m in self.group.reductions[k + 1 :]]
            if set(self.group.inputs) & self._needs(roots + later, loaded={operand}):
                continue
            dtype = self.g.nodes[operand]["dtype"]
            for i, n in self.row_outputs:
                if self.g.nodes[n]["dtype"] == dtype and dtype in ("f32", "f64"):
                    return r, i
        return None

    def _phase(self, roots, w: int, base: str, store: bool = False) -> tuple[list[str], dict]:
        """compute() over just the nodes and inputs `roots` need (the members are
        registers, a stashed value is read back); with `store`, the row's outputs
        and stores too."""
        whole = self.group
        need = self._needs(roots, self.loaded)
        preset = {}
        for n, name in self.held.items():
            ct = COMPUTE[self.g.nodes[n]["dtype"]]
            preset[n] = f"(({ct}{w})({name}))" if w > 1 else name
        for n, out in self.loaded.items():
            dtype = self.g.nodes[n]["dtype"]
            preset[n] = f"{out}[{base}]" if w == 1 else self._vload(out, dtype, base, w)
        self.group = dataclasses.replace(
            whole,
            nodes=tuple(n for n in whole.nodes if n in need),
            inputs=tuple(p for p in whole.inputs if p in need),
            outputs=self.row_outputs if store else (),
            stores=self.row_stores if store else (),
        )
        try:
            lines, names = self.compute(w, base, preset)
            return lines + (self.stores(w, base, names) if store else []), names
        finally:
            self.group = whole

    def _loops(self, w: int, body) -> tuple[list[str], list[str]]:
        """Over the row's columns c: the loop over vectors of w (`body(w, "i")`;
        none for w = 1), and the scalar tail's (`body(1, "j")`); on GPUs each
        work-item takes every L-th vector, then every L-th element of the tail."""
        gpu = not self.device.is_cpu
        vector, first = [], "lid" if gpu else "0"
        if w > 1:
            start, step = (f"lid * {w}", f"L * {w}") if gpu else ("0", str(w))
            vector = [
                f"for (long c = {start}; c + {w} <= inner; c += {step}) {{",
                "    const long i = rb + c;",
                *("    " + line for line in body(w, "i")),
                "}",
            ]
            first = f"inner - inner % {w}" + (" + lid" if gpu else "")
        tail = [
            f"for (long c = {first}; c < inner; c += {'L' if gpu else '1'}) {{",
            "    const long j = rb + c;",
            *("    " + line for line in body(1, "j")),
            "}",
        ]
        return vector, tail

    def source(self) -> str:
        if self.in_gemm is not None:  # gemm_rows.py: the GEMM's source holds row_function
            return ""
        g, grp, w = self.g, self.group, self.device.vector_width
        gpu = not self.device.is_cpu
        members = " -> ".join(g.nodes[r]["op"] for r in grp.reductions)
        ops = [g.nodes[n]["op"] for n in grp.nodes]
        layout = f"a work-group of {self.items_per_row} per row" if gpu else "one row per work-item"
        head = [
            f"// fusec: graph {g.graph['name']}, kernel {grp.name}",
            f"// {members} over the rows of {list(grp.shape)} (axes {self.split} on), {layout}",
            f"// fused over the row ({len(ops)}): {' '.join(ops) if ops else '(none)'}",
        ]
        if self.vectorised:  # along the row already (see ElementwiseKernel.source)
            head.append(self._hint(w))
        sig = ",\n    ".join(self.signature() + self.epi.signature())
        out = head + [f"__kernel void {grp.name}(\n    {sig})", "{"]
        if gpu:
            out += [f"    #define L {self.items_per_row}"]
            accs = sorted({COMPUTE[g.nodes[r]["dtype"]] for r in grp.reductions})
            out += [f"    __local {acc} red_{acc}[L];" for acc in accs]
            out += [
                "    const long row = get_group_id(0);",
                "    const int lid = get_local_id(0);",
                "    if (row >= rows) return;  // the whole work-group: one row",
            ]
        else:
            out += ["    const long row = get_global_id(0);", "    if (row >= rows) return;"]
        return "\n".join(out + self._row_lines(gpu) + ["}", ""])

    def row_function(self) -> str:
        """The CPU layout's work for one row as a C function `{name}_row(row,
        <the kernel's parameters>)`, for a kernel that calls it per row
        (gemm_rows.py). Pointers lose `restrict`: the caller may pass a buffer
        it has written itself."""
        assert self.device.is_cpu, "a GPU row is a work-group's work, not a function's"
        params = [p.replace("*restrict ", "*") for p in self.signature() + self.epi.signature()]
        sig = ",\n    ".join(["const long row", *params])
        head = [f"// the rows of {self.group.name}, one call per row"]
        lines = [f"void {self.group.name}_row(\n    {sig})", "{"]
        return "\n".join(head + lines + self._row_lines(False) + ["}", ""])

    def _row_lines(self, gpu: bool) -> list[str]:
        w = self.device.vector_width
        out = ["    const long rb = row * inner;"]
        out += ["    " + line for line in self._row_offsets("rows")]
        self.loaded = {}  # a stashed value, once its member's pass has stored it
        for members in row_passes(self):
            out += ["    " + line for line in pass_lines(self, members, w)]
        roots = [n for _, n in self.row_outputs] + list(self.row_stores)
        if roots:
            vector, tail = self._loops(w, lambda v, b: self._phase(roots, v, b, True)[0])
            out += ["    " + line for line in vector + tail]
        preset = {n: name for n, name in self.held.items()}
        lines, names = self.epi.compute(1, "row", preset=preset)
        lines += self.epi.stores(1, "row", names)
        if lines:
            out += (
                ["    if (lid == 0) {" if gpu else "    {"]
                + ["        " + x for x in lines]
                + ["    }"]
            )
        if gpu:
            out += ["    #undef L"]
        return out
