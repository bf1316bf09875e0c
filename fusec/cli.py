"""The `fusec` command line. Exit status: 0 success, 1 bad input, 2 usage."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .diagnostics import CompileError, FusecError

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A mistake in the user's input, reported as `fusec: error: ...`."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fusec", description="JIT fusion compiler: IR -> fused OpenCL kernels.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="compile every graph of a file (fills the kernel cache)")
    c.add_argument("file")
    c.add_argument("-o", "--outdir", help="write <graph>.cl and <graph>.json (launch plan) here")
    c.add_argument("--grad", action="store_true", help="also build backward kernels")
    c.add_argument("--emit", choices=["source", "plan", "graph", "all"], help="print this to stdout")

    k = sub.add_parser("check", help="parse and type-check only")
    k.add_argument("file")

    r = sub.add_parser("run", help="run a graph on .npy inputs")
    r.add_argument("file")
    r.add_argument("--graph", help="graph name (needed when the file has several)")
    r.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy|NUMBER")
    r.add_argument("--output", "-o", help="write outputs to this .npz (out0, out1, ...)")

    sub.add_parser("devices", help="list OpenCL devices")

    w = sub.add_parser("warmup", help="compile every .ir file under PATHs into the kernel cache")
    w.add_argument("paths", nargs="+", metavar="PATH")
    w.add_argument("--grad", action="store_true", help="also build backward kernels")
    w.add_argument("--jobs", "-j", type=int, default=1, help="builds at once (default 1)")
    w.add_argument("--check", action="store_true",
                   help="build nothing; exit 1 if any kernel would need building (a CI gate)")

    cache = sub.add_parser("cache", help="inspect or trim the kernel cache")
    cache.add_argument("action", choices=["stats", "ls", "clear", "prune"])
    cache.add_argument("--max-size", help="for prune: target size, e.g. 500M")
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "cache" and args.action == "prune":
        from kernels_cache import parse_size

        if not args.max_size:
            parser.error("cache prune needs --max-size SIZE (e.g. 500M)")
        try:
            parse_size(args.max_size)
        except ValueError as e:
            parser.error(f"--max-size: {e}")
    try:
        return COMMANDS[args.command](args)
    except CompileError as e:  # already FILE:LINE:COL: error: ..., line and caret
        print(e.text, file=sys.stderr)
        return EXIT_INPUT
    except (FusecError, UserError) as e:
        print(f"fusec: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:  # the reader (head, less) left early: nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INPUT
    except OSError as e:  # writing outputs: a full disk, a read-only folder
        where = f"{e.filename}: " if e.filename else ""
        print(f"fusec: error: {where}{(e.strerror or str(e)).lower()}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130


def _front(path: str):
    from .api import compile_graphs

    if not path:
        raise UserError("the file name is empty")
    return compile_graphs(Path(path))


def cmd_check(args) -> int:
    front = _front(args.file)
    print(f"{args.file}: ok ({len(front.graphs)} graph{'s' if len(front.graphs) != 1 else ''})")
    return EXIT_OK


def _program(path: str, grad: bool = False):
    import fusec

    _front(path)  # file errors before touching a device
    return fusec.compile(Path(path), grad=grad)


def cmd_compile(args) -> int:
    from .ir.graph import dump

    prog = _program(args.file, args.grad)
    outdir = Path(args.outdir) if args.outdir else None
    if outdir:
        outdir.mkdir(parents=True, exist_ok=True)
    graphs = prog.every_graph()
    for g in graphs:
        g.build()
        if args.emit in ("graph", "all"):
            print(dump(g.graph))
        if args.emit in ("source", "all"):
            print(g.source)
        if args.emit in ("plan", "all"):
            print(json.dumps(g.plan, indent=2))
        if outdir:
            (outdir / f"{g.name}.cl").write_text(g.source, encoding="utf-8")
            (outdir / f"{g.name}.json").write_text(json.dumps(g.plan, indent=2) + "\n", encoding="utf-8")
        if not args.emit:
            ops = sum(len(k["ops"]) for k in g.plan["kernels"])
            print(f"{g.name}: {len(g.kernels)} kernel(s), {ops} op(s) fused", file=sys.stderr)
    if outdir:
        print(f"wrote {len(graphs) * 2} files to {outdir}", file=sys.stderr)
    return EXIT_OK


def _load_input(spec: str):
    name, sep, value = spec.partition("=")
    if not sep or not name:
        raise UserError(f"--input expects NAME=FILE.npy, NAME=NUMBER or NAME=true|false, got {spec!r}")
    path = Path(value)
    if path.suffix == ".npy" or path.exists():
        from .frontend.source import InputFileError, load_npy

        try:  # a regular file whose header matches its size, no pickles
            return name, load_npy(path)
        except InputFileError as e:
            raise UserError(f"cannot read input {name!r} from {value!r}: {e}") from None
    if value in ("true", "false"):
        return name, value == "true"
    try:
        return name, (int(value) if value.lstrip("+-").isdigit() else float(value))
    except ValueError:
        raise UserError(f"input {name!r}: {value!r} is neither a .npy file, a number, true nor false") from None


def cmd_run(args) -> int:
    prog = _program(args.file)
    if args.graph is None:
        if len(prog.graphs) != 1:
            raise UserError(f"{args.file} has several graphs ({', '.join(prog.graphs)}): choose one with --graph")
        args.graph = prog.graphs[0]
    if args.graph not in prog.graphs:
        raise UserError(f"no graph {args.graph!r} in {args.file} (graphs: {', '.join(prog.graphs)})")
    inputs = dict(_load_input(s) for s in args.input)
    result = prog[args.graph](**inputs)
    outs = result if isinstance(result, tuple) else (result,)
    if args.output:
        np.savez(args.output, **{f"out{i}": o for i, o in enumerate(outs)})
        print(f"wrote {len(outs)} output(s) to {args.output}", file=sys.stderr)
    else:
        for i, o in enumerate(outs):
            print(f"out{i}: {o.dtype} {list(o.shape)}\n{np.array2string(o, threshold=20)}")
    return EXIT_OK


def cmd_devices(args) -> int:
    from .runtime import broken_reason, list_devices, select_device

    devices = list_devices()
    if not devices:
        raise UserError("no OpenCL device found (pip install 'fusec[cpu]' gives CPU ones)")
    chosen = select_device()
    for platform, dev in devices:
        mark = "*" if dev == chosen else " "
        print(f"{mark} {platform.name.strip()}: {dev.name.strip()} ({dev.version.strip()}, driver {dev.driver_version})")
        if (why := broken_reason(dev)) is not None:
            print(f"    unusable: {why}")
    return EXIT_OK


def cmd_cache(args) -> int:
    from kernels_cache import parse_size

    from .runtime.programs import _open_cache

    cache = _open_cache(None)
    if cache is None:
        raise UserError("the kernel cache is off (FUSEC_CACHE=0)")
    if args.action == "stats":
        for k, v in cache.stats().items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    elif args.action == "ls":
        for e in cache.entries():
            print(f"{e.key[:16]}  {e.size:>10}  {e.name or '?'}  {e.build_seconds * 1e3:.0f} ms build")
    elif args.action == "clear":
        print(f"removed {cache.clear()} entries")
    else:
        print(f"removed {cache.prune(parse_size(args.max_size))} entries")
    return EXIT_OK


def cmd_warmup(args) -> int:
    from .warmup import terminal_progress, warmup

    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    try:
        report = warmup(args.paths, jobs=args.jobs, check=args.check, grad=args.grad, progress=terminal_progress())
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    for label in report.missing:
        print(f"{label}: not in the cache", file=sys.stderr)
    for _, why in report.failed:
        print(why, file=sys.stderr)
    print(("check: " if args.check else "warmup: ") + report.summary(), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_INPUT


COMMANDS = {
    "warmup": cmd_warmup,
    "compile": cmd_compile,
    "check": cmd_check,
    "run": cmd_run,
    "devices": cmd_devices,
    "cache": cmd_cache,
}

if __name__ == "__main__":
    sys.exit(main())
