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

import numpy as np

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


def read(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file; a gzip stream is recognised by its first two bytes.

    Args:
      path: the file, e.g. ``train-images-idx3-ubyte`` or ``...-idx3-ubyte.gz``.

    Returns:
      The array with the shape and dtype the header declares, in native byte order
      (MNIST images: ``[n, 28, 28]`` uint8).

    Raises:
      DataError: the magic number is not an IDX one, or the file (or its gzip
        stream) is shorter or longer than the header declares.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise DataError(f"{path}: truncated or corrupt gzip stream ({err})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _DTYPES or raw[3] == 0:
        codes = "/".join(f"{code:02x}" for code in _DTYPES)
        raise DataError(
            f"{path}: not an IDX file: magic number 0x{raw[:4].hex()}, expected "
            f"0x0000 followed by a dtype code ({codes}) and the number of dimensions"
        )
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(
            f"{path}: truncated IDX file: {len(raw)} bytes, too short for the "
            f"{ndim} dimension sizes its magic number 0x{raw[:4].hex()} announces"
        )
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", ndim, 4))
    expected = offset + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated IDX file" if len(raw) < expected else "IDX file with trailing bytes"
        raise DataError(
            f"{path}: {problem}: the header declares {dtype.name} values of shape {shape} "
            f"({expected} bytes with the header) but there are {len(raw)} bytes"
        )
    values = np.frombuffer(raw, dtype, math.prod(shape), offset).reshape(shape)
    return values.astype(dtype.newbyteorder("="))
