#!/usr/bin/env python
"""A/B of DeviceInfo.fast_builtins (Intel's CPU runtime: the driver's exp and
tanh for fusec's inline ones) through fusec's whole call path, in one process:

    python bench/builtins_ab.py [--rounds 100] [--only tanh]

For each case the same graph is compiled twice, under two names: `builtin`
as fusec now builds it, `inline` with mathlib's inline helpers forced (the
code generator's `helpers_for` wrapped to ignore the device's builtins).
Both are timed NumPy in, NumPy out, with torch eager (2 threads) as the
competitor, interleaved, each call after a 64 MiB cache flush; ms
20th percentile / median. Only meaningful on a device with fast_builtins.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from reduction_launches import timed  # medians and 20th percentiles, alternating order

import fusec
import fusec.codegen as codegen

CASES = [  # name, IR body over x: f32[B, N], N, torch function
    ("softmax", "softmax(x, axis=1)", 64, "softmax"),
    ("log_softmax", "log_softmax(x, axis=1)", 64, "log_softmax"),
    ("softmax", "softmax(x, axis=1)", 256, "softmax"),
    ("log_softmax", "log_softmax(x, axis=1)", 256, "log_softmax"),
    ("softmax", "softmax(x, axis=1)", 1024, "softmax"),
    ("sigmoid", "sigmoid(x) * 2.0 - 1.0", 1024, "sigmoid"),
    ("tanh", "tanh(tanh(tanh(tanh(x))))", 1024, "tanh"),
]


def compiled(name: str, body: str, n: int, inline: bool):
    tag = f"{name}_{n}_{'inline' if inline else 'builtin'}"
    text = f"graph {tag}(x: f32[B, {n}]) {{ return {body} }}"
    if not inline:
        return fusec.compile(text)[tag]
    original = codegen.helpers_for
    codegen.helpers_for = lambda source, builtin=frozenset(): original(source)
    try:
        return fusec.compile(text)[tag]
    finally:
        codegen.helpers_for = original


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/elementwise.py
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--only", default="", help="cases whose name contains this word")
    args = ap.parse_args()
    torch.set_num_threads(2)
    buf = np.ones((64 << 20) // 8)
    print(f"load average at start {os.getloadavg()[0]:.2f}; ms p20/median", flush=True)
    for name, body, n, tname in CASES:
        if args.only not in f"{name}-{n}":
            continue
        x = np.random.default_rng(0).standard_normal((4096, n)).astype(np.float32)
        xt = torch.from_numpy(x)
        new, old = compiled(name, body, n, False), compiled(name, body, n, True)
        np.testing.assert_allclose(new(x), old(x), rtol=1e-5, atol=1e-6)
        tf = {
            "softmax": lambda xt=xt: torch.softmax(xt, 1),
            "log_softmax": lambda xt=xt: torch.log_softmax(xt, 1),
            "sigmoid": lambda xt=xt: torch.sigmoid(xt) * 2.0 - 1.0,
            "tanh": lambda xt=xt: xt.tanh().tanh().tanh().tanh(),
        }
        methods = {"builtin": lambda g=new, x=x: g(x), "inline": lambda g=old, x=x: g(x)}
        res = timed({**methods, "torch": tf[tname]}, args.rounds, buf.sum)
        cells = "  ".join(f"{k} {p20:.3f}/{med:.3f}" for k, (med, p20) in res.items())
        ratio = res["inline"][1] / res["builtin"][1]
        print(f"{name} 4096x{n}: {cells}  inline/builtin p20 {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
