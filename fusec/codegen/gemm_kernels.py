"""The kernel bodies of fusec/gemm.py's layouts: the panel packer and the
panel, dot and tiled products, each followed by the caller's epilogue.

Split from fusec/gemm.py (which chooses the layout and the launch geometry,
and documents why the layouts are what they are); these functions only
write OpenCL C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .opencl_c import composed_vector

if TYPE_CHECKING:
    from .gemm_layouts import GemmLayout

HEX = "0123456789abcdef"

Epilogue = Callable[[str, str, str], list[str]]
# (acc, row, col, width): statements for `width` consecutive elements of one row,
# acc a <ctype><width> expression holding columns col .. col + width - 1
VectorEpilogue = Callable[[str, str, str, int], list[str]]
# (row, k, width) -> (statements, expression): x[row, k .. k + width - 1] computed
# by the caller's prologue instead of loaded (see gemm_source)
XLoad = Callable[[str, str, int], tuple[list[str], str]]


def _x_value(
    x_load, name: str, ctype_w: str, row: str, k: str, width: int, loaded: str
) -> list[str]:
    """`name` = x[row, k ..] as `ctype_w`: the load `loaded`, or the prologue's statements."""
    if x_load is None:
        return [f"const {ctype_w} {name} = {loaded};"]
    lines, value = x_load(row, k, width)
    return [
        f"{ctype_w} {name};",
        "{",
        *("    " + s for s in lines),
        f"    {name} = ({ctype_w})({value});",
        "}",
    ]


def _element(epilogue: Epilogue, acc: str, row: str, col: str, indent: str = "") -> list[str]:
    """One element's epilogue in its own block (it may declare names)."""
    return [indent + "{", *(indent + "    " + s for s in epilogue(acc, row, col)), indent + "}"]


def _lane(vec: str, width: int, j: int) -> str:
    return vec if width == 1 else f"{vec}.s{HEX[j]}"


def pack_kernel(name: str, layout: GemmLayout, ctype: str) -> list[str]:
    """Panels packed[ceil(N/P)][K][P] from w[N][K]. A work-item moves a V x V block
    (V = layout.vector): V rows of w read as vectors along K, written back as V
    vectors along the panel's columns (a transpose through private memory).
    Columns past N are written as zeros; a ragged K block goes element by element."""
    p, v = layout.cols, layout.vector
    vt = f"{ctype}{v}"
    if not layout.tb:
        return _pack_rows(name, layout, ctype)
    lanes = " ".join(f"gm_o.s{HEX[i]} = gm_t[{i}][gm_j];" for i in range(v))
    return [
        f"// {name}_pack: w[N][K] -> panels[ceil(N/{p})][K][{p}], zeros past N; once per weight",
        f"__attribute__((vec_type_hint({vt})))",
        f"__kernel void {name}_pack(const long N, const long K, __global const {ctype} *restrict w,",
        f"    __global {ctype} *restrict packed)",
        "{",
        f"    const long gm_k0 = (long)get_global_id(0) * {v}, gm_c0 = (long)get_global_id(1) * {v};",
        f"    __global {ctype} *gm_dst = packed + (gm_c0 / {p}) * K * {p} + gm_c0 % {p};",
        f"    if (gm_k0 + {v} <= K) {{",
        f"        {ctype} gm_t[{v}][{v}];",
        f"        for (int gm_i = 0; gm_i < {v}; ++gm_i)",
        f"            vstore{v}(gm_c0 + gm_i < N ? vload{v}(0, w + (gm_c0 + gm_i) * K + gm_k0) : ({vt})0, 0, gm_t[gm_i]);",
        f"        for (int gm_j = 0; gm_j < {v}; ++gm_j) {{",
        f"            {vt} gm_o;",
        f"            {lanes}",
        f"            vstore{v}(gm_o, 0, gm_dst + (gm_k0 + gm_j) * {p});",
        "        }",
        "    } else {",
        f"        for (int gm_i = 0; gm_i < {v}; ++gm_i)",
        "            for (long gm_k = gm_k0; gm_k < K; ++gm_k)",
        f"                gm_dst[gm_k * {p} + gm_i] = gm_c0 + gm_i < N ? w[(gm_c0 + gm_i) * K + gm_k] : ({ctype})0;",
        "    }",
        "}",
        "",
    ]


def xpack_kernel(name: str, layout: GemmLayout, ctype: str, k_per_item: int) -> list[str]:
    """Row panels xpacked[ceil(M/R)][K][R] of op(x) = xᵀ from x[K][M]: the R
    values the panel kernel reads per k step, contiguous; rows past M are zeros."""
    r_n = layout.rows
    return [
        f"// {name}_xpack: x[K][M] (read transposed) -> panels[ceil(M/{r_n})][K][{r_n}], zeros past M",
        f"__kernel void {name}_xpack(const long M, const long K, __global const {ctype} *restrict x,",
        f"    __global {ctype} *restrict xpacked)",
        "{",
        f"    const long gm_r0 = (long)get_global_id(0) * {r_n}, gm_k0 = (long)get_global_id(1) * {k_per_item};",
        f"    __global {ctype} *gm_dst = xpacked + gm_r0 * K;",
        f"    for (long gm_k = gm_k0; gm_k < gm_k0 + {k_per_item} && gm_k < K; ++gm_k)",
        f"        for (int gm_i = 0; gm_i < {r_n}; ++gm_i)",
        f"            gm_dst[gm_k * {r_n} + gm_i] = gm_r0 + gm_i < M ? x[gm_k * M + gm_r0 + gm_i] : ({ctype})0;",
        "}",
        "",
    ]


def _pack_rows(name: str, layout: GemmLayout, ctype: str) -> list[str]:
    """Panels packed[ceil(N/P)][K][P] from w[K][N] (w not transposed: a panel's
    row is a slice of w's row). A work-item copies V rows of one V-column slice;
    columns past N are zeros. Same geometry as the transposing packer."""
    p, v = layout.cols, layout.vector
    return [
        f"// {name}_pack: w[K][N] -> panels[ceil(N/{p})][K][{p}], zeros past N",
        f"__attribute__((vec_type_hint({ctype}{v})))",
        f"__kernel void {name}_pack(const long N, const long K, __global const {ctype} *restrict w,",
        f"    __global {ctype} *restrict packed)",
        "{",
        f"    const long gm_k0 = (long)get_global_id(0) * {v}, gm_c0 = (long)get_global_id(1) * {v};",
        f"    __global {ctype} *gm_dst = packed + (gm_c0 / {p}) * K * {p} + gm_c0 % {p};",
        f"    for (long gm_k = gm_k0; gm_k < gm_k0 + {v} && gm_k < K; ++gm_k) {{",
        f"        if (gm_c0 + {v} <= N)",
        f"            vstore{v}(vload{v}(0, w + gm_k * N + gm_c0), 0, gm_dst + gm_k * {p});",
        "        else",
        f"            for (int gm_i = 0; gm_i < {v}; ++gm_i)",
        f"                gm_dst[gm_k * {p} + gm_i] = gm_c0 + gm_i < N ? w[gm_k * N + gm_c0 + gm_i] : ({ctype})0;",
        "    }",
        "}",
        "",
    ]


def panel_body(
    layout: GemmLayout, ctype: str, epilogue: Epilogue, vector_epilogue=None, x_load=None
) -> list[str]:
    r_n, v, p = layout.rows, layout.vector, layout.cols
    nv = p // v
    vt = f"{ctype}{v}"
    body = [
        "const long gm_r0 = (long)get_global_id(0) * " + str(r_n) + ";",
        f"const long gm_c0 = (long)get_global_id(1) * {p};",
        "if (gm_r0 >= M || gm_c0 >= N) return;  // padding of the last work-group",
        f"__global const {ctype} *gm_b = w + (gm_c0 / {p}) * K * {p};",
    ]
    # op(x)'s row r: x's row (stride 1 along k), or from x's row panels when x
    # is transposed (layout.packs_x: x is then the packed buffer)
    if layout.packs_x:
        body.append(f"__global const {ctype} *gm_xp = x + gm_r0 * K;")
    for r in range(r_n if x_load is None and not layout.packs_x else 0):
        # rows past M repeat the last row: valid memory, never stored
        body.append(f"__global const {ctype} *gm_x{r} = x + min(gm_r0 + {r}, M - 1) * K;")
    for r in range(r_n):
        body.append(" ".join(f"{vt} gm_a{r}_{j} = 0;" for j in range(nv)))
    body += [f"for (long k = 0; k < K; ++k, gm_b += {p}) {{"]
    for j in range(nv):
        # The packed panels are fusec's own buffer and start at multiples of
        # the vector size: a plain vector load. PoCL 3.0 (znver3 target) calls
        # vloadN out of line, spilling every accumulator around each call
        # (4096x1024->1024: 60 GFLOP/s with vload8, see bench/results-linear).
        body.append(f"    const {vt} gm_w{j} = ((__global const {vt} *)gm_b)[{j}];")
    for r in range(r_n):
        loaded = (
            ""
            if x_load
            else f"({vt})(gm_xp[k * {r_n} + {r}])"
            if layout.packs_x
            else f"({vt})(gm_x{r}[k])"
        )
        body += [
            "    " + s
            for s in _x_value(x_load, f"gm_s{r}", vt, f"min(gm_r0 + {r}, M - 1)", "k", 1, loaded)
        ]
        for j in range(nv):
            body.append(f"    gm_a{r}_{j} = gm_s{r} * gm_w{j} + gm_a{r}_{j};")
    body.append("}")

    def block() -> list[str]:
        out = []
        for r in range(r_n):
            row = f"gm_r0 + {r}"
            for j in range(nv):
                if vector_epilogue is not None:
                    vector = vector_epilogue(f"gm_a{r}_{j}", f"({row})", f"(gm_c0 + {j * v})", v)
                    out += ["{", *("    " + s for s in vector), "}"]
                    continue
                for lane in range(v):
                    acc = _lane(f"gm_a{r}_{j}", v, lane)
                    out += _element(epilogue, acc, f"({row})", f"(gm_c0 + {j * v + lane})")
        return out

    # A block at the edge of M or N (the last row block, the last panel) goes
    # through a private array and one copy of the scalar epilogue in a loop:
    # written out per element, its rows x P copies were most of the kernel's
    # source and build time.
    edge = [f"{ctype} gm_t[{r_n}][{p}];"]
    edge += [
        f"vstore{v}(gm_a{r}_{j}, 0, gm_t[{r}] + {j * v});" for r in range(r_n) for j in range(nv)
    ]
    edge += [
        f"for (int gm_i = 0; gm_i < {r_n} && gm_r0 + gm_i < M; ++gm_i)",
        f"    for (int gm_j = 0; gm_j < {p} && gm_c0 + gm_j < N; ++gm_j)",
        *_element(epilogue, "gm_t[gm_i][gm_j]", "(gm_r0 + gm_i)", "(gm_c0 + gm_j)", "        "),
    ]
    body += [f"if (gm_r0 + {r_n} <= M && gm_c0 + {p} <= N) {{"]
    body += ["    " + s for s in block()]
    body += ["} else {"]
    body += ["    " + s for s in edge]
    body += ["}"]
    return body


def dot_body(
    layout: GemmLayout, ctype: str, epilogue: Epilogue, vector_epilogue=None, x_load=None
) -> list[str]:
    r_n, c_n, v = layout.rows, layout.cols, layout.vector
    vt = f"{ctype}{v}"
    body = [
        f"const long gm_r0 = (long)get_global_id(0) * {r_n};",
        f"const long gm_c0 = (long)get_global_id(1) * {c_n};",
        "if (gm_r0 >= M || gm_c0 >= N) return;  // padding of the last work-group",
    ]
    for r in range(r_n if x_load is None else 0):
        body.append(f"__global const {ctype} *gm_x{r} = x + min(gm_r0 + {r}, M - 1) * K;")
    for c in range(c_n):
        body.append(f"__global const {ctype} *gm_w{c} = w + min(gm_c0 + {c}, N - 1) * K;")
    for r in range(r_n):
        body.append(" ".join(f"{vt} gm_a{r}_{c} = 0;" for c in range(c_n)))
    body += ["long k = 0;", f"for (; k + {v} <= K; k += {v}) {{"]
    for c in range(c_n):
        body.append(f"    const {vt} gm_b{c} = {composed_vector(ctype, v, f'gm_w{c} + k')};")
    for r in range(r_n):
        row = f"min(gm_r0 + {r}, M - 1)"
        body += [
            "    " + s
            for s in _x_value(
                x_load, f"gm_s{r}", vt, row, "k", v, composed_vector(ctype, v, f"gm_x{r} + k")
            )
        ]
        for c in range(c_n):
            body.append(f"    gm_a{r}_{c} = gm_s{r} * gm_b{c} + gm_a{r}_{c};")
    body.append("}")
    # lanes summed pairwise (halves), then the K tail in scalars
    for r in range(r_n):
        for c in range(c_n):
            body.append(f"{ctype} gm_t{r}_{c} = {_hsum(f'gm_a{r}_{c}', v)};")
    body.append("for (; k < K; ++k) {")
    for r in range(r_n):
        row = f"min(gm_r0 + {r}, M - 1)"
        body += [
            "    " + s for s in _x_value(x_load, f"gm_s{r}", ctype, row, "k", 1, f"gm_x{r}[k]")
        ]
        for c in range(c_n):
            body.append(f"    gm_t{r}_{c} = gm_s{r} * gm_w{c}[k] + gm_t{r}_{c};")
    body.append("}")

    inner = []
    for r in range(r_n):
        for c in range(c_n):
            inner += _element(epilogue, f"gm_t{r}_{c}", f"(gm_r0 + {r})", f"(gm_c0 + {c})")
    # the edge block: one copy of the epilogue in a loop (as panel_body's)
    edge = [f"{ctype} gm_e[{r_n}][{c_n}];"]
    edge += [f"gm_e[{r}][{c}] = gm_t{r}_{c};" for r in range(r_n) for c in range(c_n)]
    edge += [
        f"for (int gm_i = 0; gm_i < {r_n} && gm_r0 + gm_i < M; ++gm_i)",
        f"    for (int gm_j = 0; gm_j < {c_n} && gm_c0 + gm_j < N; ++gm_j)",
        *_element(epilogue, "gm_e[gm_i][gm_j]", "(gm_r0 + gm_i)", "(gm_c0 + gm_j)", "        "),
    ]
    body += [f"if (gm_r0 + {r_n} <= M && gm_c0 + {c_n} <= N) {{"]
    body += ["    " + s for s in inner]
    body += ["} else {"]
    body += ["    " + s for s in edge]
    body += ["}"]
    return body


def _hsum(vec: str, v: int) -> str:
    expr = vec
    while v > 1:
        expr = f"({expr}).lo + ({expr}).hi" if v > 2 else f"({expr}).x + ({expr}).y"
        v //= 2
        if v > 1:
            expr = f"({expr})"
    return expr


def tiled_body(
    layout: GemmLayout, ctype: str, epilogue: Epilogue, vector_epilogue=None, x_load=None
) -> list[str]:
    tx, ty = layout.group
    wm, wn, tk = layout.rows, layout.cols, layout.tile_k
    tm, tn = ty * wm, tx * wn
    threads = tx * ty
    zero = f"({ctype})0"
    body = [
        f"__local {ctype} gm_xs[{tk}][{tm + 1}];  // x tile, transposed: [k][row]",
        f"__local {ctype} gm_ws[{tk}][{tn + 1}];  // w tile, transposed: [k][col]",
        "const int gm_tx = get_local_id(0), gm_ty = get_local_id(1);",
        f"const int gm_lid = gm_ty * {tx} + gm_tx;",
        f"const long gm_m0 = (long)get_group_id(1) * {tm}, gm_n0 = (long)get_group_id(0) * {tn};",
    ]
    for i in range(wm):
        body.append(" ".join(f"{ctype} gm_a{i}_{j} = 0;" for j in range(wn)))
    body += [f"for (long gm_k0 = 0; gm_k0 < K; gm_k0 += {tk}) {{"]
    # cooperative loads: consecutive work-items take consecutive k (coalesced)
    for what, count, base, bound, tile in (
        ("x", tm * tk, "gm_m0", "M", "gm_xs"),
        ("w", tn * tk, "gm_n0", "N", "gm_ws"),
    ):
        body += [
            f"    for (int gm_e = gm_lid; gm_e < {count}; gm_e += {threads}) {{",
            f"        const int gm_i = gm_e / {tk}, gm_kk = gm_e % {tk};",
            f"        const long gm_g = {base} + gm_i, gm_k = gm_k0 + gm_kk;",
        ]
        if what == "x" and x_load is not None:
            lines, value = x_load("gm_g", "gm_k", 1)
            body += [
                f"        if (gm_g < {bound} && gm_k < K) {{",
                *("            " + s for s in lines),
                f"            {tile}[gm_kk][gm_i] = {value};",
                f"        }} else {tile}[gm_kk][gm_i] = {zero};",
                "    }",
            ]
            continue
        body += [
            f"        {tile}[gm_kk][gm_i] = (gm_g < {bound} && gm_k < K) ? {what}[gm_g * K + gm_k] : {zero};",
            "    }",
        ]
    body += [
        "    barrier(CLK_LOCAL_MEM_FENCE);",
        f"    for (int gm_kk = 0; gm_kk < {tk}; ++gm_kk) {{",
    ]
    for i in range(wm):
        body.append(f"        const {ctype} gm_x{i} = gm_xs[gm_kk][gm_ty + {i * ty}];")
    for j in range(wn):
        body.append(f"        const {ctype} gm_w{j} = gm_ws[gm_kk][gm_tx + {j * tx}];")
    for i in range(wm):
        for j in range(wn):
            body.append(f"        gm_a{i}_{j} = gm_x{i} * gm_w{j} + gm_a{i}_{j};")
    body += ["    }", "    barrier(CLK_LOCAL_MEM_FENCE);", "}"]
    # result (gm_m0 + gm_ty + i*ty, gm_n0 + gm_tx + j*tx): neighbours in dimension 0 store neighbours
    for i in range(wm):
        row = f"(gm_m0 + gm_ty + {i * ty})"
        body.append(f"if ({row} < M) {{")
        for j in range(wn):
            col = f"(gm_n0 + gm_tx + {j * tx})"
            body.append(f"    if ({col} < N)")
            body += ["    " + s for s in _element(epilogue, f"gm_a{i}_{j}", row, col)]
        body.append("}")
    return body


def naive_body(
    layout: GemmLayout, ctype: str, epilogue: Epilogue, vector_epilogue=None, x_load=None
) -> list[str]:
    """One work-item per result element, either operand transposed: what a GPU
    runs for autodiff's dx = g·w and dw = gᵀ·x (the tiled layout reads x·wᵀ only)."""
    b = "w[col * K + k]" if layout.tb else "w[k * N + col]"  # op(w)[k, col]
    if x_load:  # a prologue computes x (never transposed then)
        lines, value = x_load("row", "k", 1)
        loop = [
            "for (long k = 0; k < K; ++k) {",
            *("    " + s for s in lines),
            f"    acc = ({value}) * {b} + acc;",
            "}",
        ]
    else:
        a = "x[k * M + row]" if layout.ta else "x[row * K + k]"  # op(x)[row, k]
        loop = [f"for (long k = 0; k < K; ++k) acc = {a} * {b} + acc;"]
    return [
        "const long col = get_global_id(0), row = get_global_id(1);",
        "if (col >= N || row >= M) return;",
        f"{ctype} acc = 0;",
        *loop,
        *_element(epilogue, "acc", "row", "col"),
    ]
