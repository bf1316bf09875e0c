"""What code generation needs to know of a device, read once from it.

Plain data, so that everything up to code generation runs without OpenCL.
"""

from __future__ import annotations

from dataclasses import dataclass

# PoCL 3.0 on this CPU reports a preferred float width of 16. Some kernels over
# float16 vectors abort its LLVM when machine code is generated, yet a heavy
# chain ran 1.5x faster at 16 than at 8: fusec uses 16, builds in a worker
# process through a trial launch, and falls back to 8 (then 1) on a crash.
MAX_VECTOR_WIDTH = 16
LOCAL_SIZE = 64  # explicit, so the worker's trial launch generates the code the real one uses


@dataclass(frozen=True)
class DeviceInfo:
    name: str = "generic"
    vector_width: int = 8  # elements per vector on the vector path; 1: scalar kernels
    vectors_per_item: int = 1  # vectors each work-item computes (CPUs: several, to overlap)
    fp64: bool = True
    fp16: bool = False
    is_cpu: bool = True
    max_parameter_size: int = 1024
    max_work_group_size: int = 256
    local_size: int = LOCAL_SIZE
    compute_units: int = 2

    @classmethod
    def from_cl(cls, dev) -> DeviceInfo:
        import pyopencl as cl

        width = max(1, min(dev.preferred_vector_width_float, MAX_VECTOR_WIDTH))
        # round down to a width OpenCL C has (1, 2, 4, 8)
        width = 1 << (width.bit_length() - 1)
        exts = dev.extensions.split()
        return cls(
            name=dev.name.strip(),
            vector_width=width,
            fp64="cl_khr_fp64" in exts or dev.double_fp_config != 0,
            fp16="cl_khr_fp16" in exts,
            is_cpu=bool(dev.type & cl.device_type.CPU),
            # CPUs: 32 elements per work-item (4 x float8, 2 x float16 measured
            # best for transcendental chains); a GPU wants one element per item
            vectors_per_item=max(1, 32 // width) if dev.type & cl.device_type.CPU and width > 1 else 1,
            max_parameter_size=dev.max_parameter_size,
            max_work_group_size=dev.max_work_group_size,
            local_size=min(LOCAL_SIZE, dev.max_work_group_size),
            compute_units=dev.max_compute_units,
        )
