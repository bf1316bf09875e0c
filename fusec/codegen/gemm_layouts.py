"""GEMM kernels for `linear`: y[M, N] = x[M, K] . w[N, K]^T, with a fused epilogue.

x and w are row-major (PyTorch's linear layout: w is [out_features,
in_features]); batch dimensions of x are flattened into M by the caller. The
caller hands over C statements that consume one result element (bias,
activation, residual, several outputs...) and the generator emits them for
every valid element of each work-item's block, so the product never goes
through memory.

Three layouts, chosen from the device:

"panel" (CPUs; the default there). w is packed once into column panels
    wp[ceil(N/P)][K][P] (P = vector * vectors columns, zero-padded past N). A
    work-item computes `rows` result rows x one panel, holding rows x vectors
    accumulators of `vector` lanes in registers for the whole K loop: per k it
    loads `vectors` vectors of the panel and broadcasts one x value per row.
    No local memory. Dimension 0 runs over row blocks, dimension 1 over panels,
    so the work-items of a group share one panel while it is hot in cache.
"dot" (CPUs when w must not be packed, e.g. it changes every call). Both
    operands are read as stored, contiguous along K: a work-item computes
    rows x cols dot products as vectors of partial sums along K, summed
    across lanes once at the end; the K tail (K % vector) runs in scalars.
"tiled" (GPUs). The classic local-memory recipe: a work-group of tx x ty
    work-items stages a (ty*wm) x tile_k block of x and a (tx*wn) x tile_k block
    of w in local memory, transposed so that the inner product reads
    consecutive words; each work-item accumulates wm x wn results in
    registers. Loads past M, N or K read zeros. Reads w as stored.

Why these choices. Measured on this project's machine: 2 cores of an AMD
EPYC (Zen 5, AVX-512), Intel's CPU OpenCL runtime 2026.22 from PyPI (PoCL 3.0
cannot build on this CPU), float32, relu(x . w^T + b) with the bias and relu
in the epilogue, w packed once; GFLOP/s (2 M N K / median time) for
256x784->256 / 4096x1024->1024 / 64x4096->4096, all columns of one run of
bench/gemm_kernels.py --sweep --tiled, interleaved rounds (the machine is
shared; run to run the numbers move by 10-20%):

    panel 8 x 32 (8 rows x 2 float16), the choice   474 / 483 / 441
      the same with a vector epilogue               502 / 549 / 466
      the same, packing w on every call             434 / 488 / 232
    panel 4 x 32 / 4 x 64 / 6 x 64                  440 / 463 / 402,  478 / 495 / 355,  465 / 505 / 381
    panel 8 x 48 / 12 x 32                          429 / 494 / 413,  461 / 497 / 417
    dot 4 x 6, the no-packing choice                406 / 378 / 278
    dot 2 x 8 / 4 x 4 / 3 x 8                       394 / 420 / 220,  387 / 309 / 254,  367 / 372 / 263
    tiled (the GPU code, run by this CPU)           126 / 126 / 123
    NumPy np.maximum(x @ w.T + b, 0)                394 / 445 / 257   (OpenBLAS 0.3.31 SkylakeX, 2 threads)
    torch.relu(F.linear(x, w, b)), 2 threads        113 / 233 / 166

- Explicit float16 vectors: Intel's runtime keeps them in zmm registers and
  contracts `a * b + c` into vfmadd231ps (checked in the binary: the inner
  loop is the textbook broadcast-and-FMA AVX-512 micro-kernel), so fma() is
  not needed and `a * b + c` is also what PoCL wants. float8 ran at half the
  speed (6 rows x 2 float8: 128 vs 250 in an early run). Leaving the
  vectorising to the runtime (scalar code, one column per work-item, w
  transposed to [K][N]) reached at most 114 (4096x1024->1024) and 98
  (256x784->256).
- 8 rows x 2 float16: 16 accumulators cover the FMA latency (4 cycles x 2
  pipes) with room; 4 x 2 (exactly 8) was 5-10% slower; the wider blocks
  were no better on average, and the small-M shape liked 32 columns.
- vec_type_hint(float16): without it Intel's compiler also builds a variant
  vectorised across work-items (16 work-items x float16 "lanes"), picked when
  dimension 0 of the local size is a multiple of 16; it spilled (130-170).
  The hint drops that variant and halves the build (1.5 -> 0.65 s).
- Work-group (8, 1) over (row blocks, panels): the 8 work-items of a group
  share one panel while it is in cache. 4-32 along dimension 0, or 2-4
  panels along dimension 1, were within noise; panels along dimension 0
  (row blocks along 1) were 10-40% slower.
- Packing: a packing kernel that moves 16 x 16 blocks through private memory
  packs 4096 x 4096 in 4.9 ms (np.copy of it: 6.5 ms); once per weight it is
  free, per call it halves 64x4096->4096. Without packing ("dot", both
  operands read along K, lanes summed at the end) the big square shape
  loses 20%.
- Intel's runtime computes on its worker thread *and* on the host thread
  while that waits in clFinish: a host that polls the event instead gets half
  the speed. OpenBLAS's idle worker spins ~0.07 s after each call and,
  interleaved, took a core from the kernels (250 instead of 490): the
  benchmark sets OPENBLAS_THREAD_TIMEOUT=4 (see bench/gemm_kernels.py).

A known N of at most one vector (a classifier's 10 outputs) would leave most
of a 32-column panel as padding. Per CPU-second (the machine loaded, one core
per process; /tmp scratch script, 21 interleaved rounds), relu(x . w^T + b)
at 1024x512->N, GFLOP/s:

    N     panel 8 x 32   panel 8 x 16   dot 2 x 10   dot 3 x 7   dot 2 x 8
    7          45              79           109          148         121
    10         70             118           161           -           -
    16        104             189           127          120         143

so all N columns as one block of dot products where two or more rows of them
fit in the registers (N <= 10 with AVX-512), else a panel one vector wide.

The epilogue runs in registers after the K loop. Per work-item it is emitted
twice: once for a block wholly inside M x N (no checks) and once for a block
at the edge (each element checked; the panel layout stores that block to a
private array and runs one copy of the epilogue in a loop, which cut the ONNX
MLP's source by two thirds and its build by half). Intel's compiler does not vectorise the
scalar statements (one vaddss/vmaxss/vmovss per element: 5-10% of the time
at K = 784-1024, 3x at K = 16); a caller that can spell its epilogue over
vectors may pass `vector_epilogue`, used for whole vectors of the unchecked
block of the panel layout.

A symbolic M (a batch) fixes the panel's 8 rows at build time; a call of one
row (batch-1 inference) would spend 7/8 of the multiply-adds on copies of it.
GemmKernel (gemm.py) also builds the same panel with FEW_ROWS rows, reading
the same packed w, and runs it when M <= FEW_ROWS: the ONNX MLP's 1x784->512
kernel 1.4-1.5x faster (device time; bench/mlp_layers.py), its call ~1.2x.

On GPUs the tiled layout is the standard one; it is checked for correctness
here only (this CPU runs it). Its parameters come from max_work_group_size
and the local memory size.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device import DeviceInfo
from .gemm_kernels import (
    Epilogue,
    VectorEpilogue,
    XLoad,
    dot_body,
    naive_body,
    pack_kernel,
    panel_body,
    tiled_body,
    xpack_kernel,
)

CTYPES = {"f32": "float", "f64": "double"}
SIZEOF = {"float": 4, "double": 8}
DEFAULT_LOCAL_MEMORY = 32 * 1024  # OpenCL 1.2's minimum CL_DEVICE_LOCAL_MEM_SIZE for a full profile


@dataclass(frozen=True)
class GemmLayout:
    """How the product is blocked; everything the generator and the launch need.

    kind     "panel", "dot", "tiled" (see the module docstring) or "naive" (a
             work-item per result element: GPUs, either operand transposed)
    rows     result rows per work-item
    cols     result columns per work-item (panel: the panel width P)
    vector   lanes of the vector type (panel: along N; dot: along K; tiled: 1)
    group    work-group shape: panel/dot (row blocks, column blocks);
             tiled (work-items along N, work-items along M)
    tile_k   tiled: K per local-memory step; else 0
    """

    kind: str
    rows: int
    cols: int
    vector: int
    group: tuple[int, int]
    tile_k: int = 0
    # op(x)[m, k] is x[k, m] (ta) and op(w)[k, n] is w[n, k] (tb): linear's
    # layout is (False, True); autodiff's dx = g·w and dw = gᵀ·x are the
    # others. Only the panel layout reads them (its pack kernel and x loads).
    ta: bool = False
    tb: bool = True

    @property
    def packs(self) -> bool:
        """Whether w must be packed (by the `{name}_pack` kernel) before the product."""
        return self.kind == "panel"

    @property
    def packs_x(self) -> bool:
        """Whether x must be packed (by `{name}_xpack`) too: a transposed x
        (autodiff's dw = gᵀ·x) read in place strides a row of x per k step,
        which PoCL ran at 71 GFLOP/s against 219 from row panels (Intel's
        runtime 182 and 226; 4096x1024->1024)."""
        return self.kind == "panel" and self.ta

    @property
    def tile(self) -> tuple[int, int]:
        """Result rows x columns one work-group covers."""
        if self.kind == "tiled":
            return self.group[1] * self.rows, self.group[0] * self.cols
        return self.group[0] * self.rows, self.group[1] * self.cols


# -- choosing a layout ------------------------------------------------------------------


NAIVE_GROUP = 16  # work-items along N in a naive layout's work-group
PER_CALL_PACK_MIN_M = 128  # below this known M, packing on every call costs more than it saves
FEW_ROWS = 4  # rows per work-item of a panel GEMM's entry point for M <= FEW_ROWS (gemm.py)


def choose_layout(
    device: DeviceInfo,
    m: int | None,
    n: int | None,
    k: int | None,
    dtype: str = "f32",
    *,
    pack: str = "per_call",
    native_width: int | None = None,
    local_memory: int | None = None,
    ta: bool = False,
    tb: bool = True,
) -> GemmLayout:
    """The layout for `device` and (where known) the sizes; any layout is right for any sizes.

    pack          how w's panels would be made, on CPUs: "once" (the caller packs each
                  weight once and reuses the panels: the panel layout), "per_call"
                  (packed before every product: the panel layout unless M is known and
                  below PER_CALL_PACK_MIN_M, where reading w as stored is faster), "never".
                  A known N of at most one vector overrides it (_narrow_layout).
    native_width  floats per native SIMD register of a CPU (OpenCL's
                  CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT: 16 with AVX-512, 8 with AVX2).
                  Default: DeviceInfo.native_vector_width if it has one, else 8.
    local_memory  bytes of local memory (CL_DEVICE_LOCAL_MEM_SIZE). Default:
                  DeviceInfo.local_mem_size if it has one, else 32 KiB.
    """
    if dtype not in CTYPES:
        raise ValueError(f"GEMM on {dtype} is not supported (f32, f64)")
    if pack not in ("once", "per_call", "never"):
        raise ValueError(f"pack must be 'once', 'per_call' or 'never', not {pack!r}")
    size = SIZEOF[CTYPES[dtype]]
    if (ta, tb) != (False, True):
        if not device.is_cpu:  # the tiled layout reads x·wᵀ only
            return GemmLayout("naive", 1, 1, 1, (NAIVE_GROUP, 1), ta=ta, tb=tb)
        pack = "once"  # the panel layout reads any operand order: packing handles w's
    if not device.is_cpu:
        memory = local_memory or getattr(device, "local_mem_size", None) or DEFAULT_LOCAL_MEMORY
        return _tiled_layout(device.max_work_group_size, memory, size)
    width = native_width or getattr(device, "native_vector_width", None) or 8
    # lanes of one native register for this dtype; OpenCL C has vectors of 2..16
    lanes = max(2, min(16, width * 4 // size))
    wide = width >= 16  # 32 vector registers (AVX-512); else assume 16 (AVX2)
    if n is not None and n <= lanes:
        narrow = _narrow_layout(m, n, lanes, 32 if wide else 16, pack, ta, tb)
        if narrow is not None:
            return narrow
    # Packing moves 2 N K elements (~26 GB/s here), the product computes 2 M N K
    # flops (~450 GFLOP/s): per call that is ~70/M of the product's time, and
    # "dot" is 15-35% slower than "panel". 64x4096->4096 packed per call: 232
    # GFLOP/s, dot 278; 256x784->256: 434 and 406.
    if pack == "once" or (pack == "per_call" and (m is None or m >= PER_CALL_PACK_MIN_M)):
        rows, vectors = (8, 2) if wide else (6, 2)
        if m is not None:
            rows = max(1, min(rows, m))  # a small known M: no rows computed only to be dropped
        return GemmLayout("panel", rows, lanes * vectors, lanes, (8, 1), ta=ta, tb=tb)
    rows, cols = (4, 6) if wide else (2, 4)
    if m is not None:
        rows = max(1, min(rows, m))
    if n is not None:
        cols = max(1, min(cols, n))
    return GemmLayout("dot", rows, cols, lanes, (8, 1))


def _narrow_layout(
    m: int | None, n: int, lanes: int, registers: int, pack: str, ta: bool, tb: bool
) -> GemmLayout | None:
    """A known N of at most one vector (a classifier's 10 outputs): the default
    32-column panel would compute mostly padding (10 of 32 columns). All N
    columns in one block of dot products (w read as stored, nothing packed)
    where rows x N accumulators, N w vectors and the rows' x vectors fit in the
    registers with at least 2 rows; else a panel one vector wide (measured:
    the module docstring)."""
    rows = min(4, (registers - n) // (n + 1))
    if rows >= 2 and (ta, tb) == (False, True):
        if m is not None:
            rows = max(1, min(rows, m))
        return GemmLayout("dot", rows, n, lanes, (8, 1))
    if pack == "never":
        return None
    rows = 8 if registers >= 32 else 6
    if m is not None:
        rows = max(1, min(rows, m))
    return GemmLayout("panel", rows, lanes, lanes, (8, 1), ta=ta, tb=tb)


def _tiled_layout(max_group: int, local_memory: int, size: int) -> GemmLayout:
    # 16 x 16 work-items of 4 x 4 results (64 x 64 tiles) where the device allows,
    # else the largest square group that fits; the K step shrinks to fit local memory.
    t = 16
    while t > 1 and t * t > max_group:
        t //= 2
    per = 4
    tile_k = 16
    while tile_k > 1 and 2 * tile_k * (t * per + 1) * size > local_memory:
        tile_k //= 2
    return GemmLayout("tiled", per, per, 1, (t, t), tile_k)


# -- launch geometry ----------------------------------------------------------------------


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def launch_geometry(
    layout: GemmLayout, m: int, n: int, k: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(global size, local size) of the main kernel. The local size is always given."""
    g0, g1 = layout.group
    if layout.kind == "tiled":
        tm, tn = layout.tile
        return (_ceil(n, tn) * g0, _ceil(m, tm) * g1), (g0, g1)
    if layout.kind == "naive":
        return (_ceil(n, g0) * g0, m), (g0, g1)
    blocks_m = _ceil(max(m, 1), layout.rows)
    blocks_n = _ceil(max(n, 1), layout.cols)
    return (_ceil(blocks_m, g0) * g0, _ceil(blocks_n, g1) * g1), (g0, g1)


def launch_geometry_exprs(
    layout: GemmLayout, m: str, n: str, k: str
) -> tuple[list[str], list[int]]:
    """launch_geometry as size expressions (docs/plan.md) over the size expressions m, n, k."""
    g0, g1 = layout.group
    if layout.kind == "tiled":
        tm, tn = layout.tile
        return [f"ceil(({n}) / {tn}) * {g0}", f"ceil(({m}) / {tm}) * {g1}"], [g0, g1]
    if layout.kind == "naive":
        return [f"ceil(({n}) / {g0}) * {g0}", m], [g0, g1]
    return [
        f"ceil(ceil(({m}) / {layout.rows}) / {g0}) * {g0}",
        f"ceil(ceil(({n}) / {layout.cols}) / {g1}) * {g1}",
    ], [g0, g1]


def packed_elements(layout: GemmLayout, n: int, k: int) -> int:
    """Elements of the packed weight buffer (panel layout): ceil(N/P) * P * K."""
    return _ceil(max(n, 1), layout.cols) * layout.cols * max(k, 1)


def packed_elements_expr(layout: GemmLayout, n: str, k: str) -> str:
    return f"ceil(({n}) / {layout.cols}) * {layout.cols} * ({k})"


def pack_geometry(layout: GemmLayout, n: int, k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(global size, local size) of `{name}_pack`: one work-item per V x V block (V = layout.vector)."""
    v = layout.vector
    return (_ceil(max(k, 1), v), _ceil(max(n, 1), layout.cols) * (layout.cols // v)), (1, 1)


def pack_geometry_exprs(layout: GemmLayout, n: str, k: str) -> tuple[list[str], list[int]]:
    v = layout.vector
    return [f"ceil(({k}) / {v})", f"ceil(({n}) / {layout.cols}) * {layout.cols // v}"], [1, 1]


XPACK_K = 64  # k steps one work-item of `{name}_xpack` copies


def packed_x_elements(layout: GemmLayout, m: int, k: int) -> int:
    """Elements of the packed x buffer (layout.packs_x): ceil(M/R) * R * K."""
    return _ceil(max(m, 1), layout.rows) * layout.rows * max(k, 1)


def packed_x_elements_expr(layout: GemmLayout, m: str, k: str) -> str:
    return f"ceil(({m}) / {layout.rows}) * {layout.rows} * ({k})"


def xpack_geometry(layout: GemmLayout, m: int, k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(global size, local size) of `{name}_xpack`: one work-item per R rows and XPACK_K steps."""
    return (_ceil(max(m, 1), layout.rows), _ceil(max(k, 1), XPACK_K)), (1, 1)


def xpack_geometry_exprs(layout: GemmLayout, m: str, k: str) -> tuple[list[str], list[int]]:
    return [f"ceil(({m}) / {layout.rows})", f"ceil(({k}) / {XPACK_K})"], [1, 1]


# -- source ------------------------------------------------------------------------------------


def gemm_source(
    name: str,
    layout: GemmLayout,
    *,
    ctype: str,
    epilogue: Epilogue,
    epilogue_params: list[str],
    vector_epilogue: VectorEpilogue | None = None,
    x_load: XLoad | None = None,
    after: list[str] | None = None,
    packers: bool = True,
) -> str:
    """OpenCL C for kernel `name` (and `{name}_pack` when layout.packs).

    Parameters of `name`: const long M, N, K; x; w (the packed panels when the
    layout packs); then `epilogue_params` verbatim. `{name}_pack` takes
    (const long N, const long K, const ctype *w, ctype *packed). double needs
    cl_khr_fp64 enabled by the program's prelude.

    `x_load(row, k, width)` -> (statements, expression): op(x)[row, k ..
    k + width - 1] computed rather than loaded (a prologue); then there is no
    `x` parameter, and its inputs must be among `epilogue_params`.

    `after`: statements run by each work-item after its epilogue, with its
    block's first row in `gm_r0` (the dot layout only: gemm_rows.py).

    `packers=False`: no pack kernels (another entry point's packed panels are read).
    """
    if ctype not in SIZEOF:
        raise ValueError(f"GEMM in {ctype} is not supported (float, double)")
    if x_load is not None and layout.ta:
        raise ValueError("a computed x is read row by row: not with x transposed")
    params = [
        "const long M",
        "const long N",
        "const long K",
        *([] if x_load else [f"__global const {ctype} *restrict x"]),
        f"__global const {ctype} *restrict w",
        *epilogue_params,
    ]
    head = f"__kernel void {name}(\n    " + ",\n    ".join(params) + ")"
    gen = {"panel": panel_body, "dot": dot_body, "tiled": tiled_body, "naive": naive_body}[
        layout.kind
    ]
    body = gen(layout, ctype, epilogue, vector_epilogue, x_load)
    if after:
        if layout.kind != "dot":
            raise ValueError(
                f"statements after the epilogue need the dot layout, not {layout.kind}"
            )
        body += after
    if layout.kind == "tiled":
        g0, g1 = layout.group
        attr = f"__attribute__((reqd_work_group_size({g0}, {g1}, 1)))\n"
    elif layout.kind == "naive":
        attr = ""
    else:
        # already vectorised: Intel's compiler then builds no variant across work-items
        # (half the build time and binary; that variant spilled where it was picked)
        attr = f"__attribute__((vec_type_hint({ctype}{layout.vector})))\n"
    out = [
        f"// {name}: y[M, N] = x[M, K] . w[N, K]^T, {layout.kind} layout: {_describe(layout, ctype)}",
        attr + head,
        "{",
        *("    " + line if line else "" for line in body),
        "}",
        "",
    ]
    if layout.packs and packers:
        out = pack_kernel(name, layout, ctype) + out
    if layout.packs_x and packers:
        out = xpack_kernel(name, layout, ctype, XPACK_K) + out
    return "\n".join(out)


def _describe(layout: GemmLayout, ctype: str) -> str:
    if layout.kind == "panel":
        return (
            f"{layout.rows} rows x {layout.cols} columns per work-item "
            f"({layout.cols // layout.vector} x {ctype}{layout.vector} per row), w packed"
        )
    if layout.kind == "dot":
        return f"{layout.rows} rows x {layout.cols} columns per work-item, {ctype}{layout.vector} along K"
    if layout.kind == "naive":
        return "one result element per work-item, " + (
            "x transposed" if layout.ta else "w as stored"
        )
    tm, tn = layout.tile
    return f"{tm} x {tn} tiles, K steps of {layout.tile_k}, {layout.rows} x {layout.cols} per work-item"
