"""GEMM group -> OpenCL C: `linear`'s product with its elementwise epilogue.

The group's elementwise nodes (bias, activation, residual, several outputs)
run on each result element in registers, inside the GEMM kernel, through
the elementwise skeleton's own `compute`/`stores` at the element's flat
index: no intermediate buffer. The product's loop and blocking come from
`fusec.gemm` (chosen from the device); this module supplies the epilogue
and the arguments.
"""

from __future__ import annotations

import math

import networkx as nx

from .codegen import COMPUTE, ElementwiseKernel, temp_name
from .device import DeviceInfo
from .diagnostics import error
from .passes.fuse import FusionGroup


class GemmKernel(ElementwiseKernel):
    def __init__(self, g: nx.DiGraph, group: FusionGroup, device: DeviceInfo):
        super().__init__(g, group, device)  # self.args: the epilogue's (n, dims, inputs, outputs, stores)
        anchor = g.nodes[group.anchor]
        self.dtype = anchor["dtype"]
        if self.dtype not in ("f32", "f64"):
            raise error(f"{anchor['op']} on {self.dtype} is not supported yet (f32 and f64 are)", anchor["pos"])
        self.ctype = COMPUTE[self.dtype]
        self.x, self.w = group.operands
        self.k_dim = g.nodes[self.x]["shape"][-1]
        self.operand_args = []
        for node in (self.x, self.w):
            data = g.nodes[node]
            name = data["name"] if data["op"] == "param" else temp_name(node)
            self.operand_args.append((name, "operand", data["dtype"]))
        self.main_args = [("M", "count", "i64"), ("N", "count", "i64"), ("K", "count", "i64")] + self.operand_args
        self.main_args += self.args
        choose_layout = _generator().choose_layout
        shape = group.shape
        m = math.prod(shape[:-1]) if all(isinstance(d, int) for d in shape[:-1]) else None
        n = shape[-1] if isinstance(shape[-1], int) else None
        k = self.k_dim if isinstance(self.k_dim, int) else None
        self.layout = choose_layout(device, m, n, k, self.dtype)

    # -- sizes --------------------------------------------------------------------

    def counts(self, shape, sizes=None) -> dict[str, int]:
        k = self.k_dim if isinstance(self.k_dim, int) else sizes[self.k_dim]
        return {"M": math.prod(shape[:-1]), "N": shape[-1], "K": k}

    def launches(self, shape, sizes=None):
        c = self.counts(shape, sizes)
        global_size, local_size = _generator().launch_geometry(self.layout, c["M"], c["N"], c["K"])
        return [(self.group.name, self.main_args, global_size, local_size)]

    def geometry_exprs(self, m: str, n: str, k: str) -> tuple[list[str], list[int] | None]:
        """The launch geometry as size expressions over the graph's symbols, for the plan."""
        return _generator().launch_geometry_exprs(self.layout, m, n, k)

    def trial_launches(self):
        _, local = _generator().launch_geometry(self.layout, 1, 1, 1)
        kinds = ["long" if k in ("size", "dim", "count") else COMPUTE[d] if k == "scalar" else "buffer"
                 for _, k, d in self.main_args]
        return [(self.group.name, kinds, local or (1,))]

    # -- source -------------------------------------------------------------------

    def epilogue(self, acc: str, row: str, col: str) -> list[str]:
        """C statements consuming one result element: the group's ops, then its stores."""
        base = f"(({row}) * N + ({col}))"
        lines, names = self.compute(1, base, preset={self.group.anchor: acc})
        return ["{", *("    " + line for line in lines + self.stores(1, base, names)), "}"]

    def source(self) -> str:
        gemm_source = _generator().gemm_source
        params = [p for p, (_, kind, _) in zip(self.signature(), self.args, strict=True)]
        ops = [self.g.nodes[n]["op"] for n in self.group.nodes]
        head = [
            f"// fusec: graph {self.g.graph['name']}, kernel {self.group.name}",
            f"// {self.g.nodes[self.group.anchor]['op']} with a fused epilogue ({len(ops)}): "
            f"{' '.join(ops) if ops else '(store)'}",
        ]
        body = gemm_source(self.group.name, self.layout, ctype=self.ctype, epilogue=self.epilogue,
                           epilogue_params=params)
        return "\n".join(head) + "\n" + body



# -- a plain generator, until fusec.gemm lands: one work-item per result element


class _Naive:
    @staticmethod
    def choose_layout(device, m, n, k, dtype="f32"):
        return ("naive", 16)

    @staticmethod
    def launch_geometry(layout, m, n, k):
        ls = layout[1]
        return ((-(-n // ls) * ls, m), (ls, 1))

    @staticmethod
    def launch_geometry_exprs(layout, m, n, k):
        ls = layout[1]
        return [f"ceil(({n}) / {ls}) * {ls}", m], [ls, 1]

    @staticmethod
    def gemm_source(name, layout, *, ctype, epilogue, epilogue_params):
        params = ["const long M", "const long N", "const long K", f"__global const {ctype} *restrict x",
                  f"__global const {ctype} *restrict w", *epilogue_params]
        body = [
            f"__kernel void {name}(\n    " + ",\n    ".join(params) + ")",
            "{",
            "    const long col = get_global_id(0), row = get_global_id(1);",
            "    if (col >= N || row >= M) return;",
            f"    const __global {ctype} *xr = x + row * K, *wr = w + col * K;",
            f"    {ctype} acc = 0;",
            "    for (long k = 0; k < K; ++k) acc = xr[k] * wr[k] + acc;",
            *("    " + line for line in epilogue("acc", "row", "col")),
            "}",
            "",
        ]
        return "\n".join(body)


def _generator():
    try:
        from . import gemm
    except ImportError:
        return _Naive
    return gemm
