"""Column group -> OpenCL C: one pass over an index space that writes its
elementwise outputs and sums values in it over its leading axes.

A training step's backward over `x: [B, D]` with broadcast `w, b: [D]` wants
dx (shape [B, D]), dw and db (sums over B of values in [B, D]) and, with the
forward, the loss (a sum over all of it). The space is `nrows` rows of `cols`
contiguous columns (the group's `split` leading axes are the rows).

Stage one, `<name>_partial`: work-item `t` takes a vector of W neighbouring
columns (o = (t % ceil(cols / W)) * W) and a chunk of consecutive rows
(c = t / ceil(cols / W)), computes every value of the group there in
registers, writes the full-shape outputs and adds each summed value into a
vector accumulator. Operands of the columns' shape (w, b) are loaded once per
work-item, before the row loop. It then writes its partial sums: a leading
sum's at partial[k][c][o..o+W), a sum over all axes's lanes, added in order,
at partial[k][t]. The last vector position of a row takes the columns that do
not fill a vector one by one.

Stage two, `<name>_finish`: work-item o adds column o's partials over the
chunks, in order; work-group 0 adds a full sum's partials in a fixed tree.
Results do not depend on timing.
"""

from __future__ import annotations

import dataclasses
import math

import networkx as nx

from ..ir import dtypes as dt
from ..passes.fuse import FusionGroup
from . import column_rows, streaming
from .device import DeviceInfo
from .elementwise import ElementwiseKernel
from .kernel_args import Count, KernelArg, Launch, Output, Scratch, c_parameter, trial_kind
from .opencl_c import COMPUTE, CTYPE_BYTES, convert, temp_name
from .reduction import fill_items

# fewer rows per work-item: the partials cost more memory traffic than they save
MIN_ROWS_PER_CHUNK = 32
MAX_COLUMNS = 16  # OpenCL C's widest vector
COUNTS = ("cols", "nrows", "chunks", "chunk_rows")


class ColumnSumKernel(ElementwiseKernel):
    """A "columns" group's two kernels (see the module's doc); `args` are the
    pass's own, `partial_args` and `finish_args` each kernel's in launch order."""

    def __init__(self, g: nx.DiGraph, group: FusionGroup, device: DeviceInfo):
        results = {r for r, _ in group.sums}
        # self.args: the pass's (extents, inputs, full-shape outputs, stores)
        self.full_outputs = tuple((i, n) for i, n in group.outputs if n not in results)
        super().__init__(g, dataclasses.replace(group, outputs=self.full_outputs), device)
        self.group = group
        self.lead = group.split
        self._values = [*group.nodes, *group.inputs, *(n for _, n in group.outputs)]
        self.dtype = g.nodes[group.sums[0][0]]["dtype"]
        self.acc = COMPUTE[self.dtype]
        # a sum over all axes has one element whatever its rank: a loss is (),
        # a keepdim total (1, 1); its partials are summed across the columns too
        total = {k for k, (r, _) in enumerate(group.sums) if _one_element(g.nodes[r]["shape"])}
        self.leading = [k for k in range(len(group.sums)) if k not in total]
        self.total = sorted(total)
        # operands of the columns' shape (w, b): loaded once per work-item
        self.per_column = column_rows.per_column_inputs(self, self.lead)
        counts = [KernelArg(name, Count(name), "i64") for name in COUNTS]
        partial = [KernelArg("partial", Scratch("partial"), self.dtype)]
        self.partial_args = self.args + partial + counts
        outs = [
            KernelArg(f"out{i}", Output(i), self.dtype) for i, n in group.outputs if n in results
        ]
        self.finish_args = partial + counts + outs
        # CPUs: each work-item streams whole rows (column_rows.py)
        self.streams_rows = device.is_cpu

    # -- sizes ------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Columns per work-item: on CPUs the native SIMD width where it is wider
        than the vector path's (AVX-512's 16 floats: the heavy chain's backward
        ran in half the time of float8's), as wide as the values' type allows."""
        d, w = self.device, self.device.vector_width
        if d.is_cpu and w > 1:
            widest = max(
                CTYPE_BYTES[COMPUTE[dt.concrete(self.g.nodes[n]["dtype"])]] for n in self._values
            )
            w = max(w, min(d.native_vector_width, MAX_COLUMNS, d.max_vector_bytes // widest))
        return 1 << (w.bit_length() - 1)

    @property
    def fill_items(self) -> int:
        return fill_items(self.device, self.local_size)

    @property
    def finish_local(self) -> int:
        """The finish's work-group: a power of two, for its tree of a full sum's partials."""
        return 1 << (self.local_size.bit_length() - 1)

    def counts(self, shape, sizes=None) -> dict[str, int]:
        rows, cols = math.prod(shape[: self.lead]), math.prod(shape[self.lead :])
        if self.streams_rows:
            return column_rows.counts(self, rows, cols)
        vectors = -(-cols // self.width)
        chunks = max(1, min(-(-self.fill_items // max(vectors, 1)), -(-rows // MIN_ROWS_PER_CHUNK)))
        chunk_rows = max(1, -(-rows // chunks))
        chunks = max(1, -(-rows // chunk_rows))
        return {"cols": cols, "nrows": rows, "chunks": chunks, "chunk_rows": chunk_rows}

    def count_exprs(self, size_expr) -> dict[str, str]:
        """`counts` as the plan's size expressions."""
        rows, cols = (
            size_expr(self.group.shape[: self.lead]),
            size_expr(self.group.shape[self.lead :]),
        )
        if self.streams_rows:
            return column_rows.count_exprs(self, rows, cols)
        vectors = f"ceil(({cols}) / {self.width})"
        first = f"max(1, min(ceil({self.fill_items} / max({vectors}, 1)), ceil(({rows}) / {MIN_ROWS_PER_CHUNK})))"
        chunk_rows = f"max(1, ceil(({rows}) / ({first})))"
        chunks = f"max(1, ceil(({rows}) / ({chunk_rows})))"
        return {"cols": cols, "nrows": rows, "chunks": chunks, "chunk_rows": chunk_rows}

    def partial_elements(self, counts: dict) -> int:
        return len(self.group.sums) * counts["chunks"] * counts["cols"]

    def launches(self, shape, sizes=None) -> list[Launch]:
        c, ls, fl = self.counts(shape), self.local_size, self.finish_local
        items = -(-c["cols"] // self.width) * c["chunks"]
        if self.streams_rows:
            items, ls = column_rows.items(self, c), 1
        out = []
        if items:
            out.append(
                Launch(
                    self.entry_points[0], tuple(self.partial_args), (-(-items // ls) * ls,), (ls,)
                )
            )
        if c["cols"] or self.total:  # a sum over nothing is still written: 0
            finish = max(1, -(-c["cols"] // fl)) * fl
            out.append(Launch(self.entry_points[1], tuple(self.finish_args), (finish,), (fl,)))
        return out

    @property
    def entry_points(self) -> list[str]:
        return [f"{self.group.name}_partial", f"{self.group.name}_finish"]

    def trial_launches(self) -> list[tuple[str, list, tuple]]:
        return [
            (
                self.entry_points[0],
                [trial_kind(a) for a in self.partial_args],
                (1 if self.streams_rows else self.local_size,),
            ),
            (self.entry_points[1], [trial_kind(a) for a in self.finish_args], (self.finish_local,)),
        ]

    # -- source -----------------------------------------------------------------

    def _load(self, p: int, w: int, base: str) -> str:
        return f"pc{p}" if p in self.per_column else super()._load(p, w, base)

    def column_counts(self) -> list[str]:
        return []  # column_rows.py's names are this kernel's parameters

    def accumulator_init(self, w: int) -> str:
        return f"({self.acc}{w})(0)" if w > 1 else "0"

    def step_open(self, w: int) -> list[str]:
        return []  # sums carry NaN themselves

    def step_close(self, w: int, accs: list[str]) -> list[str]:
        return []

    def _column_loads(self, w: int, col: str) -> list[str]:
        return column_rows.column_loads(self, w, col)

    def _row_step(self, w: int, base: str, accs: list[str]) -> list[str]:
        """One row's values at `base`: the full-shape writes, and each sum's addend."""
        lines, names = self.compute(w, base)
        for index, node in self.full_outputs:
            value = self._operand(node, names, w)
            if self.g.nodes[node]["op"] == "param" and node not in names:
                value = super()._load(node, w, base)
            lines.append(self._store(f"out{index}", self.g.nodes[node]["dtype"], value, w, base))
        for node in self.group.stores:
            dtype = self.g.nodes[node]["dtype"]
            lines.append(self._store(temp_name(node), dtype, names[node], w, base))
        for acc, (_, summed) in zip(accs, self.group.sums, strict=True):
            value = self._operand(summed, names, w)
            if self.g.nodes[summed]["op"] == "param" and summed not in names:
                value = super()._load(summed, w, base)
            lines.append(
                f"{acc} += {convert(value, self.g.nodes[summed]['dtype'], self.dtype, w)};"
            )
        return lines

    def _partial_source(self) -> list[str]:
        w, acc, name = self.width, self.acc, self.group.name
        sig = [c_parameter(a) for a in self.args]
        sig += [f"__global {acc} *restrict partial"] + [f"const long {c}" for c in COUNTS]
        ops = [self.g.nodes[n]["op"] for n in self.group.nodes]
        head = [
            f"// fusec: graph {self.g.graph['name']}, kernel {name}",
            f"// {len(self.group.sums)} sums over the leading {self.lead} axes (or all) of "
            f"{list(self.group.shape)}; fused ops ({len(ops)}): {' '.join(ops) or '(none)'}",
        ]
        if w > 1:
            head.append(self._hint(w))
        out = head + [f"__kernel void {name}_partial(\n    " + ",\n    ".join(sig) + ")", "{"]
        if self.streams_rows:
            return out + ["    " + line for line in self._rows_body(w)] + ["}", ""]
        n_sums = range(len(self.group.sums))
        vec = f"{acc}{w}" if w > 1 else acc
        body = [
            "const long t = get_global_id(0);",
            f"const long vectors = (cols + {w - 1}) / {w};",
            "if (t >= vectors * chunks) return;",
            f"const long o = (t % vectors) * {w}, c = t / vectors, stride = chunks * cols;",
            "const long q0 = c * chunk_rows, q1 = min(nrows, q0 + chunk_rows);",
            f"if (o + {w} <= cols) {{",
            *["    " + line for line in self._column_loads(w, "o")],
            *[f"    {vec} s{k} = ({vec})(0);" for k in n_sums],
            "    for (long q = q0; q < q1; ++q) {",
            "        const long i = q * cols + o;",
            *["        " + line for line in self._row_step(w, "i", [f"s{k}" for k in n_sums])],
            "    }",
        ]
        for k in self.leading:
            at = f"partial + {k} * stride + c * cols + o"
            body.append(f"    vstore{w}(s{k}, 0, {at});" if w > 1 else f"    *({at}) = s{k};")
        for k in self.total:  # the lanes, added in order
            lanes = " + ".join(f"s{k}.s{lane:x}" for lane in range(w)) if w > 1 else f"s{k}"
            body.append(f"    partial[{k} * stride + t] = {lanes};")
        body += [
            "} else {",
            *[f"    {acc} f{k} = 0;" for k in self.total],
            "    for (long oo = o; oo < cols; ++oo) {",
            *["        " + line for line in self._column_loads(1, "oo")],
            *[f"        {acc} s{k} = 0;" for k in n_sums],
            "        for (long q = q0; q < q1; ++q) {",
            "            const long j = q * cols + oo;",
            *["            " + line for line in self._row_step(1, "j", [f"s{k}" for k in n_sums])],
            "        }",
            *[f"        partial[{k} * stride + c * cols + oo] = s{k};" for k in self.leading],
            *[f"        f{k} += s{k};" for k in self.total],
            "    }",
            *[f"    partial[{k} * stride + t] = f{k};" for k in self.total],
            "}",
        ]
        return out + ["    " + line for line in body] + ["}", ""]

    def _streams(self, w: int) -> bool:
        with streaming.over_index_space(self, self.full_outputs, self.group.stores):
            return w > 1 and streaming.eligible(self)

    def _rows_body(self, w: int) -> list[str]:
        """column_rows.py's body; where `fu_nt` (every row starts a line,
        streaming.py), a copy whose full-shape outputs' vector stores are
        non-temporal, fenced at the end by the work-group's one work-item
        (as row_reduction.py: the body as before where not)."""
        body = column_rows.partial_body(self)
        if not self._streams(w):
            return body
        self._streaming = True
        try:
            streamed = column_rows.partial_body(self)
        finally:
            self._streaming = False
        with streaming.over_index_space(self, self.full_outputs, self.group.stores):
            prologue = streaming.prologue(self, w, "cols")
        indent = lambda lines: ["    " + x for x in lines]  # noqa: E731
        branches = ["if (fu_nt) {", *indent(streamed), "} else {", *indent(body), "}"]
        return [*prologue, *branches, streaming.FENCE]

    def _finish_source(self) -> list[str]:
        acc, name, fl = self.acc, self.group.name, self.finish_local
        outs = {
            k: [i for i, n in self.group.outputs if n == r]
            for k, (r, _) in enumerate(self.group.sums)
        }
        sig = [f"__global const {acc} *restrict partial"] + [f"const long {c}" for c in COUNTS]
        sig += [c_parameter(a) for a in self.finish_args if isinstance(a.source, Output)]
        body = ["const long o = get_global_id(0), stride = chunks * cols;"]
        if self.total:
            body.insert(0, f"__local {acc} tree[{fl}];")
        if self.leading:
            body.append("if (o < cols) {")
            for k in self.leading:
                body += [
                    f"    {acc} s{k} = partial[{k} * stride + o];",
                    f"    for (long c = 1; c < chunks; ++c) s{k} += partial[{k} * stride + c * cols + o];",
                    *[
                        f"    {self._store(f'out{i}', self.dtype, f's{k}', 1, 'o')}"
                        for i in outs[k]
                    ],
                ]
            body.append("}")
        if self.total:  # work-group 0, all of it (the barriers), adds the partials of t
            body += [
                "if (get_group_id(0) == 0) {",
                "    const int l = get_local_id(0);",
                column_rows.finish_items(self)
                if self.streams_rows
                else f"    const long items = (cols + {self.width - 1}) / {self.width} * chunks;",
            ]
            for k in self.total:
                body += [
                    f"    {acc} f{k} = 0;",
                    f"    for (long i = l; i < items; i += {fl}) f{k} += partial[{k} * stride + "
                    + (column_rows.total_at(self, "i") if self.streams_rows else "i")
                    + "];",
                    f"    tree[l] = f{k};",
                    "    barrier(CLK_LOCAL_MEM_FENCE);",
                    f"    for (int h = {fl // 2}; h > 0; h >>= 1) {{",
                    "        if (l < h) tree[l] += tree[l + h];",
                    "        barrier(CLK_LOCAL_MEM_FENCE);",
                    "    }",
                    *[
                        f"    if (l == 0) {self._store(f'out{i}', self.dtype, 'tree[0]', 1, '0')}"
                        for i in outs[k]
                    ],
                    "    barrier(CLK_LOCAL_MEM_FENCE);",
                ]
            body.append("}")
        head = f"__kernel void {name}_finish(\n    " + ",\n    ".join(sig) + ")"
        return [head, "{"] + ["    " + line for line in body] + ["}", ""]

    def source(self) -> str:
        return "\n".join(self._partial_source() + self._finish_source())

    # -- the plan -----------------------------------------------------------------

    def plan_launches(self, describe, reads: list, size_expr) -> tuple[list, list]:
        """The two launches as the plan describes them (`describe`: an argument's
        entry, given the counts), and the partials' scratch buffer."""
        grp, ls, fl = self.group, self.local_size, self.finish_local
        values = self.count_exprs(size_expr)
        partial = f"{grp.name}_partial"
        items = f"ceil(({values['cols']}) / {self.width})*({values['chunks']})"
        if self.streams_rows:
            items, ls = column_rows.items_expr(self, values), 1
        sums = [f"out{i}" for i, n in grp.outputs if n in {r for r, _ in grp.sums}]
        finish_elements = f"max(1, {values['cols']})" if self.total else values["cols"]
        common = {"elements_per_work_item": None, "why": grp.reason}
        launches = [
            {
                "name": f"{grp.name}_partial",
                "ops": [self.g.nodes[n]["op"] for n in grp.nodes] + ["sum"] * len(grp.sums),
                "args": [describe(a, values) for a in self.partial_args],
                "elements": items,
                "global_size": f"ceil(({items}) / {ls}) * {ls}",
                "local_size": [ls],
                "reads": reads,
                "writes": [f"out{i}" for i, _ in self.full_outputs]
                + [temp_name(n) for n in grp.stores]
                + [partial],
                **common,
            },
            {
                "name": f"{grp.name}_finish",
                "ops": ["sum"] * len(grp.sums),
                "args": [describe(a, values) for a in self.finish_args],
                "elements": finish_elements,
                "global_size": f"max(1, ceil(({values['cols']}) / {fl})) * {fl}",
                "local_size": [fl],
                "reads": [partial],
                "writes": sums,
                **common,
            },
        ]
        elements = f"{len(grp.sums)}*({values['chunks']})*({values['cols']})"
        return launches, [{"name": partial, "ctype": self.acc, "elements": elements}]


def _one_element(shape) -> bool:
    return all(d == 1 for d in shape)
