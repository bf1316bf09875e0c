#!/usr/bin/env python
"""Kernel build and load times: fusec's cold build, its disk cache, its in-process
memo, against pyopencl's caching and a raw binary load, all in one run (~1-2 min).

    python bench/cache.py                 # 6 graphs, 5 fresh processes per scenario
    python bench/cache.py --repeats 7     # more processes per scenario
    python bench/cache.py --json out.json # raw numbers as well
    python bench/cache.py --no-remote     # skip the Redis tier's section (bench/cache_remote.py)

Every scenario runs in fresh processes (`python bench/cache.py --child ...`), each
building the same 6 graphs in order, so a process's first graph (which pays for
PoCL's LLVM start-up, and for a cold build the build worker's start) is reported
apart from the other five. Each run uses its own temporary FUSEC_CACHE_DIR,
POCL_CACHE_DIR and XDG_CACHE_HOME (pyopencl's cache), removed at the end.

PoCL keeps its own kernel cache (keyed on the source), which turns a cold build
into a ~25 ms cache hit. Scenarios say which state it is in:
  pocl off   POCL_KERNEL_CACHE=0 (and a new POCL_CACHE_DIR, which PoCL still writes)
  pocl empty cache on, a new, empty POCL_CACHE_DIR for each process
  pocl warm  cache on, one directory primed before the rounds by processes doing
             the same builds and loads
Scenarios run in rounds (one process of each per round) so the machine's drift
spreads over all of them alike.

Stages (times per graph, ms):
  1 cold        fusec.compile(text)[g].build() with an empty fusec cache (each
                process gets a new FUSEC_CACHE_DIR): a build in the worker process
  2 warm        the same in a fresh process with the fusec cache filled; the
                number is Runtime.program (memo miss, key, cache get, binary
                load); build() as a whole and the split are in --json
  3 repeat      fusec.compile(text)[g].build() again in the same process (the
                memoised path), averaged over 200 calls, 7 samples per graph
  4 pyopencl    pyopencl.Program(ctx, src).build() in a fresh process, pyopencl's
                cache enabled and warm. On PoCL pyopencl skips its binary cache
                (characterize.has_src_build_cache) and builds from source, so this
                is PoCL's kernel cache at work; the run checks what pyopencl did
                (Program._build_duration_info) and that its cache dir stays empty.
  4b pyopencl-bin  pyopencl.cache.create_built_program_from_source_cached with
                a warm cache directory: the binary cache pyopencl would use on a
                device it does not skip.
  5 binary      pyopencl.Program(ctx, [dev], [binary]).build() on the binary
                fusec cached (saved after the kernels were created): the floor.
                The kernels' creation (clCreateKernel, which fusec's build() also
                does) is in --json.

Graphs (one per IR text, sources from fusec's code generator): light-1 (x*y),
light-8, heavy-4 (x*y then sigmoid/tanh/exp/sqrt), act (GELU + leaky ReLU, a
scalar, two outputs), head (a 2-D broadcast), heavy-32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS_MS = {"warm": 5.0, "repeat": 0.050}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- graphs ----------------------------------------------------------------------------

LIGHT = ("mul", "add", "relu", "clamp")
HEAVY = ("sigmoid", "tanh", "exp", "sqrt")


def chain(kind: str, k: int) -> str:
    ops = (
        [LIGHT[i % 4] for i in range(k)]
        if kind == "light"
        else ["mul"] + [HEAVY[i % 4] for i in range(k)]
    )
    lines, v = [], "x"
    for i, op in enumerate(ops):
        expr = {
            "mul": f"{v} * y",
            "add": f"{v} + y",
            "relu": f"relu({v})",
            "clamp": f"clamp({v}, min=-1.0, max=1.0)",
        }.get(op, f"{op}({v})")
        lines.append(f"    v{i} = {expr}")
        v = f"v{i}"
    body = "\n".join(lines)
    name = f"{kind}{k}"
    return f"graph {name}(x: f32[N], y: f32[N]) {{\n{body}\n    return {v}\n}}\n"


ACT = """graph act(x: f32[N], s: f32) {
    y = 0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x ** 3)))
    z = leaky_relu(y * s, alpha=0.01)
    return z, y
}
"""

HEAD = """graph head(x: f32[B, D], w: f32[D], b: f32[D]) {
    return sigmoid(tanh(x * w + b))
}
"""


def graphs() -> list[tuple[str, str]]:
    """(graph name, IR text), small to large."""
    out = [(f"{k}{n}", chain(k, n)) for k, n in (("light", 1), ("light", 8), ("heavy", 4))]
    out += [("act", ACT), ("head", HEAD), ("heavy32", chain("heavy", 32))]
    return out


# -- children (fresh processes) ----------------------------------------------------------


def _ms(seconds: float) -> float:
    return seconds * 1e3


def child_fusec(mode: str) -> dict:
    """mode 'cold' or 'warm': build every graph through fusec, timing the parts."""
    t0 = time.perf_counter()
    import fusec
    import fusec.runtime as rt
    from kernels_cache import KernelCache

    import_ms = _ms(time.perf_counter() - t0)

    spans: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            s = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spans[name] = spans.get(name, 0.0) + time.perf_counter() - s

        return wrapper

    rt.Runtime.program = timed("program", rt.Runtime.program)
    rt.Runtime._load = timed("load", rt.Runtime._load)
    rt.Runtime._build = timed("build", rt.Runtime._build)
    KernelCache.get = timed("get", KernelCache.get)
    worker_seconds = []
    orig_worker = rt.Runtime._build_in_worker

    def in_worker(*a, **k):
        s = time.perf_counter()
        r = orig_worker(*a, **k)
        # (program, binary, log, seconds as the worker measured them)
        worker_seconds.append(
            (time.perf_counter() - s, r[3] if isinstance(r, tuple) and len(r) > 3 else 0.0)
        )
        return r

    rt.Runtime._build_in_worker = in_worker

    rows = []
    for name, text in graphs():
        spans.clear()
        worker_seconds.clear()
        s = time.perf_counter()
        prog = fusec.compile(text)
        s1 = time.perf_counter()
        g = prog[name]
        s2 = time.perf_counter()
        g.build()
        s3 = time.perf_counter()
        row = {
            "graph": name,
            "compile_ms": _ms(s1 - s),  # front end + code generation (+ runtime for the first)
            "build_ms": _ms(s3 - s2),
            "program_ms": _ms(spans.get("program", 0.0)),
            "load_ms": _ms(spans.get("load", 0.0)),
            "get_ms": _ms(spans.get("get", 0.0)),
            "cold_build_ms": _ms(spans.get("build", 0.0)),
            "kernels": len(g.kernels),
            "source_bytes": len(g.source),
        }
        # key + memo = program - load (- build on a miss); binary load = load - get
        row["key_ms"] = row["program_ms"] - row["load_ms"] - row["cold_build_ms"]
        row["binary_load_ms"] = row["load_ms"] - row["get_ms"]
        if worker_seconds:
            row["worker_roundtrip_ms"] = _ms(worker_seconds[0][0])
            row["worker_compile_ms"] = _ms(worker_seconds[0][1])  # as the worker measured it
        rows.append(row)
    built = sum(1 for r in rows if r["cold_build_ms"] > 0)
    out = {"import_ms": import_ms, "rows": rows, "hits": len(rows) - built, "misses": built}

    if mode == "warm":
        # Stage 3: the memoised path, after every graph is built.
        reps, samples = 200, 7
        rep = {}
        for name, text in graphs():
            fusec.compile(text)[name].build()
            per = []
            for _ in range(samples):
                s = time.perf_counter()
                for _ in range(reps):
                    fusec.compile(text)[name].build()
                per.append(_ms(time.perf_counter() - s) / reps)
            rep[name] = per
        out["repeat_ms"] = rep
    return out


def _cl_device(platform: str, device: str):
    """The device fusec built for (named in its cache entries' keys)."""
    import pyopencl as cl

    devices = [(p, d) for p in cl.get_platforms() for d in p.get_devices()]
    return next(d for p, d in devices if p.name == platform and d.name == device)


def _cached_entries(fusec_cache: str) -> dict[str, tuple[str, str, bytes]]:
    """graph name -> (source, build options, binary) from fusec's cache (no fusec import)."""
    from kernels_cache import KernelCache

    cache = KernelCache(fusec_cache)
    out = {}
    for info in cache.entries():
        entry = cache.get(info.key)
        comp = info.meta["components"]
        out[info.meta["name"]] = (comp["source"], comp["options"], entry.binary)
    return out


def _built_for(fusec_cache: str) -> tuple[str, str]:
    """(platform name, device name) of the programs in fusec's cache."""
    from kernels_cache import KernelCache

    cache = KernelCache(fusec_cache)
    comp = next(iter(cache.entries())).meta["components"]
    return comp["platform"], comp["device"]


def child_pyopencl(mode: str, fusec_cache: str, pyopencl_dir: str) -> dict:
    """mode 'src' (Program(ctx, src).build()), 'bincache' (pyopencl's binary cache,
    forced) or 'binary' (Program(ctx, [dev], [binary]).build())."""
    t0 = time.perf_counter()
    import pyopencl as cl
    import pyopencl.cache

    import_ms = _ms(time.perf_counter() - t0)
    entries = _cached_entries(fusec_cache)
    dev = _cl_device(*_built_for(fusec_cache))
    ctx = cl.Context([dev])
    rows = []
    for name, _ in graphs():
        src, options, binary = entries[name]  # fusec's build options, as fusec used them
        s = time.perf_counter()
        if mode == "src":
            prg = cl.Program(ctx, src).build(options)
            how = prg._build_duration_info[0]
        elif mode == "bincache":
            prg, was_cached = pyopencl.cache.create_built_program_from_source_cached(
                ctx, src, options.encode(), [dev], cache_dir=pyopencl_dir
            )
            how = "binary cache hit" if was_cached else "binary cache miss"
        else:
            prg = cl.Program(ctx, [dev], [binary]).build(options)
            how = "from binary"
        s1 = time.perf_counter()
        prg.all_kernels()
        s2 = time.perf_counter()
        row = {"graph": name, "build_ms": _ms(s1 - s), "kernels_ms": _ms(s2 - s1), "how": how}
        if mode == "src":
            # What fusec's build worker does next: PoCL generates the work-group
            # code when asked for the binary (else at the first launch).
            prg.get_info(cl.program_info.BINARIES)
            row["binary_ms"] = _ms(time.perf_counter() - s2)
        rows.append(row)
    return {"import_ms": import_ms, "rows": rows}


def child_main(args) -> int:
    if args.child in ("cold", "warm"):
        out = child_fusec(args.child)
    else:
        out = child_pyopencl(args.child, args.fusec_cache, args.pyopencl_dir)
    json.dump(out, sys.stdout)
    return 0


# -- the driver ----------------------------------------------------------------------


class Dirs:
    def __init__(self, root: str):
        self.root = root
        self.pocl_warm = os.path.join(root, "pocl-warm")  # PoCL's kernel cache, primed once
        self.xdg = os.path.join(root, "xdg")  # pyopencl's default cache goes under here
        self.fusec_warm = os.path.join(root, "fusec-warm")
        self.pyopencl_bin = os.path.join(root, "pyopencl-bin")
        self.count = 0
        for d in (self.pocl_warm, self.xdg):
            os.makedirs(d)

    def fresh(self, what: str) -> str:
        self.count += 1
        return os.path.join(self.root, f"{what}-{self.count}")


def run_child(dirs: Dirs, child: str, pocl: str, fusec_cache: str | None = None) -> dict:
    """pocl: 'off' (POCL_KERNEL_CACHE=0), 'empty' (a new, empty cache directory) or
    'warm' (the primed one).
    fusec_cache: None for a new, empty one."""
    env = dict(os.environ)
    for name in ("FUSEC_CACHE", "PYOPENCL_NO_CACHE", "FUSEC_BUILD_ISOLATION"):
        env.pop(name, None)
    env.update(
        FUSEC_CACHE_DIR=fusec_cache or dirs.fresh("fusec"),
        # 'off' gets a new directory too: with POCL_KERNEL_CACHE=0 PoCL still
        # writes under POCL_CACHE_DIR, and a binary load is ~1.3 ms faster there
        # if the same binary was loaded in that directory before. Sharing the
        # primed directory made 'off' look like 'warm' (and, oddly, a fusec load
        # with the cache off left the next cache-on process as slow as 'empty').
        POCL_CACHE_DIR=dirs.pocl_warm if pocl == "warm" else dirs.fresh("pocl"),
        XDG_CACHE_HOME=dirs.xdg,
        POCL_KERNEL_CACHE="0" if pocl == "off" else "1",
    )
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        child,
        "--fusec-cache",
        dirs.fusec_warm,
        "--pyopencl-dir",
        dirs.pyopencl_bin,
    ]
    s = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - s
    if proc.returncode != 0:
        raise SystemExit(f"child {child} (pocl {pocl}) failed:\n{proc.stderr}")
    out = json.loads(proc.stdout)
    out["process_wall_ms"] = _ms(wall)
    return out


def tree_files(path: str, suffix: str = "") -> int:
    return sum(1 for _, _, files in os.walk(path) for f in files if f.endswith(suffix))


def fusec_tree() -> str:
    """Which fusec the children import: its directory, git commit, uncommitted changes."""
    probe = subprocess.run(
        [sys.executable, "-c", "import fusec, os; print(os.path.dirname(fusec.__file__))"],
        capture_output=True,
        text=True,
    )
    where = os.path.dirname(probe.stdout.strip()) or "?"

    def git(*a):
        r = subprocess.run(["git", "-C", where, *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return f"from {where} (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "fusec", "kernels_cache")
    return f"from {where} at {head}" + (" + uncommitted changes in fusec/" if dirty else "")


def stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def fmt(ms: float) -> str:
    if ms < 0.1:
        return f"{ms * 1e3:.1f} us"
    if ms < 10:
        return f"{ms:.2f}"
    return f"{ms:.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--repeats", type=int, default=5, help="fresh processes per scenario (default 5)"
    )
    ap.add_argument("--json", metavar="PATH", help="write the raw numbers here")
    ap.add_argument(
        "--no-remote", action="store_true", help="skip the Redis tier (bench/cache_remote.py)"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--fusec-cache", help=argparse.SUPPRESS)
    ap.add_argument("--pyopencl-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not args.child:
        # the drivers a fusec user sees (Intel's CPU runtime from PyPI), for the
        # children that time pyopencl without importing fusec too
        from fusec.runtime.drivers import register_pip_drivers

        register_pip_drivers()
    if args.child:
        return child_main(args)

    start = time.time()
    load_start = os.getloadavg()
    log(f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    root = tempfile.mkdtemp(prefix="fusec-bench-cache-")
    dirs = Dirs(root)
    R = args.repeats
    results: dict[str, list[dict]] = {}
    checks: dict[str, object] = {}

    # (label, child, PoCL cache state, fusec cache: None = a new empty one)
    W = dirs.fusec_warm
    scenarios = [
        ("cold/pocl-off", "cold", "off", None),  # the real cold build
        ("cold/pocl-empty", "cold", "empty", None),  # ... plus PoCL writing its cache
        ("cold/pocl-warm", "cold", "warm", None),  # what a naive benchmark measures
        ("warm/pocl-off", "warm", "off", W),
        ("warm/pocl-empty", "warm", "empty", W),  # e.g. CI keeping only fusec's cache
        ("warm/pocl-warm", "warm", "warm", W),
        ("pyopencl/pocl-warm", "src", "warm", W),
        ("pyopencl/pocl-off", "src", "off", W),
        ("pyopencl-bin/pocl-off", "bincache", "off", W),
        ("binary/pocl-off", "binary", "off", W),
        ("binary/pocl-empty", "binary", "empty", W),
        ("binary/pocl-warm", "binary", "warm", W),
    ]
    try:
        # Fill fusec's cache (PoCL off, so its binaries owe nothing to PoCL's cache),
        # then prime PoCL's warm cache with everything the 'warm' scenarios do, and
        # pyopencl's binary cache.
        log("priming the caches")
        run_child(dirs, "cold", "off", W)
        checks["fusec_cache_entries"] = tree_files(W, ".kc")
        for child in ("cold", "warm", "src", "binary"):
            run_child(dirs, child, "warm", None if child == "cold" else W)
        run_child(dirs, "bincache", "off", W)
        checks["pyopencl_bincache_files"] = tree_files(dirs.pyopencl_bin)
        # Rounds: one process of every scenario per round, so that the machine's
        # drift (other work runs here) spreads over all of them alike.
        for i in range(R):
            log(f"round {i + 1}/{R}: {len(scenarios)} processes")
            for label, child, pocl, fc in scenarios:
                results.setdefault(label, []).append(run_child(dirs, child, pocl, fc))
        checks["pyopencl_cache_files"] = sorted(
            os.path.relpath(os.path.join(d, f), dirs.xdg)
            for d, _, fs in os.walk(dirs.xdg)
            for f in fs
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    load_end = os.getloadavg()
    total = time.time() - start
    log(f"load average at end {load_end[0]:.2f}")

    # -- the table -----------------------------------------------------------------
    def split(label, field):
        first, rest = [], []
        for run in results[label]:
            rows = run["rows"]
            first.append(rows[0][field])
            rest += [r[field] for r in rows[1:]]
        return first, rest

    lines = []
    add = lines.append
    hows = sorted({r["how"] for run in results["pyopencl/pocl-warm"] for r in run["rows"]})
    bin_hows = sorted({r["how"] for run in results["pyopencl-bin/pocl-off"] for r in run["rows"]})
    cold_hits = [(run["hits"], run["misses"]) for run in results["cold/pocl-off"]]
    warm_hits = [(run["hits"], run["misses"]) for run in results["warm/pocl-off"]]

    import pyopencl as cl  # for the report only, after every child has run

    from fusec.runtime import select_device

    dev = select_device()
    add(
        f"bench/cache.py  {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  "
        f"pyopencl {'.'.join(map(str, cl.VERSION))}"
    )
    add(f"fusec {fusec_tree()}")
    add(f"device: {dev.platform.version.strip()} / {dev.name.strip()}, {os.cpu_count()} cores")
    add(
        f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
        f"at end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}; total run {total:.0f} s"
    )
    gs = graphs()
    add(
        f"graphs: {', '.join(n for n, _ in gs)}; {R} fresh processes per scenario, each building all "
        f"{len(gs)} in this order"
    )
    add(
        "'first' = the first graph of each process (median of its processes); 'rest' = the other "
        f"{len(gs) - 1} graphs of every process"
    )
    add("")
    head = f"{'stage':<42} {'first':>8}   {'median':>8} {'min':>8} {'max':>8}   {'target':>8}  met"
    add(head)
    add("-" * len(head))

    def row(title, first, rest, target=None, rest_only=False):
        f = fmt(statistics.median(first)) if first else "-"
        s = stats(rest)
        if target is None:
            t, met = "", ""
        else:
            t = f"<= {fmt(target)}"
            met = "yes" if s["median"] <= target else "NO"
            if s["median"] <= target and (s["max"] > target or (first and max(first) > target)):
                met += " (not every one)"
        add(
            f"{title:<42} {f:>8}   {fmt(s['median']):>8} {fmt(s['min']):>8} {fmt(s['max']):>8}   {t:>8}  {met}"
        )

    add("1 cold build: build() (ms)")
    for p in ("off", "empty", "warm"):
        row(f"  pocl cache {p}", *split(f"cold/pocl-{p}", "build_ms"))
    f, r = split("cold/pocl-off", "worker_compile_ms")
    row("    of which the worker's build, pocl off", f, r)
    add("2 warm load, fresh process: Runtime.program (ms)")
    for p in ("off", "empty", "warm"):
        row(f"  pocl cache {p}", *split(f"warm/pocl-{p}", "program_ms"), target=TARGETS_MS["warm"])
    f, r = split("warm/pocl-off", "build_ms")
    row("    whole build(), pocl off", f, r)
    for part, field in (
        ("key", "key_ms"),
        ("cache get", "get_ms"),
        ("binary load", "binary_load_ms"),
    ):
        row(f"    {part}, pocl off", *split("warm/pocl-off", field))
    add("3 repeat compile+[g]+build(), same process")
    rep = [x for run in results["warm/pocl-off"] for per in run["repeat_ms"].values() for x in per]
    row("  per call (7 samples x 200 calls per graph)", [], rep, target=TARGETS_MS["repeat"])
    add("4 pyopencl.Program(ctx, src).build() (ms)")
    row("  pocl cache warm (what pyopencl users get)", *split("pyopencl/pocl-warm", "build_ms"))
    row("  pocl cache off", *split("pyopencl/pocl-off", "build_ms"))
    row("    + asking for the binary (code generation)", *split("pyopencl/pocl-off", "binary_ms"))
    row("  pyopencl binary cache, forced, pocl off", *split("pyopencl-bin/pocl-off", "build_ms"))
    add("5 Program(ctx, [dev], [binary]).build() (ms)")
    for p in ("off", "empty", "warm"):
        row(f"  pocl cache {p}", *split(f"binary/pocl-{p}", "build_ms"))
    row("    + creating the kernels, pocl off", *split("binary/pocl-off", "kernels_ms"))
    add("")
    add("context (ms, median over processes)")
    proc = {k: statistics.median(r["process_wall_ms"] for r in v) for k, v in results.items()}
    imp = {k: statistics.median(r["import_ms"] for r in v) for k, v in results.items()}
    add(
        f"  process wall: fusec cold {proc['cold/pocl-off']:.0f}, fusec warm {proc['warm/pocl-off']:.0f} "
        f"(includes stage 3's {7 * 200 * len(gs)} calls), pyopencl src {proc['pyopencl/pocl-warm']:.0f}, "
        f"binary {proc['binary/pocl-off']:.0f}"
    )
    add(f"  import fusec {imp['warm/pocl-off']:.0f}, import pyopencl {imp['binary/pocl-off']:.0f}")
    f, r = split("warm/pocl-off", "compile_ms")
    add(
        f"  fusec.compile(text) in a fresh process (front end + codegen): first {statistics.median(f):.0f} "
        f"(includes the Runtime: device, context, queue), rest median {statistics.median(r):.1f}"
    )
    add("checks")
    add(f"  pyopencl's build on PoCL reported: {hows}")
    add(
        f"  files under XDG_CACHE_HOME (pyopencl's cache) at the end: {checks['pyopencl_cache_files'] or 'none'}"
    )
    add(
        f"  forced pyopencl binary cache: {bin_hows}; {checks['pyopencl_bincache_files']} files in it"
    )
    add(
        f"  fusec cache (hits, misses) per process: cold {sorted(set(map(tuple, cold_hits)))}, "
        f"warm {sorted(set(map(tuple, warm_hits)))}; {checks['fusec_cache_entries']} entries (.kc) in the filled cache"
    )
    if not args.no_remote:
        log("the remote tier")
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import cache_remote

        add("")
        lines += cache_remote.main(repeats=R)
    text = "\n".join(lines)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "results": results,
                    "checks": checks,
                    "load_start": load_start,
                    "load_end": load_end,
                    "total_s": total,
                    "graphs": dict(gs),
                },
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
