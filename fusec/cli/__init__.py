"""The `fusec` command line. Exit status: 0 success, 1 bad input, 2 usage."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..diagnostics import CompileError, FusecError
from ..version import __version__
from .common import EXIT_INPUT, EXIT_OK, EXIT_USAGE, UserError
from .graphs import cmd_check, cmd_compile, cmd_import, cmd_run
from .machine import _device_type, cmd_cache, cmd_devices, cmd_warmup, human_size

EMIT = ["source", "plan", "graph", "all", "dot", "svg"]


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
        raise argparse.ArgumentTypeError(
            f"expected NAME=FILE.npy, NAME=NUMBER or NAME=true|false, got {text!r}"
        )
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fusec", description="JIT fusion compiler: IR -> fused OpenCL kernels."
    )
    p.add_argument("--version", action="version", version=f"fusec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    device = argparse.ArgumentParser(add_help=False)
    device.add_argument(
        "--device",
        metavar="NAME",
        help="OpenCL device: a substring of its platform or device name (as FUSEC_DEVICE)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    c = sub.add_parser(
        "compile", parents=[device], help="compile every graph of a file (fills the kernel cache)"
    )
    c.add_argument("file")
    c.add_argument("-o", "--outdir", help="write <graph>.cl and <graph>.json (launch plan) here")
    c.add_argument("--grad", action="store_true", help="also build backward kernels")
    c.add_argument("--graph", action="append", metavar="NAME", help="only this graph (repeatable)")
    c.add_argument(
        "--emit",
        choices=EMIT,
        help="print this to stdout (dot/svg: the fusion as a picture; builds nothing)",
    )

    k = sub.add_parser("check", parents=[as_json], help="parse and type-check only")
    k.add_argument("file")

    r = sub.add_parser("run", parents=[device], help="run a graph on .npy inputs")
    r.add_argument("file")
    r.add_argument("--graph", help="graph name (needed when the file has several)")
    r.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        type=_input_spec,
        metavar="NAME=FILE.npy|NUMBER",
    )
    r.add_argument("--output", "-o", help="write outputs to this .npz (out0, out1, ...)")

    i = sub.add_parser(
        "import", help="translate an ONNX model into an IR file (initializers: a .npz beside it)"
    )
    i.add_argument("file", metavar="MODEL.onnx")
    i.add_argument(
        "-o",
        "--output",
        metavar="MODEL.ir",
        help="write the IR here and the initializers to MODEL.npz (default: the IR on stdout)",
    )
    i.add_argument(
        "--graph", metavar="NAME", help="name of the IR graph (default: the ONNX graph's name)"
    )

    d = sub.add_parser(
        "devices", parents=[as_json], help="list OpenCL devices and say which fusec uses"
    )
    d.add_argument("--device", metavar="NAME", help="say which device this name would choose")

    w = sub.add_parser(
        "warmup",
        parents=[device, as_json],
        help="compile every .ir file under PATHs into the kernel cache",
    )
    w.add_argument("paths", nargs="+", metavar="PATH")
    w.add_argument("--grad", action="store_true", help="also build backward kernels")
    w.add_argument("--jobs", "-j", type=_jobs, default=1, help="builds at once (default 1)")
    w.add_argument(
        "--check",
        action="store_true",
        help="build nothing; exit 1 if any kernel would need building (a CI gate)",
    )

    cache = sub.add_parser(
        "cache", parents=[as_json], help="inspect, trim, export or import the kernel cache"
    )
    cache.add_argument("action", choices=["stats", "ls", "clear", "prune", "export", "import"])
    cache.add_argument("file", nargs="?", metavar="FILE", help="for export/import: the archive")
    cache.add_argument("--max-size", help="for prune: target size, e.g. 500M")
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "compile" and args.emit in ("dot", "svg") and args.outdir:
        parser.error(
            f"--emit {args.emit} prints a picture and builds nothing; -o writes built kernels: use one"
        )
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
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning on the command line is one `fusec: warning:` message, not Python's
    `path/to/fusec/module.py:LINE: Category:` followed by a line of fusec's source."""
    print(f"fusec: warning: {message}", file=sys.stderr)


COMMANDS = {
    "import": cmd_import,
    "warmup": cmd_warmup,
    "compile": cmd_compile,
    "check": cmd_check,
    "run": cmd_run,
    "devices": cmd_devices,
    "cache": cmd_cache,
}

__all__ = ["EXIT_INPUT", "EXIT_OK", "EXIT_USAGE", "UserError", "_device_type", "human_size", "main"]
