"""The commands on IR files and models: check, compile, run, import."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np

from ..diagnostics import CompileError
from .common import EXIT_INPUT, EXIT_OK, UserError, _print_json

STDIN = "-"  # as clang and cat: FILE `-` is the IR text on standard input


@functools.cache
def _stdin_text() -> str:
    from ..frontend.source import IR_SIZE_LIMIT

    data = sys.stdin.buffer.read(IR_SIZE_LIMIT + 1)
    if len(data) > IR_SIZE_LIMIT:
        raise UserError(
            f"<stdin>: more than {IR_SIZE_LIMIT // 2**20} MiB, the most fusec reads as IR"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError("<stdin>: not UTF-8 text; IR is UTF-8") from None


def _shown(path: str) -> str:
    return "<stdin>" if path == STDIN else path


def _front(path: str, grad: bool = False):
    from ..api import compile_graphs

    if not path:
        raise UserError("the file name is empty")
    if path == STDIN:
        return compile_graphs(_stdin_text(), filename="<stdin>", grad=grad)
    return compile_graphs(Path(path), grad=grad)


def cmd_check(args) -> int:
    if not args.json:
        front = _front(args.file)
        print(
            f"{_shown(args.file)}: ok ({len(front.graphs)} graph{'s' if len(front.graphs) != 1 else ''})"
        )
        return EXIT_OK
    doc = {"file": _shown(args.file), "ok": True, "graphs": [], "diagnostics": []}
    try:
        doc["graphs"] = [g.graph["name"] for g in _front(args.file).graphs]
    except CompileError as e:
        doc["ok"] = False
        doc["diagnostics"] = [
            {
                "file": e.filename,
                "line": d.pos.line if d.pos else None,
                "col": d.pos.column if d.pos else None,
                "severity": d.severity,
                "message": d.message,
            }
            for d in e.diagnostics
        ]
    except UserError as e:
        doc["ok"] = False
        doc["diagnostics"] = [
            {
                "file": _shown(args.file),
                "line": None,
                "col": None,
                "severity": "error",
                "message": str(e),
            }
        ]
    _print_json(doc)
    return EXIT_OK if doc["ok"] else EXIT_INPUT


def _program(path: str, grad: bool = False, device=None):
    import fusec

    _front(path)  # file errors before touching a device
    source = _stdin_text() if path == STDIN else Path(path)
    return fusec.compile(source, grad=grad, device=device)


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
    from ..ir.graph import dump

    prog = _program(args.file, args.grad, args.device)
    outdir = Path(args.outdir) if args.outdir else None
    every = [(d.name, g.name, d) for g in prog for d in (g, *g.derived.values())]
    graphs = _select(every, args.graph, _shown(args.file))
    if outdir:
        if outdir.exists() and not outdir.is_dir():  # mkdir would say only "file exists"
            raise UserError(f"-o {outdir}: exists and is not a directory")
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
            (outdir / f"{g.name}.json").write_text(
                json.dumps(g.plan, indent=2) + "\n", encoding="utf-8"
            )
        if not args.emit:
            ops = sum(len(k["ops"]) for k in g.plan["kernels"])
            print(f"{g.name}: {len(g.kernels)} kernel(s), {ops} op(s) fused", file=sys.stderr)
    if args.emit == "plan":  # one document for the whole file, whatever its number of graphs
        _print_json({"version": 1, "file": _shown(args.file), "graphs": [g.plan for g in graphs]})
    if outdir:
        print(f"wrote {len(graphs) * 2} files to {outdir}", file=sys.stderr)
    return EXIT_OK


def _emit_picture(args) -> int:
    """--emit dot|svg: the fusion, from the front end alone (no device, nothing built)."""
    from ..render_dot import fusion_dot, render_svg

    front = _front(args.file, args.grad)
    names = [g.graph["name"] for g in front.graphs]
    every = [
        (d.graph["name"], name, d)
        for name, g in zip(names, front.graphs, strict=True)
        for d in (g, *front.derived.get(name, {}).values())
    ]
    dot = fusion_dot(_select(every, args.graph, _shown(args.file)))
    if args.emit == "dot":
        sys.stdout.write(dot)
        return EXIT_OK
    svg = render_svg(dot)
    if svg is None:
        raise UserError(
            "--emit svg needs Graphviz's `dot` program, which is not installed "
            "(e.g. apt-get install graphviz); --emit dot prints the graph it would draw"
        )
    sys.stdout.write(svg)
    return EXIT_OK


def _load_input(spec: str):
    name, _, value = spec.partition("=")  # the form is checked by the parser (_input_spec)
    path = Path(value)
    if path.suffix == ".npy" or path.exists():
        from ..frontend.source import InputFileError, load_npy

        try:  # a regular file whose header matches its size, no pickles
            return name, load_npy(path)
        except InputFileError as e:
            raise UserError(f"cannot read input {name!r} from {value!r}: {e}") from None
    if value.lower() in ("true", "false"):  # Python's True and False too
        return name, value.lower() == "true"
    try:
        return name, (int(value) if value.lstrip("+-").isdigit() else float(value))
    except ValueError:
        raise UserError(
            f"input {name!r}: {value!r} is neither a .npy file, a number, true nor false"
        ) from None


def cmd_run(args) -> int:
    prog = _program(args.file, device=args.device)
    if args.graph is None:
        if len(prog.graphs) != 1:
            raise UserError(
                f"{_shown(args.file)} has several graphs ({', '.join(prog.graphs)}): choose one with --graph"
            )
        args.graph = prog.graphs[0]
    if args.graph not in prog.graphs:
        raise UserError(
            f"no graph {args.graph!r} in {_shown(args.file)} (graphs: {', '.join(prog.graphs)})"
        )
    names = [s.partition("=")[0] for s in args.input]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise UserError(f"--input {', '.join(map(repr, twice))} given more than once")
    inputs = dict(_load_input(s) for s in args.input)
    result = prog[args.graph](**inputs)
    outs = result if isinstance(result, tuple) else (result,)
    if args.output:
        # NumPy appends .npz to a name without it: say where the file really is
        path = args.output if args.output.endswith(".npz") else args.output + ".npz"
        np.savez(path, **{f"out{i}": o for i, o in enumerate(outs)})
        print(f"wrote {len(outs)} output(s) to {path}", file=sys.stderr)
    else:
        for i, o in enumerate(outs):
            print(f"out{i}: {o.dtype} {list(o.shape)}\n{np.array2string(o, threshold=20)}")
    return EXIT_OK


def cmd_import(args) -> int:
    try:
        from ..onnx import onnx_to_ir, write_imported
    except ImportError as e:
        raise UserError(
            f"fusec import needs the onnx package ({e}): pip install 'fusec[onnx]'"
        ) from None
    imported = onnx_to_ir(args.file, graph_name=args.graph)
    if not args.output:
        sys.stdout.write(imported.text)
        if imported.initializers:
            print(
                f"fusec: note: {len(imported.initializers)} initializers not written (-o MODEL.ir writes "
                "them to MODEL.npz)",
                file=sys.stderr,
            )
        return EXIT_OK
    written = write_imported(imported, Path(args.output))
    print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)
    return EXIT_OK
