"""What the cache trusts on disk: folders only its owner can write, entry files
that are regular files reached without following links.

A cache entry becomes machine code that the process runs, so anyone who can
write into the cache folder can run code as the user (or, subtler, swap one
kernel's binary for another's: the key is computable by anyone and the
checksum is unkeyed).  Like ssh with ~/.ssh, the cache refuses a folder that
another user owns or that group or others may write.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

DIR_MODE = 0o700  # new folders: the owner only

# O_NONBLOCK: opening a FIFO planted at an entry's path returns at once instead
# of waiting for a writer (read-only opens of a FIFO block otherwise).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class UnsafeFile(OSError):
    """An entry path that is not a plain regular file (a link, a FIFO, a device...)."""


class TooLarge(UnsafeFile):
    """A regular file over the size the reader allows."""


def untrusted_reason(path: Path, *, follow: bool) -> str | None:
    """Why `path` (an existing folder) must not be trusted, or None if it may.

    `follow=False` also refuses a symbolic link in its place (used for the
    folders the cache itself creates; the top folder may be a user's link).
    """
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return None  # nothing there yet: the cache creates it with DIR_MODE
    except OSError as exc:
        return f"cannot inspect it ({exc.strerror or exc})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is a symbolic link" if stat.S_ISLNK(st.st_mode) else "it is not a directory"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"group or others may write to it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def make_private_dirs(path: Path) -> None:
    """mkdir -p with mode 0700 for every folder created (existing ones are left as they are)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            pass  # another process made it meanwhile; the trust check judges it
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def check_real_folder(path: Path) -> None:
    """UnsafeFile unless `path` is a folder itself, not a link to one: the cache never
    reads, writes or deletes through a link inside its own folder (`clear` would
    otherwise remove `*.kc` files wherever a fan-out link points)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise UnsafeFile(f"{path} is {what}")


def read_regular(path: Path, limit: int) -> tuple[bytes, tuple[int, int]]:
    """The bytes and (st_dev, st_ino) of a regular file, opened without following
    a link and never blocking; UnsafeFile if it is anything else, or over `limit` bytes."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(f"{path} is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path} is not a regular file")
        if st.st_size > limit:
            raise TooLarge(f"{path} is {st.st_size} bytes, over the {limit}-byte limit")
        # st_size + 1, not limit + 1: f.read(n) allocates n bytes up front (1 GiB per
        # cache hit, a MemoryError under strict overcommit); a file that grew since
        # fstat shows up as one byte too many, which every caller's check rejects
        return f.read(st.st_size + 1), (st.st_dev, st.st_ino)


def open_regular(path: Path):
    """A binary file object for a regular file (no links, no FIFOs), for reading headers."""
    fd = os.open(path, _OPEN_FLAGS)
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise UnsafeFile(f"{path} is not a regular file")
    return f
