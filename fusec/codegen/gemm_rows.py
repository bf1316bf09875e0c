"""A row group run inside the GEMM kernel that produces its rows: one launch, not two.

A classifier's head, `softmax(linear(x, w, b))` with 10 outputs: the GEMM's
narrow "dot" layout gives each work-item whole rows of the product (all N
columns), so once it has stored them it can run the row group's work for
those rows itself (RowReductionKernel.row_function, called per row), reading
back what it has just written: a work-item sees its own writes, and the
values are in its cache. What it saves is the second launch: on Intel's CPU
runtime each launch in a call's chain costs a fixed ~10 us (the MLP of
bench/onnx_mlp.py at batch 64: the head GEMM and the softmax took 13-15 us
each timed alone, of a 235 us call).

Only where nothing changes but the launch count: the GEMM's layout is "dot"
with one column block (N known, at most the block's width), the row group is
the next kernel, reads the GEMM's result, runs one row per work-item (CPUs),
reduces over the last axis of a 2-D shape equal to the GEMM's result, and
stores nothing for later kernels. GPUs (tiled layout, a work-group per row)
keep two launches. The row group's counts and extents are passed as C
expressions over the GEMM's M and N.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kernel_args import Count, Extent, KernelArg, Stored, c_parameter
from .row_reduction import RowReductionKernel  # noqa: TC001  (the dataclass's field)


@dataclass(frozen=True)
class RowTail:
    """What a GEMM kernel adds for the row kernel it runs (GemmKernel.tail)."""

    rows: RowReductionKernel
    args: tuple[KernelArg, ...]  # the row kernel's buffers and values the GEMM lacks
    call_args: tuple[str, ...]  # C expressions, in the row function's parameter order


def attach_row_tails(kernels: list) -> None:
    """Pairs each eligible GEMM kernel with the row kernel after it (in place)."""
    for gemm, rows in zip(kernels, kernels[1:], strict=False):
        if gemm.group.kind == "gemm" and rows.group.kind == "rows":
            tail = _tail(gemm, rows)
            if tail is not None:
                gemm.tail, rows.in_gemm = tail, gemm
                gemm.main_args = gemm.main_args + list(tail.args)


def _tail(gemm, rows: RowReductionKernel) -> RowTail | None:
    layout, g = gemm.layout, gemm.g
    shape = tuple(g.nodes[gemm.group.anchor]["shape"])
    if layout.kind != "dot" or gemm.small is not None or gemm.tail is not None:
        return None
    if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] > layout.cols:
        return None  # a work-item must hold whole rows: one column block
    if not rows.device.is_cpu or rows.items_per_row != 1 or rows.split != 1:
        return None
    if tuple(rows.group.shape) != shape or rows.group.stores:
        return None  # later kernels would find its stores unallocated when the GEMM runs
    if not any(
        isinstance(a.source, Stored) and a.source.node in gemm.group.stores for a in rows.all_args
    ):
        return None
    spaces = {"group": shape, rows.epi.space: tuple(g.nodes[rows.group.anchor]["shape"])}
    have = {a.name: a for a in gemm.extra_args}
    operand_names = {a.name for a in gemm.operand_args}
    added, call = [], []
    for a in rows.all_args:
        if a.is_long:
            expr = _long_expr(a.source, spaces, shape[0])
            if expr is None:
                return None
            call.append(expr)
            continue
        if a.name in operand_names:
            return None  # named x or w in the GEMM's C: not worth the special case
        same = have.get(a.name)
        if same is None:
            added.append(a)
        elif _memory(same.source) != _memory(a.source):
            return None
        call.append(_c_identifier(a))
    return RowTail(rows, tuple(added), tuple(call))


def _long_expr(src, spaces: dict, m_dim) -> str | None:
    """A row kernel's count or extent over the GEMM's C names M and N."""
    if isinstance(src, Count):
        return {"rows": "M", "inner": "N"}.get(src.name)
    if not isinstance(src, Extent) or src.space not in spaces:
        return None
    shape = spaces[src.space]
    dims = shape if src.axis is None else (shape[src.axis],)
    terms = []
    for d in dims:
        if isinstance(d, int):
            terms.append(str(d))
        elif d == m_dim:
            terms.append("M")
        else:
            return None
    return "(" + " * ".join(terms or ["1"]) + ")"


def _memory(src) -> object:
    """Which memory an argument names (a store is read by one kernel, written by another)."""
    return ("stored", src.node) if isinstance(src, Stored) else src


def _c_identifier(arg: KernelArg) -> str:
    return c_parameter(arg).rsplit(" ", 1)[-1].lstrip("*")


def tail_call(tail: RowTail, rows_per_item: int) -> list[str]:
    """Statements after the GEMM's epilogue: the row function for each of the
    work-item's rows inside M."""
    name = f"{tail.rows.group.name}_row"
    args = ", ".join(tail.call_args)
    return [
        f"// then {tail.rows.group.name}'s row work for these rows (fusec/codegen/gemm_rows.py)",
        f"for (int gm_r = 0; gm_r < {rows_per_item} && gm_r0 + gm_r < M; ++gm_r)",
        f"    {name}(gm_r0 + gm_r, {args});",
    ]
