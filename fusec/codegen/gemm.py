"""GEMM group -> OpenCL C: `linear`'s product with its elementwise epilogue.

The group's elementwise nodes (bias, activation, residual, several outputs)
run on each result element in registers, inside the GEMM kernel, through
the elementwise skeleton's own `compute`/`stores` at the element's flat
index: no intermediate buffer. The product's loop and blocking come from
`fusec.gemm` (chosen from the device); this module supplies the epilogue
and the arguments.
"""

from __future__ import annotations

import dataclasses
import math

import networkx as nx

from ..ir.ops.linalg import gemm_dims
from ..ir.registry import lookup
from ..passes.fuse import FusionGroup, view_root
from . import gemm_layouts
from .device import DeviceInfo
from .elementwise import ElementwiseKernel
from .gemm_rows import tail_call
from .kernel_args import Count, KernelArg, Launch, Param, Scratch, Stored, c_parameter, trial_kind
from .opencl_c import COMPUTE, temp_name


class _Prologue(ElementwiseKernel):
    """The elementwise ops computing a GEMM's x as it is loaded, over x's own
    index space (named apart from the epilogue's)."""

    space, size_name, dim_prefix = "prologue", "qn", "q"


class GemmKernel(ElementwiseKernel):
    def __init__(self, g: nx.DiGraph, group: FusionGroup, device: DeviceInfo):
        super().__init__(
            g, group, device
        )  # self.args: the epilogue's (n, dims, inputs, outputs, stores)
        anchor = g.nodes[group.anchor]
        self.dtype = anchor["dtype"]
        assert self.dtype in ("f32", "f64"), "infer rejects GEMMs on other dtypes"
        self.ctype = COMPUTE[self.dtype]
        self.x, self.w = group.operands
        prim = lookup(anchor["op"])
        self.ta, self.tb = prim.transposed(dict(anchor["attrs"]))
        self.m_dims, self.n_dims, self.k_dims, _ = gemm_dims(
            g.nodes[self.x]["shape"], g.nodes[self.w]["shape"], self.ta, self.tb
        )
        self.operand_args = []
        for node in (self.x, self.w):
            # a view (squeeze/unsqueeze) operand reads its root's memory, contiguous as it is
            root = view_root(g, node)
            data = g.nodes[root]
            if data["op"] == "param":
                self.operand_args.append(
                    KernelArg(data["name"], Param(data["name"]), data["dtype"])
                )
            else:
                self.operand_args.append(KernelArg(temp_name(root), Stored(root), data["dtype"]))

        def known(dims):
            return math.prod(dims) if all(isinstance(d, int) for d in dims) else None

        m, n, k = known(self.m_dims), known(self.n_dims), known(self.k_dims)
        self.layout = gemm_layouts.choose_layout(
            device, m, n, k, self.dtype, ta=self.ta, tb=self.tb
        )
        # With M unknown until the call, a layout that packs w on every call is
        # kept for large M, and one that reads w as stored is built beside it for
        # small M, where packing costs more than it saves (64x4096->4096).
        self.small = None
        if m is None and self.layout.packs and (self.ta, self.tb) == (False, True):
            self.small = gemm_layouts.choose_layout(device, m, n, k, self.dtype, pack="never")
        # With M unknown, a call of a few rows (batch-1 inference) would spend most of
        # an 8-row block's multiply-adds on copies of the last row: an entry point of
        # FEW_ROWS-row blocks over the same panels runs M <= FEW_ROWS (gemm_layouts).
        self.few = None
        if m is None and self.layout.kind == "panel" and not self.ta:
            if self.layout.rows > gemm_layouts.FEW_ROWS:
                self.few = dataclasses.replace(self.layout, rows=gemm_layouts.FEW_ROWS)
        # A layout may want w repacked (panels) by a kernel of its own first; that
        # happens on every call, since fusec cannot know whether w changed.
        self.packs = self.layout.packs
        # A transposed x is repacked into row panels first as well (GemmLayout.packs_x)
        self.packs_x = self.layout.packs_x
        packed = KernelArg("packed", Scratch("packed"), self.dtype)
        xpacked = KernelArg("xpacked", Scratch("xpacked"), self.dtype)
        counts = [KernelArg(name, Count(name), "i64") for name in ("M", "N", "K")]
        self.pack_args = counts[1:] + [self.operand_args[1], packed]
        self.xpack_args = [counts[0], counts[2], self.operand_args[0], xpacked]
        # A cheap prologue computes x as it is loaded (fuse.gemm_prologue): its
        # inputs replace x among the arguments, beside the epilogue's.
        self.pro = None
        extra = self.args
        if group.prologue:
            self.pro = _Prologue(
                g,
                FusionGroup(
                    f"{group.name}_prologue",
                    tuple(g.nodes[self.x]["shape"]),
                    group.prologue,
                    group.prologue_inputs,
                    (),
                    "",
                ),
                device,
            )
            taken = {a.name for a in self.pro.args}
            extra = self.pro.args + [a for a in self.args if a.name not in taken]
        self.extra_args = extra
        head = counts + ([] if self.pro else [xpacked if self.packs_x else self.operand_args[0]])
        self.main_args = head + [packed if self.packs else self.operand_args[1]] + extra
        self.tail = None  # a row kernel run after the epilogue (gemm_rows.py)
        self.small_args = head + [self.operand_args[1]] + extra

    # -- sizes --------------------------------------------------------------------

    def counts(self, shape, sizes=None) -> dict[str, int]:
        def value(dims):
            return math.prod(d if isinstance(d, int) else sizes[d] for d in dims)

        return {"M": value(self.m_dims), "N": value(self.n_dims), "K": value(self.k_dims)}

    @property
    def entry_points(self) -> list[str]:
        names = [f"{self.group.name}_pack", self.group.name] if self.packs else [self.group.name]
        xpack = [f"{self.group.name}_xpack"] if self.packs_x else []
        few = [f"{self.group.name}_few"] if self.few else []
        return xpack + names + few + ([f"{self.group.name}_small"] if self.small else [])

    def _use_small(self, counts: dict, w_bound: bool) -> bool:
        # A bound w (CompiledGraph.bind) is packed once, after which the packed
        # layout wins at every M (measured 1 to 100 rows: 1.1-1.2x the small one).
        return (
            self.small is not None
            and not w_bound
            and counts["M"] < gemm_layouts.PER_CALL_PACK_MIN_M
        )

    def packed_elements(self, counts: dict, w_bound: bool = False) -> int:
        if not self.packs or self._use_small(counts, w_bound):
            return 0
        return gemm_layouts.packed_elements(self.layout, counts["N"], counts["K"])

    def packed_x_elements(self, counts: dict) -> int:
        return (
            gemm_layouts.packed_x_elements(self.layout, counts["M"], counts["K"])
            if self.packs_x
            else 0
        )

    def launches(self, shape, sizes=None, w_bound: bool = False):
        """(entry point, argument spec, global size, local size) per launch;
        `w_bound`: w is bound and kept packed (the pack launch is skipped by the caller)."""
        c = self.counts(shape, sizes)
        if self._use_small(c, w_bound):
            global_size, local_size = gemm_layouts.launch_geometry(
                self.small, c["M"], c["N"], c["K"]
            )
            return [
                Launch(f"{self.group.name}_small", tuple(self.small_args), global_size, local_size)
            ]
        layout, entry = self.layout, self.group.name
        if self.few is not None and c["M"] <= self.few.rows:
            layout, entry = self.few, f"{self.group.name}_few"
        global_size, local_size = gemm_layouts.launch_geometry(layout, c["M"], c["N"], c["K"])
        main = Launch(entry, tuple(self.main_args), global_size, local_size)
        launches = [main]
        if self.packs:
            pack_global, pack_local = gemm_layouts.pack_geometry(self.layout, c["N"], c["K"])
            launches.insert(
                0, Launch(f"{self.group.name}_pack", tuple(self.pack_args), pack_global, pack_local)
            )
        if self.packs_x:
            xpack_global, xpack_local = gemm_layouts.xpack_geometry(self.layout, c["M"], c["K"])
            launches.insert(
                0,
                Launch(
                    f"{self.group.name}_xpack", tuple(self.xpack_args), xpack_global, xpack_local
                ),
            )
        return launches

    def geometry_exprs(self, m: str, n: str, k: str) -> tuple[list[str], list[int] | None]:
        """The launch geometry as size expressions over the graph's symbols, for the plan."""
        return gemm_layouts.launch_geometry_exprs(self.layout, m, n, k)

    def trial_launches(self):
        def kinds(args):
            return [trial_kind(a) for a in args]

        _, local = gemm_layouts.launch_geometry(self.layout, 1, 1, 1)
        trials = [(self.group.name, kinds(self.main_args), local or (1,))]
        if self.packs:
            _, pack_local = gemm_layouts.pack_geometry(self.layout, 1, 1)
            trials.insert(0, (f"{self.group.name}_pack", kinds(self.pack_args), pack_local))
        if self.packs_x:
            _, xpack_local = gemm_layouts.xpack_geometry(self.layout, 1, 1)
            trials.insert(0, (f"{self.group.name}_xpack", kinds(self.xpack_args), xpack_local))
        if self.few:
            trials.append((f"{self.group.name}_few", kinds(self.main_args), local or (1,)))
        if self.small:
            _, small_local = gemm_layouts.launch_geometry(self.small, 1, 1, 1)
            trials.append((f"{self.group.name}_small", kinds(self.small_args), small_local))
        return trials

    # -- source -------------------------------------------------------------------

    def epilogue(self, acc: str, row: str, col: str, width: int = 1) -> list[str]:
        """C statements consuming result elements (row, col .. col + width - 1),
        `acc` their values: the group's ops, then its stores, as the elementwise
        skeleton writes them (vector loads and stores for width > 1)."""
        base = f"(({row}) * N + ({col}))"
        lines, names = self.compute(width, base, preset={self.group.anchor: acc})
        return ["{", *("    " + line for line in lines + self.stores(width, base, names)), "}"]

    def x_load(self, row: str, k: str, width: int) -> tuple[list[str], str]:
        """The prologue's statements for x[row, k .. k + width - 1], and its value."""
        lines, names = self.pro.compute(width, f"(({row}) * K + ({k}))")
        return lines, names[self.x]

    def source(self) -> str:
        gemm_source = gemm_layouts.gemm_source
        tail_args = list(self.tail.args) if self.tail else []
        params = [c_parameter(a) for a in self.extra_args + tail_args]
        ops = [self.g.nodes[n]["op"] for n in self.group.nodes]
        pro = [self.g.nodes[n]["op"] for n in self.group.prologue]
        head = [
            f"// fusec: graph {self.g.graph['name']}, kernel {self.group.name}",
            f"// {self.g.nodes[self.group.anchor]['op']} with a fused epilogue ({len(ops)}): "
            f"{' '.join(ops) if ops else '(store)'}"
            + (f"; x computed as loaded: {' '.join(pro)}" if pro else ""),
        ]
        kw = dict(
            ctype=self.ctype,
            epilogue=self.epilogue,
            epilogue_params=params,
            vector_epilogue=self.epilogue,
        )
        if self.pro:
            kw["x_load"] = self.x_load
        if self.tail:
            head.append(self.tail.rows.row_function())
            kw["after"] = tail_call(self.tail, self.layout.rows)
        body = gemm_source(self.group.name, self.layout, **kw)
        if self.few:  # reads the main entry's panels: no packers of its own
            body += "\n" + gemm_source(f"{self.group.name}_few", self.few, packers=False, **kw)
        if self.small:
            body += "\n" + gemm_source(f"{self.group.name}_small", self.small, **kw)
        return "\n".join(head) + "\n" + body
