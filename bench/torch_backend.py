#!/usr/bin/env python
"""torch.compile(..., backend="fusec") against backend="inductor" and eager, in one run.

    python bench/torch_backend.py            # chains at 2^16, 2^20, 2^22, 2^24
    python bench/torch_backend.py --quick    # chains at 2^16 and 2^20, fewer rounds
    python bench/torch_backend.py --only "light chain fwd 2^20,mlp"   # rows by label prefix
    python bench/torch_backend.py --switching   # time first calls after another backend
    OMP_WAIT_POLICY=PASSIVE python bench/torch_backend.py   # PyTorch's threads sleep at once

Rows (milliseconds, medians of interleaved rounds: each round times every
backend once, so drift on a shared machine hits them alike; each timed call
follows an untimed call of the same backend, see `timed`):

  light/heavy chain fwd   out = chain(x, y) on n float32 elements (no grad)
  light/heavy chain f+b   forward, then torch.autograd.grad w.r.t. x and y
                          (light: mul, add, relu, clamp, mul, add, relu, clamp;
                          heavy: mul, sigmoid, tanh, exp, sqrt, mul, tanh, sigmoid)
  mlp step                784-512-256-10 MLP with ReLU, batch 256:
                          forward, cross entropy, backward, SGD step
  residual block f+b      LayerNorm -> Linear(256, 1024) -> GELU -> Linear(1024, 256) + x,
                          batch 512: forward and backward
  first compile (ms)      the first call of a fresh light chain (2^16) and of the
                          MLP step, cold caches: fusec and Inductor each get an
                          empty cache directory for this run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# cold caches for the first-compile rows: set before fusec or torch read them
_CACHE = tempfile.mkdtemp(prefix="fusec-bench-")
os.environ.setdefault("FUSEC_CACHE_DIR", os.path.join(_CACHE, "fusec"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(_CACHE, "inductor"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import fusec.torch  # noqa: E402

BACKENDS = {"fusec": fusec.torch.backend, "inductor": "inductor", "eager": None}


def light(x, y):
    a = torch.clamp(torch.relu(x * y + 1.0), -2.0, 2.0)
    return torch.clamp(torch.relu(a * 0.5 + y), -2.0, 2.0)


def heavy(x, y):
    a = torch.sqrt(torch.exp(torch.tanh(torch.sigmoid(x * y))))
    return torch.sigmoid(torch.tanh(a * y))


def compiled(fn, backend):
    return fn if backend is None else torch.compile(fn, backend=backend, dynamic=False)


def chain_cases(sizes):
    gen = torch.Generator().manual_seed(0)
    for chain in (light, heavy):
        for k in sizes:
            n = 1 << k
            x, y = torch.randn(n, generator=gen), torch.randn(n, generator=gen)

            def fwd(f, x=x, y=y):
                with torch.no_grad():
                    return f(x, y)

            xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
            ct = torch.randn(n, generator=gen)

            def fb(f, xg=xg, yg=yg, ct=ct):
                return torch.autograd.grad(f(xg, yg), (xg, yg), ct)

            yield f"{chain.__name__} chain fwd 2^{k}", chain, fwd
            yield f"{chain.__name__} chain f+b 2^{k}", chain, fb


def mlp_case():
    torch.manual_seed(0)
    models = {}

    def make(backend):
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        )
        models[backend] = (model, torch.optim.SGD(model.parameters(), lr=0.01))
        return model

    x, y = torch.randn(256, 784), torch.randint(0, 10, (256,))

    def step(model):
        _, opt = next(v for v in models.values() if v[0] is getattr(model, "_orig_mod", model))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return make, step


class Residual(torch.nn.Module):
    def __init__(self, width=256):
        super().__init__()
        self.norm = torch.nn.LayerNorm(width)
        self.up, self.down = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)

    def forward(self, x):
        return x + self.down(torch.nn.functional.gelu(self.up(self.norm(x))))


WARM_SECONDS = 0.010  # untimed calls before each timed one (see `timed`)


def timed(fn, rounds, switching=False):
    """Medians over rounds; each round runs every backend, starting with a
    different one each round, so drift on a shared machine hits them alike.

    A backend's first call after another backend's finds that backend's
    threads still spinning on the cores: PyTorch's OpenMP pool (eager,
    Inductor) spins for ~3 ms of CPU after its work, the OpenCL runtime's
    pool (fusec) ~1 ms, and on 2 cores the next backend's threads wait for
    them (/tmp measurements in bench/results-torch-backend.txt, 2026-11-30).
    Inductor after eager shares eager's pool and pays nothing; fusec always
    pays. A model runs one backend call after call, so by default every
    timed call follows 10 ms of idling (the other pool's threads go to
    sleep: one untimed call is shorter than their spinning) and untimed
    calls of the same backend for at least 10 ms: steady state, as in a
    training loop. Woken from the idle, the caller shares a core with the
    OpenCL runtime's pinned worker about half the time until the scheduler
    moves it (docs/torch.md), so fewer warm calls measured the wake-up, not
    the steady state: light chain fwd 2^20, medians of 30, fusec after 2 ms
    of calls 0.179-0.189 ms, after 10 ms 0.117, back to back 0.114-0.118;
    Inductor 0.118-0.139, 0.119, 0.116-0.120 (2026-11-30); one woken call
    was not enough either (fusec 0.52 ms after one, 0.33 after three).
    `switching=True` times the first call after another backend instead."""
    times = {name: [] for name in fn}
    names = list(fn)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            f = fn[name]
            if not switching:
                time.sleep(0.01)  # the previous backend's threads stop spinning
                warm = time.perf_counter() + WARM_SECONDS
                f()  # and this one's wake up and settle: untimed calls for 10 ms at least
                while time.perf_counter() < warm:
                    f()
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) * 1e3 for name, v in times.items()}


def row(label, ms, unit="ms"):
    ratio = ms["inductor"] / ms["fusec"] if ms["fusec"] else float("nan")
    cells = "".join(f"{ms[b]:>12.3f}" for b in BACKENDS)
    print(f"{label:<28}{cells}{ratio:>14.2f}x", flush=True)


def first_compile():
    out = {}
    for name, backend in BACKENDS.items():
        if backend is None:
            continue

        def fresh(x, y):  # a new code object each time: nothing cached by Dynamo
            return torch.relu(x * y + 1.0) * 0.5

        x = torch.randn(1 << 16)
        t = time.perf_counter()
        torch.compile(fresh, backend=backend)(x, x)
        out[name] = time.perf_counter() - t
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--switching",
        action="store_true",
        help="time each backend's first call after another backend's (see timed())",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated row labels to run, by prefix (e.g. 'light chain,mlp')",
    )
    args = parser.parse_args()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]

    def selected(label):
        return not wanted or any(label.startswith(w) for w in wanted)

    sizes, rounds = ((16, 20), 5) if args.quick else ((16, 20, 22, 24), 9)
    torch.set_num_threads(os.cpu_count() or 1)
    # every (chain, size, grad mode) is a recompile of the same function: past
    # Dynamo's default limit of 8 it would silently run eagerly
    torch._dynamo.config.recompile_limit = 1000
    torch._dynamo.config.accumulated_recompile_limit = 10000
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; fusec device: "
        f"{fusec.compile('graph f(x: f32[N]) { return x * 2 }').runtime.device_names}"
    )
    print(f"{'':<28}" + "".join(f"{b:>12}" for b in BACKENDS) + f"{'inductor/fusec':>15}")
    if selected("first compile"):
        cold = first_compile()
        row("first compile (ms), chain", {**{k: v * 1e3 for k, v in cold.items()}, "eager": 0.0})
    for label, chain, call in chain_cases(sizes):
        if not selected(label):
            continue
        fns = {name: compiled(chain, b) for name, b in BACKENDS.items()}
        for f in fns.values():
            call(f)  # compile and warm up
        calls = {name: (lambda f=f, call=call: call(f)) for name, f in fns.items()}
        row(label, timed(calls, rounds, args.switching))
    if selected("mlp step"):
        make, step = mlp_case()
        models = {}
        for name, b in BACKENDS.items():
            t = time.perf_counter()
            models[name] = compiled(make(name), b)
            step(models[name])
            if name == "fusec":
                fusec_mlp_compile = time.perf_counter() - t
            if name == "inductor":
                inductor_mlp_compile = time.perf_counter() - t
        print(
            f"first compile, mlp step: fusec {fusec_mlp_compile:.2f} s, "
            f"inductor {inductor_mlp_compile:.2f} s (fusec's kernels partly cached by then)"
        )
        steps = {n: (lambda m=m: step(m)) for n, m in models.items()}
        row("mlp step", timed(steps, rounds, args.switching))
    if selected("residual block"):
        torch.manual_seed(1)
        x = torch.randn(512, 256, requires_grad=True)
        blocks = {name: compiled(Residual(), b) for name, b in BACKENDS.items()}

        def block_fb(m):
            out = m(x)
            out.backward(torch.ones_like(out))

        for m in blocks.values():
            block_fb(m)
        fbs = {n: (lambda m=m: block_fb(m)) for n, m in blocks.items()}
        row("residual block f+b", timed(fbs, rounds, args.switching))
    mode = "first call after another backend" if args.switching else "steady state"
    print(f"({mode}; milliseconds unless noted; the machine is shared, compare within a row)")


if __name__ == "__main__":
    main()
