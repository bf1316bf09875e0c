"""Non-temporal stores for an elementwise kernel's outputs when its arrays are large (DeviceInfo.nontemporal_min_bytes).

An ordinary store first reads the line it writes into the cache; an output
far larger than the cache is then read and written, and evicts the inputs
on its way. A non-temporal store (`__builtin_nontemporal_store`, `vmovntps`
on x86) writes the line out directly. It needs an address aligned to the
vector, and the lines it writes must not be written by ordinary stores too
(a line with both is flushed from the cache at each: the row layout over a
16-byte aligned NumPy output, rows shifted to their own alignment, ran 1.7x
slower than with ordinary stores). So the flat launch shifts its vector
positions by `fu_s` elements (to the first output's next 64-byte line) and
takes the elements before it one by one; the row layout stores
non-temporally only where every row starts a line (fusec allocates large
outputs line-aligned, runtime/memory.py). Outputs that do not share the
first one's alignment keep ordinary stores, as do kernels whose arrays
(full-size inputs and outputs) are under the size.

Non-temporal stores are weakly ordered: the last work-item of each
work-group fences them before the runtime reports the kernel done. On Intel's CPU runtime a work-group runs on one thread, its
work-items in order, so that fence follows every store of the group;
`write_mem_fence` is an `sfence` there, which costs next to nothing
(`mem_fence`, an `mfence`, waited for the stores to reach memory: at one a
work-group the 2^24-float chain took 5.9 ms against 3.7).

Beyond the elementwise kernels: a column group's full-shape outputs on CPUs
(column_reduction.py: a training step's dx, written while dw and db are
summed) take the row rule; its partials and sums keep ordinary stores.
grad-light (bench/shapes.py) 4096 x 4096: 1.07-1.26x, its scalar loss 1.15-1.24x
(bench/column_streaming_ab.py; 4096 x 256, under the size: 0.93-1.06x, A/A 0.95-1.02x).
The row reductions (row_reduction.py) keep ordinary stores: streamed, their
outputs over the row did not pay with NumPy's fresh outputs (LayerNorm
4096 x 4096: 0.88-0.99x; log_softmax's backward 0.94-1.03x; 1.18-1.33x
into a preallocated out=), and softmax reads its output back (the stash).
"""

from __future__ import annotations

import contextlib
import dataclasses

from ..ir import dtypes as dt
from .opencl_c import CTYPE_BYTES, STORAGE, temp_name


def stored_pointers(kernel) -> list[tuple[str, str]]:
    """(C name, dtype) of every array the kernel stores into."""
    g = kernel.g
    outs = [(f"out{i}", g.nodes[n]["dtype"]) for i, n in kernel.group.outputs]
    return outs + [(temp_name(n), g.nodes[n]["dtype"]) for n in kernel.group.stores]


def eligible(kernel) -> bool:
    """Whether the kernel may store non-temporally: the device allows it and
    every stored value is 4 bytes wide (one alignment shift fits them all)."""
    d = kernel.device
    if not d.nontemporal_min_bytes or d.vector_width == 1 or d.compose_vector_access:
        return False
    stored = stored_pointers(kernel)
    return bool(stored) and all(
        CTYPE_BYTES[STORAGE[dt.concrete(dtype)]] == 4 for _, dtype in stored
    )


def footprint(kernel) -> int:
    """Bytes an element of the index space moves: its full-size inputs read
    and its outputs written (broadcast operands, read again and again, not counted)."""
    g = kernel.g
    read = [p for p in kernel.group.inputs if kernel.input_kind.get(p) == "contiguous"]
    return sum(CTYPE_BYTES[STORAGE[dt.concrete(g.nodes[p]["dtype"])]] for p in read) + 4 * len(
        stored_pointers(kernel)
    )


LINE = 64  # bytes: non-temporal stores write whole cache lines, never part of one an ordinary store writes


def prologue(kernel, w: int, row_length: str | None = None) -> list[str]:
    """`fu_nt`: the stores are non-temporal. The flat launch also gets `fu_s`,
    its vector positions' shift to the first output's next line; the row
    layout stores non-temporally only where every row starts a line."""
    pointers = [name for name, _ in stored_pointers(kernel)]
    min_elements = -(-kernel.device.nontemporal_min_bytes // footprint(kernel))
    if row_length is not None:
        aligned = [f"(ulong){p} % {LINE} == 0" for p in pointers]
        cond = " && ".join([f"n >= {min_elements}", f"{row_length} % {LINE // 4} == 0", *aligned])
        return [f"const int fu_nt = {cond};"]
    same = [f"(ulong){p} % {LINE} == fu_a" for p in pointers[1:]]
    cond = " && ".join([f"n >= {min_elements}", "fu_a % 4 == 0", *same])
    return [
        f"const ulong fu_a = (ulong){pointers[0]} % {LINE};",
        f"const int fu_nt = {cond};",
        f"const long fu_s = fu_nt ? (long)(({LINE} - fu_a) % {LINE} / 4) : 0;",
    ]


def store(out: str, ctype: str, w: int, value: str, index: str) -> str:
    """A vector store, non-temporal when `fu_nt` (the output named once, as an ordinary store names it)."""
    return (
        f"{{ const {ctype}{w} fu_v = {value}; __global {ctype} *fu_o = {out} + {index}; "
        f"if (fu_nt) __builtin_nontemporal_store(fu_v, (__global {ctype}{w} *)fu_o); "
        f"else vstore{w}(fu_v, 0, fu_o); }}"
    )


FENCE = (
    "if (fu_nt && get_local_id(0) == get_local_size(0) - 1) write_mem_fence(CLK_GLOBAL_MEM_FENCE);"
)


@contextlib.contextmanager
def over_index_space(kernel, outputs: tuple, stores: tuple):
    """The kernel seen as storing only `outputs` and `stores` over its index
    space (eligible, prologue): a row or column group's other outputs are one
    per row or column, stored ordinarily."""
    whole = kernel.group
    kernel.group = dataclasses.replace(whole, outputs=outputs, stores=stores)
    try:
        yield
    finally:
        kernel.group = whole
