"""A kernel argument and where its value comes from.

Every generated kernel lists its arguments as `KernelArg`s in launch order.
The C signature, the launch plan's description, the build worker's trial
launch and the runtime's binding at call time are each derived from this one
record, in one function each (`c_parameter` and `trial_kind` here,
`codegen.plan.describe_arg`, `runtime.launcher`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .opencl_c import COMPUTE, STORAGE, c_name


@dataclass(frozen=True)
class Extent:
    """An index space's element count (axis None) or one axis's extent, as a long.
    `space`: "group" (the kernel's own), "prologue" (a GEMM's x, which its
    prologue indexes) or "result" (a reduction's result, its epilogue's)."""

    space: str
    axis: int | None = None


@dataclass(frozen=True)
class Count:
    """A long the kernel object computes from the shape: a reduction's m, r and
    chunks, a GEMM's M, N and K."""

    name: str


@dataclass(frozen=True)
class Param:
    """A graph parameter: its buffer, or (a scalar parameter) its value."""

    name: str
    by_value: bool = False


@dataclass(frozen=True)
class Stored:
    """A value that crosses kernels through memory: read here (an earlier kernel
    stored it) or written here for a later kernel."""

    node: int
    write: bool = False


@dataclass(frozen=True)
class Output:
    """The graph's output number `index`, written here."""

    index: int


@dataclass(frozen=True)
class Scratch:
    """Memory private to one group's launches: a reduction's partial results
    ("partial"), a GEMM's packed w ("packed") or packed x ("xpacked")."""

    role: str


Source = Extent | Count | Param | Stored | Output | Scratch


@dataclass(frozen=True)
class KernelArg:
    name: str  # as the plan names it; `c_parameter` mangles a parameter's name for C
    source: Source
    dtype: str

    @property
    def is_long(self) -> bool:
        return isinstance(self.source, Extent | Count)

    @property
    def is_buffer(self) -> bool:
        return not self.is_long and not (isinstance(self.source, Param) and self.source.by_value)

    @property
    def writes(self) -> bool:
        """Whether the kernel writes the graph's memory here (an output, a stored value)."""
        return isinstance(self.source, Output) or (
            isinstance(self.source, Stored) and self.source.write
        )

    @property
    def ctype(self) -> str:
        """The C type of the value passed, or of the buffer's elements."""
        if self.is_long:
            return "long"
        if isinstance(self.source, Scratch) or not self.is_buffer:
            return COMPUTE[self.dtype]  # by value, or accumulators and packed panels
        return STORAGE[self.dtype]


@dataclass(frozen=True)
class Launch:
    """One enqueue of one entry point."""

    entry: str
    args: tuple[KernelArg, ...]
    global_size: tuple[int, ...]
    local_size: tuple[int, ...] | None


def c_parameter(arg: KernelArg) -> str:
    """The argument's declaration in the kernel's C signature."""
    src = arg.source
    if arg.is_long:
        return f"const long {arg.name}"
    if isinstance(src, Param) and src.by_value:
        return f"const {COMPUTE[arg.dtype]} {c_name(arg.name)}"
    if isinstance(src, Param):
        return f"__global const {STORAGE[arg.dtype]} *restrict {c_name(arg.name)}"
    if isinstance(src, Stored) and not src.write:
        return f"__global const {STORAGE[arg.dtype]} *restrict {arg.name}"
    return f"__global {arg.ctype} *restrict {arg.name}"


def trial_kind(arg: KernelArg) -> str:
    """What a launch that does nothing passes: "buffer", or the C type of a value."""
    return arg.ctype if not arg.is_buffer else "buffer"


def extent_args(space: str, size_name: str, dim_prefix: str, ndim: int) -> list[KernelArg]:
    """An index space's element count and its extents, as a kernel's first arguments."""
    head = [KernelArg(size_name, Extent(space), "i64")]
    return head + [KernelArg(f"{dim_prefix}{i}", Extent(space, i), "i64") for i in range(ndim)]
