"""Reduction group -> OpenCL C: a prologue fused into a two-stage reduction.

The group reduces its operand (shape `D`, the index space) over some axes
down to `m` output elements; `r` elements fall into each. The combining op
comes from the registry (`forward` over `{acc}` and `{x}`, `reduce_init`,
`reduce_finish`); every element is computed from the graph's inputs by the
elementwise prologue, in registers.

Stage one, `<name>_partial`, writes `chunks` partial results per output.
Work-item `t` takes:
- trailing axes reduced (softmax's rows): output `t % m`, whose elements are
  contiguous, in blocks of vectors of the device's width (one accumulator per
  vector of a block), a contiguous run of blocks per chunk on a CPU, blocks
  dealt round the chunks elsewhere;
  a broadcast operand of the prologue (softmax's row max, a bias) is read at
  an offset computed once per work-item, as in the row layout (row_layout.py);
- leading axes reduced (a bias's gradient): a vector of neighbouring outputs,
  a contiguous run of rows per chunk on a CPU, every chunks-th row elsewhere;
  a float max, min, mean or sum on a CPU streams whole rows instead (column_rows.py);
- other axes: output `o = t % m` and steps `t / m, + chunks, ...`, any layout.
Max and min keep NaN in a flag beside the accumulator (Primitive.reduce_unordered).
On GPUs neighbouring work-items read neighbouring memory; on CPUs, where a
work-item runs its whole loop before the next, each reads a contiguous run.
Stage two, `<name>_finish`, combines each output's partials in a fixed order
(results do not depend on timing), then runs the group's epilogue: the
elementwise ops on the result, over the result's own index space.
Stage two stays a launch of its own, also on CPUs: the finish done by the
partial kernel's last work-item (an atomic ticket, partials combined in the
same order) took 1.4-2.2x as long on Intel's CPU runtime (4096 x 1024 full
sum, kernels alone: 0.61-0.70 ms against 0.41 for both launches). An atomic
or a serial tail in the kernel costs more than the 5-25 us that the second
launch does (bench/reduction_launches.py; bench/results-shapes.txt, 2026-11-30 red3).
"""

from __future__ import annotations

import dataclasses
import math

import networkx as nx

from ..ir import dtypes as dt
from ..ir.registry import lookup
from ..passes.fuse import FusionGroup
from . import column_rows
from .column_rows import StreamedColumns
from .device import DeviceInfo
from .elementwise import ElementwiseKernel
from .kernel_args import Count, KernelArg, Launch, Scratch, c_parameter, trial_kind
from .opencl_c import COMPUTE, convert, render
from .reduction_steps import NanFlagSteps, lane_tree, merged_args

MIN_STEPS_PER_ITEM = 32  # fewer steps per work-item than this: the launch costs more than it saves
WORK_GROUPS_PER_UNIT = 4


def fill_items(device: DeviceInfo, local_size: int) -> int:
    """Work-items that fill the device: a few work-groups per compute unit
    (more than one each, so that a busy core does not hold the others up)."""
    return device.compute_units * local_size * WORK_GROUPS_PER_UNIT


# independent vector accumulators per work-item of a row reduction: an add
# waits for the one before on the same accumulator (rows 4096 x 1024: 0.26 -> 0.10 ms)
SUFFIX_ACCUMULATORS = 4


class _Epilogue(ElementwiseKernel):
    """The elementwise ops on a reduction's result, in its finish kernel, over
    the result's own index space (named apart from the operand's)."""

    space, size_name, dim_prefix = "result", "en", "e"


class ReductionKernel(StreamedColumns, NanFlagSteps, ElementwiseKernel):
    def __init__(self, g: nx.DiGraph, group: FusionGroup, device: DeviceInfo):
        # self.args: the prologue's (n, dims, inputs); the epilogue has its own
        super().__init__(g, dataclasses.replace(group, outputs=(), stores=()), device)
        self.group = group
        data = g.nodes[group.anchor]
        self.epi = _Epilogue(
            g,
            FusionGroup(
                f"{group.name}_epilogue",
                tuple(data["shape"]),
                group.epilogue,
                group.epilogue_inputs,
                group.outputs,
                "",
                stores=group.stores,
            ),
            device,
        )
        self.prim = lookup(data["op"])
        self.attrs = dict(data["attrs"])
        self.dtype = data["dtype"]
        self.acc = COMPUTE[self.dtype]
        self.operand_dtype = data["operand_dtypes"][0]  # what each element is read as
        self.axes, _ = self.prim.reduce_shape(tuple(group.shape), self.attrs)
        self.kept = tuple(i for i in range(self.ndim) if i not in self.axes)
        counts = [KernelArg(name, Count(name), "i64") for name in ("m", "r", "chunks")]
        partial = [KernelArg("partial", Scratch("partial"), self.dtype)]
        self.partial_args = self.args + partial + counts
        self.finish_args = partial + counts + self.epi.args
        # One partial per output (chunks == 1): `_single` runs the loop and the
        # epilogue in one launch (the finish launch cost as much as the loop
        # at 4096 x 64). Not for the column loop, which stores vectors.
        self.single_args = (
            merged_args(self.args + counts + self.epi.args) if self.prefix_width == 1 else None
        )
        self.streams_rows = self._streams_rows()  # CPUs, over leading axes
        if self.streams_rows:
            self.per_column = column_rows.per_column_inputs(self, len(self.axes))
        # Trailing axes reduced (softmax's rows): a broadcast operand of the
        # prologue is read as in the row layout, one row per output (its offset
        # once per work-item, no division per element), where its shape allows.
        s = self.ndim - len(self.axes)
        if self.suffix_width > 1 and self._broadcast_inputs() and self._splits_at(s):
            self.split = s

    # -- sizes ------------------------------------------------------------------

    def counts(self, shape, sizes=None) -> dict[str, int]:
        """m (outputs), r (elements per output) and chunks (partials per output)."""
        m = math.prod(shape[i] for i in self.kept)
        r = math.prod(shape[i] for i in self.axes)
        if self.streams_rows:  # CPUs: column_rows.py's layout
            return self.streamed_counts(m, r)
        # work-items per chunk: outputs_per_item outputs each (a column sum's
        # 1024 outputs are 128 vectors: 1 chunk of them used one core of two)
        per_chunk = -(-m // self.outputs_per_item)
        chunks = max(1, min(-(-self.fill_items // max(per_chunk, 1)), -(-r // MIN_STEPS_PER_ITEM)))
        return {"m": m, "r": r, "chunks": chunks}

    @property
    def fill_items(self) -> int:
        return fill_items(self.device, self.local_size)

    @property
    def outputs_per_item(self) -> int:
        """Outputs one work-item of the partial stage takes (a vector of them when
        the kept axes are trailing: a bias's gradient, summed over rows)."""
        return self.prefix_width

    def launches(self, shape, sizes=None) -> list[Launch]:
        """Each stage's launch, or the one of `_single` (the plan keeps both
        stages: with one chunk they compute the same)."""
        c = self.counts(shape)
        ls = self.local_size
        if self.single_args is not None and c["chunks"] == 1:
            grid = (-(-c["m"] // ls) * ls,)
            return [Launch(f"{self.group.name}_single", tuple(self.single_args), grid, (ls,))]
        items = -(-c["m"] // self.outputs_per_item) * c["chunks"]
        if self.streams_rows:
            items, pls = column_rows.items(self, {"cols": c["m"], "chunks": c["chunks"]}), 1
        else:
            pls = ls
        return [
            Launch(
                f"{self.group.name}_partial",
                tuple(self.partial_args),
                (-(-items // pls) * pls,),
                (pls,),
            ),
            Launch(
                f"{self.group.name}_finish",
                tuple(self.finish_args),
                (-(-c["m"] // ls) * ls,),
                (ls,),
            ),
        ]

    @property
    def entry_points(self) -> list[str]:
        single = [f"{self.group.name}_single"] if self.single_args is not None else []
        return [f"{self.group.name}_partial", f"{self.group.name}_finish", *single]

    def trial_launches(self) -> list[tuple[str, list]]:
        args = [self.partial_args, self.finish_args]
        args += [self.single_args] if self.single_args is not None else []
        stages = zip(self.entry_points, args, strict=True)
        sizes = [1 if self.streams_rows else self.local_size] + [self.local_size] * 2
        return [
            (name, [trial_kind(a) for a in args], (ls,))
            for (name, args), ls in zip(stages, sizes, strict=False)
        ]

    # -- source -----------------------------------------------------------------

    def _index(self, var: str, axes, out: str) -> list[str]:
        """Lines adding to `out` the flat domain offset of coordinate number `var` over `axes`."""
        lines = [f"long {out}_rest = {var};"]
        for i in reversed(axes):
            lines.append(
                f"{out} += ({out}_rest % d{i}) * {self._out_stride(i)}; {out}_rest /= d{i};"
            )
        return lines

    def _combine(self, acc: str, x: str, w: int = 1) -> str:
        category = "float" if dt.is_float(self.dtype) else "int"
        fields = {"acc": acc, "x": x}
        return render(
            self.prim.template_for(category, quirks=self.device.quirks),
            fields,
            self.acc,
            self.attrs,
            w,
            w,
            self.acc,
        )

    @property
    def suffix_width(self) -> int:
        """Vector width for reductions over trailing axes (each output's elements
        contiguous: softmax's rows), 1 for the strided loop."""
        w = self.device.vector_width
        suffix = self.axes == tuple(range(self.ndim - len(self.axes), self.ndim))
        return w if suffix and w > 1 and self.axes else 1

    @property
    def prefix_width(self) -> int:
        """Vector width for reductions over leading axes (the kept ones trailing:
        neighbouring outputs are neighbours in memory), 1 otherwise."""
        w = self.device.vector_width
        prefix = self.axes == tuple(range(len(self.axes)))
        return w if prefix and w > 1 and self.kept and self.suffix_width == 1 else 1

    def _prefix_loop(self, w: int) -> list[str]:
        """Leading axes: element j = q * m + o. Work-item t takes outputs
        o .. o + w - 1 (o = (t % ceil(m / w)) * w) as one vector, steps t / that,
        + chunks, ...; where fewer than w outputs are left, scalars."""
        vacc = f"{self.acc}{w}"
        vinit = render(self.prim.reduce_init, {}, self.acc, self.attrs, w, w, self.acc)
        init = render(self.prim.reduce_init, {}, self.acc, self.attrs, 1, 1, self.acc)
        vlines, vvalue = self._value(w, "j")
        lines, value = self._value(1, "j")
        out = [
            f"const long mv = (m + {w - 1}) / {w};",
            f"const long o = (t % mv) * {w}, c = t / mv;",
        ]
        out += [
            f"if (o + {w} <= m) {{",
            f"    {vacc} vacc = {vinit};",
            *("    " + line for line in self._nan_flag_init(w)),
            "    for (" + self._rows_of_chunk() + ") {",
            "        const long j = q * m + o;",
        ]
        out += ["        " + line for line in vlines + self._vector_step("vacc", vvalue, w)]
        out += [
            "    }",
            *("    " + line for line in self._nan_flag_apply("vacc", w)),
            f"    vstore{w}(vacc, 0, partial + c * m + o);",
            "} else {",
            "    for (long oo = o; oo < m; ++oo) {",
            f"        {self.acc} acc = {init};",
            "        for (" + self._rows_of_chunk() + ") {",
            "            const long j = q * m + oo;",
        ]
        out += ["            " + line for line in lines]
        out += [
            f"            acc = {self._combine('acc', value)};",
            "        }",
            "        partial[c * m + oo] = acc;",
            "    }",
            "}",
        ]
        return out

    def _rows_of_chunk(self) -> str:
        """The prefix loop's rows for chunk c: on a CPU a contiguous run (each
        work-item streams down its columns: a stride the prefetcher follows, a
        page at a time); elsewhere every chunks-th row (neighbouring work-items,
        neighbouring rows)."""
        if self.device.is_cpu:
            return "long q = c * ((r + chunks - 1) / chunks), qe = min(q + (r + chunks - 1) / chunks, r); q < qe; ++q"
        return "long q = c; q < r; q += chunks"

    def _value(self, w: int, base: str) -> tuple[list[str], str]:
        """Lines computing the prologue at `base`, and the element to combine (read as the operand dtype)."""
        (operand,) = self.g.nodes[self.group.anchor]["args"]
        lines, names = self.compute(w, base)
        value = convert(
            self._operand(operand, names, w), self.g.nodes[operand]["dtype"], self.operand_dtype, w
        )
        if w > 1 and self.operand_dtype == "bool":  # a vector mask is -1 where true: count 1
            value = f"(-({value}))"
        return lines, value

    def _strided_loop(self, init: str) -> list[str]:
        """Work-item t: output o = t % m, steps t / m, + chunks, ...: any axes."""
        lines, value = self._value(1, "j")
        out = ["long jo = 0;", *self._index("o", self.kept, "jo")]
        out += [
            f"{self.acc} acc = {init};",
            "for (long q = t / m; q < r; q += chunks) {",
            "    long j = jo;",
        ]
        out += ["    " + line for line in self._index("q", self.axes, "j")]
        out += ["    " + line for line in lines]
        return out + [f"    acc = {self._combine('acc', value)};", "}"]

    def _suffix_loop(self, w: int) -> list[str]:
        """Trailing axes: output o's r elements start at o * r. Blocks of
        SUFFIX_ACCUMULATORS vectors of w consecutive elements, one accumulator
        each (independent chains: one accumulator waited on each add), dealt
        round the chunks; chunk 0 takes the ragged end, vectors then scalars;
        the accumulators, then the lanes, are combined at the end."""
        k = SUFFIX_ACCUMULATORS
        vacc = f"{self.acc}{w}"
        vinit = render(self.prim.reduce_init, {}, self.acc, self.attrs, w, w, self.acc)
        vlines, vvalue = self._value(w, "j")
        lines, value = self._value(1, "j")
        split = self.split is not None
        accs = [f"vacc{i}" for i in range(k)]
        out = [
            "const long jo = o * r;",
            f"{vacc} " + ", ".join(f"{a} = {vinit}" for a in accs) + ";",
        ]
        out += self._nan_flag_init(w)
        if split:  # the row layout's offsets (elementwise.RowLayout): row o, column q
            out += ["const long row = o;", *self._row_offsets("m")]

        def step(acc: str, at: str) -> list[str]:  # one vector into `acc`, in its own scope
            col = f", c = {at}" if split else ""
            body = [f"const long j = jo + {at}{col};", *vlines, *self._vector_step(acc, vvalue, w)]
            return ["{", *("    " + line for line in body), "}"]

        if self.device.is_cpu:  # each chunk a contiguous run of blocks
            out += [
                f"const long per = (r / {k * w} + chunks - 1) / chunks * {k * w};",
                f"const long q0 = (t / m) * per, q1 = min(q0 + per, r - r % {k * w});",
                f"for (long q = q0; q < q1; q += {k * w}) {{",
            ]
        else:  # blocks dealt round the chunks: neighbouring work-items, neighbouring blocks
            out.append(
                f"for (long q = (t / m) * {k * w}; q + {k * w} <= r; q += chunks * {k * w}) {{"
            )
        for i, a in enumerate(accs):
            out += ["    " + line for line in step(a, f"q + {i * w}" if i else "q")]
        out += ["}", f"if (t / m == 0) for (long q = r - r % {k * w}; q + {w} <= r; q += {w}) {{"]
        out += ["    " + line for line in step(accs[0], "q")] + ["}"]
        # the accumulators, then the lanes; NaN is in the flag
        merge = self._combine_unordered if self._nan_flag else self._combine
        out += [f"vacc0 = {merge('vacc0', a, w)};" for a in accs[1:]]
        folded, last = lane_tree("vacc0", w, self.acc, merge)
        out += [*folded, f"{self.acc} acc = {last};"]
        out += self._nan_flag_apply("acc", 1)
        col = ", c = q" if split else ""
        out += [
            f"if (t / m == 0) for (long q = r - r % {w}; q < r; ++q) {{",
            f"    const long j = jo + q{col};",
        ]
        out += ["    " + line for line in lines]
        return out + [f"    acc = {self._combine('acc', value)};", "}"]

    def _finish(self, acc: str) -> str:
        if not self.prim.reduce_finish:
            return acc
        fields = {"acc": acc, "count": f"(({self.acc})(r))"}
        return render(self.prim.reduce_finish, fields, self.acc, self.attrs, 1, 1, self.acc)

    def source(self) -> str:
        name, acc = self.group.name, self.acc
        init = render(
            self.prim.reduce_init, {}, acc, self.attrs, 1, 1, acc
        )  # width fields: ZERO, LOWEST
        w, wp = self.suffix_width, self.prefix_width
        # the prologue's arguments; the epilogue's outputs and stores are the finish kernel's
        sig = [c_parameter(a) for a in self.args if not a.writes]
        sig += [
            f"__global {acc} *restrict partial",
            "const long m",
            "const long r",
            "const long chunks",
        ]
        ops = [self.g.nodes[n]["op"] for n in self.group.nodes]
        out = [
            f"// fusec: graph {self.g.graph['name']}, kernel {name}",
            f"// {self.prim.name} over axes {list(self.axes)} of {list(self.group.shape)}; "
            f"fused prologue ({len(ops)}): {' '.join(ops) if ops else '(none)'}",
            f"__kernel void {name}_partial(\n    " + ",\n    ".join(sig) + ")",
            "{",
        ]
        if self.streams_rows:
            out += ["    " + line for line in column_rows.partial_body(self)] + ["}", ""]
        elif wp > 1:  # the partials are stored in the loop
            out += ["    const long t = get_global_id(0);"]
            out += [f"    if (t >= (m + {wp - 1}) / {wp} * chunks) return;"]
            out += ["    " + line for line in self._prefix_loop(wp)] + ["}", ""]
        else:
            loop = self._suffix_loop(w) if w > 1 else self._strided_loop(init)
            out += ["    const long t = get_global_id(0);", "    if (t >= m * chunks) return;"]
            out += ["    const long o = t % m;"]
            out += ["    " + line for line in loop] + ["    partial[t] = acc;", "}", ""]
        if self.single_args is not None:  # chunks == 1: t is the output
            ssig = ",\n    ".join(c_parameter(a) for a in self.single_args)
            out += [f"__kernel void {name}_single(\n    {ssig})", "{"]
            out += ["    const long t = get_global_id(0);", "    if (t >= m) return;"]
            out += ["    const long o = t;", *("    " + line for line in loop)]
            out += self._result_lines() + ["}", ""]
        fsig = [
            f"__global const {acc} *restrict partial",
            "const long m",
            "const long r",
            "const long chunks",
        ]
        fsig += self.epi.signature()
        out += [
            f"__kernel void {name}_finish(\n    " + ",\n    ".join(fsig) + ")",
            "{",
            "    const long o = get_global_id(0);",
            "    if (o >= m) return;",
            f"    {acc} acc = partial[o];",
            f"    for (long c = 1; c < chunks; ++c) acc = {self._combine('acc', 'partial[c * m + o]')};",
        ]
        return "\n".join(out + self._result_lines() + ["}", ""])

    def _result_lines(self) -> list[str]:
        """Output o from its combined value `acc`: the finishing step, the epilogue, the stores."""
        out = [f"    acc = {self._finish('acc')};"] if self.prim.reduce_finish else []
        lines, names = self.epi.compute(1, "o", preset={self.group.anchor: "acc"})
        return out + ["    " + line for line in lines + self.epi.stores(1, "o", names)]
