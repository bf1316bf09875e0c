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
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import platformdirs

SYSTEM_VENDORS = Path("/etc/OpenCL/vendors")
PIP_DRIVERS = ("libintelocl.so",)  # in {sys.prefix}/lib


def pip_drivers() -> list[Path]:
    lib = Path(sys.prefix) / "lib"
    return [lib / name for name in PIP_DRIVERS if (lib / name).is_file()]


def register_pip_drivers() -> str | None:
    """Set OCL_ICD_VENDORS so that pip-installed drivers load; the directory, or None."""
    if "OCL_ICD_VENDORS" in os.environ:
        return None
    drivers = pip_drivers()
    if not drivers:
        return None
    entries = {f"pip-{d.stem}.icd": f"{d}\n" for d in drivers}
    try:
        for icd in sorted(SYSTEM_VENDORS.glob("*.icd")):
            entries.setdefault(icd.name, icd.read_text())
    except OSError:
        pass
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
