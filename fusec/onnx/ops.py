"""ONNX operators as IR: one entry per `op_type`, each a function of the node
(`convert.NodeContext`) returning the IR expression of its output, a NumPy
array for a constant, or raising `Unsupported` with the reason."""

from __future__ import annotations

import numpy as np

from .convert import NodeContext, Unsupported, literal
from .model import DTYPES, dtype_name

OPS: dict = {}


def _call(fn: str):
    return lambda ctx: f"{fn}({', '.join(ctx.args())})"


# ONNX op -> fusec op of the same numerics, operands in the same order
for onnx_op, fusec_op in {
    "Add": "add",
    "Sub": "sub",
    "Mul": "mul",
    "Neg": "neg",
    "Abs": "abs",
    "Reciprocal": "reciprocal",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Sin": "sin",
    "Cos": "cos",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Erf": "erf",
    "Floor": "floor",
    "Ceil": "ceil",
    "Round": "round",
    "Sign": "sign",
    "Equal": "eq",
    "Less": "lt",
    "LessOrEqual": "le",
    "Greater": "gt",
    "GreaterOrEqual": "ge",
    "Not": "logical_not",
    "And": "logical_and",
    "Or": "logical_or",
    "Xor": "ne",
    "Where": "where",
    "Relu": "relu",
    "HardSwish": "hardswish",
    "Mish": "mish",
    "Softplus": "softplus",
}.items():
    OPS[onnx_op] = _call(fusec_op)


def op(name):
    def register(fn):
        OPS[name] = fn
        return fn

    return register


def num(value) -> str:
    """A float attribute as an IR number (attributes take no parentheses)."""
    return literal(np.float64(value)).strip("()")


def lit(value) -> str:
    """A float attribute as a literal in an expression (weak: it takes x's dtype)."""
    return literal(np.float64(value))


@op("Identity")
def identity(ctx: NodeContext):
    return ctx.arg(0)


@op("Constant")
def constant(ctx: NodeContext):
    from onnx import numpy_helper

    for key, dtype in (
        ("value_float", np.float32),
        ("value_int", np.int64),
        ("value_floats", np.float32),
        ("value_ints", np.int64),
    ):
        if key in ctx.attrs:
            return np.asarray(ctx.attrs[key], dtype=dtype)
    if "value" in ctx.attrs:
        array = numpy_helper.to_array(ctx.attrs["value"])
        if array.dtype not in [
            np.dtype(t) for t in ("float16", "float32", "float64", "int32", "int64", "bool")
        ]:
            raise Unsupported(f"a constant of dtype {array.dtype}, which fusec lacks")
        return array
    raise Unsupported(f"only tensor and number constants are supported, not {', '.join(ctx.attrs)}")


@op("Dropout")
def dropout(ctx: NodeContext):
    # inference: Dropout is the identity unless training_mode is set (or unknown)
    training = ctx.const(2) if ctx.has(2) else np.array(False)
    if training is None or bool(training):
        raise Unsupported(
            "training_mode is set or computed at run time (fusec imports inference graphs)"
        )
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        raise Unsupported("its mask output is used")
    return ctx.arg(0)


@op("Div")
def div(ctx: NodeContext):
    if ctx.dtype(0) not in ("f16", "f32", "f64"):
        raise Unsupported(f"Div of {ctx.dtype(0)} truncates; fusec's div is true division")
    return f"div({ctx.arg(0)}, {ctx.arg(1)})"


@op("Pow")
def power(ctx: NodeContext):
    expr = f"pow({ctx.arg(0)}, {ctx.arg(1)})"
    # ONNX's result has the base's type; fusec promotes as PyTorch does
    return expr if ctx.dtype(0) == ctx.dtype(1) else f"cast({expr}, dtype={ctx.dtype(0)})"


def _fold(fn: str):
    def convert(ctx: NodeContext):
        args = ctx.args()
        expr = args[0]
        for a in args[1:]:
            expr = f"{fn}({expr}, {a})"
        return expr

    return convert


OPS["Max"], OPS["Min"], OPS["Sum"] = _fold("maximum"), _fold("minimum"), _fold("add")


@op("Mean")
def mean(ctx: NodeContext):
    return f"div({_fold('add')(ctx)}, {len(ctx.args())})"


@op("Cast")
def cast(ctx: NodeContext):
    to = ctx.attr("to")
    if to not in DTYPES:
        raise Unsupported(f"a cast to {dtype_name(to)}, which fusec lacks")
    return f"cast({ctx.arg(0)}, dtype={DTYPES[to]})"


@op("CastLike")
def cast_like(ctx: NodeContext):
    target = ctx.dtype(1)
    if target is None:
        raise Unsupported("the target type is one fusec lacks")
    return f"cast({ctx.arg(0)}, dtype={target})"


@op("Clip")
def clip(ctx: NodeContext):
    x = ctx.arg(0)
    # min and max are optional inputs from opset 11 (the attribute form is older
    # than the opsets fusec imports); constant ones become clamp's attributes
    bounds = {"min": None, "max": None}
    runtime = {}
    for i, key in ((1, "min"), (2, "max")):
        if ctx.has(i):
            value = ctx.const(i)
            if value is None:
                runtime[key] = ctx.arg(i)
            elif value.size != 1:
                raise Unsupported(f"{key} must be a scalar, got shape {list(value.shape)}")
            else:
                bounds[key] = value.reshape(())
    attrs = [
        f"{k}={literal(v).strip('()')}"
        for k, v in bounds.items()
        if v is not None and not np.isinf(np.float64(v))
    ]
    expr = f"clamp({x}, {', '.join(attrs)})" if attrs else x
    if "min" in runtime:
        expr = f"maximum({expr}, {runtime['min']})"
    if "max" in runtime:
        expr = f"minimum({expr}, {runtime['max']})"
    return expr


@op("LeakyRelu")
def leaky_relu(ctx: NodeContext):
    return f"leaky_relu({ctx.arg(0)}, alpha={num(ctx.attr('alpha', 0.01))})"


@op("Elu")
def elu(ctx: NodeContext):
    return f"elu({ctx.arg(0)}, alpha={num(ctx.attr('alpha', 1.0))})"


@op("Celu")
def celu(ctx: NodeContext):
    return f"celu({ctx.arg(0)}, alpha={num(ctx.attr('alpha', 1.0))})"


SELU_ALPHA, SELU_GAMMA = (
    np.float32(1.67326319217681884765625),
    np.float32(1.05070102214813232421875),
)


@op("Selu")
def selu(ctx: NodeContext):
    alpha, gamma = (
        np.float32(ctx.attr("alpha", SELU_ALPHA)),
        np.float32(ctx.attr("gamma", SELU_GAMMA)),
    )
    x = ctx.arg(0)
    if alpha == SELU_ALPHA and gamma == SELU_GAMMA:
        return f"selu({x})"
    return f"{lit(gamma)} * where({x} > 0, {x}, {lit(alpha)} * expm1({x}))"


@op("Gelu")
def gelu(ctx: NodeContext):
    approximate = ctx.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"approximate={approximate!r}")
    return f'gelu({ctx.arg(0)}, approximate="{approximate}")'


@op("Softsign")
def softsign(ctx: NodeContext):
    x = ctx.arg(0)
    return f"{x} / (1 + abs({x}))"


@op("HardSigmoid")
def hard_sigmoid(ctx: NodeContext):
    alpha, beta = ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5)
    return f"clamp({lit(alpha)} * {ctx.arg(0)} + {lit(beta)}, min=0, max=1)"


@op("ThresholdedRelu")
def thresholded_relu(ctx: NodeContext):
    x = ctx.arg(0)
    return f"where({x} > {lit(ctx.attr('alpha', 1.0))}, {x}, 0)"


@op("PRelu")
def prelu(ctx: NodeContext):
    # ONNX's slope broadcasts as NumPy does (fusec's prelu, as torch's, by channel)
    x = ctx.arg(0)
    return f"where({x} < 0, {x} * {ctx.arg(1)}, {x})"


@op("Gemm")
def gemm(ctx: NodeContext):
    a, b = ctx.arg(0), ctx.arg(1)
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if ctx.attr("transA", 0):
        value = ctx.const(0)
        if value is None:
            raise Unsupported("transA=1 with A computed at run time (fusec's IR has no transpose)")
        a = ctx.add_constant(ctx.node.input[0] + "_T", value.T)
    c = ctx.arg(2) if ctx.has(2) else None
    bias_in_linear = (
        c is not None
        and ctx.attr("transB", 0)
        and alpha == 1.0
        and beta == 1.0
        and ctx.shape(2) is not None
        and len(ctx.shape(2)) == 1
    )
    if ctx.attr("transB", 0):
        expr = f"linear({a}, {b}, {c})" if bias_in_linear else f"linear({a}, {b})"
    else:
        expr = f"matmul({a}, {b})"
    if alpha != 1.0:
        expr = f"{lit(alpha)} * {expr}"
    if c is not None and not bias_in_linear and beta != 0.0:
        expr = f"{expr} + {c}" if beta == 1.0 else f"{expr} + {lit(beta)} * {c}"
    return expr


@op("MatMul")
def matmul(ctx: NodeContext):
    if ctx.rank(1) != 2:
        raise Unsupported(
            f"B has {ctx.rank(1)} dimensions; fusec's matmul takes a 2-D [K, N] right operand"
        )
    if ctx.rank(0) < 1:
        raise Unsupported("A is a scalar")
    return f"matmul({ctx.arg(0)}, {ctx.arg(1)})"


def _axes(ctx: NodeContext, from_input: bool) -> list[int] | None:
    """The node's axes, normalized and sorted from the last, or None for 'reduce nothing'."""
    rank = ctx.rank(0)
    if from_input:
        axes = ctx.const(1) if ctx.has(1) else np.array([], np.int64)
        if axes is None:
            raise Unsupported("its axes are computed at run time")
        axes = [int(a) for a in axes.reshape(-1)]
    else:
        axes = list(ctx.attr("axes", []) or [])
    if not axes:
        return None if ctx.attr("noop_with_empty_axes", 0) else list(range(rank))[::-1]
    bad = [a for a in axes if not -rank <= a < rank]
    if bad:
        raise Unsupported(f"axis {bad[0]} is out of range for rank {rank}")
    return sorted({a % rank for a in axes}, reverse=True)


# max/min of bool as any/all, counted in i64
BOOL_EXTREMA = {
    "max": ("cast({x}, dtype=i64)", "{r} > 0"),
    "min": ("cast(logical_not({x}), dtype=i64)", "{r} == 0"),
}


def _chain(fn: str, axes: list[int], keep: str, expr: str, after: str) -> str:
    for axis in axes:
        expr = f"{fn}({expr}, axis={axis}, keepdim={keep})"
    return after.format(r=expr)


def _reduction(fn: str, axes_input_since: int, before: str = "{x}", after: str = "{r}"):
    """Reduce* as fusec's one-axis reductions, one per axis from the last (so the
    axes still to go keep their numbers); `before`/`after` wrap an elementwise
    prologue and epilogue around the reduction (ReduceL2: x * x, then sqrt)."""

    def convert(ctx: NodeContext):
        x = ctx.arg(0)
        axes = _axes(ctx, from_input=ctx.opset() >= axes_input_since)
        if axes is None:  # noop_with_empty_axes: the input as it is
            return x
        keep = "true" if ctx.attr("keepdims", 1) else "false"
        dtype = ctx.dtype(0)
        if dtype == "bool" and fn in BOOL_EXTREMA:  # any/all: right over an empty axis too
            return _chain("sum", axes, keep, BOOL_EXTREMA[fn][0].format(x=x), BOOL_EXTREMA[fn][1])
        expr = _chain(fn, axes, keep, before.format(x=x), after)
        # fusec's sum of an integer is i64 and its mean f32; ONNX keeps the input's type
        return (
            expr
            if dtype in ("f16", "f32", "f64") or fn in ("max", "min")
            else f"cast({expr}, dtype={dtype})"
        )

    return convert


OPS.update(
    {
        "ReduceSum": _reduction("sum", 13),
        "ReduceMean": _reduction("mean", 18),
        "ReduceMax": _reduction("max", 18),
        "ReduceMin": _reduction("min", 18),
        "ReduceSumSquare": _reduction("sum", 18, before="square({x})"),
        "ReduceL1": _reduction("sum", 18, before="abs({x})"),
        "ReduceL2": _reduction("sum", 18, before="square({x})", after="sqrt({r})"),
        "ReduceLogSum": _reduction("sum", 18, after="log({r})"),
    }
)


def _softmax(fn: str):
    def convert(ctx: NodeContext):
        return f"{fn}({ctx.arg(0)}, axis={int(ctx.attr('axis', -1))})"

    return convert


OPS["Softmax"], OPS["LogSoftmax"] = _softmax("softmax"), _softmax("log_softmax")
