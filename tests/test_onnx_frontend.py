"""The ONNX front end: small models built with onnx.helper, imported by
`fusec.from_onnx`, against onnx.reference.ReferenceEvaluator; names, bad and
untrusted input; and `fusec import` on the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import fusec  # noqa: E402
import fusec.onnx as fo  # noqa: E402
from fusec.cli import main  # noqa: E402

RNG = np.random.default_rng(12)
VENDOR_OPSETS = [h.make_opsetid("vendor", 1)]  # a custom op's domain, as a real model declares it


def weight(name, *shape, dtype=np.float32):
    return numpy_helper.from_array(
        (RNG.standard_normal(shape) / np.sqrt(shape[-1])).astype(dtype), name
    )


def model(nodes, inputs, outputs, initializers=(), opset=13, name="net"):
    graph = h.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset), *VENDOR_OPSETS])
    onnx.checker.check_model(m)
    return m


def gemm_mlp(opset):
    """Linear -> ReLU -> Linear -> Softmax, as torch.onnx exports it (Gemm, transB=1)."""
    return model(
        [
            h.make_node(
                "Gemm",
                ["input.1", "fc1.weight", "fc1.bias"],
                ["onnx::Relu_5"],
                transB=1,
                name="/fc1/Gemm",
            ),
            h.make_node("Relu", ["onnx::Relu_5"], ["relu"], name="/act/Relu"),
            h.make_node(
                "Gemm", ["relu", "fc2.weight", "fc2.bias"], ["logits"], transB=1, name="/fc2/Gemm"
            ),
            h.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        [h.make_tensor_value_info("input.1", T.FLOAT, ["batch_size", 20])],
        [h.make_tensor_value_info("probs", T.FLOAT, ["batch_size", 10])],
        [
            weight("fc1.weight", 32, 20),
            weight("fc1.bias", 32),
            weight("fc2.weight", 10, 32),
            weight("fc2.bias", 10),
        ],
        opset=opset,
        name="torch_jit",
    )


def matmul_mlp():
    """MatMul + Add, exact GELU, MatMul, sigmoid; LogSoftmax as a second output (opset 21)."""
    return model(
        [
            h.make_node("MatMul", ["x", "w1"], ["xw"]),
            h.make_node("Add", ["xw", "b1"], ["pre"]),
            h.make_node("Gelu", ["pre"], ["hidden"]),
            h.make_node("MatMul", ["hidden", "w2"], ["out"]),
            h.make_node("Sigmoid", ["out"], ["score"]),
            h.make_node("LogSoftmax", ["out"], ["logp"], axis=-1),
        ],
        [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 16])],
        [
            h.make_tensor_value_info("score", T.FLOAT, ["N", 3, 6]),
            h.make_tensor_value_info("logp", T.FLOAT, ["N", 3, 6]),
        ],
        [weight("w1", 16, 24), weight("b1", 24), weight("w2", 24, 6)],
        opset=21,
    )


def norm_mlp():
    """Gemm with alpha, beta, transA on a constant A, a 2-D C; ReduceMean (axes an
    attribute at opset 17); Clip with constant inputs, LeakyRelu, Dropout (inference)."""
    return model(
        [
            h.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0),
            h.make_node("ReduceMean", ["y"], ["mu"], axes=[-1], keepdims=1),
            h.make_node("Sub", ["y", "mu"], ["centered"]),
            h.make_node("Clip", ["centered", "lo", "hi"], ["clipped"]),
            h.make_node("LeakyRelu", ["clipped"], ["act"], alpha=0.2),
            h.make_node("Dropout", ["act"], ["dropped"]),
            h.make_node("Gemm", ["wt", "dropped"], ["z"], transA=1, transB=1),
        ],
        [h.make_tensor_value_info("x", T.FLOAT, ["B", 8])],
        [h.make_tensor_value_info("z", T.FLOAT, [5, "B"])],
        [
            weight("w", 8, 12),
            weight("c", 1, 12),
            numpy_helper.from_array(np.float32(-0.5), "lo"),
            numpy_helper.from_array(np.float32(0.75), "hi"),
            weight("wt", 12, 5),
        ],
        opset=17,
    )


def reduce_model():
    """ReduceSum/ReduceMax with axes as a Constant input (opset 18), several axes, f64."""
    return model(
        [
            h.make_node(
                "Constant", [], ["axes"], value=numpy_helper.from_array(np.array([0, -1], np.int64))
            ),
            h.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
            h.make_node("ReduceMax", ["x", "axes"], ["m"], keepdims=1),
            h.make_node("Tanh", ["s"], ["t"]),
        ],
        [h.make_tensor_value_info("x", T.DOUBLE, [4, "H", 5])],
        [
            h.make_tensor_value_info("t", T.DOUBLE, ["H"]),
            h.make_tensor_value_info("m", T.DOUBLE, [1, "H", 1]),
        ],
        opset=18,
    )


MODELS = {
    "gemm13": lambda: gemm_mlp(13),
    "gemm21": lambda: gemm_mlp(21),
    "matmul": matmul_mlp,
    "norm": norm_mlp,
    "reduce": reduce_model,
}
INPUT_SHAPES = {
    "gemm13": [(1, 20), (64, 20), (7, 20)],
    "gemm21": [(3, 20)],
    "matmul": [(2, 3, 16), (5, 3, 16)],
    "norm": [(1, 8), (9, 8)],
    "reduce": [(4, 3, 5), (4, 1, 5)],
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def imported(request):
    m = MODELS[request.param]()
    return request.param, m, fusec.from_onnx(m)


def test_models_match_the_reference_evaluator(imported):
    name, m, prog = imported
    graph = prog[prog.graphs[0]]
    (onnx_input,) = [i.name for i in m.graph.input]
    reference = ReferenceEvaluator(m)
    for shape in INPUT_SHAPES[name]:  # new batch sizes: the same graph, symbolic sizes
        dtype = np.float64 if name == "reduce" else np.float32
        x = RNG.standard_normal(shape).astype(dtype)
        expected = reference.run(None, {onnx_input: x})
        got = graph(x)
        got = got if isinstance(got, tuple) else (got,)
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_initializers_are_bound_and_only_graph_inputs_remain(imported):
    name, m, prog = imported
    assert prog[prog.graphs[0]].param_names == prog.input_names
    assert len(prog.input_names) == len(m.graph.input)


def test_an_imported_layer_fuses_as_a_written_one():
    """Gemm, then Relu as its own node and statement: the bias add and the relu
    still run in the GEMM's epilogue, as for relu(linear(x, w, b)) written by hand."""
    prog = fusec.from_onnx(gemm_mlp(13))
    prog[prog.graphs[0]](RNG.standard_normal((3, 20)).astype(np.float32))
    gemms = [k["ops"] for k in prog.program[prog.graphs[0]].plan["kernels"] if "linear" in k["ops"]]
    assert len(gemms) == 2 and gemms[0] == ["linear", "add", "relu"]


def test_exported_names_are_mangled_into_identifiers():
    imported = fo.onnx_to_ir(gemm_mlp(13))
    assert imported.name == "torch_jit"
    assert imported.inputs == ["input_1"]
    assert sorted(imported.initializers) == ["fc1_bias", "fc1_weight", "fc2_bias", "fc2_weight"]
    assert "batch_size" in imported.text and "relu_2 = relu(onnx__Relu_5)" in imported.text
    assert imported.onnx_names["input_1"] == "input.1"


def test_names_that_collide_get_distinct_identifiers():
    # "a.b" and "a_b" mangle alike; "exp" and "graph" are an op and a keyword; "1x" starts with a digit
    m = model(
        [
            h.make_node("Add", ["a.b", "a_b"], ["exp"]),
            h.make_node("Exp", ["exp"], ["graph"]),
            h.make_node("Neg", ["graph"], ["1x"]),
        ],
        [
            h.make_tensor_value_info("a.b", T.FLOAT, [3]),
            h.make_tensor_value_info("a_b", T.FLOAT, [3]),
        ],
        [h.make_tensor_value_info("1x", T.FLOAT, [3])],
    )
    prog = fusec.from_onnx(m)
    assert prog.input_names == ["a_b", "a_b_2"]
    a, b = np.float32([1, 2, 3]), np.float32([0.5, -1, 4])
    np.testing.assert_allclose(prog[prog.graphs[0]](a, b), -np.exp(a + b), rtol=1e-6)


def test_outputs_that_are_inputs_or_constants():
    m = model(
        [h.make_node("Constant", [], ["c"], value_float=2.5)],
        [h.make_tensor_value_info("x", T.FLOAT, [3])],
        [h.make_tensor_value_info("x", T.FLOAT, [3]), h.make_tensor_value_info("c", T.FLOAT, [])],
    )
    prog = fusec.from_onnx(m)
    x = np.float32([1, -2, 3])
    same, c = prog[prog.graphs[0]](x)
    np.testing.assert_array_equal(same, x)
    assert c.dtype == np.float32 and c.shape == () and c == 2.5


def test_unsupported_nodes_are_listed_together():
    m = gemm_mlp(13)
    m.graph.node.insert(
        1, h.make_node("Conv", ["onnx::Relu_5", "fc2.weight"], ["conv"], name="conv_1")
    )
    m.graph.node.insert(2, h.make_node("MatMul", ["conv", "conv"], ["mm"]))
    m.graph.node.insert(3, h.make_node("Custom", ["mm"], ["c"], domain="vendor", name="fancy"))
    with pytest.raises(fo.OnnxImportError) as e:
        fo.onnx_to_ir(m)
    message = str(e.value)
    assert "3 nodes fusec cannot import" in message
    assert "node 'conv_1' (Conv): fusec has no Conv" in message
    assert "node #2 (MatMul)" in message
    assert "node 'fancy' (Custom): fusec has no Custom in domain 'vendor'" in message


@pytest.mark.parametrize(
    "case, message",
    [
        ("opset 11", "opset 11 is not supported"),
        ("external data", "external file"),
        ("uint8 input", "type UINT8 is not one fusec has"),
        ("not a model", "expected a path or an onnx.ModelProto"),
        ("runtime axes", "axes are computed at run time"),
        (
            "negative dim",
            "1 graph input or output fusec cannot import:\n  graph input 'x': dimension 0 is -3",
        ),
        ("no opset", "imports no ai.onnx opset"),
        ("shapes clash", r"does not check:\n.*cannot broadcast operands of shapes \[3\] and \[4\]"),
    ],
)
def test_bad_models_give_clear_errors(case, message):
    if case == "opset 11":
        m = gemm_mlp(13)
        m.opset_import[0].version = 11
    elif case == "external data":
        m = gemm_mlp(13)
        w = m.graph.initializer[0]
        w.ClearField("raw_data")
        w.ClearField("float_data")
        w.data_location = T.EXTERNAL
        w.external_data.add(key="location", value="../../etc/passwd")
    elif case == "uint8 input":
        m = model(
            [h.make_node("Relu", ["x"], ["y"])],
            [h.make_tensor_value_info("x", T.UINT8, [2])],
            [h.make_tensor_value_info("y", T.UINT8, [2])],
        )
    elif case == "runtime axes":
        m = model(
            [h.make_node("ReduceSum", ["x", "axes"], ["y"])],
            [
                h.make_tensor_value_info("x", T.FLOAT, [2, 3]),
                h.make_tensor_value_info("axes", T.INT64, [1]),
            ],
            [h.make_tensor_value_info("y", T.FLOAT, [1, 3])],
        )
    elif case == "negative dim":
        m = model(
            [h.make_node("Relu", ["x"], ["y"])],
            [h.make_tensor_value_info("x", T.FLOAT, [-3])],
            [h.make_tensor_value_info("y", T.FLOAT, [-3])],
        )
    elif case == "no opset":
        m = gemm_mlp(13)
        del m.opset_import[0]
    elif case == "shapes clash":
        m = model(
            [h.make_node("Add", ["x", "z"], ["y"])],
            [
                h.make_tensor_value_info("x", T.FLOAT, [3]),
                h.make_tensor_value_info("z", T.FLOAT, [4]),
            ],
            [h.make_tensor_value_info("y", T.FLOAT, [4])],
        )
    else:
        m = 42
    with pytest.raises(fo.OnnxImportError, match=message):
        fo.onnx_to_ir(m)


def test_files_are_bounded_and_checked(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(gemm_mlp(13), path)
    with pytest.raises(fo.OnnxImportError, match="more than the 100 fusec reads"):
        fo.onnx_to_ir(path, max_bytes=100)
    path.write_bytes(b"\x08\x07garbage")
    with pytest.raises(fo.OnnxImportError, match="not an ONNX model|not a valid ONNX model"):
        fo.onnx_to_ir(path)
    with pytest.raises(fo.OnnxImportError, match="no such file"):
        fo.onnx_to_ir(tmp_path / "missing.onnx")


def test_import_fusec_does_not_import_onnx():
    code = "import sys, fusec; assert 'onnx' not in sys.modules; fusec.from_onnx; assert 'onnx' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the command line -------------------------------------------------------------------


def test_cli_import_then_check(tmp_path, capsys):
    onnx_path, ir_path = tmp_path / "mlp.onnx", tmp_path / "out" / "mlp.ir"
    ir_path.parent.mkdir()
    m = gemm_mlp(13)
    onnx.save(m, onnx_path)
    assert main(["import", str(onnx_path), "-o", str(ir_path), "--graph", "mlp"]) == 0
    assert main(["check", str(ir_path)]) == 0
    assert "ok (1 graph)" in capsys.readouterr().out
    # the .npz beside the IR holds the initializers by parameter name: bind them, call with x
    weights = dict(np.load(ir_path.with_suffix(".npz")))
    layer = fusec.compile(ir_path)["mlp"].bind(**weights)
    x = RNG.standard_normal((4, 20)).astype(np.float32)
    expected = ReferenceEvaluator(m).run(None, {"input.1": x})[0]
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_cli_import_to_stdout(tmp_path, capsys):
    onnx.save(gemm_mlp(13), tmp_path / "mlp.onnx")
    assert main(["import", str(tmp_path / "mlp.onnx")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# imported from") and "graph torch_jit(" in out
    assert "4 initializers not written" in err


def test_cli_unsupported_nodes_exit_1_and_write_nothing(tmp_path, capsys):
    m = gemm_mlp(13)
    m.graph.node.insert(
        1, h.make_node("Conv", ["onnx::Relu_5", "fc2.weight"], ["conv"], name="conv_1")
    )
    m.graph.node.insert(2, h.make_node("Erfinv", ["conv"], ["e"], name="e1", domain="vendor"))
    onnx.save(m, tmp_path / "bad.onnx")
    assert main(["import", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "bad.ir")]) == 1
    err = capsys.readouterr().err
    assert "node 'conv_1' (Conv)" in err and "node 'e1' (Erfinv)" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_cli_rejects_a_graph_name_that_is_not_an_identifier(tmp_path, capsys):
    onnx.save(gemm_mlp(13), tmp_path / "mlp.onnx")
    assert main(["import", str(tmp_path / "mlp.onnx"), "--graph", "sum"]) == 1
    assert "graph name 'sum' is not a valid IR name" in capsys.readouterr().err
