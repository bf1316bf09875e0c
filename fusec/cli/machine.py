"""The commands on this machine's devices and kernel cache: devices, cache, warmup."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .common import EXIT_INPUT, EXIT_OK, UserError, _print_json

# CL_DEVICE_TYPE_* bits; a device may also carry DEFAULT (1) beside its kind
DEVICE_TYPES = {4: "GPU", 2: "CPU", 8: "accelerator", 16: "custom", 1: "default"}


def _device_type(bits: int) -> str:
    return next((name for bit, name in DEVICE_TYPES.items() if bits & bit), str(bits))


def cmd_devices(args) -> int:
    """Every device, and which one fusec would use; a FUSEC_DEVICE (or --device)
    that matches none is reported, not an error: this is where one finds out why."""
    from ..runtime import DeviceError, broken_reason, is_simulator, list_devices, select_device

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
    elif is_simulator(chosen):
        why = "no device but a simulator"
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
            "simulator": is_simulator(dev),
            "chosen": dev == chosen,
        }
        for i, (platform, dev) in enumerate(devices)
    ]
    if args.json:
        _print_json(
            {
                "devices": rows,
                "chosen": next((r["index"] for r in rows if r["chosen"]), None),
                "reason": why,
                "requested": spec,
                "requested_by": source if spec else None,
                "default": next((i for i, (_, d) in enumerate(devices) if d == default), None),
            }
        )
        return EXIT_OK if devices else EXIT_INPUT
    if not devices:
        raise UserError("no OpenCL device found (pip install 'fusec[cpu]' gives CPU ones)")
    for r in rows:
        mark = "*" if r["chosen"] else " "
        print(f"{mark} {r['platform']}: {r['name']} ({r['version']}, driver {r['driver_version']})")
        if r["unusable_reason"] is not None:
            print(f"    unusable: {r['unusable_reason']}")
        if r["simulator"]:
            print(
                "    a simulator that checks every access (slow): chosen only when named or alone"
            )
    if chosen is not None:
        print(f"fusec uses: {chosen.platform.name.strip()}: {chosen.name.strip()} ({why})")
    else:
        print(
            f"fusec uses: nothing, {why}: compile, run and warmup would fail "
            f"(without {source}: {default.platform.name.strip()}: {default.name.strip()})"
        )
    return EXIT_OK


def cmd_cache(args) -> int:
    from kernels_cache import parse_size

    from ..runtime.programs import _open_cache

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
            _print_json(
                {"directory": str(cache.directory), "entries": [_entry_json(e) for e in entries]}
            )
            return EXIT_OK
        print(f"{'KEY':<16}  {'SIZE':>10}  {'BUILD':>8}  {'LAST USED':<16}  NAME")
        for e in entries:
            print(
                f"{e.key[:16]}  {human_size(e.size):>10}  {e.build_seconds * 1e3:>5.0f} ms  "
                f"{_local_time(e.mtime):<16}  {_shown_name(e.name)}"
            )
    elif args.action == "clear":
        removed = cache.clear()
        print(json.dumps({"removed": removed}) if args.json else f"removed {removed} entries")
    elif args.action == "prune":
        removed = cache.prune(parse_size(args.max_size))
        print(json.dumps({"removed": removed}) if args.json else f"removed {removed} entries")
    elif args.action == "export":
        from kernels_cache.archive import export_archive

        count = export_archive(cache, Path(args.file))
        print(
            json.dumps({"exported": count, "file": args.file})
            if args.json
            else f"exported {count} entries to {args.file}"
        )
    else:
        from kernels_cache.archive import ArchiveError, import_archive

        try:
            result = import_archive(cache, Path(args.file))
        except ArchiveError as e:
            raise UserError(str(e)) from None
        if result.stored < result.entries:
            raise UserError(
                f"the cache stored {result.stored} of the archive's {result.entries} entries"
            )
        print(
            json.dumps({"imported": result.entries, "file": args.file})
            if args.json
            else f"imported {result.entries} entries from {args.file}"
        )
    return EXIT_OK


def _shown_name(name) -> str:
    # Metadata comes from whoever wrote the entry (an imported archive): never print
    # escape sequences (clear the screen, retitle the terminal) or a fake second line.
    if not isinstance(name, str) or not name:
        return "?"
    return name if name.isprintable() else ascii(name)


def _entry_json(e) -> dict:
    return {
        "key": e.key,
        "name": e.name,
        "size": e.size,
        "last_used": e.mtime,
        "build_seconds": e.build_seconds,
    }


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
    from ..warmup import ProgressLog, warmup

    # the lines are the command's output (the spec: a line per graph when stdout is
    # not a terminal, so `fusec warmup models > warmup.log` logs them); with --json,
    # stdout holds the one document and they go to stderr
    out = sys.stderr if args.json else sys.stdout
    log = ProgressLog(out)
    try:
        report = warmup(
            args.paths,
            jobs=args.jobs,
            check=args.check,
            grad=args.grad,
            device=args.device,
            progress=log,
        )
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    finally:
        log.close()
    for _, why in report.failed:
        print(why, file=sys.stderr)
    if not report.results:  # a mistyped folder would otherwise pass a CI gate unseen
        print(f"fusec: warning: no .ir file under {', '.join(args.paths)}", file=sys.stderr)
    print(("check: " if args.check else "warmup: ") + report.summary(), file=out)
    if args.json:
        _print_json(report.as_json())
    return EXIT_OK if report.ok else EXIT_INPUT
