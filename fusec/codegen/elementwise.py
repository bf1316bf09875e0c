"""Fusion group -> OpenCL C. One skeleton for elementwise kernels, with holes.

The kernel covers a flat index space of `n` elements. Each work-item handles
`W` consecutive elements as one vector (PoCL does not vectorise scalar code),
and the last work-item finishes a ragged tail with the same body over scalars.
Op spellings come from the registry's templates; nothing here knows an op.

With broadcast operands (`x * w` with `w: [D]`, `[B, 1]`, `[C, 1, 1]`) the
launch follows the output's layout instead: the index space is `rows` rows of
`inner` contiguous elements, where each broadcast operand is either constant
along a row (one value per row: `[B, 1]`, `[C, 1, 1]`) or equal to the
output's trailing dimensions (`[D]`). A work-item takes one vector position
of a row (and a few rows when rows are short); an operand's offset for the
row is computed once per row, so the vector loop has no per-element division.
Each row ends with its own scalar tail.
"""

from __future__ import annotations

import functools
import math

import networkx as nx

from ..ir import dtypes as dt
from ..ir.registry import lookup
from ..passes.fuse import FusionGroup, view_root
from . import streaming
from .device import DeviceInfo
from .kernel_args import (
    Count,
    KernelArg,
    Launch,
    Output,
    Param,
    Stored,
    c_parameter,
    extent_args,
    trial_kind,
)
from .opencl_c import (
    COMPUTE,
    MASK,
    STORAGE,
    c_name,
    composed_vector,
    convert,
    literal,
    math_calls,
    render,
    temp_name,
    to_mask,
    vec,
)
from .row_layout import ROW_COUNTS, ROW_VECTORS_CPU, RowLayout

HINTED_MAX_WRITES = 8  # arrays a kernel may write and take hinted_vectors_per_item


class ElementwiseKernel(RowLayout):
    """Source for one fusion group. `args` lists its `KernelArg`s in launch order."""

    # The index space's element count and extents, as kernel arguments. A
    # reduction's epilogue and a GEMM's prologue, in the same kernel as other
    # code, name their own ("en", "e0", ...: the reduction's result shape).
    space, size_name, dim_prefix = "group", "n", "d"
    _streaming = False  # vector stores are non-temporal when fu_nt (streaming.py)

    def __init__(self, g: nx.DiGraph, group: FusionGroup, device: DeviceInfo):
        self.g, self.group, self.device = g, group, device
        self.ndim = len(group.shape)
        self.args: list[KernelArg] = extent_args(
            self.space, self.size_name, self.dim_prefix, self.ndim
        )
        self.input_kind, self.c_names = {}, {}
        passed = set()  # memory already among the arguments (a view and its root share it)
        for p in group.inputs:
            data, root = g.nodes[p], view_root(g, p)
            rdata = g.nodes[root]
            stored = rdata["op"] != "param"  # a value an earlier kernel left in memory
            by_value = not stored and not rdata["shape"]  # a scalar parameter
            self.input_kind[p] = "value" if by_value else self._input_kind(data["shape"], True)
            self.c_names[p] = temp_name(root) if stored else c_name(rdata["name"])
            if root in passed:
                continue
            passed.add(root)
            if stored:
                self.args.append(KernelArg(temp_name(root), Stored(root), rdata["dtype"]))
            else:
                self.args.append(
                    KernelArg(rdata["name"], Param(rdata["name"], by_value), rdata["dtype"])
                )
        for index, node in group.outputs:
            self.args.append(KernelArg(f"out{index}", Output(index), g.nodes[node]["dtype"]))
        for node in group.stores:
            self.args.append(
                KernelArg(temp_name(node), Stored(node, write=True), g.nodes[node]["dtype"])
            )
        # The row layout (see the module's doc): only a standalone elementwise
        # kernel; a reduction's prologue or a GEMM's epilogue index their own way.
        self.split = (
            self._row_split() if self.space == "group" and group.kind == "elementwise" else None
        )
        if self.split is not None:
            self.args += [KernelArg(name, Count(name), "i64") for name in ROW_COUNTS]

    @functools.cached_property
    def quirks(self) -> frozenset[str]:
        """The device's quirks that this kernel can meet. select_drops_signed_zero
        was seen only where the selected values came from f16 memory; its
        workaround (comparing bits) cost f32 chains 8-22% (relu, clamp, relu6
        at 2^20-2^22 on Intel's runtime), so a kernel without f16 does without."""
        g = self.g
        if any(g.nodes[n]["dtype"] == "f16" for n in (*self.group.inputs, *self.group.nodes)):
            return self.device.quirks
        return self.device.quirks - {"select_drops_signed_zero"}

    def _input_kind(self, shape, in_memory: bool = True) -> str:
        if len(shape) == 0:
            return "splat" if in_memory else "value"
        if tuple(shape) == tuple(self.group.shape):
            return "contiguous"
        aligned = (1,) * (self.ndim - len(shape)) + tuple(shape)
        if all(d == 1 for d in aligned):
            return "splat"
        return "row" if aligned[-1] != 1 else "column"

    # -- index arithmetic for broadcast operands ------------------------------

    def _bcast_index(self, p: int, flat: str) -> str:
        """Flat index into a broadcast operand for output element `flat`."""
        shape = self.g.nodes[p]["shape"]
        aligned = (1,) * (self.ndim - len(shape)) + tuple(shape)
        terms, stride = [], []
        for i in reversed(range(self.ndim)):
            if aligned[i] != 1:
                d = self.dim_prefix
                coord = (
                    f"(({flat}) / {self._out_stride(i)} % {d}{i})"
                    if i
                    else f"(({flat}) / {self._out_stride(i)})"
                )
                terms.append(coord + "".join(f" * {d}{j}" for j in stride))
                stride.append(i)
        return " + ".join(reversed(terms)) or "0"

    def _out_stride(self, i: int) -> str:
        d = self.dim_prefix
        return (
            "(" + " * ".join(f"{d}{j}" for j in range(i + 1, self.ndim)) + ")"
            if i + 1 < self.ndim
            else "1"
        )

    # -- loads and stores ---------------------------------------------------------

    def _load(self, p: int, w: int, base: str) -> str:
        data = self.g.nodes[p]
        name, dtype, kind = self.c_names[p], data["dtype"], self.input_kind[p]
        ct = COMPUTE[dtype]
        if kind == "value":
            return name if w == 1 else f"(({ct}{w})({name}))"

        def at(index):  # one element, in the compute type
            if dtype == "f16":
                return f"vload_half({index}, {name})"
            if dtype == "bool":
                return f"(int)({name}[{index}] != 0)"
            return f"{name}[{index}]"

        if kind == "splat":
            one = at("0")
            return one if w == 1 else self._splat(one, dtype, w)
        if kind == "contiguous":
            return at(base) if w == 1 else self._vload(name, dtype, base, w)
        if self.split is not None:  # the row layout: its offset for this row, + the column c
            if not self._row_vector(p):
                return at(f"ob{p}") if w == 1 else self._splat(at(f"ob{p}"), dtype, w)
            return at(f"ob{p} + c") if w == 1 else self._vload(name, dtype, f"ob{p} + c", w)
        index = self._bcast_index(p, base)
        if w == 1:
            return at(index)
        gather = (
            f"(({ct}{w})("
            + ", ".join(at(self._bcast_index(p, f"{base} + {k}")) for k in range(w))
            + "))"
        )
        if dtype == "bool":
            gather = f"(-{gather})"
        if kind == "row":  # contiguous within a row: a vector load when rows hold whole vectors
            fast = self._vload(name, dtype, index, w)
        else:  # one value across the row: a splat when rows hold whole vectors
            fast = self._splat(at(index), dtype, w)
        return f"(({self.dim_prefix}{self.ndim - 1} % {w} == 0) ? {fast} : {gather})"

    def _splat(self, one: str, dtype: str, w: int) -> str:
        ct = COMPUTE[dtype]
        v = f"(({ct}{w})({one}))"
        return f"(-{v})" if dtype == "bool" else v

    def _vload(self, name: str, dtype: str, index: str, w: int) -> str:
        if dtype == "f16":
            return f"vload_half{w}(0, {name} + {index})"
        raw = self._raw_vector(name, STORAGE[dtype], index, w)
        if dtype == "bool":
            return f"convert_int{w}({raw} != (uchar{w})(0))"
        return raw

    def _raw_vector(self, name: str, ctype: str, index: str, w: int) -> str:
        """w stored values from `name + index`, as they are in memory."""
        if self.device.compose_vector_access:
            return composed_vector(ctype, w, f"{name} + {index}")
        return f"vload{w}(0, {name} + {index})"

    def _store(self, out: str, dtype: str, value: str, w: int, index: str) -> str:
        if w == 1:
            if dtype == "f16":
                return f"vstore_half({value}, {index}, {out});"
            if dtype == "bool":
                return f"{out}[{index}] = (uchar)(({value}) != 0);"
            return f"{out}[{index}] = {value};"
        if dtype == "f16":
            return f"vstore_half{w}({value}, 0, {out} + {index});"
        if dtype == "bool":
            value = f"convert_uchar{w}(-({value}))"
        if self.device.compose_vector_access:
            lanes = " ".join(f"{out}[{index} + {k}] = fu_st.s{k:x};" for k in range(w))
            return f"{{ const {STORAGE[dtype]}{w} fu_st = {value}; {lanes} }}"
        if self._streaming:
            return streaming.store(out, STORAGE[dtype], w, value, index)
        return f"vstore{w}({value}, 0, {out} + {index});"

    # -- the body -----------------------------------------------------------------

    def body(self, w: int, base: str) -> list[str]:
        """The group's values at `base`, stored to its outputs."""
        lines, names = self.compute(w, base)
        return lines + self.stores(w, base, names)

    def compute(self, w: int, base: str, preset=None) -> tuple[list[str], dict]:
        """Lines computing every node of the group at `base`, and the C name of
        each value; `preset`: values the kernel already has (a GEMM's result)."""
        g, lines, names = self.g, [], dict(preset or {})
        for p in self.group.inputs:
            ct = vec(COMPUTE[g.nodes[p]["dtype"]], w)
            names[p] = f"p{p}"
            lines.append(f"const {ct} p{p} = {self._load(p, w, base)};")
        for n in self.group.nodes:
            data = g.nodes[n]
            prim = lookup(data["op"])
            operand = data["operand_dtypes"]
            # T: the type the template computes in (its operands' common type)
            t_dtype = dt.concrete(operand[-1] if prim.dtype_rule == "where" else operand[0])
            if prim.dtype_rule == "cast":
                t_dtype = dt.concrete(g.nodes[data["args"][0]]["dtype"])
            ct = COMPUTE[t_dtype]
            # bool operands of arithmetic or ordering, not logic or selection
            numeric_bool = t_dtype == "bool" and prim.dtype_rule in ("promote", "compare")
            attrs = dict(data["attrs"])
            fields = {}
            for i, (arg, want, name) in enumerate(
                zip(data["args"], operand, prim.inputs, strict=True)
            ):
                expr = self._operand(arg, names, w)
                src = g.nodes[arg]["dtype"]
                if g.nodes[arg]["op"] == "const" and dt.concrete(want) != "bool":
                    # a literal is written directly in the type it is read as
                    expr, src = literal(g.nodes[arg]["value"], COMPUTE[dt.concrete(want)], w), want
                if prim.dtype_rule == "where" and i == 0:
                    fields[name] = to_mask(convert(expr, src, "bool", w), ct, w)
                else:
                    fields[name] = convert(expr, src, want, w)
                    if numeric_bool and w > 1:
                        # a vector mask holds true as -1, which orders below false
                        # (maximum, <, ...): arithmetic sees bools as 0/1, as torch
                        fields[name] = f"(-{fields[name]})"
            category = "bool" if t_dtype == "bool" else ("float" if dt.is_float(t_dtype) else "int")
            template = prim.template_for(category, attrs, self.quirks)
            result_ct = MASK[ct] if prim.dtype_rule in ("compare", "logical") else ct
            cap = prim.max_width.get(t_dtype, w)
            if "double{W}" in template:  # computed in double whatever the dtype (sin, cos)
                cap = min(cap, max(1, self.device.max_vector_bytes // 8))
            expr = render(template, fields, ct, attrs, w, cap, result_ct)
            if prim.dtype_rule in ("compare", "logical"):
                expr = f"convert_int{w}({expr})" if w > 1 else f"(int)({expr})"
                result_from = "bool"
            elif numeric_bool:  # a 0/1 (or 0..2 for add) number back to a bool mask
                expr, result_from = convert(expr, "i32", "bool", w), "bool"
            else:
                result_from = t_dtype
            expr = convert(expr, result_from, data["dtype"], w)
            rt = vec(COMPUTE[dt.concrete(data["dtype"])], w)
            names[n] = f"v{n}"
            lines.append(f"const {rt} v{n} = {expr};  // {data['op']}")
        return lines, names

    def stores(self, w: int, base: str, names: dict) -> list[str]:
        g, lines = self.g, []
        for index, node in self.group.outputs:
            value = self._operand(node, names, w)
            if g.nodes[node]["op"] == "param" and node not in names:
                value = self._load(node, w, base)
            lines.append(self._store(f"out{index}", g.nodes[node]["dtype"], value, w, base))
        for node in self.group.stores:  # values later kernels read
            lines.append(self._store(temp_name(node), g.nodes[node]["dtype"], names[node], w, base))
        return lines

    def _operand(self, node: int, names: dict, w: int) -> str:
        data = self.g.nodes[node]
        if data["op"] == "const":
            value = data["value"]
            if w > 1 and dt.concrete(data["dtype"]) == "bool":
                # a vector bool is a mask, true all ones (-1), as a vector compare
                # gives: `?:` on vectors tests the top bit, which 1 lacks
                value = -1 if value else 0
            return literal(value, COMPUTE[dt.concrete(data["dtype"])], w)
        return names[node]

    def signature(self) -> list[str]:
        return [c_parameter(a) for a in self.args]

    @property
    def local_size(self) -> int:
        return self.device.local_size

    @property
    def entry_points(self) -> list[str]:
        return [self.group.name]

    def counts(self, shape, sizes=None) -> dict[str, int]:
        """The row layout's sizes: `rows` rows of `inner` elements."""
        if self.split is None:
            return {}
        return {"inner": math.prod(shape[self.split :]), "rows": math.prod(shape[: self.split])}

    def count_exprs(self, size_expr) -> dict[str, str]:
        """`counts` as the plan's size expressions (`size_expr`: a shape's element count)."""
        shape = self.group.shape
        return {"inner": size_expr(shape[self.split :]), "rows": size_expr(shape[: self.split])}

    def work_items(self, counts: dict, n) -> object:
        """Work-items (before rounding to whole work-groups) for n elements, or
        the row layout's `counts` (numbers, or the plan's expressions)."""
        e = self.elements_per_item
        if self.split is None:
            return -(-n // e) if isinstance(n, int) else f"ceil(({n}) / {e})"
        c = counts
        if isinstance(c["inner"], int):
            return -(-c["inner"] // e) * c["rows"]
        return f"ceil(({c['inner']}) / {e})*({c['rows']})"

    def launches(self, shape, sizes=None) -> list[Launch]:
        """The launches for the index space `shape` (`sizes`: the graph's symbols)."""
        items, ls = self.work_items(self.counts(shape), math.prod(shape)), self.local_size
        return [Launch(self.group.name, tuple(self.args), (-(-items // ls) * ls,), (ls,))]

    def trial_launches(self) -> list[tuple[str, list[str], tuple]]:
        """(entry point, argument kinds, work-group shape) for a launch that does nothing."""
        return [(self.group.name, [trial_kind(a) for a in self.args], (self.local_size,))]

    @property
    def elements_per_item(self) -> int:
        """Elements one work-item covers: the global size is ceil(n / this)."""
        return self.device.vector_width * self._vectors_per_item

    @property
    def _vectors_per_item(self) -> int:
        # the row layout divides once per work-item: CPUs take several vectors each
        u = self.device.vectors_per_item
        if self.split is not None and self.device.is_cpu and self.device.vector_width > 1:
            return max(u, ROW_VECTORS_CPU)
        # not in a kernel writing many arrays: Intel's build time grows faster than
        # its code (10^4 outputs in 22 kernels: over 120 s with 4, 33 s with 1),
        # and 32-128 outputs ran as fast with 1 (2^18 floats, loaded machine)
        few = len(self.group.outputs) + len(self.group.stores) <= HINTED_MAX_WRITES
        return max(u, self.device.hinted_vectors_per_item) if self._hinted and few else u

    @functools.cached_property
    def _hinted(self) -> bool:
        """A flat kernel that carries vec_type_hint (DeviceInfo.hint_max_calls)."""
        d = self.device
        if self.split is not None or d.vector_width == 1 or d.hint_max_calls < 0:
            return False
        return math_calls(self.body(d.vector_width, "i")) <= d.hint_max_calls

    def source(self) -> str:
        w, u = self.device.vector_width, self._vectors_per_item
        ops = [self.g.nodes[n]["op"] for n in self.group.nodes]
        head = [
            f"// fusec: graph {self.g.graph['name']}, kernel {self.group.name}",
            f"// fused ops ({len(ops)}): {' '.join(ops) if ops else '(copy)'}",
            f"// elements per work-item: {w * u}" + (f" ({u} vectors of {w})" if u > 1 else ""),
        ]
        sig = ",\n    ".join(self.signature())
        out = head + [f"__kernel void {self.group.name}(\n    {sig})", "{"]
        # stores past the caches for large outputs (streaming.py), set before the
        # bodies render; in kernels that carry vec_type_hint only: where Intel's
        # compiler vectorises across work-items, the builtin's stores ran a
        # chain of transcendental calls 2.5x slower (2^22 floats: 11.5 vs 4.5 ms)
        hinted = self.split is not None or self._hinted
        self._streaming = w > 1 and hinted and streaming.eligible(self)
        if self._streaming:
            out += ["    " + line for line in streaming.prologue(self, w, self._row_length)]
        if self.split is not None:
            if w > 1:
                # already vectorised: Intel's CPU compiler, vectorising across work-items
                # besides, ran the row layout 2-3x slower without this hint
                # (before `__kernel`, so that the line still reads `__kernel void <name>(`)
                out[len(head)] = f"{self._hint(w)}\n{out[len(head)]}"
            return "\n".join(out + self._row_body(w, u) + ["}", ""])
        scalar = ["    " + line for line in self.body(1, "j")]
        if w == 1:
            out += ["    const long j = get_global_id(0);", "    if (j >= n) return;"]
            out += scalar
            return "\n".join(out + ["}", ""])
        vector = self.body(w, "i")
        # The full case is straight-line code: U independent vectors per
        # work-item, no loop (PoCL ran a loop over them 3x slower). Only the
        # last work-item takes the scalar tail.
        if self._hinted:
            out[len(head)] = f"{self._hint(w)}\n{out[len(head)]}"
        if self._streaming:  # the elements before the aligned vectors, one by one
            out += ["    if (get_global_id(0) == 0) {"]
            out += ["        for (long j = 0; j < min(fu_s, n); ++j) {"]
            out += ["        " + line for line in scalar] + ["        }", "    }"]
        shift = "fu_s + " if self._streaming else ""
        out += [
            f"    const long i0 = {shift}(long)get_global_id(0) * {w * u};",
            f"    if (i0 + {w * u} <= n) {{",
        ]
        for k in range(u):
            out += [f"        {{ const long i = i0 + {k * w};"]
            out += ["            " + line for line in vector] + ["        }"]
        out += ["    } else {", "        for (long j = i0; j < n; ++j) {"]
        out += ["        " + line for line in scalar] + ["        }", "    }"]
        if self._streaming:
            out.append("    " + streaming.FENCE)
        return "\n".join(out + ["}", ""])
