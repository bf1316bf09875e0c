"""Random graphs (Hypothesis): gradients against torch.autograd.

Each example builds a DAG over three f64 parameters — x[B, D], y[B, D] and a
broadcast b[D] — where every node applies a smooth op to earlier nodes, some
values feed several later ones, and two nodes are outputs. Smooth, bounded
ops keep the comparison tight (kinks have their own tests in
test_grad_ops.py). The forward+backward and the backward alone are both
checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fusec

torch = pytest.importorskip("torch")

UNARY = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "sin": torch.sin,
    "cos": torch.cos,
    "square": torch.square,
    "silu": torch.nn.functional.silu,
    "softplus": torch.nn.functional.softplus,
    "erf": torch.erf,
}
BINARY = {
    "+": torch.add,
    "-": torch.sub,
    "*": torch.mul,
    "maximum": torch.maximum,
}


def available(ops):
    """Ops whose registry entry has a backward (all of them once every op has one)."""
    return sorted(op for op in ops if op in "+-*" or fusec.ir.registry.lookup(op).backward)


@st.composite
def graphs(draw):
    unary, binary = available(UNARY), available(BINARY)
    names = ["x", "y", "b"]
    lines, torch_steps = [], []
    for i in range(draw(st.integers(2, 7))):
        if draw(st.booleans()):
            op = draw(st.sampled_from(unary))
            a = draw(st.sampled_from(names))
            lines.append(f"v{i} = {op}({a})")
            torch_steps.append((f"v{i}", op, (a,)))
        else:
            op = draw(st.sampled_from(binary))
            a, c = draw(st.sampled_from(names)), draw(st.sampled_from(names))
            lines.append(f"v{i} = {a} {op} {c}" if op in "+-*" else f"v{i} = {op}({a}, {c})")
            torch_steps.append((f"v{i}", op, (a, c)))
        names.append(f"v{i}")
    outs = [names[-1], draw(st.sampled_from(names[3:]))]
    body = "\n    ".join(lines)
    text = f"graph f(x: f64[B, D], y: f64[B, D], b: f64[D]) {{\n    {body}\n    return {outs[0]}, {outs[1]}\n}}\n"
    return text, torch_steps, outs


def torch_eval(steps, outs, env):
    env = dict(env)
    for name, op, args in steps:
        fn = UNARY.get(op) or BINARY[op]
        value = fn(*(env[a] for a in args))
        env[name] = value
    return [env[o] for o in outs]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.sampled_from([(1, 1), (3, 5), (17, 8)]), st.integers(0, 2**31 - 1))
def test_random_dag_gradients_match_torch(case, shape, seed):
    text, steps, outs = case
    rng = np.random.default_rng(seed)
    b_, d = shape
    x = rng.uniform(-1, 1, (b_, d))
    y = rng.uniform(-1, 1, (b_, d))
    b = rng.uniform(-1, 1, d)
    g = fusec.compile(text, grad=True)["f"]
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in dict(x=x, y=y, b=b).items()}
    want_outs = torch_eval(steps, outs, leaves)
    cts = [rng.standard_normal(o.shape) for o in want_outs]
    torch.autograd.backward(want_outs, [torch.tensor(c) for c in cts])
    (o0, o1), grads = g.value_and_grad(x, y, b, grad_outputs=tuple(cts))
    for got, want in zip((o0, o1), want_outs, strict=True):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=text)
    alone = g.vjp(x, y, b, grad_outputs=tuple(cts))
    for k, t in leaves.items():
        want = t.grad.numpy() if t.grad is not None else np.zeros_like(t.detach().numpy())
        np.testing.assert_allclose(grads[k], want, rtol=1e-9, atol=1e-10, err_msg=f"{k}\n{text}")
        np.testing.assert_allclose(
            alone[k], grads[k], rtol=1e-12, atol=1e-14, err_msg=f"{k}\n{text}"
        )
