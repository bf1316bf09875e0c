"""The column group's partial stage on CPUs: each work-item streams whole rows.

The layout of column_reduction.py (a work-item per vector of W columns, down a
chunk of rows) makes adjacent GPU work-items read adjacent vectors of a row:
coalesced. A CPU work-group runs its work-items one after another on one core,
so there each work-item walks down the rows reading one W-float vector per row,
a stride of a whole row between reads: the hardware prefetchers see short
strided streams, and a buffer that is not 64-byte aligned (a NumPy array's)
splits every vector across two cache lines. 4096 x 4096 f32, `sum(x, axis=0)`,
Intel's CPU runtime, after a cache flush: 4.8 ms (64-byte aligned) to 13 ms
(NumPy's 16-byte alignment), against NumPy's 2.3 ms.

Here, as NumPy adds rows, work-item t takes a block of up to BLOCK_FLOATS
contiguous columns (o0 = (t % blocks) * block) and a chunk of rows
(c = t / blocks), and keeps its accumulators in its own row of the partials,
partial[k][c][o0..o1): small enough to stay in the core's L1/L2. It reads
ROWS_PER_STEP rows at a time, each one contiguous over the block, adds them to
the accumulators with W-wide vectors (one load and store of an accumulator per
ROWS_PER_STEP rows) and computes the group's values there as the other layout
does (full-shape outputs written, operands of the columns' shape read per
vector). Columns that do not fill a vector are taken one by one. A sum over all
axes accumulates per column too; the work-item then adds its block's columns
in order and leaves the result at the block's first column, where the finish
reads one partial per work-item.
Work-groups are one work-item each, so that the work-items spread over the
cores. Same sums, same rounding order across rows as the other layout (rows in
order within a chunk, chunks in order in the finish).

A float reduction over leading axes that a column group does not take
(reduction.py, one accumulator: a max or min, a mean, a sum with an epilogue)
takes the same layout on CPUs: the kernel names its counts m, r, chunks and
gives the accumulators' initial value and each row's step. `mean(x, axis=0)`,
4096 x 1024 f32, NumPy in and out: 0.49-0.57 ms against 0.83-0.95 with the
work-item-per-vector loop (NumPy's mean 0.59); 4096 x 4096: 1.9-2.1 against
2.7-2.8 (NumPy 2.4-2.6).
"""

from __future__ import annotations

from ..ir import dtypes as dt
from .opencl_c import COMPUTE, CTYPE_BYTES, render

# accumulator floats per work-item, over all its sums: 16 KiB, within L1
BLOCK_FLOATS = 4096
ROWS_PER_STEP = 4  # rows read together: fewer accumulator loads and stores
ITEMS_PER_UNIT = 8  # work-items per compute unit: a loaded core does not hold the others up
MIN_ROWS_PER_CHUNK = 32  # fewer: the partials cost more traffic than they save
# sums a reduction kernel streams as max and min do: those a column group does
# not take (a mean; a sum with an epilogue, `sum(x, axis=0) * 2`)
STREAMED_SUMS = frozenset({"sum", "sum_to", "mean"})


def _accumulators(kernel) -> int:
    """Accumulator rows per work-item: a column group's sums, a reduction's one."""
    return len(kernel.group.sums) or 1


def block(kernel) -> int:
    """Columns per work-item: a multiple of the vector width."""
    w = kernel.width
    return max(w, BLOCK_FLOATS // _accumulators(kernel) // w * w)


def counts(kernel, rows: int, cols: int) -> dict[str, int]:
    blocks = max(1, -(-cols // block(kernel)))
    target = kernel.device.compute_units * ITEMS_PER_UNIT
    chunks = max(1, min(-(-target // blocks), -(-rows // MIN_ROWS_PER_CHUNK)))
    chunk_rows = max(1, -(-rows // chunks))
    chunks = max(1, -(-rows // chunk_rows))
    return {"cols": cols, "nrows": rows, "chunks": chunks, "chunk_rows": chunk_rows}


def count_exprs(kernel, rows: str, cols: str) -> dict[str, str]:
    """`counts` as the plan's size expressions."""
    blocks = f"max(1, ceil(({cols}) / {block(kernel)}))"
    target = kernel.device.compute_units * ITEMS_PER_UNIT
    first = f"max(1, min(ceil({target} / ({blocks})), ceil(({rows}) / {MIN_ROWS_PER_CHUNK})))"
    chunk_rows = f"max(1, ceil(({rows}) / ({first})))"
    chunks = f"max(1, ceil(({rows}) / ({chunk_rows})))"
    return {"cols": cols, "nrows": rows, "chunks": chunks, "chunk_rows": chunk_rows}


def items(kernel, c: dict) -> int:
    """Work-items of the partial stage (one per work-group)."""
    return -(-c["cols"] // block(kernel)) * c["chunks"] if c["cols"] else 0


def items_expr(kernel, values: dict) -> str:
    return f"ceil(({values['cols']}) / {block(kernel)})*({values['chunks']})"


def partial_body(kernel) -> list[str]:
    """The partial kernel's body (see the module's doc)."""
    w, acc, bl = kernel.width, kernel.acc, block(kernel)
    sums = range(_accumulators(kernel))
    body = [
        "const long t = get_global_id(0);",
        *kernel.column_counts(),
        f"const long blocks = (cols + {bl - 1}) / {bl};",
        "if (t >= blocks * chunks) return;",
        f"const long c = t / blocks, o0 = (t % blocks) * {bl}, o1 = min(cols, o0 + {bl});",
        f"const long ov = o0 + (o1 - o0) / {w} * {w}, stride = chunks * cols;",
        "const long q0 = c * chunk_rows, q1 = min(nrows, q0 + chunk_rows);",
        *[f"__global {acc} *restrict a{k} = partial + {k} * stride + c * cols;" for k in sums],
        f"for (long o = o0; o < ov; o += {w}) {{",
        *[f"    {_store(w, kernel.accumulator_init(w), f'a{k}')}" for k in sums],
        "}",
        "for (long o = ov; o < o1; ++o) {",
        *[f"    a{k}[o] = {kernel.accumulator_init(1)};" for k in sums],
        "}",
        "long q = q0;",
    ]
    for rows, loop in ((ROWS_PER_STEP, "; q + {r} <= q1; q += {r}"), (1, "; q < q1; ++q")):
        body.append(f"for ({loop.format(r=rows)}) {{")
        body += ["    " + line for line in _columns(kernel, rows, w, "o0", "ov", w)]
        body += ["    " + line for line in _columns(kernel, rows, 1, "ov", "o1", 1)]
        body.append("}")
    for k in kernel.total:  # the block's columns in order, left at its first column
        body += [
            f"{acc} f{k} = 0;",
            f"for (long o = o0; o < o1; ++o) f{k} += a{k}[o];",
            f"a{k}[o0] = f{k};",
        ]
    return body


def finish_items(kernel) -> str:
    """The finish's count of a sum over all axes's partials: one per work-item."""
    bl = block(kernel)
    return f"    const long blocks = (cols + {bl - 1}) / {bl}, items = blocks * chunks;"


def total_at(kernel, i: str) -> str:
    """Where work-item `i` of the partial stage left its sum over all axes."""
    return f"({i} / blocks) * cols + ({i} % blocks) * {block(kernel)}"


def _columns(kernel, rows: int, w: int, start: str, end: str, step: int) -> list[str]:
    """A loop over the block's columns: `rows` rows from q, added into the sums."""
    acc, sums = kernel.acc, range(_accumulators(kernel))
    vec = f"{acc}{w}" if w > 1 else acc
    lines = [f"for (long o = {start}; o < {end}; o += {step}) {{"]
    lines += ["    " + line for line in kernel._column_loads(w, "o")]
    lines += [f"    {vec} s{k} = {_load(w, f'a{k}')};" for k in sums]
    lines += ["    " + line for line in kernel.step_open(w)]
    for r in range(rows):
        lines.append("    {")
        lines.append(
            f"        const long i = (q + {r}) * cols + o;"
            if r
            else "        const long i = q * cols + o;"
        )
        lines += ["        " + line for line in kernel._row_step(w, "i", [f"s{k}" for k in sums])]
        lines.append("    }")
    lines += ["    " + line for line in kernel.step_close(w, [f"s{k}" for k in sums])]
    lines += [f"    {_store(w, f's{k}', f'a{k}')}" for k in sums]
    return lines + ["}"]


def per_column_inputs(kernel, lead: int) -> set:
    """Inputs of the columns' shape (a bias w: [D] over [B, D]), read once per
    column vector rather than through an index modulo per element."""
    g, cols, out = kernel.g, tuple(kernel.group.shape[lead:]), set()
    for p in kernel.group.inputs:
        shape = tuple(g.nodes[p]["shape"])
        aligned = (1,) * (kernel.ndim - len(shape)) + shape
        if kernel.input_kind[p] in ("row", "column") and aligned[lead:] == cols:
            if all(d == 1 for d in aligned[:lead]):
                out.add(p)
    return out


def column_loads(kernel, w: int, col: str) -> list[str]:
    """The columns' operands at column `col`, before the rows (named pc<p>)."""
    lines = []
    for p in sorted(kernel.per_column):
        name, dtype = kernel.c_names[p], kernel.g.nodes[p]["dtype"]
        if w > 1:
            value = kernel._vload(name, dtype, col, w)
        elif dtype == "f16":
            value = f"vload_half({col}, {name})"
        elif dtype == "bool":
            value = f"(int)({name}[{col}] != 0)"
        else:
            value = f"{name}[{col}]"
        ct = COMPUTE[dtype] + (str(w) if w > 1 else "")
        lines.append(f"const {ct} pc{p} = {value};")
    return lines


def _load(w: int, ptr: str) -> str:
    return f"vload{w}(0, {ptr} + o)" if w > 1 else f"{ptr}[o]"


def _store(w: int, value: str, ptr: str) -> str:
    return f"vstore{w}({value}, 0, {ptr} + o);" if w > 1 else f"{ptr}[o] = {value};"


class StreamedColumns:
    """Mixed into ReductionKernel: a float max, min, mean or sum over leading
    axes on a CPU takes this layout (`streams_rows`, set once by the kernel's
    __init__). Its counts are m (columns), r (rows) and chunks; chunk_rows is
    computed in the kernel. Operands of the columns' shape are read once per
    column vector and step, as a column group's. A sum's step adds; a max or
    min's vector step is a compare and select without NaN, each element's isnan ORed into a flag that makes
    the accumulator NaN before it is stored (reduction_steps.NanFlagSteps); a
    NaN accumulator stays NaN under that compare. The registry's
    NaN-propagating combine in each step took 1.3-1.4x as long, device-resident
    (4096 x 1024 and 4096 x 4096, loaded machine: 1.04 against 0.75 ms, 3.27
    against 2.68; a column sum 0.68 and 2.46). Single columns take it still."""

    total = ()  # no sum over all axes here
    per_column = frozenset()  # the prologue's operands of the columns' shape, when streaming

    def _streams_rows(self) -> bool:
        return (
            self.device.is_cpu
            and self.prefix_width > 1
            and (bool(self.prim.reduce_unordered) or self.prim.name in STREAMED_SUMS)
            and dt.is_float(self.dtype)
        )

    @property
    def width(self) -> int:
        """As a column group's: the native SIMD width, where the values' types allow."""
        d = self.device
        values = (*self.group.nodes, *self.group.inputs, self.group.anchor)
        widest = max(CTYPE_BYTES[COMPUTE[dt.concrete(self.g.nodes[n]["dtype"])]] for n in values)
        w = max(self.prefix_width, min(d.native_vector_width, 16, d.max_vector_bytes // widest))
        return 1 << (w.bit_length() - 1)

    def streamed_counts(self, m: int, r: int) -> dict[str, int]:
        return {"m": m, "r": r, "chunks": counts(self, r, m)["chunks"]}

    def streamed_chunks_expr(self, m: str, r: str) -> str:
        return count_exprs(self, r, m)["chunks"]

    def column_counts(self) -> list[str]:
        return ["const long cols = m, nrows = r, chunk_rows = (r + chunks - 1) / chunks;"]

    def accumulator_init(self, w: int) -> str:
        return render(self.prim.reduce_init, {}, self.acc, self.attrs, w, w, self.acc)

    def _column_loads(self, w: int, col: str) -> list[str]:
        return column_loads(self, w, col)

    def _load(self, p: int, w: int, base: str) -> str:
        return f"pc{p}" if p in self.per_column else super()._load(p, w, base)

    def step_open(self, w: int) -> list[str]:
        return self._nan_flag_init(w) if w > 1 else []

    def step_close(self, w: int, accs: list[str]) -> list[str]:
        return self._nan_flag_apply(accs[0], w) if w > 1 else []

    def _row_step(self, w: int, base: str, accs: list[str]) -> list[str]:
        lines, value = self._value(w, base)
        if w > 1:
            return [*lines, *self._vector_step(accs[0], value, w)]
        return [*lines, f"{accs[0]} = {self._combine(accs[0], value)};"]
