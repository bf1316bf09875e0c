"""ONNX's own node test cases (onnx.backend.test.case.node) through the importer,
against the outputs stored with them. One test per supported op_type runs every
case that uses only supported op_types; each case that needs something fusec
lacks must be refused with the reason listed here, so a refusal is never silent."""

from __future__ import annotations

import functools
import os
import re
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

import fusec.onnx as fo  # noqa: E402
from fusec.onnx.model import DTYPES  # noqa: E402

# Each case compiles its own kernels (about half a second each without a warm
# cache), so CI runs a spread of a few per op_type, never an `_expanded` one
# (a function's expansion into ops tested on their own); FUSEC_ONNX_NODE_CASES=all
# runs all of them (228 cases; every one passed when this file was written).
PER_OP = None if os.environ.get("FUSEC_ONNX_NODE_CASES") == "all" else 2

# Cases that need a feature fusec lacks: name pattern -> the importer's reason
REFUSED = {
    r"test_(training_)?dropout.*(mask|training)|test_training_dropout": "training_mode|mask output",
    r"test_gemm_(transposeA|all_attributes)$": "transA=1 with A computed at run time",
    r"test_matmul_(3d|4d|bcast|1d_3d|4d_1d|1d_1d)$": "fusec's matmul takes a 2-D",
    r"test_div_int32_trunc$": "truncates",
    # the cases use the Mean/InvStdDev (and running-stat) outputs; exports use one
    r"test_batchnorm_.*training_mode$": "only one output",
    r"test_layer_normalization_": "only one output",
    r"test_flatten_": "merges dimensions",  # every case merges (the IR has no reshape)
}


@functools.lru_cache(maxsize=1)
def node_cases() -> dict[str, list]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators' own overflow warnings
        cases = collect_testcases()
    by_op: dict[str, list] = {}
    for case in cases:
        ops = {n.op_type for n in case.model.graph.node}
        if ops <= fo.SUPPORTED_OPS:
            for op_type in ops:
                by_op.setdefault(op_type, []).append(case)
    return by_op


def expected_refusal(case) -> str | None:
    """The reason fusec must refuse this case for, or None if it must run it."""
    model = case.model
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < fo.MIN_OPSET:
        return "is not supported"
    types = [v.type.tensor_type.elem_type for v in model.graph.input]
    types += [
        a.i for n in model.graph.node for a in n.attribute if n.op_type == "Cast" and a.name == "to"
    ]
    if any(t not in DTYPES for t in types):
        return "fusec (lacks|has)"
    for pattern, reason in REFUSED.items():
        if re.search(pattern, case.name):
            return reason
    return None


def frozen_axes(case, inputs):
    """Reduce* cases feed `axes` as a graph input; exported models hold it as a
    constant, which is what fusec imports: make it an initializer with the case's value."""
    model, names = case.model, [i.name for i in case.model.graph.input]
    if "axes" not in names or case.model.graph.node[0].op_type == "Dropout":
        return model, inputs
    k = names.index("axes")
    frozen = onnx.ModelProto()
    frozen.CopyFrom(model)
    del frozen.graph.input[k]
    frozen.graph.initializer.append(numpy_helper.from_array(np.asarray(inputs[k]), "axes"))
    return frozen, inputs[:k] + inputs[k + 1 :]


def as_array(value):
    return (
        numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)
    )


def check_case(case) -> str | None:
    """None if fusec matches the case's expected outputs (or refuses it as it must), else what went wrong."""
    reason = expected_refusal(case)
    for inputs, outputs in case.data_sets:
        inputs = [as_array(v) for v in inputs]
        model, inputs = frozen_axes(case, inputs)
        if reason is not None:
            try:
                fo.onnx_to_ir(model)
            except fo.OnnxImportError as e:
                return None if re.search(reason, str(e)) else f"refused for another reason: {e}"
            return f"imported, but should be refused ({reason})"
        try:
            prog = fo.from_onnx(model)
        except fo.OnnxImportError as e:
            return f"refused: {e}"
        got = prog[prog.graphs[0]](*inputs)
        got = got if isinstance(got, tuple) else (got,)
        for a, b in zip(got, outputs, strict=True):
            b = as_array(b)
            if a.dtype != b.dtype or a.shape != b.shape:
                return f"got {a.dtype}{list(a.shape)}, expected {b.dtype}{list(b.shape)}"
            half = np.float16 in (a.dtype, b.dtype)
            try:
                np.testing.assert_allclose(
                    a, b, rtol=1e-3 if half else 1e-5, atol=1e-3 if half else 1e-6
                )
            except AssertionError as e:
                return str(e).strip().splitlines()[0] + " " + " ".join(str(e).split())[-200:]
    return None


SUPPORTED_NODE_TESTS = sorted(fo.SUPPORTED_OPS)


@pytest.mark.parametrize("op_type", SUPPORTED_NODE_TESTS)
def test_onnx_node_cases(op_type):
    cases = node_cases().get(op_type)
    assert cases, f"ONNX has no node test case for {op_type}"
    refused = [c for c in cases if expected_refusal(c)]
    run = [
        c
        for c in cases
        if not expected_refusal(c) and (PER_OP is None or not c.name.endswith("_expanded"))
    ]
    if PER_OP is not None and len(run) > PER_OP:  # evenly spread, first and last included
        run = [run[round(i * (len(run) - 1) / (PER_OP - 1))] for i in range(PER_OP)]
    cases = refused + run
    failures = [f"{case.name}: {why}" for case in cases if (why := check_case(case))]
    assert not failures, "\n".join(failures)
