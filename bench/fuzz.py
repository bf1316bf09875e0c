#!/usr/bin/env python
"""Fuzz the front end: no input may give a traceback, a hang or a crash.

Every input must either compile (parse, check, simplify, and the backward
graphs: `fusec.compile_graphs(text, grad=True)`, what `fusec check` runs plus
autodiff) or raise CompileError with diagnostics that render. Anything else
is a failure. No OpenCL is involved, so the rate is high.

    nice -n 19 python bench/fuzz.py --minutes 30 --workers 2 --out /tmp/fuzz-failures
    python bench/fuzz.py --replay 1234567        # print the input of one seed
    python bench/fuzz.py --cases 20000           # a fixed number of inputs

Inputs (each from its own seed, so a failure is reproducible by its seed):
  program   random programs over the registry's ops, attributes of every
            type (right and wrong), literals at the edges of their types
  mutate    a file of the corpus (tests/bad, tests/golden, examples) with
            spans deleted, repeated (deep nesting), swapped, spliced, and
            tokens and odd characters inserted
  grammar   random derivations of grammar/fusec.lark (syntactically valid,
            mostly nonsense to the checker)

Each case runs in a worker process under a memory limit (RLIMIT_AS) and a
per-case timeout in CPU time (SIGPROF), and in wall-clock time ten times as
long but at least 10 minutes (SIGALRM: a case blocked on something; on a
loaded machine a niced worker can wait minutes); a worker that dies is replaced and its case
counted. A 600 kB mutation (600,000 minus signs) takes ~15 s of linear
work, so the timeout grows by 50 us per byte of input. Distinct failures (exception type + innermost fusec frame) are saved
to --out as SEED.ir with SEED.txt (the traceback), and a progress line is
printed every 10 s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fusec.api import compile_graphs  # noqa: E402
from fusec.diagnostics import CompileError  # noqa: E402
from fusec.frontend.parser import _parser  # noqa: E402
from fusec.ir.registry import REQUIRED, all_primitives  # noqa: E402

CORPUS = sorted(
    p.read_text(encoding="utf-8", errors="replace")
    for pattern in ("tests/bad/*.ir", "tests/golden/*.ir", "examples/*.ir")
    for p in ROOT.glob(pattern)
)

INTS = [
    0,
    1,
    -1,
    2,
    3,
    7,
    255,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    2**63,
    10**19,
]
FLOATS = ["0.5", "-0.0", "1e308", "1e-320", "2.5E+4", ".5", "1e999", "inf", "-inf", "nan", "3.0"]
DTYPES = ["f32", "f32", "f32", "f16", "f64", "i32", "i64", "bool"]
SHAPES = [
    "",
    "[]",
    "[N]",
    "[4]",
    "[B, N]",
    "[1, N]",
    "[N, 4]",
    "[2, 3, 4]",
    "[0]",
    "[N, 1]",
    "[M, N]",
    "[4, N]",
]
INFIX = ["+", "-", "*", "/", "**", "<", "<=", ">", ">=", "==", "!="]
SNIPPETS = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "\n",
    ";",
    "**",
    "-",
    "*",
    "graph",
    "return",
    "x",
    "1e999",
    "99999999999999999999",
    "9" * 5000,
    "nan",
    "inf",
    "sum(",
    "tanh(",
    "\0",
    "\t",
    "#",
    "'",
    '"',
    "\r\n",
    "\u00e9",
    "\u202e",
    "\ufeff",
    "keepdim=",
    "axis=",
    "min=",
    "true",
    "false",
    "f16",
    "i32",
    ".",
    "e",
    "@",
    "x ** -1",
    "2 ** 70",
    "clamp(x, min=nan)",
    "cast(x, dtype=bool)",
    "where(",
    "\\",
    "$",
    "\x7f",
]


def _lit(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return str(rng.choice(INTS))
    return rng.choice(FLOATS + ["true", "false"])


def gen_program(rng: random.Random) -> str:
    ops = [p for p in all_primitives().values() if not p.internal]
    params = [f"p{i}" for i in range(rng.randint(1, 4))]
    sig = ", ".join(f"{p}: {rng.choice(DTYPES)}{rng.choice(SHAPES)}" for p in params)
    scope = list(params)

    def attr_value(default) -> str:
        r = rng.random()
        if r < 0.15:  # the wrong type, often
            return rng.choice(
                ['"false"', "nan", "inf", "true", "1.5", "-1", "f16", "'tanh'", "2147483648"]
            )
        if isinstance(default, bool):
            return rng.choice(["true", "false"])
        if isinstance(default, int):
            return str(rng.choice([-1, 0, 1, 2, -3, 5]))
        if isinstance(default, float):
            return _lit(rng)
        if isinstance(default, str):
            return f'"{rng.choice(["none", "tanh", default])}"'
        return rng.choice(DTYPES)  # cast's dtype

    def expr(depth: int) -> str:
        r = rng.random()
        if depth <= 0 or r < 0.3:
            return rng.choice(scope) if rng.random() < 0.8 else _lit(rng)
        if r < 0.55:
            return f"{expr(depth - 1)} {rng.choice(INFIX)} {expr(depth - 1)}"
        if r < 0.6:
            return f"-{expr(depth - 1)}"
        if r < 0.65:
            return f"({expr(depth - 1)})"
        prim = rng.choice(ops)
        n = len(prim.inputs) - (rng.random() < 0.5) * len(prim.optional_inputs)
        n += rng.choice([0] * 12 + [-1, 1])  # the wrong number of operands, sometimes
        args = [expr(depth - 1) for _ in range(max(0, n))]
        for name, default in prim.attrs.items():
            if default is REQUIRED or rng.random() < 0.4:
                args.append(f"{name}={attr_value(default)}")
        if rng.random() < 0.03:
            args.append(f"bogus={_lit(rng)}")
        return f"{prim.name}({', '.join(args)})"

    body = []
    for i in range(rng.randint(1, 6)):
        body.append(f"    v{i} = {expr(rng.randint(1, 4))}")
        scope.append(f"v{i}")
    outs = ", ".join(rng.choice(scope) for _ in range(rng.randint(1, 3)))
    return f"graph g({sig}) {{\n" + "\n".join(body) + f"\n    return {outs}\n}}\n"


def gen_mutation(rng: random.Random) -> str:
    text = rng.choice(CORPUS)
    for _ in range(rng.randint(1, 4)):
        n = len(text)
        i = rng.randrange(n + 1)
        j = min(n, i + rng.choice([1, 1, 2, 5, 20, 200]))
        op = rng.randrange(8)
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:i] + rng.choice(SNIPPETS) + text[i:]
        elif op == 2:  # a span repeated: long chains and deep nesting
            text = text[:i] + text[i:j] * rng.choice([2, 10, 300, 3000]) + text[j:]
        elif op == 3:  # a span moved elsewhere
            rest = text[:i] + text[j:]
            k = rng.randrange(len(rest) + 1)
            text = rest[:k] + text[i:j] + rest[k:]
        elif op == 4:
            other = rng.choice(CORPUS)
            text = text[:i] + other[rng.randrange(len(other) + 1) :]
        elif op == 5:
            text = text[:i] + _lit(rng) + text[j:]
        elif op == 6:
            text = text[:i] + chr(rng.randrange(0x110000 if rng.random() < 0.2 else 128)) + text[j:]
        else:
            text = (
                text[:i]
                + rng.choice(["tanh(", "(", "-", "x + "]) * rng.choice([10, 600, 2000])
                + text[i:]
            )
    return text.replace("\ud800", "?")  # lone surrogates cannot be UTF-8 text


class _Grammar:
    """Random derivations of the lark grammar, depth-bounded."""

    NAMES = [
        "x",
        "y",
        "k",
        "N",
        "B",
        "g",
        "f",
        "sum",
        "relu",
        "clamp",
        "cast",
        "graph",
        "f32",
        "alpha",
        "axis",
    ]
    TERMINALS = {
        "NAME": lambda rng: rng.choice(_Grammar.NAMES),
        "INT": lambda rng: str(rng.choice(INTS[:10] + [2**63])).lstrip("-"),
        "FLOAT": lambda rng: rng.choice(["0.5", "1e-3", "2.5E+4", ".5", "1e999", "3."]),
        "STRING": lambda rng: rng.choice(['"none"', "'tanh'", '""', '"false"']),
        "DTYPE": lambda rng: rng.choice(["f16", "f32", "f64", "i32", "i64", "bool"]),
        "COMP_OP": lambda rng: rng.choice(["<", "<=", ">", ">=", "==", "!="]),
        "MUL_OP": lambda rng: rng.choice(["*", "/"]),
        "_NL": lambda rng: "\n",
        "COMMENT": lambda rng: "# c\n",
    }

    def __init__(self):
        p = _parser()
        self.rules: dict[str, list[list[str]]] = {}
        for r in p.rules:
            self.rules.setdefault(r.origin.name, []).append([s.name for s in r.expansion])
        self.literal = {
            t.name: t.pattern.value for t in p.terminals if type(t.pattern).__name__ == "PatternStr"
        }
        self.cost = {}  # nonterminal -> fewest expansions to a terminal string
        for _ in range(20):
            for name, exps in self.rules.items():
                c = [
                    1
                    + max(
                        (self.cost.get(s, 0 if s not in self.rules else 99) for s in e), default=0
                    )
                    for e in exps
                ]
                self.cost[name] = min(c)

    def generate(self, rng: random.Random, depth: int) -> str:
        out: list[str] = []
        work = [("start", depth)]
        while work:
            sym, d = work.pop()
            if sym in self.rules:
                exps = self.rules[sym]
                if d <= 0:
                    exps = [
                        min(exps, key=lambda e: max((self.cost.get(s, 0) for s in e), default=0))
                    ]
                work.extend((s, d - 1) for s in reversed(rng.choice(exps)))
            elif sym in self.TERMINALS:
                out.append(self.TERMINALS[sym](rng))
            else:
                out.append(self.literal.get(sym, sym))
        return " ".join(out)


_GRAMMAR: _Grammar | None = None


def make_case(seed: int) -> str:
    global _GRAMMAR
    rng = random.Random(seed)
    r = rng.random()
    if r < 0.4:
        return gen_program(rng)
    if r < 0.75:
        return gen_mutation(rng)
    _GRAMMAR = _GRAMMAR or _Grammar()
    return _GRAMMAR.generate(rng, rng.randint(3, 14))


def check(text: str) -> str:
    """'ok' or 'error' (a CompileError with rendered diagnostics); anything else raises."""
    try:
        compile_graphs(text, grad=True)
    except CompileError as e:
        assert e.diagnostics, "a CompileError without diagnostics"
        assert str(e), "a CompileError that renders to nothing"
        return "error"
    return "ok"


def failure_key(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/fusec/" in f.filename] or frames
    top = ours[-1] if ours else None
    where = f"{Path(top.filename).name}:{top.lineno}" if top else "?"
    return f"{type(exc).__name__}@{where}"


class CaseTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise CaseTimeout("cpu" if signum == signal.SIGPROF else "wall")


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_PROF, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)


def worker(wid, start, stride, limit_s, mem_bytes, deadline, counts, current, failures):
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    signal.signal(signal.SIGALRM, _alarm)  # wall clock: a case blocked on something
    signal.signal(signal.SIGPROF, _alarm)  # CPU time: a niced worker may wait, not hang
    sys.setrecursionlimit(10_000)  # a recursion the front end must not need
    seed, ok, err, local = start, 0, 0, 0
    while time.time() < deadline.value:
        current[wid] = seed
        text = None
        try:
            text = make_case(seed)
            # linear work on a big input is not a hang: 50 us a byte on top
            limit = limit_s + len(text) / 20_000
            signal.setitimer(signal.ITIMER_PROF, limit)
            signal.setitimer(signal.ITIMER_REAL, max(600.0, 10 * limit))
            outcome = check(text)
            _disarm()
            ok += outcome == "ok"
            err += outcome == "error"
        except CaseTimeout as e:
            _disarm()
            within = limit if e.args[0] == "cpu" else max(600.0, 10 * limit)
            failures.put(
                (
                    f"hang ({e.args[0]} time)",
                    seed,
                    text,
                    f"no result within {within:.0f} s of {e.args[0]} time",
                )
            )
        except BaseException as e:  # noqa: BLE001  (everything is a finding here)
            _disarm()
            failures.put((failure_key(e), seed, text, traceback.format_exc()))
        local += 1
        if local % 50 == 0:
            with counts.get_lock():
                counts[0] += 50
            local = 0
        seed += stride
    with counts.get_lock():
        counts[0] += local
        counts[1] += ok
        counts[2] += err


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--cases", type=int, default=0, help="stop after about this many inputs")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument(
        "--seed", type=int, default=0, help="first seed; worker w takes seed+w, +workers, ..."
    )
    ap.add_argument(
        "--timeout", type=float, default=10.0, help="CPU seconds per input, plus 50 us a byte"
    )
    ap.add_argument("--memory", type=int, default=2048, help="MiB of address space per worker")
    ap.add_argument("--out", default="fuzz-failures", help="folder for the distinct failures")
    ap.add_argument("--replay", type=int, help="print the input of this seed and check it here")
    args = ap.parse_args(argv)

    if args.replay is not None:
        text = make_case(args.replay)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        print(f"# {check(text)}", file=sys.stderr)
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")
    counts = ctx.Array("q", 3)  # cases, ok, CompileError
    current = ctx.Array("q", args.workers)
    failures = ctx.Queue()
    start = time.time()
    deadline = ctx.Value("d", start + args.minutes * 60)
    procs = {}

    def spawn(w, first):
        p = ctx.Process(
            target=worker,
            args=(
                w,
                first,
                args.workers,
                args.timeout,
                args.memory * 2**20,
                deadline,
                counts,
                current,
                failures,
            ),
            daemon=True,
        )
        p.start()
        procs[w] = p

    for w in range(args.workers):
        spawn(w, args.seed + w)
    seen: dict[str, int] = {}
    total_failures = 0
    last = 0.0

    def record(key, seed, text, tb):
        nonlocal total_failures
        total_failures += 1
        if key in seen:
            return
        seen[key] = seed
        (out / f"{seed}.ir").write_text(
            text if text is not None else make_case(seed), encoding="utf-8", errors="replace"
        )
        (out / f"{seed}.txt").write_text(f"{key}\nseed {seed}\n\n{tb}", encoding="utf-8")
        print(f"NEW FAILURE {key} (seed {seed}) -> {out / f'{seed}.ir'}", flush=True)

    while any(p.is_alive() for p in procs.values()) or not failures.empty():
        while not failures.empty():
            record(*failures.get())
        for w, p in list(procs.items()):
            if not p.is_alive() and p.exitcode not in (0, None):
                seed = current[w]  # it died on this case: a crash, or the memory limit
                record(f"worker died (exit {p.exitcode})", seed, None, "the worker process died")
                with counts.get_lock():
                    counts[0] += 1
                if time.time() < deadline.value:
                    spawn(w, seed + args.workers)
                else:
                    procs.pop(w)
        if args.cases and counts[0] >= args.cases:
            deadline.value = 0.0
        now = time.time()
        if now - last >= 10:
            last = now
            n = counts[0]
            print(
                f"[{now - start:7.0f} s] {n} inputs, {n / max(now - start, 1e-9):.0f}/s,"
                f" {total_failures} failures ({len(seen)} distinct)",
                flush=True,
            )
        time.sleep(0.2)
    elapsed = time.time() - start
    n = counts[0]
    print(
        f"done: {n} inputs in {elapsed:.0f} s ({n / elapsed:.0f}/s): {counts[1]} compiled,"
        f" {counts[2]} CompileError, {total_failures} failures ({len(seen)} distinct) in {out}"
    )
    return 1 if seen else 0


if __name__ == "__main__":
    sys.exit(main())
