"""JAX's persistent compilation cache, set up as ``funcbp train`` uses it."""

from __future__ import annotations

import os
from pathlib import Path

import jax

DEFAULT_DIRECTORY = Path.home() / ".cache" / "funcbp" / "jax"


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path | None:
    """Keeps every compiled program on disk, so a later process loads it instead of compiling.

    Args:
      directory: where (``~`` expands to the home directory); default
        ``$FUNCBP_CACHE_DIR``, else ``~/.cache/funcbp/jax``. An empty string (also
        as ``FUNCBP_CACHE_DIR=""``) leaves the cache off.

    Returns:
      The directory in use, or ``None`` when off.
    """
    if directory is None:
        directory = os.environ.get("FUNCBP_CACHE_DIR", str(DEFAULT_DIRECTORY))
    if not str(directory):
        return None
    directory = Path(directory).expanduser()
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # JAX skips programs that compile in under a second by default; funcbp's mostly do.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # -1: programs of any size, and no file-system-specific minimum in its place.
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return directory
