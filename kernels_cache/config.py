"""Where the cache lives and how big it may grow."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

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
MAX_SIZE = 1 << 62  # 4 EiB: more than any disk, and still an ordinary int everywhere
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
        return _bounded(text, text)
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
    # Fraction, not float: a 400-digit number must give a clear error, not OverflowError.
    return _bounded(text, int(Fraction(match.group(1)) * unit))


def _bounded(text: int | str, size: int) -> int:
    if size > MAX_SIZE:
        shown = text if len(str(text)) <= 24 else f"{str(text)[:20]}..."
        raise ValueError(f"invalid size {shown!r}: larger than the 4 EiB this cache allows")
    return size


def parse_seconds(text: str) -> float:
    """A positive, finite number of seconds from "120" or "0.5"."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"invalid duration {text!r}: expected a number of seconds, e.g. 120"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"invalid duration {text!r}: expected a positive number of seconds")
    return value


class SettingError(ValueError):
    """A setting (an environment variable) with a value that cannot be used; the
    message names the variable."""


T = TypeVar("T")


def setting(name: str, text: str | None, parse: Callable[[str], T], default: T) -> T:
    """`parse(text)`, or `default` when the variable is unset or empty; SettingError
    naming the variable when its value is invalid."""
    if text is None or not text.strip():
        return default
    try:
        return parse(text.strip())
    except ValueError as exc:
        raise SettingError(f"{name}: {exc}") from None
