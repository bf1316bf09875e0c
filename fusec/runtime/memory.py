"""Memory fusec allocates: host outputs aligned to cache lines, and
transparent huge pages for its pool's buffers on a CPU device.

NumPy aligns its arrays to 16 bytes; a kernel that stores a large output
non-temporally (codegen/streaming.py) wants each row to start a 64-byte
line, so fusec's own host outputs of 4 MiB or more are cut from a slightly
larger NumPy buffer at its first line (still a NumPy array, on the huge
pages NumPy advises for large buffers).

A NumPy array of 4 MiB or more is advised MADV_HUGEPAGE by NumPy itself; a
buffer that a CPU OpenCL runtime allocates is not (Intel's CPU runtime, Linux
with transparent huge pages in `madvise` mode, Debian's default), so a kernel
streaming through it takes a TLB miss every 4 KiB. fusec's pool allocates a
device-resident call's outputs and its scratch: each new buffer of at least
two huge pages is mapped once (in place on a CPU device), advised, unmapped,
before anything touches it. A 2^22-float elementwise kernel over three such
buffers, one process, interleaved: 0.68 against 0.74 ms (median of 300),
0.60 against 0.65 (fastest), Intel's CPU runtime on a Zen 5, 2026-11-30.
"""

from __future__ import annotations

import ctypes
import math
import sys
import threading

import numpy as np
import pyopencl as cl
import pyopencl.tools as cl_tools

from ..codegen.streaming import LINE  # the alignment the kernels' non-temporal stores want

HUGE_PAGE = 2 << 20
ALIGNED_MIN_BYTES = (
    4 << 20
)  # smaller outputs: np.empty as it is (the aligned view costs ~1.2 us more a call)
MADV_HUGEPAGE = 14  # Linux's value on every architecture


def empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """`np.empty(shape, dtype)`, starting a cache line when 4 MiB or more, its
    memory from `buffers` (reused once the caller has dropped every array on it)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < ALIGNED_MIN_BYTES:
        return np.empty(shape, dtype)
    raw = buffers.take(nbytes + LINE)
    skip = -raw.ctypes.data % LINE
    return raw[skip : skip + nbytes].view(dtype).reshape(shape)


class HostBuffers:
    """The memory of large host outputs, kept when the caller drops them, as a
    caching allocator keeps it: glibc maps a buffer of tens of MiB afresh at
    each allocation and unmaps it at each free, so every call's output was
    page-faulted in again (2^24-float light chain, NumPy in and out: 10.7 ms
    a call with a fresh output against 2.4 ms writing into the same one).

    A buffer is free when nothing but this cache refers to it: every array on
    it (the output, its views, a tensor made with `torch.from_numpy`, a
    memoryview) holds a reference. At most SPARE buffers of each size are
    kept, MAX_BYTES in all (the least recently used size goes first)."""

    SPARE = 2  # a loop that keeps its last result while computing the next needs two
    MAX_BYTES = 1 << 30

    def __init__(self):
        self._sizes: dict[int, list[np.ndarray]] = {}  # by size, least recently used first
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        with self._lock:
            kept = self._sizes.pop(nbytes, [])
            self._sizes[nbytes] = kept  # most recently used now
            for raw in kept:
                if sys.getrefcount(raw) == 3:  # the list's, the loop's and the argument's
                    return raw
            raw = np.empty(nbytes, np.uint8)
            if len(kept) < self.SPARE:
                kept.append(raw)
                self._trim()
            return raw

    def _trim(self) -> None:
        while sum(n * len(v) for n, v in self._sizes.items()) > self.MAX_BYTES and self._sizes:
            self._sizes.pop(next(iter(self._sizes)))


buffers = HostBuffers()


class AdvisedPool:
    """pyopencl's memory pool, whose new buffers of two huge pages or more are
    advised MADV_HUGEPAGE (`pool(nbytes)` as pyopencl's allocators are called)."""

    def __init__(self, queue: cl.CommandQueue):
        self.pool = cl_tools.MemoryPool(cl_tools.ImmediateAllocator(queue))
        self.queue = queue
        self.advised: set[int] = set()  # cl_mem handles; as many as the pool holds

    def __call__(self, nbytes: int):
        buf = self.pool(nbytes)
        if nbytes >= 2 * HUGE_PAGE and buf.int_ptr not in self.advised:
            self.advised.add(buf.int_ptr)
            advise_huge_pages(self.queue, buf, nbytes)
        return buf

    def __getattr__(self, name):  # held_blocks, free_held, ...: the pool's own
        return getattr(self.pool, name)


def pool_for(queue: cl.CommandQueue):
    """The allocator for a queue: advised where the device's buffers are host memory."""
    dev = queue.device
    if sys.platform.startswith("linux") and dev.type & cl.device_type.CPU and _libc() is not None:
        return AdvisedPool(queue)
    return cl_tools.MemoryPool(cl_tools.ImmediateAllocator(queue))


def host_address(queue: cl.CommandQueue, buf) -> int:
    """Where a CPU device's buffer lies in host memory (it maps in place there)."""
    host, _ = cl.enqueue_map_buffer(queue, buf, cl.map_flags.READ, 0, (1,), np.uint8)
    try:
        return host.ctypes.data
    finally:
        host.base.release(queue)


def advise_huge_pages(queue: cl.CommandQueue, buf, nbytes: int) -> bool:
    """Advise the whole huge pages inside `buf`'s host memory; False where the
    mapping or madvise failed (the buffer works as before, on small pages)."""
    try:
        start = host_address(queue, buf)
    except cl.Error:
        return False
    first = -(-start // HUGE_PAGE) * HUGE_PAGE
    last = (start + nbytes) // HUGE_PAGE * HUGE_PAGE
    if last <= first:
        return False
    size = ctypes.c_size_t(last - first)
    return _libc().madvise(ctypes.c_void_p(first), size, MADV_HUGEPAGE) == 0


_LIBC: list = []


def _libc():
    if not _LIBC:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
            _LIBC.append(libc)
        except (OSError, AttributeError):
            _LIBC.append(None)
    return _LIBC[0]
