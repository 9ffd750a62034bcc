"""Every cache funcbp keeps is bounded and registered here, so ``clear_caches`` frees them all.

Compiled programs hold memory (and, on CPU, memory maps) for as long as the
Python objects that own them live: a bounded ``functools.lru_cache`` keeps a
long session's count of them finite, and ``clear_caches`` drops every one,
with JAX's own caches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax

F = TypeVar("F", bound=Callable)

_clearers: list[Callable[[], None]] = []


def register(clear: Callable[[], None]) -> None:
    """Adds ``clear`` (a function that empties one cache) to what ``clear_caches`` calls."""
    _clearers.append(clear)


def bounded_cache(maxsize: int = 32) -> Callable[[F], F]:
    """``functools.lru_cache(maxsize)``, registered with ``clear_caches``."""

    def wrap(fn: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        register(cached.cache_clear)
        return cached  # type: ignore[return-value]

    return wrap


def clear_caches() -> None:
    """Frees every program funcbp keeps (compiled blocks, gradient-check programs, shared
    executables) and JAX's own caches (``jax.clear_caches``)."""
    for clear in _clearers:
        clear()
    jax.clear_caches()
