"""OpenCL: device selection, building through the kernel cache, launching.

The only module (with the build worker) that imports pyopencl.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from dataclasses import replace

import pyopencl as cl

from kernels_cache import (
    KernelCache,
    RemoteSettings,
    RemoteTier,
    SettingError,
    TieredCache,
    cache_key,
    default_cache_dir,
    parse_seconds,
    parse_size,
    setting,
)

from ..codegen.device import DeviceInfo, is_simulator_platform
from ..codegen.plan import BUILD_OPTIONS  # one spelling, shared with the launch plan
from ..diagnostics import CompileError, Diagnostic, FusecError
from .drivers import register_pip_drivers


class DeviceError(FusecError):
    """No usable OpenCL device."""


class ConfigError(FusecError):
    """An environment variable with an unusable value (the message names it)."""


def list_devices() -> list[tuple[cl.Platform, cl.Device]]:
    register_pip_drivers()  # before the ICD loader's first look (it looks once)
    found = []
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        return []
    for platform in platforms:
        try:
            found += [(platform, d) for d in platform.get_devices()]
        except cl.Error:
            continue
    return found


def select_device(spec: str | int | cl.Device | None = None) -> cl.Device:
    """A device by object, by a substring of its platform or device name, or by
    its index in `list_devices()` (the order `fusec devices` shows).

    Without one, `FUSEC_DEVICE` decides; then the first GPU, then anything
    but a simulator (Oclgrind: when named, or when it is all there is).
    """
    if isinstance(spec, cl.Device):
        return spec
    if spec is not None and (isinstance(spec, bool) or not isinstance(spec, str | int)):
        raise TypeError(f"device: expected a pyopencl.Device, a name or an index, got {spec!r}")
    spec = spec if spec is not None else os.environ.get("FUSEC_DEVICE")
    devices = list_devices()
    if not devices:
        raise DeviceError(
            "no OpenCL device found; install one, e.g. pip install 'fusec[pocl]' for the CPU"
        )
    if isinstance(spec, int):  # an index into `fusec devices`' list (its JSON's "index")
        if not 0 <= spec < len(devices):
            raise DeviceError(f"no OpenCL device {spec}: there are {len(devices)} (fusec devices)")
        return devices[spec][1]
    if spec:
        want = spec.lower()
        for platform, dev in devices:
            if want in dev.name.lower() or want in platform.name.lower():
                return dev
        names = "; ".join(f"{p.name.strip()}: {d.name.strip()}" for p, d in devices)
        raise DeviceError(f"no OpenCL device matches {spec!r} (have: {names})")
    real = [d for _, d in devices if not is_simulator(d)]
    gpus = [d for d in real if d.type & cl.device_type.GPU]
    working = [d for d in real if broken_reason(d) is None]
    return (gpus or working or real or [d for _, d in devices])[0]


def is_simulator(dev: cl.Device) -> bool:
    """Whether `dev` simulates a device (Oclgrind): right for checking kernels,
    far too slow for work, so chosen only by name."""
    return is_simulator_platform(dev.platform.name)


def broken_reason(dev: cl.Device) -> str | None:
    """Why a device is known to build no kernel, or None.

    PoCL whose LLVM does not know the host CPU names it "generic" and then
    rejects that name in every build (pocl/pocl#1049): PoCL 3.0 from PyPI
    (LLVM 14) on CPUs newer than 2021, such as AMD Zen 5.
    """
    if "PoCL" in dev.version and dev.version.rstrip().endswith("-generic"):
        return "its LLVM does not know this CPU, so it builds no kernel (pip install 'fusec[cpu]' adds Intel's CPU runtime)"
    return None


class Runtime:
    """A context and queue on one device, and the programs built for it."""

    _shared: dict = {}

    def __init__(self, device=None, queue: cl.CommandQueue | None = None, cache_dir=None):
        if queue is not None:
            self.queue = queue
            self.context = queue.context
            self.device = queue.device
        else:
            self.device = select_device(device)
            self.context = cl.Context([self.device])
            self.queue = cl.CommandQueue(self.context)
        self.info = DeviceInfo.from_cl(self.device)
        # Host arrays are passed in place where the device reads any host address
        # (fine-grained system SVM: Intel's CPU runtime; PoCL's CPU device where it reports it);
        # FUSEC_ZERO_COPY=0 copies them through device buffers instead.
        self.system_svm = bool(
            _svm_capabilities(self.device) & cl.device_svm_capabilities.FINE_GRAIN_SYSTEM
        ) and (os.environ.get("FUSEC_ZERO_COPY", "1").strip() != "0")
        self.device_names = {
            "name": self.device.name.strip(),
            "platform": self.device.platform.name.strip(),
        }
        # Outputs come from a pool: a fresh 64 MiB buffer per call spends more
        # time in first-touch page faults than the kernel spends computing.
        from .memory import pool_for

        self.allocator = pool_for(self.queue)
        self.allocator_lock = threading.Lock()  # calls from many threads share the pool
        self.cache = _open_cache(cache_dir)
        self._programs: dict[str, cl.Program] = {}
        self.built_here: set[str] = (
            set()
        )  # sources this process built (warmup tells them from others')

    @classmethod
    def shared(cls, device=None, cache_dir=None) -> Runtime:
        """One runtime per (device, cache) in a process, so programs are built once."""
        spec = device if device is not None else os.environ.get("FUSEC_DEVICE")
        fast = (
            spec if spec is None or isinstance(spec, str) else id(spec),
            str(cache_dir) if cache_dir else None,
        )
        if fast in cls._shared:
            return cls._shared[fast]
        dev = select_device(device)
        key = (dev.int_ptr, str(cache_dir) if cache_dir else None)
        if key not in cls._shared:
            cls._shared[key] = cls(dev, cache_dir=cache_dir)
        cls._shared[fast] = cls._shared[key]
        return cls._shared[key]

    def key_components(self, source: str, options: str) -> dict[str, str]:
        from ..version import __version__

        dev, platform = self.device, self.device.platform
        return {
            "source": source,
            "options": options,
            "platform": platform.name,
            "platform_version": platform.version,
            "device": dev.name,
            "device_version": dev.version,
            "driver_version": dev.driver_version,
            "producer": f"fusec {__version__}",
        }

    def is_cached(self, source: str) -> bool:
        """Whether `source` would load from this process's memo or the disk cache."""
        if source in self._programs:
            return True
        if self.cache is None:
            return False
        # Load it, as a compile would: an entry whose binary the driver refuses or
        # that lacks the kernels is not cached (and is dropped).
        prg = self._load(cache_key(self.key_components(source, BUILD_OPTIONS)), source, count=False)
        if prg is not None:
            self._programs[source] = prg
        return prg is not None

    def program(self, source: str, name: str = "kernel", trials=()) -> cl.Program:
        """A built program: from this process's memo, the disk cache, or a fresh build."""
        prg = self._programs.get(source)
        if prg is not None:
            return prg
        components = self.key_components(source, BUILD_OPTIONS)
        key = cache_key(components) if self.cache else None
        if self.cache is None:
            prg = self._build(source, name, key, components, trials)
        elif (prg := self._load(key, source)) is None:
            # Processes building the same kernel take turns, so it is built
            # once; the lock only saves work (it times out, and a process
            # that cannot take it builds anyway).
            with self.cache.lock(key, timeout=build_timeout()):
                prg = self._load(key, source, count=False)
                if prg is None:
                    prg = self._build(source, name, key, components, trials)
        self._programs[source] = prg
        return prg

    def _load(self, key: str, source: str, count: bool = True):
        entry = self.cache.get(key)
        if entry is None:
            if count:
                self.cache.record_miss(key)
            return None
        try:
            prg = quiet_build(cl.Program(self.context, [self.device], [entry.binary]))
        except cl.Error as e:  # a binary the driver no longer takes is a miss
            warnings.warn(
                f"fusec: cached program {key[:12]} did not load ({e}); rebuilding", stacklevel=3
            )
            self.cache.record_miss(key)
            return None
        # A binary with a valid checksum can still be another program's (a bad
        # writer, a planted entry): it must define the kernels this source does.
        missing = set(_KERNEL_NAME.findall(source)) - set(
            prg.get_info(cl.program_info.KERNEL_NAMES).split(";")
        )
        if missing:
            self.cache.drop(key, f"its binary lacks kernel(s) {', '.join(sorted(missing))}")
            if count:
                self.cache.record_miss(key)
            return None
        self.cache.record_hit(key)
        return prg

    def _build(self, source: str, name: str, key, components, trials=()):
        self.built_here.add(source)
        if _isolated():
            prg, binary, log, seconds = self._build_in_worker(source, name, trials)
        else:
            start = time.perf_counter()
            try:
                prg = quiet_build(cl.Program(self.context, source), cache_dir=False)
            except cl.RuntimeError as e:
                raise _rejected(name, str(e), self.device) from None
            # PoCL generates machine code lazily; creating the kernels makes the
            # binary we save complete enough to skip most of that next time.
            prg.all_kernels()
            seconds = time.perf_counter() - start
            binary = prg.get_info(cl.program_info.BINARIES)[0]
            log = prg.get_build_info(self.device, cl.program_build_info.LOG)
        if self.cache is not None:
            meta = {
                "name": name,
                "build_seconds": seconds,
                "components": components,
                "build_log": log,
            }
            self.cache.record_build(seconds)
            self.cache.put(key, binary, meta)
        return prg

    def _build_in_worker(self, source: str, name: str, trials=()):
        from .build_worker import WorkerCrash

        try:
            reply = _worker().build(
                self.device.platform.name, self.device.name, source, BUILD_OPTIONS, trials
            )
        except WorkerCrash as e:
            err = CompileError(Diagnostic(f"building the kernels of {name} failed: {e}"))
            # a crash may be vector code's (narrower vectors are tried); a hang is not retried:
            # 10^4 outputs in one graph hung the build twice, 244 s and 6 GB in all
            err.crashed = not e.timed_out
            raise err from None
        if "error" in reply:
            raise _rejected(name, reply["error"], self.device)
        prg = quiet_build(cl.Program(self.context, [self.device], [reply["binary"]]))
        return prg, reply["binary"], reply["log"], reply["seconds"]


def _svm_capabilities(dev: cl.Device) -> int:
    try:
        return dev.svm_capabilities
    except (cl.Error, AttributeError):  # an OpenCL 1.x device
        return 0


def quiet_build(prg: cl.Program, **kw) -> cl.Program:
    """Build with fusec's options. A driver's chatter (Intel's runtime logs every
    build) is kept in the cache entry's build log, not shown as a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.CompilerWarning)
        return prg.build(BUILD_OPTIONS, **kw)


def _rejected(name: str, message: str, dev: cl.Device) -> CompileError:
    known = broken_reason(dev)  # a device named on purpose that builds nothing at all
    why = f" (this device is unusable: {known})" if known else ""
    return CompileError(
        Diagnostic(f"the OpenCL compiler rejected the kernels of {name}{why}:\n{message}")
    )


def _isolated() -> bool:
    """Cold builds run in a worker process unless FUSEC_BUILD_ISOLATION=0."""
    return os.environ.get("FUSEC_BUILD_ISOLATION", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


_WORKERS = threading.local()  # one worker per thread: `warmup --jobs N` builds N at once


def _worker():
    worker = getattr(_WORKERS, "worker", None)
    if worker is None:
        import atexit

        from .build_worker import BuildWorker

        worker = BuildWorker(timeout=build_timeout())
        _WORKERS.worker = worker
        atexit.register(worker.close)
    return worker


_KERNEL_NAME = re.compile(r"__kernel\s+void\s+(\w+)\s*\(")


def _setting(name: str, parse, default):
    try:
        return setting(name, os.environ.get(name), parse, default)
    except SettingError as e:
        raise ConfigError(str(e)) from None


def build_timeout() -> float:
    return _setting("FUSEC_BUILD_TIMEOUT", parse_seconds, 120.0)


def _switch(text: str) -> bool:
    value = text.lower()
    if value not in ("0", "false", "no", "off", "1", "true", "yes", "on"):
        raise ValueError(f"expected 0 (off) or 1 (on), got {text!r}")
    return value in ("1", "true", "yes", "on")


def _open_cache(cache_dir) -> KernelCache | None:
    if not _setting("FUSEC_CACHE", _switch, True):
        return None
    directory = cache_dir or os.environ.get("FUSEC_CACHE_DIR") or default_cache_dir("fusec")
    max_size = _setting("FUSEC_CACHE_MAX_SIZE", parse_size, 1 << 30)
    build_timeout()  # a bad value is reported now, not at the first cold build
    remote = _open_remote()
    if remote is not None:
        return TieredCache(directory, remote, max_size=max_size)
    return KernelCache(directory, max_size=max_size)


def _open_remote() -> RemoteTier | None:
    """The Redis tier FUSEC_REMOTE_CACHE names (see docs/cache.md), or None."""
    secret = os.environ.get("FUSEC_CACHE_SECRET") or None
    settings = RemoteSettings(
        url="",
        secret=os.fsencode(secret) if secret else None,  # any bytes the variable holds
        ttl=_setting("FUSEC_REMOTE_CACHE_TTL", parse_seconds, None),
        max_entry=_setting("FUSEC_REMOTE_CACHE_MAX_ENTRY", parse_size, 64 << 20),
    )
    return _setting("FUSEC_REMOTE_CACHE", lambda url: RemoteTier(replace(settings, url=url)), None)
