"""The `fusec` command line. Exit status: 0 success, 1 bad input, 2 usage."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .diagnostics import CompileError, FusecError
from .version import __version__

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2
EMIT = ["source", "plan", "graph", "all", "dot", "svg"]


class UserError(Exception):
    """A mistake in the user's input, reported as `fusec: error: ...`."""


def _jobs(text: str) -> int:
    """--jobs: a positive whole number, else a usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _input_spec(text: str) -> str:
    """--input: the NAME=VALUE form is checked here (exit 2); the value when it is read."""
    name, sep, _ = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.npy, NAME=NUMBER or NAME=true|false, got {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fusec", description="JIT fusion compiler: IR -> fused OpenCL kernels.")
    p.add_argument("--version", action="version", version=f"fusec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", metavar="NAME",
                        help="OpenCL device: a substring of its platform or device name (as FUSEC_DEVICE)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    c = sub.add_parser("compile", parents=[device], help="compile every graph of a file (fills the kernel cache)")
    c.add_argument("file")
    c.add_argument("-o", "--outdir", help="write <graph>.cl and <graph>.json (launch plan) here")
    c.add_argument("--grad", action="store_true", help="also build backward kernels")
    c.add_argument("--graph", action="append", metavar="NAME", help="only this graph (repeatable)")
    c.add_argument("--emit", choices=EMIT,
                   help="print this to stdout (dot/svg: the fusion as a picture; builds nothing)")

    k = sub.add_parser("check", parents=[as_json], help="parse and type-check only")
    k.add_argument("file")

    r = sub.add_parser("run", parents=[device], help="run a graph on .npy inputs")
    r.add_argument("file")
    r.add_argument("--graph", help="graph name (needed when the file has several)")
    r.add_argument("--input", "-i", action="append", default=[], type=_input_spec,
                   metavar="NAME=FILE.npy|NUMBER")
    r.add_argument("--output", "-o", help="write outputs to this .npz (out0, out1, ...)")

    i = sub.add_parser("import", help="translate an ONNX model into an IR file (initializers: a .npz beside it)")
    i.add_argument("file", metavar="MODEL.onnx")
    i.add_argument("-o", "--output", metavar="MODEL.ir",
                   help="write the IR here and the initializers to MODEL.npz (default: the IR on stdout)")
    i.add_argument("--graph", metavar="NAME", help="name of the IR graph (default: the ONNX graph's name)")

    d = sub.add_parser("devices", parents=[as_json], help="list OpenCL devices and say which fusec uses")
    d.add_argument("--device", metavar="NAME", help="say which device this name would choose")

    w = sub.add_parser("warmup", parents=[device, as_json],
                       help="compile every .ir file under PATHs into the kernel cache")
    w.add_argument("paths", nargs="+", metavar="PATH")
    w.add_argument("--grad", action="store_true", help="also build backward kernels")
    w.add_argument("--jobs", "-j", type=_jobs, default=1, help="builds at once (default 1)")
    w.add_argument("--check", action="store_true",
                   help="build nothing; exit 1 if any kernel would need building (a CI gate)")

    cache = sub.add_parser("cache", parents=[as_json], help="inspect, trim, export or import the kernel cache")
    cache.add_argument("action", choices=["stats", "ls", "clear", "prune", "export", "import"])
    cache.add_argument("file", nargs="?", metavar="FILE", help="for export/import: the archive")
    cache.add_argument("--max-size", help="for prune: target size, e.g. 500M")
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "compile" and args.emit in ("dot", "svg") and args.outdir:
        parser.error(f"--emit {args.emit} prints a picture and builds nothing; -o writes built kernels: use one")
    if args.command == "cache" and args.max_size and args.action != "prune":
        parser.error(f"--max-size is for cache prune, not cache {args.action}")
    if args.command == "cache" and args.action == "prune":
        from kernels_cache import parse_size

        if not args.max_size:
            parser.error("cache prune needs --max-size SIZE (e.g. 500M)")
        try:
            parse_size(args.max_size)
        except ValueError as e:
            parser.error(f"--max-size: {e}")
    if args.command == "cache" and (args.action in ("export", "import")) != bool(args.file):
        parser.error("cache export and cache import take a FILE (and only they do)")
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


def _front(path: str, grad: bool = False):
    from .api import compile_graphs

    if not path:
        raise UserError("the file name is empty")
    return compile_graphs(Path(path), grad=grad)


def cmd_check(args) -> int:
    if not args.json:
        front = _front(args.file)
        print(f"{args.file}: ok ({len(front.graphs)} graph{'s' if len(front.graphs) != 1 else ''})")
        return EXIT_OK
    doc = {"file": args.file, "ok": True, "graphs": [], "diagnostics": []}
    try:
        doc["graphs"] = [g.graph["name"] for g in _front(args.file).graphs]
    except CompileError as e:
        doc["ok"] = False
        doc["diagnostics"] = [
            {"file": e.filename, "line": d.pos.line if d.pos else None, "col": d.pos.column if d.pos else None,
             "severity": d.severity, "message": d.message}
            for d in e.diagnostics
        ]
    except UserError as e:
        doc["ok"] = False
        doc["diagnostics"] = [{"file": args.file, "line": None, "col": None, "severity": "error", "message": str(e)}]
    _print_json(doc)
    return EXIT_OK if doc["ok"] else EXIT_INPUT


def _print_json(doc) -> None:
    print(json.dumps(doc, indent=2))


def _program(path: str, grad: bool = False, device=None):
    import fusec

    _front(path)  # file errors before touching a device
    return fusec.compile(Path(path), grad=grad, device=device)


def _select(every: list, wanted: list[str] | None, filename: str) -> list:
    """The graphs --graph names (each with its backward graphs, if built), in file order.

    `every` holds (name, owner, item): owner is the file's graph that a derived
    one (`mlp_bwd`) belongs to, and a file's graph's own name. A name may be a
    file's graph or a derived one.
    """
    if not wanted:
        return [item for _, _, item in every]
    known = [name for name, _, _ in every]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise UserError(f"no graph {unknown[0]!r} in {filename} (graphs: {', '.join(known)})")
    return [item for name, owner, item in every if name in wanted or owner in wanted]


def cmd_compile(args) -> int:
    if args.emit in ("dot", "svg"):
        return _emit_picture(args)
    from .ir.graph import dump

    prog = _program(args.file, args.grad, args.device)
    outdir = Path(args.outdir) if args.outdir else None
    every = [(d.name, g.name, d) for g in prog for d in (g, *g.derived.values())]
    graphs = _select(every, args.graph, args.file)
    if outdir:
        outdir.mkdir(parents=True, exist_ok=True)
    for g in graphs:
        g.build()
        if args.emit in ("graph", "all"):
            print(dump(g.graph))
        if args.emit in ("source", "all"):
            print(g.source)
        if args.emit == "all":
            print(json.dumps(g.plan, indent=2))
        if outdir:
            (outdir / f"{g.name}.cl").write_text(g.source, encoding="utf-8")
            (outdir / f"{g.name}.json").write_text(json.dumps(g.plan, indent=2) + "\n", encoding="utf-8")
        if not args.emit:
            ops = sum(len(k["ops"]) for k in g.plan["kernels"])
            print(f"{g.name}: {len(g.kernels)} kernel(s), {ops} op(s) fused", file=sys.stderr)
    if args.emit == "plan":  # one document for the whole file, whatever its number of graphs
        _print_json({"version": 1, "file": args.file, "graphs": [g.plan for g in graphs]})
    if outdir:
        print(f"wrote {len(graphs) * 2} files to {outdir}", file=sys.stderr)
    return EXIT_OK


def _emit_picture(args) -> int:
    """--emit dot|svg: the fusion, from the front end alone (no device, nothing built)."""
    from .render_dot import fusion_dot, render_svg

    front = _front(args.file, args.grad)
    names = [g.graph["name"] for g in front.graphs]
    every = [(d.graph["name"], name, d)
             for name, g in zip(names, front.graphs, strict=True)
             for d in (g, *front.derived.get(name, {}).values())]
    dot = fusion_dot(_select(every, args.graph, args.file))
    if args.emit == "dot":
        sys.stdout.write(dot)
        return EXIT_OK
    svg = render_svg(dot)
    if svg is None:
        raise UserError("--emit svg needs Graphviz's `dot` program, which is not installed "
                        "(e.g. apt-get install graphviz); --emit dot prints the graph it would draw")
    sys.stdout.write(svg)
    return EXIT_OK


def _load_input(spec: str):
    name, _, value = spec.partition("=")  # the form is checked by the parser (_input_spec)
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
    prog = _program(args.file, device=args.device)
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


# CL_DEVICE_TYPE_* bits; a device may also carry DEFAULT (1) beside its kind
DEVICE_TYPES = {4: "GPU", 2: "CPU", 8: "accelerator", 16: "custom", 1: "default"}


def _device_type(bits: int) -> str:
    return next((name for bit, name in DEVICE_TYPES.items() if bits & bit), str(bits))


def cmd_devices(args) -> int:
    """Every device, and which one fusec would use; a FUSEC_DEVICE (or --device)
    that matches none is reported, not an error: this is where one finds out why."""
    from .runtime import DeviceError, broken_reason, list_devices, select_device

    devices = list_devices()
    env = os.environ.get("FUSEC_DEVICE") or None
    spec, source = (args.device, "--device") if args.device is not None else (env, "FUSEC_DEVICE")
    asked = f"FUSEC_DEVICE={spec!r}" if source == "FUSEC_DEVICE" else f"--device {spec!r}"
    chosen = None
    try:
        chosen = select_device(spec or "")
    except DeviceError:
        pass  # no device, or spec matches none: said below
    default = select_device("") if devices else None
    if chosen is None:
        why = f"{asked} matches none of these" if devices else "no OpenCL device found"
    elif spec:
        why = f"it matches {asked}"
    elif chosen.type & 4:
        why = "the first GPU"
    elif broken_reason(chosen) is None:
        why = "no GPU: the first device that builds kernels"
    else:
        why = "no device is known to build kernels: the first one"
    rows = [
        {
            "index": i,
            "platform": platform.name.strip(),
            "name": dev.name.strip(),
            "type": _device_type(dev.type),
            "version": dev.version.strip(),
            "driver_version": dev.driver_version.strip(),
            "usable": broken_reason(dev) is None,
            "unusable_reason": broken_reason(dev),
            "chosen": dev == chosen,
        }
        for i, (platform, dev) in enumerate(devices)
    ]
    if args.json:
        _print_json({
            "devices": rows,
            "chosen": next((r["index"] for r in rows if r["chosen"]), None),
            "reason": why,
            "requested": spec,
            "requested_by": source if spec else None,
            "default": next((i for i, (_, d) in enumerate(devices) if d == default), None),
        })
        return EXIT_OK if devices else EXIT_INPUT
    if not devices:
        raise UserError("no OpenCL device found (pip install 'fusec[cpu]' gives CPU ones)")
    for r in rows:
        mark = "*" if r["chosen"] else " "
        print(f"{mark} {r['platform']}: {r['name']} ({r['version']}, driver {r['driver_version']})")
        if r["unusable_reason"] is not None:
            print(f"    unusable: {r['unusable_reason']}")
    if chosen is not None:
        print(f"fusec uses: {chosen.platform.name.strip()}: {chosen.name.strip()} ({why})")
    else:
        print(f"fusec uses: nothing, {why}: compile, run and warmup would fail "
              f"(without {source}: {default.platform.name.strip()}: {default.name.strip()})")
    return EXIT_OK


def cmd_cache(args) -> int:
    from kernels_cache import parse_size

    from .runtime.programs import _open_cache

    cache = _open_cache(None)
    if cache is None:
        raise UserError("the kernel cache is off (FUSEC_CACHE=0)")
    if args.action == "stats":
        stats = cache.stats()
        if "remote" not in stats:  # no remote tier: its counters would only be zeros
            stats = {k: v for k, v in stats.items() if not k.startswith("remote_")}
        if args.json:
            _print_json(stats)
            return EXIT_OK
        for k, v in stats.items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    elif args.action == "ls":
        entries = cache.entries()
        if args.json:
            _print_json({"directory": str(cache.directory), "entries": [_entry_json(e) for e in entries]})
            return EXIT_OK
        print(f"{'KEY':<16}  {'SIZE':>10}  {'BUILD':>8}  {'LAST USED':<16}  NAME")
        for e in entries:
            print(f"{e.key[:16]}  {human_size(e.size):>10}  {e.build_seconds * 1e3:>5.0f} ms  "
                  f"{_local_time(e.mtime):<16}  {e.name or '?'}")
    elif args.action == "clear":
        removed = cache.clear()
        print(json.dumps({"removed": removed}) if args.json else f"removed {removed} entries")
    elif args.action == "prune":
        removed = cache.prune(parse_size(args.max_size))
        print(json.dumps({"removed": removed}) if args.json else f"removed {removed} entries")
    elif args.action == "export":
        from kernels_cache.archive import export_archive

        count = export_archive(cache, Path(args.file))
        print(json.dumps({"exported": count, "file": args.file}) if args.json
              else f"exported {count} entries to {args.file}")
    else:
        from kernels_cache.archive import ArchiveError, import_archive

        try:
            result = import_archive(cache, Path(args.file))
        except ArchiveError as e:
            raise UserError(str(e)) from None
        if result.stored < result.entries:
            raise UserError(f"the cache stored {result.stored} of the archive's {result.entries} entries")
        print(json.dumps({"imported": result.entries, "file": args.file}) if args.json
              else f"imported {result.entries} entries from {args.file}")
    return EXIT_OK


def _entry_json(e) -> dict:
    return {"key": e.key, "name": e.name, "size": e.size, "last_used": e.mtime, "build_seconds": e.build_seconds}


def human_size(n: int) -> str:
    """Bytes as people read them: `512 B`, `12.3 KiB`, `1.0 GiB`."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def _local_time(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def cmd_warmup(args) -> int:
    from .warmup import ProgressLog, warmup

    log = ProgressLog(sys.stderr)
    try:
        report = warmup(args.paths, jobs=args.jobs, check=args.check, grad=args.grad, device=args.device,
                        progress=log)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    finally:
        log.close()
    for _, why in report.failed:
        print(why, file=sys.stderr)
    print(("check: " if args.check else "warmup: ") + report.summary(), file=sys.stderr)
    if args.json:
        _print_json(report.as_json())
    return EXIT_OK if report.ok else EXIT_INPUT


def cmd_import(args) -> int:
    try:
        from .onnx import onnx_to_ir, write_imported
    except ImportError as e:
        raise UserError(f"fusec import needs the onnx package ({e}): pip install 'fusec[onnx]'") from None
    imported = onnx_to_ir(args.file, graph_name=args.graph)
    if not args.output:
        sys.stdout.write(imported.text)
        if imported.initializers:
            print(f"fusec: note: {len(imported.initializers)} initializers not written (-o MODEL.ir writes "
                  "them to MODEL.npz)", file=sys.stderr)
        return EXIT_OK
    written = write_imported(imported, Path(args.output))
    print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)
    return EXIT_OK


COMMANDS = {
    "import": cmd_import,
    "warmup": cmd_warmup,
    "compile": cmd_compile,
    "check": cmd_check,
    "run": cmd_run,
    "devices": cmd_devices,
    "cache": cmd_cache,
}

if __name__ == "__main__":
    sys.exit(main())
