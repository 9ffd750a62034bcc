"""Files that appear whole or not at all: write to a temporary name, fsync, rename.

A crash mid-write leaves the previous file (or none) and a hidden ``.NAME.*.tmp``
beside it, never a truncated file under the real name. The file gets the
permissions any new file gets (``0o666`` less the process umask, applied by the
kernel as it creates it: the umask is never read or changed, which threads would
race on).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write(path: Path, content: bytes | Callable[[IO[bytes]], None]) -> None:
    """Writes ``content`` (bytes, or a function writing to a binary file) to ``path``."""
    tmp, fd = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as file:
            if isinstance(content, bytes):
                file.write(content)
            else:
                content(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new ``.NAME.<random>.tmp`` beside ``path`` and its open descriptor, created with
    mode ``0o666`` less the umask (``tempfile`` would make it private)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


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
