"""Where the cache lives and how big it may grow."""

from __future__ import annotations

import re
from pathlib import Path

import platformdirs

# GNU coreutils convention: a bare letter (or an "iB" suffix) is a power of 1024,
# a letter followed by "B" is a power of 1000.  Matching is case-insensitive so
# "64k" and "64K" agree.
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 10**3,
    "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
    "g": 1 << 30, "gib": 1 << 30, "gb": 10**9,
    "t": 1 << 40, "tib": 1 << 40, "tb": 10**12,
}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


def default_cache_dir(app: str = "fusec") -> Path:
    """The user's cache directory for `app` (e.g. ~/.cache/fusec on Linux)."""
    # appauthor=False: on Windows, avoid the doubled "fusec\\fusec" folder.
    return Path(platformdirs.user_cache_dir(app, appauthor=False))


def parse_size(text: int | str) -> int:
    """A size in bytes from 123, "123", "64k", "500M", "1G", "1.5GiB" or "2GB"."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"invalid size {text!r}: must not be negative")
        return text
    if not isinstance(text, str):
        raise ValueError(f"invalid size {text!r}: expected an int or a string such as '500M'")
    match = _SIZE.fullmatch(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if unit is None:
        raise ValueError(
            f"invalid size {text!r}: expected a number with an optional unit, e.g. "
            "'500M', '1.5GiB', '64k' (K/M/G/T and KiB/MiB/GiB/TiB count in 1024s, "
            "kB/MB/GB/TB in 1000s)"
        )
    return int(float(match.group(1)) * unit)
