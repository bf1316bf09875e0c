"""What code generation needs to know of a device, read once from it.

Plain data, so that everything up to code generation runs without OpenCL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

CL_DEVICE_TYPE_CPU = 1 << 1  # cl.h's value of the CPU bit in a device's type

# Measured on this project's CPUs, per driver:
# - PoCL 3.0 reports a preferred float width of 16 and does not vectorise
#   scalar code. Where its LLVM target has AVX-512, a heavy chain ran 1.5x
#   faster at 16 than at 8, though some float16 kernels aborted its LLVM:
#   fusec uses 16 there, two vectors per work-item, builds in a worker process
#   through a trial launch, and falls back to 8 (then 1) on a crash. PoCL
#   generates code per local size, so fusec launches with an explicit one.
# - Intel's CPU runtime reports a preferred width of 1 (it vectorises across
#   work-items), but its vectoriser left fusec's kernels scalar: explicit
#   float8, one vector per work-item, ran light chains 2x and heavy chains 2.6x
#   faster (2^22 floats: 0.56 vs 1.14 ms, 4.1 vs 10.7 ms). Local sizes from 16
#   to 1024 were within noise at width 8.
# PoCL reports the host's SIMD width from cpuid, but compiles for the LLVM CPU
# its version string ends with ("...-znver3"). On a Zen 4 its LLVM 14 targets
# znver3, without AVX-512: any 512-bit vector (float16, double8, long8) then
# builds with "AVX vector ... changes the ABI" warnings into an empty program
# (or aborts, or computes wrong lanes). So vectors of 64 bytes only for
# targets with AVX-512; elsewhere 32 (float8, double4).
AVX512_TARGETS = frozenset(
    "knl knm skx skylake-avx512 cascadelake cooperlake cannonlake icelake-client icelake-server"
    " rocketlake tigerlake sapphirerapids alderlake-avx512 graniterapids emeraldrapids"
    " znver4 znver5 x86-64-v4".split()
)
MAX_VECTOR_WIDTH = 16
CPU_MIN_VECTOR_WIDTH = 8  # explicit vectors on every CPU driver (see above)
LOCAL_SIZE = 64  # explicit, so the worker's trial launch generates the code the real one uses
# Simulators of an OpenCL device (they check every access; fusec never picks one
# unless it is named). Oclgrind reports every device type bit at once (CPU, GPU,
# accelerator): fusec takes it for a GPU, so that the GPU code paths (scalar
# kernels, the tiled GEMM with local memory and barriers) are the ones checked,
# and launches small work-groups, since it simulates every work-item in turn.
SIMULATOR_PLATFORMS = ("Oclgrind",)
SIMULATOR_LOCAL_SIZE = 16


def is_simulator_platform(platform_name: str) -> bool:
    return any(name in platform_name for name in SIMULATOR_PLATFORMS)


# Driver bugs fusec works around, by the name templates key their variants on
QUIRKS = {
    # PoCL's CPU float8 sin/cos: wrong in every lane with a small argument when
    # another lane holds a huge one; computed through double where it has fp64
    "vector_trig_inexact": "PoCL on CPUs",
    # `v < 0 ? 0 : v` over an f16 input compiled as if zeros had no sign (relu(-0.0)
    # gave +0.0) in some mixes of ops: float selects on zero bounds compare bits
    "select_drops_signed_zero": "Intel's CPU runtime",
    # sin and cos of one double vector value (cos(cos(x))'s gradient) crash its
    # vectorizer (sycl-kernel-vec-clone, signal 11), scalar code too; an identity
    # conversion around each call avoids it
    "sincos_vectorizer_crash": "Intel's CPU runtime",
}


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
    native_vector_width: int = 8  # floats per native SIMD register (16 with AVX-512): GEMM blocking
    local_mem_size: int = 32 * 1024  # bytes of local memory: GEMM tiles on GPUs
    max_vector_bytes: int = (
        64  # the widest vector the compiler handles: 8-byte types get fewer lanes
    )
    # Vector loads and stores spelled as scalar accesses the compiler merges,
    # not vloadN/vstoreN: PoCL 3.0 calls those out of line (every call spills
    # the registers in use); Intel's compiler merges scalar stores badly
    # (a light chain 1.5 -> 4.3 ms), so only where vloadN is a call.
    compose_vector_access: bool = False
    # Integer vectors of twice max_vector_bytes (long16) in a CPU row kernel, so
    # that i64 class labels against a column index do not halve its float lanes:
    # Intel's CPU compiler takes them (cross-entropy fwd+bwd 4096 x 1024, loaded
    # Zen 5: row kernels 1.31 + 1.23 ms with float8/long8, 0.79 + 0.75 with
    # float16/long16); off elsewhere (PoCL's LLVM aborts on some 16-lane code).
    wide_int_vectors: bool = False
    # Flat elementwise kernels calling at most this many math routines per
    # vector (opencl_c.math_calls) get vec_type_hint, as the row layout does:
    # Intel's CPU compiler otherwise vectorises across work-items too, which
    # made a light chain 1.3-2x slower at 2^16-2^22 floats, but two or more
    # transcendental calls in a row ran 1.1-1.9x faster that way. -1: no hint.
    hint_max_calls: int = -1
    # Vectors per work-item of such a hinted kernel: Intel's CPU runtime, raw
    # launches, one process: 4 against 1 was 1.03-1.25x (light chain 2^20
    # 138.6 -> 111.7 us, i32 chain, where, one exp; 2^16-2^22 floats).
    hinted_vectors_per_item: int = 1
    # mathlib helpers that call the driver's builtin at float instead of fusec's
    # inline arithmetic. Intel's CPU runtime (SVML), against float64 NumPy: exp
    # within 0.82 ulp over [-110, 95] (subnormal results, NaN, inf included; the
    # inline one 1.01) and 1.5x as fast at float16 (2^20 floats: 0.156 vs
    # 0.237 ms), 4096 x 64 softmax 0.17-0.18 ms vs 0.22 (kernel + launch);
    # tanh within 1.37 ulp (inline 1.33), -0.0 kept, 1.24x as fast.
    fast_builtins: frozenset[str] = frozenset()
    # Elementwise kernels whose arrays (full-size inputs read, outputs written)
    # total this many bytes or more store their outputs non-temporally (past
    # the caches: no read of each line before it is written) where the
    # addresses allow; 0: never. Intel's CPU runtime, Zen 5 with a 32 MiB L3,
    # old and new code alternating: two inputs and an output at 2^22 floats
    # (48 MiB) 1.2-1.5x, at 2^24 1.2-1.3x; one input and an output at 2^22
    # (32 MiB) 0.67-0.92x (in a loop part of it stayed in the L3), at 2^23
    # 0.8-1.2x, at 2^24 1.1-1.3x. So: one and a half last-level caches, 48 MiB
    # at least.
    nontemporal_min_bytes: int = 0
    # Driver bugs that templates work around (`Primitive.template_for`); a device
    # without one gets plain code. See QUIRKS.
    quirks: frozenset[str] = frozenset()

    @classmethod
    def from_cl(cls, dev) -> DeviceInfo:
        """From what a pyopencl device reports (read duck-typed: no pyopencl here)."""
        simulator = is_simulator_platform(dev.platform.name)
        is_cpu = bool(dev.type & CL_DEVICE_TYPE_CPU) and not simulator
        pocl = "Portable Computing Language" in dev.platform.name
        max_bytes = 32 if pocl and is_cpu and pocl_target(dev.version) not in AVX512_TARGETS else 64
        width = max(1, min(dev.preferred_vector_width_float, MAX_VECTOR_WIDTH, max_bytes // 4))
        if is_cpu:
            width = max(width, CPU_MIN_VECTOR_WIDTH)
        # round down to a width OpenCL C has (1, 2, 4, 8, 16)
        width = 1 << (width.bit_length() - 1)
        exts = dev.extensions.split()
        return cls(
            name=dev.name.strip(),
            vector_width=width,
            fp64="cl_khr_fp64" in exts or dev.double_fp_config != 0,
            fp16="cl_khr_fp16" in exts,
            is_cpu=is_cpu,
            # PoCL on CPUs: 32 elements per work-item (4 x float8, 2 x float16
            # measured best for transcendental chains); elsewhere one vector
            vectors_per_item=max(1, 32 // width) if is_cpu and pocl and width > 1 else 1,
            max_parameter_size=dev.max_parameter_size,
            max_work_group_size=dev.max_work_group_size,
            local_size=min(
                SIMULATOR_LOCAL_SIZE if simulator else LOCAL_SIZE if pocl else 256,
                dev.max_work_group_size,
            ),
            compute_units=dev.max_compute_units,
            # PoCL's report follows cpuid, not its target; float16 code can crash its LLVM (see above)
            native_vector_width=min(8, dev.native_vector_width_float)
            if pocl
            else max(1, dev.native_vector_width_float),
            local_mem_size=dev.local_mem_size,
            max_vector_bytes=max_bytes,
            compose_vector_access=pocl and is_cpu,
            wide_int_vectors="Intel(R) OpenCL" in dev.platform.name and is_cpu,
            hint_max_calls=1 if "Intel(R) OpenCL" in dev.platform.name and is_cpu else -1,
            hinted_vectors_per_item=4 if "Intel(R) OpenCL" in dev.platform.name and is_cpu else 1,
            fast_builtins=frozenset(
                {"exp", "tanh"} if "Intel(R) OpenCL" in dev.platform.name and is_cpu else ()
            ),
            nontemporal_min_bytes=max(48 << 20, last_level_cache_bytes() * 3 // 2)
            if "Intel(R) OpenCL" in dev.platform.name and is_cpu
            else 0,
            quirks=frozenset(
                q
                for q, has in (
                    ("vector_trig_inexact", pocl and is_cpu and "cl_khr_fp64" in exts),
                    ("select_drops_signed_zero", "Intel(R) OpenCL" in dev.platform.name and is_cpu),
                    ("sincos_vectorizer_crash", "Intel(R) OpenCL" in dev.platform.name and is_cpu),
                )
                if has
            ),
        )

    def for_element_bytes(self, size: int) -> DeviceInfo:
        """This device as a kernel whose widest values take `size` bytes sees it:
        fewer lanes (and more vectors per work-item, so that a work-item covers
        the same elements) where `vector_width` of them exceed max_vector_bytes."""
        lanes = max(1, self.max_vector_bytes // size)
        if self.vector_width <= lanes:
            return self
        return replace(
            self,
            vector_width=lanes,
            vectors_per_item=self.vectors_per_item * (self.vector_width // lanes),
        )


def last_level_cache_bytes(cache_dir: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """The size of the host CPU's largest cache (Linux's sysfs); 0 where unknown."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    largest = 0
    try:
        for index in Path(cache_dir).glob("index*"):
            text = (index / "size").read_text().strip()
            found = re.fullmatch(r"(\d+)([KMG]?)", text)
            if found:
                largest = max(largest, int(found.group(1)) * units.get(found.group(2), 1))
    except OSError:
        return largest
    return largest


def pocl_target(version: str) -> str:
    """The LLVM CPU a PoCL CPU device compiles for: "znver3" from
    "OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3"."""
    found = re.search(r"-(?:gnu|musl|elf)\w*-(\S+)$", version.strip())
    return found.group(1) if found else ""
