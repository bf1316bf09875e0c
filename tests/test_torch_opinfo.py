"""PyTorch's own OpInfo samples (0-d tensors, broadcasting, dims lists,
keepdim, scalar operands) through the fusec backend against eager: a bounded
number of samples per op, forward only (the gradients are checked in
test_torch_backend.py)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")  # torch.testing._internal needs it

from torch.testing._internal.common_methods_invocations import op_db  # noqa: E402

import fusec.torch  # noqa: E402

OPS = [
    "exp",
    "sigmoid",
    "nn.functional.gelu",
    "add",
    "mul",
    "maximum",
    "where",
    "sum",
    "amax",
    "log_softmax",
    "var_mean",
]
SAMPLES_PER_OP = 3


def samples():
    infos = {o.name: o for o in op_db if o.name in OPS and o.variant_test_name == ""}
    for name in OPS:
        gen = infos[name].sample_inputs("cpu", torch.float32, requires_grad=False)
        for i, s in zip(range(SAMPLES_PER_OP), gen, strict=False):
            yield pytest.param(infos[name], s, id=f"{name}-{i}")


@pytest.mark.parametrize(("info", "sample"), list(samples()))
def test_opinfo_sample_matches_eager_and_fuses(info, sample):
    def fn(*args):
        return info.op(*args, **sample.kwargs)

    args = (sample.input, *sample.args)
    # every sample recompiles the same code object: past Dynamo's limit of 8 it would run eagerly
    with torch._dynamo.config.patch(recompile_limit=1000, accumulated_recompile_limit=10000):
        report = fusec.torch.explain(fn, *args)
        got = torch.compile(fn, backend=fusec.torch.backend)(*args)
    torch.testing.assert_close(got, fn(*args), rtol=1e-4, atol=1e-5, equal_nan=True)
    empty = any(isinstance(a, torch.Tensor) and a.numel() == 0 for a in args)
    assert report.graphs or empty, str(report)
