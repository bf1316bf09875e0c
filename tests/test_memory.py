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
from fusec.runtime.memory import HUGE_PAGE, AdvisedPool

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


def host_address(queue, buf, nbytes: int) -> int:
    host, _ = cl.enqueue_map_buffer(queue, buf, cl.map_flags.READ, 0, (nbytes,), np.uint8)
    try:
        return host.ctypes.data
    finally:
        host.base.release(queue)


@pytest.mark.parametrize("n", [(3 << 20) + 7, 1 << 22])
def test_a_large_output_is_advised_and_right(graph, n):
    runtime = graph.runtime
    if not runtime.device.type & cl.device_type.CPU:
        pytest.skip(f"not a CPU device: {runtime.device.name}")
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = graph(cla.to_device(runtime.queue, x))
    np.testing.assert_array_equal(y.get(), np.maximum(x * np.float32(0.5) + 1, 0) - 0.25)
    start = host_address(runtime.queue, y.base_data, y.nbytes)
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
