"""A small content-addressed cache of compiled program binaries.

It stores bytes; the caller does the OpenCL work.  Nothing here imports fusec
or pyopencl.  See docs/cache.md.
"""

from .config import SettingError, default_cache_dir, parse_seconds, parse_size, setting
from .format import FORMAT_VERSION, cache_key
from .remote import RemoteSettings, RemoteTier, RemoteWarning
from .store import CacheEntry, CacheWarning, EntryInfo, KernelCache
from .tiered import TieredCache

__all__ = [
    "FORMAT_VERSION",
    "CacheEntry",
    "CacheWarning",
    "EntryInfo",
    "KernelCache",
    "RemoteSettings",
    "RemoteTier",
    "RemoteWarning",
    "TieredCache",
    "SettingError",
    "cache_key",
    "default_cache_dir",
    "parse_seconds",
    "parse_size",
    "setting",
]
