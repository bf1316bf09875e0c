"""Make OpenCL drivers installed by pip visible to the ICD loader.

The loader that PyOpenCL's wheel ships finds drivers through `.icd` files in
`/etc/OpenCL/vendors` (or the directory `OCL_ICD_VENDORS` names) and the PoCL
it bundles. Intel's CPU runtime from PyPI (`intel-opencl-rt`, fusec's `cpu`
extra) installs `libintelocl.so` into the environment's `lib/`, but its `.icd`
file holds a placeholder path, so nothing finds it. Before PyOpenCL first asks
for platforms, fusec points `OCL_ICD_VENDORS` at a directory holding the
system's `.icd` files plus one for that library. A user who sets
`OCL_ICD_VENDORS` keeps full control: then fusec changes nothing.

Why it matters: PoCL 3.0 (the PyPI build, LLVM 14) cannot build any kernel on
CPUs newer than its LLVM (AMD Zen 5 here: "unknown target CPU 'generic'").

The Oclgrind simulator (Debian's `oclgrind` package) ships its ICD library but
no `.icd` file; fusec registers it the same way, so that `FUSEC_DEVICE=oclgrind`
works beside the real devices (it is never chosen unless named: see
`programs.is_simulator`).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import platformdirs

SYSTEM_VENDORS = Path("/etc/OpenCL/vendors")
PIP_DRIVERS = ("libintelocl.so",)  # in {sys.prefix}/lib
# Where distributions put Oclgrind's ICD library (Debian/Ubuntu; a source build's default prefix)
OCLGRIND_LIBRARIES = (
    "/usr/lib/oclgrind/liboclgrind-rt-icd.so",
    "/usr/lib/x86_64-linux-gnu/oclgrind/liboclgrind-rt-icd.so",
    "/usr/lib64/oclgrind/liboclgrind-rt-icd.so",
    "/usr/local/lib/liboclgrind-rt-icd.so",
)


def pip_drivers() -> list[Path]:
    lib = Path(sys.prefix) / "lib"
    return [lib / name for name in PIP_DRIVERS if (lib / name).is_file()]


def oclgrind_driver() -> Path | None:
    """Oclgrind's ICD library, if installed where a package puts it."""
    return next((Path(p) for p in OCLGRIND_LIBRARIES if Path(p).is_file()), None)


def register_pip_drivers() -> str | None:
    """Set OCL_ICD_VENDORS so that pip-installed drivers (and Oclgrind) load;
    the directory, or None."""
    if "OCL_ICD_VENDORS" in os.environ:
        return None
    entries = {f"pip-{d.stem}.icd": f"{d}\n" for d in pip_drivers()}
    system = {}
    try:
        system = {icd.name: icd.read_text() for icd in sorted(SYSTEM_VENDORS.glob("*.icd"))}
    except OSError:
        pass
    simulator = oclgrind_driver()
    if simulator is not None and not any(simulator.name in text for text in system.values()):
        entries["oclgrind.icd"] = f"{simulator}\n"
    if not entries:
        return None  # the system's .icd files alone: the loader finds them itself
    for name, text in system.items():
        entries.setdefault(name, text)
    digest = hashlib.sha256(repr(sorted(entries.items())).encode()).hexdigest()[:16]
    # The user's own cache directory: a shared one (/tmp) would let another
    # user plant a library for this process to load.
    directory = Path(platformdirs.user_cache_dir("fusec")) / f"icd-{digest}"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, text in entries.items():
            path = directory / name
            if not path.exists() or path.read_text() != text:
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(text)
                os.replace(tmp, path)
    except OSError:
        return None  # no writable temp directory: the bundled PoCL is all there is
    os.environ["OCL_ICD_VENDORS"] = str(directory)
    return str(directory)
