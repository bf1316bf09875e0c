"""What an attacker or a careless generator feeds the front end: literals out
of range, constant expressions that overflow, attributes of the wrong type,
clamp bounds of another kind, text that is not a file name, files that are
not files. Each gets a positioned CompileError (or a clear error), never a
traceback, a hang or a silently wrapped value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusec.api import compile_graphs
from fusec.diagnostics import CompileError, Pos


def graph(body: str, params: str = "x: f32[4]") -> str:
    return f"graph g({params}) {{\n    return {body}\n}}\n"


def output(text: str) -> dict:
    (g,) = compile_graphs(text).graphs
    (out,) = g.graph["outputs"]
    return g.nodes[out]


def diagnostic(text: str):
    with pytest.raises(CompileError) as info:
        compile_graphs(text)
    (d,) = info.value.diagnostics
    return d


# -- literals and constant folding --------------------------------------------


def test_an_integer_to_a_negative_power_is_a_float_as_in_python():
    # docs/ir.md: `2 ** -1` is allowed; NumPy's int64 power refused it (ValueError)
    assert output(graph("2 ** -1"))["value"] == 0.5
    assert output(graph("2 ** -1"))["dtype"] == "f32"
    node = output(graph("2 ** -1 * k", "k: i32[4]"))
    assert node["dtype"] == "f32"  # 0.5 * k, as torch: an int tensor times a float
    (g,) = compile_graphs(graph("2 ** -1 * x")).graphs
    assert sorted(d["value"] for _, d in g.nodes(data=True) if d["op"] == "const") == [0.5]


@pytest.mark.parametrize(
    ("body", "params", "where"),
    [
        ("k * 2 ** 70", "k: i64[4]", Pos(2, 18)),  # gave 0
        ("2 ** 63", "k: i64[4]", Pos(2, 14)),  # wrapped to -2**63
        ("k + 9223372036854775807 * 2", "k: i64[4]", Pos(2, 36)),
        ("-9223372036854775807 - 2", "k: i64[4]", Pos(2, 33)),
    ],
)
def test_constant_folding_never_wraps(body, params, where):
    d = diagnostic(graph(body, params))
    assert "overflows int64" in d.message and d.pos == where


def test_folding_up_to_the_int64_limits_is_exact():
    assert output(graph("2 ** 62 + (2 ** 62 - 1)"))["value"] == 2**63 - 1
    assert output(graph("-9223372036854775808"))["value"] == -(2**63)
    assert output(graph("2 ** 62 * 1.5"))["value"] == 2.0**62 * 1.5


@pytest.mark.parametrize(
    ("body", "params", "where", "words"),
    [
        ("k * 99999999999999999999", "k: i32[4]", Pos(2, 16), "integer literals are int64"),
        ("k + 3000000000", "k: i32[4]", Pos(2, 16), "out of range for i32"),
        ("k + -2147483649", "k: i32[4]", Pos(2, 16), "out of range for i32"),
        ("where(b, k, 3000000000)", "b: bool[4], k: i32[4]", Pos(2, 24), "out of range for i32"),
        ("k - 9223372036854775808", "k: i64[4]", Pos(2, 16), "out of range for i64"),
        ("9223372036854775808", "k: i64[4]", Pos(2, 12), "out of range for i64"),
        ("k * " + "9" * 4301, "k: i32[4]", Pos(2, 16), "(4301 digits)"),  # Python's int-str limit
        ("x * 1e400", "x: f32[4]", Pos(2, 16), "write inf"),
    ],
)
def test_literals_fit_the_type_they_are_used_as(body, params, where, words):
    d = diagnostic(graph(body, params))
    assert words in d.message and d.pos == where


def test_literals_at_the_edges_of_their_type_are_fine():
    for body in ("k + 2147483647", "k + -2147483648", "k * 0"):
        assert output(graph(body, "k: i32[4]"))["dtype"] == "i32"
    assert output(graph("k + -9223372036854775808", "k: i64[4]"))["dtype"] == "i64"
    assert output(graph("x * 3000000000"))["dtype"] == "f32"  # read as a float: no wrap
    assert output(graph("b + 3000000000", "b: bool[4]"))["dtype"] == "i64"
    assert math.isinf(output(graph("inf"))["value"])


def test_literal_folding_matches_python():
    for expr in ("2 ** 10 - 3 * 7", "(5 - 8) * 4 ** 3", "7 / 2", "2.0 ** 70", "-2 ** 2"):
        assert output(graph(expr))["value"] == eval(expr), expr  # noqa: S307 (our literals)
    assert np.float32(output(graph("7 / 2"))["value"]) == np.float32(3.5)


# -- attributes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "params", "words"),
    [
        (
            'sum(x, keepdim="false")',
            "x: f32[2, 4]",
            'keepdim must be true or false, got "false"; write keepdim=false',
        ),
        ("sum(x, keepdim=nan)", "x: f32[2, 4]", "keepdim must be true or false, got nan"),
        ("max(x, keepdim=1)", "x: f32[2, 4]", "keepdim must be true or false, got 1"),
        ("sum(x, axis=0.0)", "x: f32[2, 4]", "axis must be an integer, got 0.0"),
        ("sum(x, axis=true)", "x: f32[2, 4]", "axis must be an integer, got true"),
        ("clamp(k, min=nan)", "k: i32[4]", "clamp's min cannot be nan"),
        ("clamp(x, max=nan)", "x: f32[4]", "clamp's max cannot be nan"),
        ("hardtanh(k, min_val=nan)", "k: i32[4]", "hardtanh's min_val cannot be nan"),
        ("leaky_relu(x, alpha=inf)", "x: f32[4]", "alpha must be finite, got inf"),
        ("softplus(x, beta=-inf)", "x: f32[4]", "beta must be finite, got -inf"),
        ("elu(x, alpha=true)", "x: f32[4]", "alpha must be a number, got true"),
        ("clamp(k, min=3000000000)", "k: i32[4]", "min=3000000000 does not fit i32"),
        ("hardtanh(k, min_val=-1e300)", "k: i32[4]", "min_val=-1e+300 does not fit i32"),
    ],
)
def test_attributes_are_type_checked(body, params, words):
    # keepdim="false" used to keep the dimension (any truthy value counted)
    d = diagnostic(graph(body, params))
    assert words in d.message and d.pos.line == 2


def test_keepdim_false_drops_the_axis():
    assert output(graph("sum(x, keepdim=false)", "x: f32[2, 4]"))["shape"] == (2,)
    assert output(graph("sum(x, keepdim=true)", "x: f32[2, 4]"))["shape"] == (2, 1)


def test_infinite_clamp_bounds_are_absent_bounds():
    assert output(graph("clamp(k, min=-inf, max=inf)", "k: i32[4]"))["dtype"] == "i32"
    assert output(graph("clamp(x, max=inf)"))["dtype"] == "f32"


# (expression, parameter, torch's result) for torch.clamp's type promotion:
# an integer or bool tensor with a float bound gives the default float dtype
CLAMP_CASES = [
    ("clamp(k, min=1.5, max=2.5)", "i32", lambda t: t.clamp(min=1.5, max=2.5)),
    ("clamp(k, min=1, max=2)", "i32", lambda t: t.clamp(min=1, max=2)),
    ("clamp(k, max=2.5) * 2", "i64", lambda t: t.clamp(max=2.5) * 2),
    ("clamp(k, min=0.5)", "bool", lambda t: t.clamp(min=0.5)),
    ("clamp(k, min=0, max=1)", "bool", lambda t: t.clamp(min=0, max=1)),
    ("clamp(k, min=0.5)", "f16", lambda t: t.clamp(min=0.5)),
    ("hardtanh(k)", "i32", lambda t: __import__("torch").nn.functional.hardtanh(t)),
]


def _input(dtype: str) -> np.ndarray:
    from fusec.ir.dtypes import NUMPY

    return np.arange(-1, 5) % 2 == 0 if dtype == "bool" else np.arange(-1, 5).astype(NUMPY[dtype])


@pytest.mark.parametrize(
    ("body", "dtype", "ref"), CLAMP_CASES, ids=[c[0] + ":" + c[1] for c in CLAMP_CASES]
)
def test_clamp_bounds_promote_as_torch(body, dtype, ref):
    torch = pytest.importorskip("torch")
    from fusec.ir.dtypes import FROM_NUMPY

    text = graph(body, f"k: {dtype}[6]")
    want = ref(torch.from_numpy(_input(dtype))).numpy()
    assert output(text)["dtype"] == FROM_NUMPY[want.dtype]


@pytest.mark.parametrize(
    ("body", "dtype", "ref"), CLAMP_CASES, ids=[c[0] + ":" + c[1] for c in CLAMP_CASES]
)
def test_clamp_bounds_give_torchs_numbers(body, dtype, ref):
    torch = pytest.importorskip("torch")
    import fusec

    try:
        prog = fusec.compile(graph(body, f"k: {dtype}[6]"))
        got = prog["g"](_input(dtype))
    except fusec.FusecError as e:
        if isinstance(e, CompileError):
            raise  # only a missing device may skip this
        pytest.skip(f"no usable OpenCL device: {e}")
    want = ref(torch.from_numpy(_input(dtype))).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


# -- where text and arrays come from ------------------------------------------


def test_text_with_a_nul_is_text_not_a_path():
    # compile(text) tried the text as a path: ValueError: embedded null byte
    from fusec.frontend.source import read_source

    text = graph("x\0")
    assert read_source(text) == ("<input>", text)
    d = diagnostic(text)
    assert "U+0000" in d.message and d.pos == Pos(2, 13)


def test_a_string_is_a_path_only_when_it_can_be_one(tmp_path, monkeypatch):
    from fusec.frontend.source import read_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.ir").write_text(graph("x"), encoding="utf-8")
    assert read_source("g.ir") == ("g.ir", graph("x"))
    assert read_source(tmp_path / "g.ir")[1] == graph("x")
    assert read_source("graph g(x: f32) return x")[0] == "<input>"  # a one-line graph: text
    with pytest.raises(CompileError, match="no such file"):
        read_source("missing.ir")
    with pytest.raises(CompileError, match="is a directory"):
        read_source(str(tmp_path))


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "fifo"])
def test_ir_files_must_be_regular_files(special, tmp_path):
    import os

    from fusec.frontend.source import read_ir

    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)  # nobody writes it: reading it would block forever
    elif not os.path.exists(special):
        pytest.skip(f"no {special}")
    with pytest.raises(CompileError, match="not a regular file"):
        read_ir(special)


def test_ir_files_are_bounded(tmp_path):
    from fusec.frontend.source import read_ir

    big = tmp_path / "big.ir"
    with open(big, "wb") as f:
        f.truncate(16 * 2**20 + 1)  # sparse: costs no disk
    with pytest.raises(CompileError, match="larger than 16 MiB"):
        read_ir(big)
    with pytest.raises(CompileError, match="a binary file"):  # read, within a larger limit
        read_ir(big, limit=32 * 2**20)


def _npy_with_header(path, shape, dtype="<f4", payload=b""):
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(payload)


def test_a_npy_header_must_match_the_file(tmp_path):
    from fusec.frontend.source import InputFileError, load_npy

    lying = tmp_path / "lying.npy"
    _npy_with_header(lying, (10**11,), payload=b"\0" * 16)  # np.load: MemoryError
    with pytest.raises(InputFileError, match="claims 100000000000 elements"):
        load_npy(lying)
    short = tmp_path / "short.npy"
    _npy_with_header(short, (5,), payload=b"\0" * 16)
    with pytest.raises(InputFileError, match="holds 16"):
        load_npy(short)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(InputFileError, match="pickle"):
        load_npy(pickled)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x93NUMPY\x01\x00\xff\xff{'descr'")
    with pytest.raises(InputFileError, match="not a .npy array"):
        load_npy(garbage)
    with pytest.raises(InputFileError, match="not a regular file"):
        load_npy("/dev/zero")
    good = tmp_path / "good.npy"
    want = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(good, want)
    np.testing.assert_array_equal(load_npy(good), want)
    np.save(good, np.zeros((0, 3), np.int64))
    assert load_npy(good).shape == (0, 3)


# -- found by bench/fuzz.py (the rest are files in tests/bad/fuzz_*.ir) ---------


def test_sign_of_a_bool_folds_as_torch():
    # NumPy's reference negated a bool: TypeError while folding sign(true)
    assert output(graph("sign(true)"))["value"] is True
    assert output(graph("sign(false)"))["value"] is False


def test_bool_subtraction_is_refused_as_in_torch():
    d = diagnostic(graph("a - b", "a: bool[4], b: bool[4]"))
    assert "sub of bool operands is not supported" in d.message and d.pos == Pos(2, 14)
    assert output(graph("a - 1", "a: bool[4]"))["dtype"] == "i64"  # with an int: fine


def test_an_f16_gemm_of_one_value_twice_is_widened():
    # linear(h, h): widen removed the edge h -> gemm twice (NetworkXError)
    (g,) = compile_graphs(graph("linear(h, h)", "h: f16[4, 4]")).graphs
    (out,) = g.graph["outputs"]
    assert g.nodes[out]["dtype"] == "f16" and g.nodes[out]["shape"] == (4, 4)


def test_thousands_of_diagnostics_render_in_linear_time():
    # 9,000 diagnostics on a 600 kB file each split the whole file into lines
    import time

    def duplicates(n):
        return "graph g(x: f32) {\n    return x\n}\n" * n

    def render(n):
        start = time.process_time()
        with pytest.raises(CompileError) as info:
            compile_graphs(duplicates(n))
        assert len(info.value.diagnostics) == n - 1 and str(info.value)
        return time.process_time() - start

    small, big = min(render(1000) for _ in range(2)), min(render(4000) for _ in range(2))
    assert big < 8 * small + 0.05


def test_an_integer_tensor_to_a_negative_literal_power_is_refused_as_in_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="negative integer powers"):
        torch.tensor([2], dtype=torch.int32) ** -1
    d = diagnostic(graph("k ** -1", "k: i32[4]"))
    assert "negative integer power" in d.message and d.pos == Pos(2, 17)
    assert diagnostic(graph("k ** (1 - 3)", "k: i64[4]")).pos == Pos(2, 20)  # folded first
    assert output(graph("k ** -1.0", "k: i32[4]"))["dtype"] == "f32"
    assert output(graph("x ** -1"))["dtype"] == "f32"


def test_graph_and_token_counts_are_bounded(monkeypatch):
    # found by bench/fuzz.py: 600,000 minus signs (600 kB) made a 600,000-node
    # graph that took 2.3 GB; the bounds keep memory within a few GB
    from fusec.frontend import lower, parser

    monkeypatch.setattr(lower, "MAX_GRAPH_NODES", 1000)
    d = diagnostic(graph("-" * 2000 + "x"))
    assert "more than 1,000 values" in d.message and d.pos.line == 2
    d = diagnostic(graph("x", ", ".join(f"p{i}: f32" for i in range(1500))))
    assert "more than 1,000 values" in d.message
    assert output(graph("-" * 900 + "x"))["op"] == "param"
    monkeypatch.setattr(parser, "MAX_TOKENS", 1000)
    d = diagnostic(graph(" + ".join(["x"] * 600)))
    assert "more than 1,000 tokens" in d.message and d.pos.line == 2
