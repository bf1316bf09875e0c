"""Where IR text and input arrays come from: files a user names, or IR text
itself. Every file fusec reads must be a regular file of bounded size, opened
without blocking: `/dev/zero` would be read until the OOM killer came, a FIFO
would block forever, and a .npy header can claim 10^11 elements.
"""

from __future__ import annotations

import math
import os
import stat

import numpy as np

from ..diagnostics import CompileError, Diagnostic, FusecError, Pos
from .syntax_errors import offset_pos

IR_SIZE_LIMIT = 16 * 2**20  # bytes; generated IR of 100,000 parameters is ~2 MiB


class InputFileError(FusecError):
    """An input file that cannot be used (not a regular file, not a .npy array, ...)."""


def read_source(path_or_text) -> tuple[str, str]:
    """(filename, text) from a path or from IR text itself.

    A PathLike is a path. A str is IR text if it is blank or holds a newline, `{` or NUL
    (no file name fusec would read does, and every graph has a `{`); else it
    is a path if it names an existing file; else it is text if it starts with
    the keyword `graph` (a one-line graph missing its brace gets a syntax
    error), and otherwise a path (whose error says there is no such file).
    """
    if isinstance(path_or_text, os.PathLike):
        return os.fspath(path_or_text), read_ir(path_or_text)
    if isinstance(path_or_text, bytes | bytearray):  # as open() takes them, and read('rb')
        data = bytes(path_or_text)
        if any(mark in data for mark in (b"\n", b"{", b"\0")):  # text, as for a str below
            return "<input>", _decode(data, "<input>")  # UTF-8, as a file is
        path_or_text = os.fsdecode(data)
    if not isinstance(path_or_text, str):
        raise TypeError(
            f"expected a path or IR text (str, bytes or os.PathLike), got {type(path_or_text).__name__}"
        )
    text = path_or_text
    if "\n" in text or "{" in text or "\0" in text or not text.strip():
        return "<input>", text  # "" too: empty text has no graph; no file is named ""
    try:
        exists = os.path.lexists(text)
    except (OSError, ValueError):
        exists = False
    if not exists and text.lstrip().startswith("graph") and text.lstrip()[5:6].isspace():
        return "<input>", text
    return text, read_ir(text)


def _open_regular(path, what: str) -> tuple[int, int]:
    """(fd, size) of a regular file opened for reading without blocking; an
    OSError's words, or ours, as a ValueError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ValueError:  # a NUL in the name
        raise ValueError("the file name contains a NUL character") from None
    except OSError as e:
        why = {
            FileNotFoundError: "no such file",
            PermissionError: "permission denied",
        }.get(type(e), (e.strerror or str(e)).lower())
        raise ValueError(why) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"is a directory, not {what}")
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(st.st_mode)
                else "a socket"
                if stat.S_ISSOCK(st.st_mode)
                else "a device"
            )
            raise ValueError(
                f"is {kind}, not a regular file; fusec reads {what} from regular files only"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_ir(path, limit: int = IR_SIZE_LIMIT) -> str:
    """The text of an IR file (UTF-8, a byte-order mark allowed), or a CompileError
    naming the file and what is wrong with it."""
    name = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    try:
        fd, size = _open_regular(path, "an IR file")
    except ValueError as e:
        raise CompileError(Diagnostic(str(e)), name, "") from None
    try:
        too_big = f"is larger than {limit // 2**20} MiB, the most fusec reads as IR"
        if size > limit:
            raise CompileError(Diagnostic(too_big), name, "")
        data = _read_at_most(fd, limit)  # the size may change under us
        if len(data) > limit:
            raise CompileError(Diagnostic(too_big), name, "")
    except OSError as e:
        raise CompileError(Diagnostic((e.strerror or str(e)).lower()), name, "") from None
    finally:
        os.close(fd)
    if b"\0" in data:
        # the source line of a binary file would only garble the terminal
        before = data[: data.index(b"\0")].decode("utf-8", "replace")
        where = offset_pos(before, len(before))
        onnx = (
            "; an ONNX model is read by `fusec import` or fusec.from_onnx"
            if name.endswith(".onnx")
            else ""
        )
        raise CompileError(
            Diagnostic(f"a binary file, not IR text{onnx}", Pos(where.line, 1)), name, ""
        )
    return _decode(data, name)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", "replace")
        where = offset_pos(before, len(before))
        raise CompileError(
            Diagnostic(f"not UTF-8 text (byte 0x{data[e.start]:02x}); IR files are UTF-8", where),
            name,
            "",
        ) from None


_NPY_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def load_npy(path) -> np.ndarray:
    """A .npy array, read only after its header has been checked against the
    file: a regular file, no object arrays (they are pickles), and exactly the
    bytes the header's shape and dtype claim. InputFileError otherwise."""
    try:
        fd, size = _open_regular(path, ".npy arrays")
    except ValueError as e:
        raise InputFileError(str(e)) from None
    with os.fdopen(fd, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in _NPY_HEADERS:
                raise InputFileError(
                    f"a .npy file of format version {version[0]}.{version[1]}, which fusec does not read"
                )
            shape, fortran_order, dtype = _NPY_HEADERS[version](f)
        except InputFileError:
            raise
        except (
            ValueError,
            OSError,
            SyntaxError,
            TypeError,
            EOFError,
        ):  # NumPy's words for a bad header vary
            raise InputFileError("not a .npy array file") from None
        if dtype.hasobject:
            raise InputFileError("holds Python objects (a pickle), which fusec never loads")
        if any(d < 0 for d in shape):
            raise InputFileError(f"its header claims a negative dimension, shape {shape}")
        count = math.prod(shape)
        claimed, held = count * dtype.itemsize, size - f.tell()
        if claimed != held:
            raise InputFileError(
                f"its header claims {count} elements of {dtype} ({claimed} bytes), but the file holds {held}"
            )
        f.seek(0)
        try:
            array = np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputFileError(f"not a readable .npy array ({e})") from None
    # A big-endian file (written on or for such a machine) holds the same numbers:
    # np.load users get them, so fusec converts to native order rather than refusing.
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))
