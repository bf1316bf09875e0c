"""fusec's pool advises its large buffers MADV_HUGEPAGE on CPU devices
(fusec/runtime/huge_pages.py): a device-resident call's output lies in a
mapping the kernel marks `hg`, and holds the call's numbers."""

from __future__ import annotations

import os
import sys

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pytest

import fusec
from fusec.runtime.memory import HUGE_PAGE, AdvisedPool, host_address

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or not os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"),
    reason="transparent huge pages are Linux's, where the kernel has them",
)


@pytest.fixture(scope="module")
def graph():
    return fusec.compile("graph f(x: f32[N]) { return relu(x * 0.5 + 1.0) - 0.25 }")["f"]


def vm_flags(address: int) -> list[str]:
    """The VmFlags of the mapping of this process that holds `address`."""
    mapping = None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(part, 16) for part in head.split("-"))
                mapping = lo <= address < hi
            elif line.startswith("VmFlags:") and mapping:
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.parametrize("n", [(3 << 20) + 7, 1 << 22])
def test_a_large_output_is_advised_and_right(graph, n):
    runtime = graph.runtime
    if not runtime.device.type & cl.device_type.CPU:
        pytest.skip(f"not a CPU device: {runtime.device.name}")
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = graph(cla.to_device(runtime.queue, x))
    np.testing.assert_array_equal(y.get(), np.maximum(x * np.float32(0.5) + 1, 0) - 0.25)
    start = host_address(runtime.queue, y.base_data)
    first_huge_page = -(-start // HUGE_PAGE) * HUGE_PAGE
    assert "hg" in vm_flags(first_huge_page)


def test_small_buffers_are_left_alone(graph):
    runtime = graph.runtime
    if not runtime.device.type & cl.device_type.CPU:
        pytest.skip(f"not a CPU device: {runtime.device.name}")
    assert isinstance(runtime.allocator, AdvisedPool)
    before = set(runtime.allocator.advised)
    y = graph(cla.to_device(runtime.queue, np.ones(1000, np.float32)))
    np.testing.assert_array_equal(y.get(), np.full(1000, 1.25, np.float32))
    assert runtime.allocator.advised == before


# -- host outputs' memory, kept for the next call (memory.HostBuffers) -------------------------


def test_a_dropped_outputs_memory_serves_the_next_call(graph):
    from fusec.runtime.memory import ALIGNED_MIN_BYTES

    n = ALIGNED_MIN_BYTES // 4 + 1000
    x = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    first = graph(x)
    address = first.ctypes.data
    del first
    other = np.empty(n * 4 + 64, np.uint8)  # where the allocator would put a freed block
    second = graph(x)
    assert other.ctypes.data != address
    assert second.ctypes.data == address  # no fresh pages to fault in
    np.testing.assert_array_equal(second, np.maximum(x * np.float32(0.5) + 1, 0) - 0.25)


@pytest.mark.parametrize("holder", ["array", "view", "memoryview", "tensor"])
def test_memory_the_caller_still_reaches_is_never_reused(graph, holder):
    from fusec.runtime.memory import ALIGNED_MIN_BYTES

    n = ALIGNED_MIN_BYTES // 4 + 3000
    rng = np.random.default_rng(2)
    x1, x2, x3 = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    y1 = graph(x1)
    want = y1.copy()
    if holder == "view":
        kept = y1[5:]
    elif holder == "memoryview":
        kept = memoryview(y1)
    elif holder == "tensor":
        torch = pytest.importorskip("torch")
        kept = torch.from_numpy(y1)
    else:
        kept = y1
    del y1
    y2, y3 = graph(x2), graph(x3)  # more calls than buffers kept per size
    for y, x in ((y2, x2), (y3, x3)):
        np.testing.assert_array_equal(y, np.maximum(x * np.float32(0.5) + 1, 0) - 0.25)
    got = np.asarray(kept) if holder != "tensor" else kept.numpy()
    np.testing.assert_array_equal(got, want[5:] if holder == "view" else want)


def test_the_cache_keeps_at_most_its_budget():
    from fusec.runtime.memory import HostBuffers

    cache = HostBuffers()
    cache.MAX_BYTES = 3 << 20
    for size in (1 << 20, 2 << 20, 1 << 20, 3 << 20):
        cache.take(size)
    assert sum(n * len(v) for n, v in cache._sizes.items()) <= 3 << 20
    assert 3 << 20 in cache._sizes  # the most recent size stays
