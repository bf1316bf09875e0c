"""Code generation: fusion groups -> OpenCL C, one kernel skeleton per group kind
(elementwise, reduction, GEMM, columns: elementwise outputs with column sums), and the launch plan that describes them."""

from __future__ import annotations

import networkx as nx

from ..diagnostics import CompileError, Diagnostic
from ..ir import dtypes as dt
from ..passes.fuse import FusionGroup
from .column_reduction import ColumnSumKernel
from .device import DeviceInfo
from .elementwise import ElementwiseKernel
from .gemm import GemmKernel
from .gemm_rows import attach_row_tails
from .mathlib import helpers_for
from .opencl_c import COMPUTE, CTYPE_BYTES
from .reduction import ReductionKernel
from .row_reduction import RowReductionKernel

KERNEL_FOR_KIND = {
    "reduction": ReductionKernel,
    "gemm": GemmKernel,
    "elementwise": ElementwiseKernel,
    "columns": ColumnSumKernel,
    "rows": RowReductionKernel,
}


def generate(g: nx.DiGraph, groups: list[FusionGroup], device: DeviceInfo) -> tuple[str, list]:
    """The program source for all groups, and each group's kernel object."""
    kernels = [
        KERNEL_FOR_KIND[grp.kind](g, grp, device.for_element_bytes(_widest(g, grp)))
        for grp in groups
    ]
    attach_row_tails(kernels)  # a softmax after a classifier's GEMM: in the GEMM's kernel
    for k, (entry, kinds, _) in ((kn, t) for kn in kernels for t in kn.trial_launches()):
        used = sum(8 if kind == "buffer" else CTYPE_BYTES.get(kind, 8) for kind in kinds)
        if used > device.max_parameter_size:  # refused here, not by the driver (passes/budget.py)
            why = f"kernel {entry} ({k.group.kind}: {k.group.reason}) passes {used} bytes"
            most = f"{device.name} takes at most {device.max_parameter_size}"
            raise CompileError(
                Diagnostic(f"{why} of arguments; {most} (CL_DEVICE_MAX_PARAMETER_SIZE)")
            )
    body = "\n".join(k.source() for k in kernels)
    prelude = []
    # f64 values, and some f32 templates (sin, cos, integer pow), compute in double
    if "double" in body:
        prelude.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n")
    helpers = helpers_for(body, device.fast_builtins)
    if helpers:
        prelude.append(helpers)
    return "\n".join(prelude + [body]), kernels


def _widest(g: nx.DiGraph, group: FusionGroup) -> int:
    """Bytes of the widest compute type among a group's values (8 for f64 and i64)."""
    nodes = [
        *group.nodes,
        *group.inputs,
        *(n for _, n in group.outputs),
        *group.operands,
        *group.epilogue,
        *group.epilogue_inputs,
        *group.prologue,
        *group.prologue_inputs,
        *group.reductions,
    ]
    return max(
        (
            CTYPE_BYTES[COMPUTE[dt.concrete(g.nodes[n]["dtype"])]]
            for n in nodes
            if "dtype" in g.nodes[n]
        ),
        default=4,
    )
