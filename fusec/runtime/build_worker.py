"""Builds OpenCL programs in a separate, reusable process.

An OpenCL compiler can abort its whole process: PoCL 3.0's LLVM aborts
("Cannot emit physreg copy instruction", SIGABRT) on some kernels, and not in
clBuildProgram but when the binary is first generated. A cold build therefore
runs here, through to the binary, so a crash or a hang kills this worker, not
the caller; the caller loads the binary (fast) and gets a CompileError naming
the kernel and the driver's last words if the worker died.

Protocol: length-prefixed pickles over the worker's stdin/stdout.
"""

from __future__ import annotations

import os
import pickle
import selectors
import struct
import subprocess
import sys
import time

_LEN = struct.Struct("<Q")


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(data)) + data)
    stream.flush()


def _recv(stream):
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (size,) = _LEN.unpack(head)
    return pickle.loads(stream.read(size))


class WorkerCrash(Exception):
    """The worker died or hung while building; the message says how."""

    timed_out = False  # it hung: a narrower retry would hang as long again


class BuildWorker:
    """A lazily started worker process, restarted after a crash."""

    def __init__(self, timeout: float = 120.0):
        self.timeout = timeout
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "fusec.runtime.build_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self._proc

    def build(self, platform: str, device: str, source: str, options: str, trials=()) -> dict:
        """{"binary", "log", "seconds"} on success, {"error", "log"} if the compiler said no.

        Raises WorkerCrash if the worker died or did not answer in time.
        """
        proc = self._start()
        try:
            _send(
                proc.stdin,
                {
                    "platform": platform,
                    "device": device,
                    "source": source,
                    "options": options,
                    "trials": list(trials),
                },
            )
        except (BrokenPipeError, OSError):
            return self._crashed("the build worker could not be reached")
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(self.timeout)
        sel.close()
        if not ready:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                pipe.close()
            self._proc = None
            hung = WorkerCrash(f"the OpenCL compiler did not finish within {self.timeout:.0f} s")
            hung.timed_out = True
            raise hung
        reply = _recv(proc.stdout)
        if reply is None:
            return self._crashed("the OpenCL compiler crashed")
        return reply

    def _crashed(self, what: str):
        proc, self._proc = self._proc, None
        code = proc.wait() if proc else None
        err = proc.stderr.read().decode("utf-8", "replace") if proc else ""
        if proc:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                pipe.close()
        last = [line for line in err.splitlines() if line.strip()][-3:]
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        detail = ("; it said: " + " | ".join(last)) if last else ""
        raise WorkerCrash(f"{what} ({how}){detail}")

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # the worker's end of input: it exits
        except OSError:  # it is gone already (a broken pipe on the flush)
            pass
        if proc.poll() is None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()  # else each is an unclosed-file ResourceWarning at exit
        proc.stderr.close()


def _serve() -> None:
    import warnings

    import pyopencl as cl

    warnings.simplefilter("ignore", cl.CompilerWarning)  # the log travels in the reply

    contexts: dict = {}
    # Fault injection for tests: abort, as PoCL's LLVM does, on a source
    # containing this text.
    crash_on = os.environ.get("FUSEC_TEST_WORKER_ABORT_ON")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    while (req := _recv(stdin)) is not None:
        key = (req["platform"], req["device"])
        if key not in contexts:
            dev = next(
                d
                for p in cl.get_platforms()
                if p.name == req["platform"]
                for d in p.get_devices()
                if d.name == req["device"]
            )
            contexts[key] = (cl.Context([dev]), dev)
        ctx, dev = contexts[key]
        start = time.perf_counter()
        if crash_on and crash_on in req["source"]:
            sys.stderr.write("LLVM ERROR: Cannot emit physreg copy instruction (injected)\n")
            sys.stderr.flush()
            os.abort()
        try:
            prg = cl.Program(ctx, req["source"]).build(req["options"], cache_dir=False)
        except cl.RuntimeError as e:
            _send(stdout, {"error": str(e)})
            continue
        # PoCL generates machine code lazily, at the first launch for a local
        # size: a launch that does nothing (n = 0) with the local size the
        # caller will use makes any compiler crash happen here, and the binary
        # taken after it carries the generated code.
        prg.all_kernels()
        _trial_launches(ctx, prg, req.get("trials", ()))
        binary = prg.get_info(cl.program_info.BINARIES)[0]
        log = prg.get_build_info(dev, cl.program_build_info.LOG)
        _send(stdout, {"binary": binary, "log": log, "seconds": time.perf_counter() - start})


# a kernel argument kind (trial_launches) -> the NumPy dtype of its value
SCALAR_KINDS = {"long": "int64", "int": "int32", "float": "float32", "double": "float64"}


def _trial_launches(ctx, prg, trials) -> None:
    import numpy as np
    import pyopencl as cl

    if not trials:
        return
    queue = cl.CommandQueue(ctx)
    dummy = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 64)
    for name, kinds, local in trials:  # local: the work-group shape, a tuple
        args = [dummy if k == "buffer" else np.dtype(SCALAR_KINDS[k]).type(0) for k in kinds]
        cl.Kernel(prg, name)(queue, tuple(local), tuple(local), *args)
    queue.finish()


if __name__ == "__main__":
    _serve()
