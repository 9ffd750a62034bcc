"""Files that appear whole or not at all: write to a temporary name, fsync, rename.

A crash mid-write leaves the previous file (or none) and a hidden ``.NAME.*.tmp``
beside it, never a truncated file under the real name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

_UMASK = os.umask(0o022)  # read it (the only way is to set it), then put it back
os.umask(_UMASK)


def write(path: Path, content: bytes | Callable[[IO[bytes]], None]) -> None:
    """Writes ``content`` (bytes, or a function writing to a binary file) to ``path``."""
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as tmp:
        try:
            if isinstance(content, bytes):
                tmp.write(content)
            else:
                content(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
            os.fchmod(tmp.fileno(), 0o666 & ~_UMASK)  # mkstemp made it private
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    os.replace(tmp.name, path)
    _fsync_directory(path.parent)


def link(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s file (a hard link, or a copy), in one rename."""
    tmp = target.parent / f".{target.name}.link.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        write(tmp, source.read_bytes())
    os.replace(tmp, target)
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
