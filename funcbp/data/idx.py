"""MNIST-format IDX files, read with numpy only, gzipped or plain.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then
``ndim`` big-endian uint32 sizes, then the values in C order, big-endian. MNIST
ships images as ``0x00000803`` (uint8, ``[n, 28, 28]``) and labels as
``0x00000801`` (uint8, ``[n]``).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from typing import BinaryIO

import numpy as np

from funcbp.data import _limits
from funcbp.errors import DataError

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def read(path: str | os.PathLike, *, max_bytes: int | None = None) -> np.ndarray:
    """Reads one IDX file; a gzip stream is recognised by its first two bytes.

    The sizes the header declares are checked before the values are read: against
    the file's size (plain files), and against ``max_bytes``; a gzip stream is read
    for at most the declared size (plus a byte, to tell it is longer).

    Args:
      path: the file, e.g. ``train-images-idx3-ubyte`` or ``...-idx3-ubyte.gz``.
      max_bytes: the most bytes the file and its values may take (``funcbp.data.load``'s
        limit; by default half the memory available now).

    Returns:
      The array with the shape and dtype the header declares, in native byte order
      (MNIST images: ``[n, 28, 28]`` uint8).

    Raises:
      DataError: the magic number is not an IDX one, the file (or its gzip stream) is
        shorter or longer than the header declares, or over ``max_bytes``; the path is
        not a regular file.
    """
    limit = _limits.resolve(max_bytes)
    with _limits.open_regular(path, limit) as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(2) == _GZIP_MAGIC:
            f.seek(0)
            try:
                with gzip.GzipFile(fileobj=f) as stream:
                    return _values(path, stream, None, limit)
            except (EOFError, OSError, zlib.error) as err:
                raise DataError(f"{path}: truncated or corrupt gzip stream ({err})") from None
        f.seek(0)
        return _values(path, f, size, limit)


def _values(path, stream: BinaryIO, size: int | None, limit: int) -> np.ndarray:
    # size: the plain file's, known before reading; None for a gzip stream.
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _DTYPES or magic[3] == 0:
        codes = "/".join(f"{code:02x}" for code in _DTYPES)
        raise DataError(
            f"{path}: not an IDX file: magic number 0x{magic.hex()}, expected "
            f"0x0000 followed by a dtype code ({codes}) and the number of dimensions"
        )
    dtype, ndim = _DTYPES[magic[2]], magic[3]
    offset = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(
            f"{path}: truncated IDX file: {4 + len(dims)} bytes, too short for the "
            f"{ndim} dimension sizes its magic number 0x{magic.hex()} announces"
        )
    shape = tuple(int(n) for n in np.frombuffer(dims, ">u4"))
    n_values = math.prod(shape)
    expected = offset + n_values * dtype.itemsize
    declared = (
        f"the header declares {dtype.name} values of shape {shape} "
        f"({expected} bytes with the header)"
    )
    if size is not None and size != expected:
        _wrong_length(path, declared, size < expected, f"{size} bytes")
    _limits.check_size(f"{path}: {declared}, which need", expected, limit)
    raw, more = _limits.read_exactly(stream, expected - offset)
    if more or len(raw) < expected - offset:
        there = f"more than {expected}" if more else f"{offset + len(raw)}"
        _wrong_length(path, declared, not more, f"{there} bytes")
    values = np.frombuffer(raw, dtype, n_values).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def _wrong_length(path, declared: str, short: bool, there: str) -> None:
    problem = "truncated IDX file" if short else "IDX file with trailing bytes"
    raise DataError(f"{path}: {problem}: {declared} but there are {there}")
