"""How much data may be read or made: one limit, checked before allocating or reading.

A file can lie about its size: an ``.npz`` member's header may declare 2**40 rows in
2 KB, a zip or gzip stream may inflate a thousandfold, a path may be a link to
``/dev/zero`` or a FIFO that never ends. So readers open files with ``open_regular``
(regular files only, and no wait on a FIFO), compare every size a file declares with
its real size, and check it with ``check_size`` against the limit ``max_bytes``
before allocating; compressed streams are read for at most the declared size plus
one byte. ``teacher`` checks its estimate the same way.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from funcbp.data._dataset import is_count
from funcbp.errors import DataError

# The default limit: this fraction of the memory the host can give without swapping,
# since the arrays read are copied at least once more (to float32, then to devices).
FRACTION = 0.5
_FALLBACK_BYTES = 4 * 2**30  # where the host does not say how much memory it has


def resolve(max_bytes: int | None) -> int:
    """``max_bytes`` checked, or by default ``FRACTION`` of the host's available memory."""
    if max_bytes is None:
        # _jax.memory imports JAX, which data need not load for a file that fits.
        from funcbp._jax import memory

        available = memory.host_available_bytes()
        return int(available * FRACTION) if available else _FALLBACK_BYTES
    if not is_count(max_bytes) or max_bytes == 0:
        raise DataError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
    return int(max_bytes)


def check_size(what: str, n_bytes: int, max_bytes: int) -> None:
    """Raises ``DataError`` if ``n_bytes`` exceed ``max_bytes``; ``what`` is the message's
    start, naming the thing that needs them (``"x.npz: arrays 'x' float64 [...] need"``)."""
    if n_bytes <= max_bytes:
        return
    from funcbp._jax.memory import readable

    raise DataError(
        f"{what} {readable(n_bytes)} ({n_bytes} bytes), more than the data limit of "
        f"{readable(max_bytes)} (by default {FRACTION:.0%} of the memory available now); "
        "if the machine has the memory, raise it with max_bytes=N (data.max_bytes in a "
        "run file)"
    )


_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def open_regular(path: str | os.PathLike, max_bytes: int) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file of at most ``max_bytes``.

    Raises:
      DataError: ``path`` is (or links to) a FIFO, a device or anything but a regular
        file, which could stream without end, or the file is over the limit.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS.items() if test(info.st_mode)), "special")
            target = os.path.realpath(path)
            shown = f"{path} (a link to {target})" if target != os.path.abspath(path) else path
            raise DataError(
                f"{shown}: {kind}, not a regular file; data are read from regular files only, "
                "whose size is known before reading"
            )
        check_size(f"{path}: the file has", info.st_size, max_bytes)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_exactly(stream: BinaryIO, n_bytes: int) -> tuple[bytes, bool]:
    """At most ``n_bytes + 1`` bytes of ``stream``: the bytes, and whether there were more.

    The bound keeps a compressed stream that inflates beyond what its header declared
    (a gzip bomb) from being read past that.
    """
    raw = stream.read(n_bytes + 1)
    return raw[:n_bytes], len(raw) > n_bytes
