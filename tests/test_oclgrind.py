"""Generated kernels under Oclgrind, a simulator that reports what CPU drivers
tolerate and GPUs do not: out-of-bounds accesses, data races, barrier
divergence, reads of uninitialised values, and API misuse.

Every report fails the test that caused it (Oclgrind logs and carries on: a
call that returns right values may still have read past an array). It
simulates every work-item, so the sizes are small; each kernel kind has a
case, and a new kind needs one entry in CASES (IR, NumPy reference, operand
shapes), run as Oclgrind itself and as each CPU driver. Skipped where Oclgrind is not
installed (`apt-get install oclgrind`; `.ci/run` installs it).
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np
import pytest

import fusec

cl = pytest.importorskip("pyopencl")
cl_tools = pytest.importorskip("pyopencl.tools")

from fusec.codegen.device import DeviceInfo  # noqa: E402
from fusec.runtime import is_simulator, list_devices, select_device  # noqa: E402

OCLGRIND = next((d for _, d in list_devices() if is_simulator(d)), None)
pytestmark = pytest.mark.skipif(
    OCLGRIND is None,
    reason="no Oclgrind device: apt-get install oclgrind (fusec registers it unless"
    " OCL_ICD_VENDORS is set; then add an .icd naming liboclgrind-rt-icd.so there)",
)

CHECKS = {
    "OCLGRIND_CHECK_API": "1",
    "OCLGRIND_DATA_RACES": "1",
    "OCLGRIND_UNINITIALIZED": "1",
    "OCLGRIND_MAX_ERRORS": "1000000000",  # its count is per process: else it goes quiet at 1000
    # Oclgrind 21.10's uninitialised-value check stops ("Unsupported
    # instruction: freeze") at an instruction clang's optimiser emits;
    # unoptimised code has none, and keeps every access the source spells.
    # It also crashes the process (SIGSEGV) on pow of double4 values (f64 pow
    # as the CPU layouts spell it, in halves of double8): keep f64 pow out of CASES.
    "OCLGRIND_BUILD_OPTIONS": "-cl-opt-disable",
    # builds in this process: a build worker's context would log elsewhere
    "FUSEC_BUILD_ISOLATION": "0",
}
# Oclgrind's API check also reports pyopencl's own probes, each inside a
# try/except: vendor properties it asks any device (NVIDIA's compute
# capability) and a kernel named '_source' (cl.Kernel looks for the program's
# source attribute, which a program loaded from a binary lacks).
PROBES = (
    re.compile(
        r"Function: clGetDeviceInfo\s+Error:\s+CL_INVALID_VALUE\s+For argument 'param_name'"
    ),
    re.compile(r"Function: clCreateKernel\s+Error:\s+CL_INVALID_KERNEL_NAME\s+Kernel '_source'"),
)
API_ERROR = "Oclgrind - OpenCL runtime error detected"
rng = np.random.default_rng(7)


# What the simulator is described as: itself (a GPU to fusec: scalar kernels,
# tiled and naive GEMMs), and as each CPU driver (the layouts, vector widths
# and quirk workarounds that Intel's runtime and PoCL get), so that those
# kernels' tails are checked too.
DESCRIPTIONS = {
    "gpu": lambda info: info,
    "intel-cpu": lambda info: dataclasses.replace(
        info,
        is_cpu=True,
        vector_width=8,
        native_vector_width=8,
        wide_int_vectors=True,
        hint_max_calls=1,
        hinted_vectors_per_item=4,
        fast_builtins=frozenset({"exp", "tanh"}),
        nontemporal_min_bytes=64,  # the cases' small arrays take non-temporal stores
        quirks=frozenset({"select_drops_signed_zero", "sincos_vectorizer_crash"}),
    ),
    "pocl-cpu": lambda info: dataclasses.replace(
        info,
        is_cpu=True,
        vector_width=8,
        vectors_per_item=4,
        native_vector_width=8,
        max_vector_bytes=32,
        compose_vector_access=True,
        quirks=frozenset({"vector_trig_inexact"}),
    ),
}


class ExactBuffers:
    """The runtime's allocator here: buffers of the exact size asked (fusec's
    memory pool rounds sizes up to its bins and reuses larger buffers, where
    an access past the end of an array lands unseen), every one kept alive
    (Oclgrind 21.10's uninitialised-value check keeps the shadow of a freed
    buffer, and a larger one given its number later reads as uninitialised)."""

    def __init__(self, queue):
        self.allocate, self.kept = cl_tools.ImmediateAllocator(queue), []

    def __call__(self, nbytes: int):
        self.kept.append(self.allocate(nbytes))
        return self.kept[-1]


@pytest.fixture(scope="module", params=list(DESCRIPTIONS), ids=[f"as-{d}" for d in DESCRIPTIONS])
def simulator(request, tmp_path_factory):
    """A queue on Oclgrind with its checks on, its log file, and a fresh kernel
    cache (binaries built with other settings are not reused)."""
    tmp = tmp_path_factory.mktemp(f"oclgrind-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**CHECKS, "OCLGRIND_LOG": str(tmp / "oclgrind.log")}.items():
            mp.setenv(name, value)
        describe, real = DESCRIPTIONS[request.param], DeviceInfo.from_cl
        mp.setattr(DeviceInfo, "from_cl", classmethod(lambda cls, d: describe(real(d))))
        context = cl.Context([OCLGRIND])  # Oclgrind reads its settings now
        queue = cl.CommandQueue(context)
        yield {
            "description": request.param,
            "queue": queue,
            "allocator": ExactBuffers(queue),
            "log": tmp / "oclgrind.log",
            "cache": tmp,
        }


@pytest.fixture
def grind(simulator, capfd):
    """compile(text, grad=False) -> graphs on the simulator, and check(): fails
    on any report since the last check (log file and stderr both)."""
    log_file = simulator["log"]
    seen = {"log": len(log_file.read_text()) if log_file.exists() else 0}

    def compile(text: str, grad: bool = False):
        graphs = fusec.compile(
            text, grad=grad, queue=simulator["queue"], cache_dir=simulator["cache"]
        )
        assert all(graphs[name].plan["device"]["platform"] == "Oclgrind" for name in graphs.graphs)
        graphs[graphs.graphs[0]].runtime.allocator = simulator["allocator"]
        return graphs

    def check():
        log = log_file.read_text() if log_file.exists() else ""
        reports = [log[seen["log"] :].strip()]
        seen["log"] = len(log)
        err = capfd.readouterr().err
        api = [
            block for block in err.split(API_ERROR)[1:] if not any(p.search(block) for p in PROBES)
        ]
        reports += [API_ERROR + block.rstrip() for block in api]
        reports += [line for line in err.splitlines() if "OCLGRIND" in line]  # fatal errors
        reports = [r for r in reports if r]
        assert not reports, "Oclgrind reported:\n" + "\n".join(reports)

    compile.check = check
    return compile


def checked(grind, g, *args, **kwargs):
    out = g(*args, **kwargs)
    grind.check()
    return out


# name: (IR of a graph `f`, NumPy reference, operands per call). Small ragged
# sizes: 1, primes, past a multiple of 8 (the CPU layouts' float8 tails). An
# operand is a shape (f32), or (dtype, shape).
CASES = {
    "broadcast_rows": (
        "graph f(x: f32[B, D], w: f32[D], b: f32[B, 1]) { return relu(x * w + b) - 0.25 }",
        lambda x, w, b: np.maximum(x * w + b, 0) - 0.25,
        [[(3, 13), (13,), (3, 1)], [(1, 1), (1,), (1, 1)], [(2, 37), (37,), (2, 1)]],
    ),
    "broadcast_planes": (
        "graph f(x: f32[N, C, H, W], s: f32[C, 1, 1], t: f32[N, 1, 1, W]) { return x * s + t }",
        lambda x, s, t: x * s + t,
        [[(2, 3, 5, 7), (3, 1, 1), (2, 1, 1, 7)], [(1, 2, 1, 17), (2, 1, 1), (1, 1, 1, 17)]],
    ),
    "mixed_dtypes": (
        """graph f(x: f32[N], d: f64[N], i: i64[N], h: f16[N], m: bool[N]) {
            return sin(x) * 2.0 + d, where(m, i + 1, i * 3), h * 0.5 + x, x > d }""",
        lambda x, d, i, h, m: (
            np.sin(x.astype(np.float64)) * 2 + d,
            np.where(m, i + 1, i * 3),
            h.astype(np.float32) * 0.5 + x,
            x > d,
        ),
        [[(n,), ("f64", (n,)), ("i64", (n,)), ("f16", (n,)), ("bool", (n,))] for n in (1, 9, 33)],
    ),
    "light_flat": (  # Intel: vec_type_hint, 4 vectors a work-item, the builtin exp
        "graph f(x: f32[N], y: f32[N]) { return exp(x * y) + clamp(x, min=-1.0, max=1.0) }",
        lambda x, y: np.exp(x * y) + np.clip(x, -1, 1),
        [[(n,), (n,)] for n in (1, 31, 33, 97)],
    ),
    "sum_rows": (
        "graph f(x: f32[B, N]) { return sum(x, axis=1), mean(x, axis=1, keepdim=true) }",
        lambda x: (x.sum(axis=1), x.mean(axis=1, keepdims=True)),
        [[(5, 37)], [(1, 1)], [(2, 130)]],
    ),
    "streamed_columns": (  # CPUs: a mean and a sum with an epilogue stream rows
        "graph f(x: f32[B, N]) { return mean(x, axis=0), sum(x, axis=0) * 2.0 }",
        lambda x: (x.mean(axis=0), x.sum(axis=0) * 2),
        [[(5, 37)], [(1, 1)], [(67, 9)]],
    ),
    "sum_columns": (
        "graph f(x: f32[B, N]) { return sum(x, axis=0), min(x, axis=0) }",
        lambda x: (x.sum(axis=0), x.min(axis=0)),
        [[(37, 5)], [(1, 1)], [(11, 19)]],
    ),
    # a column group (column_reduction.py): elementwise output, a column sum
    # and a keepdim total in one pass, then one finish kernel
    "column_group": (
        """graph f(x: f32[B, D], w: f32[D]) {
            t = sum(sum(x, axis=0, keepdim=true), axis=1, keepdim=true)
            return relu(x * w), sum(x * w, axis=0), t }""",
        lambda x, w: (np.maximum(x * w, 0), (x * w).sum(axis=0), x.sum(keepdims=True)),
        # (5, 32): rows that start a line, x * w stored non-temporally as intel-cpu
        [[(37, 5), (5,)], [(1, 1), (1,)], [(3, 19), (19,)], [(5, 32), (32,)]],
    ),
    "leading_axis_of_3": (
        "graph f(x: f32[A, B, C]) { return sum(x, axis=0) }",
        lambda x: x.sum(axis=0),
        [[(5, 3, 7)], [(2, 1, 17)]],
    ),
    "middle_axis": (
        "graph f(x: f32[A, B, C]) { return max(x, axis=1) }",
        lambda x: x.max(axis=1),
        [[(3, 7, 5)], [(2, 1, 3)]],
    ),
    "full_sum": (
        "graph f(x: f32[N], b: bool[N]) { return sum(x), sum(b) }",
        lambda x, b: (x.sum(), b.sum()),
        [[(1023,), ("bool", (1023,))], [(1,), ("bool", (1,))], [(7,), ("bool", (7,))]],
    ),
    "softmax": (
        "graph f(x: f32[B, N]) { return softmax(x), log_softmax(x), softmax(x, axis=0) }",
        lambda x: (softmax(x), np.log(softmax(x)), softmax(x.T).T),
        [[(3, 19)], [(1, 1)], [(2, 67)]],
    ),
    # a row group reading an [N] operand at each vector's column: 45 and 67
    # take the CPU layouts' unrolled vector loop, its one-vector remainder and the tail
    "layernorm": (
        """graph f(x: f32[B, N], w: f32[N]) {
            d = x - mean(x, axis=1, keepdim=true)
            return d * rsqrt(mean(d * d, axis=1, keepdim=true) + 1e-5) * w, sum(d * w, axis=1) }""",
        lambda x, w: (
            (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * w,
            ((x - x.mean(1, keepdims=True)) * w).sum(1),
        ),
        [[(3, 45), (45,)], [(1, 1), (1,)], [(2, 67), (67,)]],
    ),
    # a sum split into sums of its varying terms (row_terms.py), sharing the pass of s
    "row_sum_split": (
        """graph f(x: f32[B, N], g: f32[B, N]) {
            d = x - mean(x, axis=1, keepdim=true)
            s = mean(g * d, axis=1, keepdim=true)
            return sum(g * rsqrt(s * s + 1.0) + x * s, axis=1) }""",
        lambda x, g: _split_reference(x, g),
        [[(3, 45), (3, 45)], [(1, 1), (1, 1)], [(2, 67), (2, 67)]],
    ),
    "linear_epilogue": (
        "graph f(x: f32[M, K], w: f32[N, K], b: f32[N]) { return relu(linear(x, w, b)) }",
        lambda x, w, b: np.maximum(x @ w.T + b, 0),
        # M = 130: past the row count from which CPUs pack w on every call
        [[(7, 13), (5, 13), (5,)], [(1, 3), (17, 3), (17,)], [(130, 9), (19, 9), (19,)]],
    ),
    "linear_f64": (
        "graph f(x: f64[M, K], w: f64[N, K]) { return linear(x, w) }",
        lambda x, w: x @ w.T,
        [[("f64", (7, 13)), ("f64", (9, 13))]],
    ),
    "matmul": (
        "graph f(a: f32[M, K], b: f32[K, N]) { return matmul(a, b) * 2.0 }",
        lambda a, b: (a @ b) * 2,
        [[(7, 13), (13, 5)], [(1, 2), (2, 1)]],
    ),
}


def _split_reference(x, g):
    x, g = x.astype(np.float64), g.astype(np.float64)
    s = (g * (x - x.mean(axis=1, keepdims=True))).mean(axis=1, keepdims=True)
    return (g / np.sqrt(s * s + 1) + x * s).sum(axis=1)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def operand(spec):
    dtype, shape = spec if isinstance(spec[0], str) else ("f32", spec)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "i64":
        return rng.integers(-5, 5, shape)
    return rng.standard_normal(shape).astype(
        {"f16": np.float16, "f32": np.float32, "f64": np.float64}[dtype]
    )


@pytest.mark.parametrize("name", list(CASES))
def test_kernels_pass_oclgrinds_checks(grind, name):
    text, reference, operand_sets = CASES[name]
    g = grind(text)["f"]
    for specs in operand_sets:
        args = [operand(spec) for spec in specs]
        got, want = checked(grind, g, *args), reference(*args)
        for i, (a, b) in enumerate(
            zip(*(x if isinstance(x, tuple) else (x,) for x in (got, want)), strict=True)
        ):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"output {i}, {specs}")


def test_each_description_gets_its_own_kernels(grind, simulator):
    source = grind(CASES["linear_epilogue"][0])["f"].source
    if simulator["description"] == "gpu":
        assert "barrier(CLK_LOCAL_MEM_FENCE)" in source and "float8" not in source  # tiled GEMM
    else:
        assert "barrier(" not in source and "float8" in source  # panel and dot GEMMs


def test_bound_weights_pass_oclgrinds_checks(grind):
    """Weights bound once (packed once on CPUs) and calls of several batch sizes."""
    g = grind(CASES["linear_epilogue"][0])["f"]
    w, b = operand((11, 17)), operand((11,))
    layer = g.bind(w=w, b=b)
    for m in (1, 9):
        x = operand((m, 17))
        np.testing.assert_allclose(
            checked(grind, layer, x), np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-5
        )


def test_kernels_split_to_oclgrinds_argument_budget(grind, simulator):
    """Oclgrind takes 1024 bytes of arguments: 130 parameters summed and 130
    outputs, and a GEMM's 130-term epilogue, are split across kernels
    (passes/budget.py), checked as a GPU."""
    if simulator["description"] != "gpu":
        pytest.skip("the split does not depend on the layout: once, as a GPU")
    xs = [f"x{i}" for i in range(130)]
    text = "graph f({}) {{ t = {}; return t, {} }}".format(
        ", ".join(f"{x}: f32[N]" for x in xs), " + ".join(xs), ", ".join(f"t * {x}" for x in xs)
    )
    g = grind(text)["f"]
    assert len(g.kernels) >= 3
    args = [operand((n,)) for n in (7,) for _ in xs]
    t = functools.reduce(np.add, args)
    for got, want in zip(checked(grind, g, *args), [t, *(t * a for a in args)], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # a GEMM whose epilogue reads 130 arrays: its result stored, the epilogue split
    text = "graph f(x: f32[B, K], w: f32[O, K], {}) {{ return linear(x, w) + {} }}".format(
        ", ".join(f"{y}: f32[B, O]" for y in xs), " + ".join(xs)
    )
    g = grind(text)["f"]
    assert len(g.kernels) >= 3
    x, w, ys = operand((3, 5)), operand((4, 5)), [operand((3, 4)) for _ in xs]
    want = functools.reduce(np.add, ys, x @ w.T)
    np.testing.assert_allclose(checked(grind, g, x, w, *ys), want, rtol=1e-5, atol=1e-5)


MLP = """
graph mlp(x: f32[B, K], w1: f32[H, K], b1: f32[H], w2: f32[O, H]) {
    return sum(tanh(linear(relu(linear(x, w1, b1)), w2)), axis=1)
}
"""


def test_gradient_graph_passes_oclgrinds_checks(grind):
    torch = pytest.importorskip("torch")
    g = grind(MLP, grad=True)["mlp"]
    args = [
        rng.standard_normal(s).astype(np.float32) / 2 for s in ((5, 7), (11, 7), (11,), (3, 11))
    ]
    ct = rng.standard_normal(5).astype(np.float32)
    y, grads = checked(grind, g.value_and_grad, *args, grad_outputs=ct)
    leaves = [torch.tensor(a, requires_grad=True) for a in args]
    F = torch.nn.functional
    want = F.linear(torch.relu(F.linear(leaves[0], leaves[1], leaves[2])), leaves[3]).tanh().sum(1)
    want_grads = torch.autograd.grad(want, leaves, torch.tensor(ct))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-5, atol=1e-5)
    assert list(grads) == ["x", "w1", "b1", "w2"]
    for got, ref in zip(grads.values(), want_grads, strict=True):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-5)


# Kernels with the bugs the checks exist for, and what Oclgrind says of each
BAD_KERNELS = {
    "out of bounds": ("a[get_global_id(0) + 1] = a[0];", "Invalid write"),
    "global race": ("a[0] = (float)get_global_id(0);", "Write-write data race at global"),
    "local race": (
        "__local float t[16]; t[get_local_id(0)] = 1.0f;"
        " a[get_global_id(0)] = t[(get_local_id(0) + 1) % 16];",
        "data race at local memory",
    ),
    "uninitialised": (
        "float v; if (get_global_id(0) > 100) v = 1.0f; a[get_global_id(0)] = v;",
        "Uninitialized value",
    ),
    "barrier divergence": (
        "if (get_local_id(0) < 8) barrier(CLK_LOCAL_MEM_FENCE); a[get_global_id(0)] = 1.0f;",
        "divergence",
    ),
}


@pytest.mark.parametrize("bug", list(BAD_KERNELS))
def test_the_checks_report_each_kind_of_bug(simulator, capfd, bug):
    body, report = BAD_KERNELS[bug]
    log, context, queue = simulator["log"], simulator["queue"].context, simulator["queue"]
    before = len(log.read_text()) if log.exists() else 0
    prg = cl.Program(context, f"__kernel void k(__global float *a) {{ {body} }}").build()
    flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
    a = cl.Buffer(context, flags, hostbuf=np.zeros(16, np.float32))
    cl.Kernel(prg, "k")(queue, (16,), (16,), a)
    queue.finish()
    assert report in log.read_text()[before:]
    capfd.readouterr()


def test_a_simulator_is_used_only_when_named():
    assert not is_simulator(select_device(""))
    assert is_simulator(select_device("oclgrind"))
