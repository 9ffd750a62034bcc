"""A jitted function whose XLA executables are shared with every identical program.

``jax.jit`` caches compiled code per Python function: ``fit`` called again with a
new but identical optimizer (``optax.adam(1e-3)`` built anew, as a loop over seeds
does) builds a new function, and XLA compiles the same program a second time.
``SharedProgram`` keys executables by the lowered program's StableHLO text and the
arguments' types and shardings, so a repeat traces and lowers (a fraction of the
cost) and reuses XLA's output. Different hyperparameters are different constants
in that text, hence different programs.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable
from typing import Any

import jax

from funcbp._jax import caches

# Executables by (program text digest, argument signature); the least recently used
# are dropped beyond this many, and each program keeps its last few signatures' own.
MAX_EXECUTABLES = 32
MAX_SIGNATURES = 8
_executables: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
caches.register(_executables.clear)


def _signature(args: tuple) -> tuple:
    """The argument tree, and per leaf its type and (for a ``jax.Array``) sharding."""
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((jax.typeof(leaf), getattr(leaf, "sharding", None)) for leaf in leaves)


class SharedProgram:
    """``jax.jit(fn)`` whose compiled executables are shared by identical programs."""

    def __init__(self, fn: Callable) -> None:
        self._jitted = jax.jit(fn)
        self._by_signature: collections.OrderedDict[tuple, Any] = collections.OrderedDict()

    def lower(self, *args) -> jax.stages.Lowered:
        """The program for ``args``, lowered (as ``jax.jit(fn).lower``), to inspect."""
        return self._jitted.lower(*args)

    def __call__(self, *args):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(args)):
            return self._jitted(*args)  # under a transformation: as jax.jit
        signature = _signature(args)
        executable = _lookup(self._by_signature, signature, MAX_SIGNATURES)
        if executable is None:
            lowered = self.lower(*args)
            key = (hashlib.sha256(lowered.as_text().encode()).digest(), signature)
            executable = _lookup(_executables, key, MAX_EXECUTABLES, lowered.compile)
            _lookup(self._by_signature, signature, MAX_SIGNATURES, lambda: executable)
        return executable(*args)


def _lookup(cache: collections.OrderedDict, key, most: int, make: Callable | None = None):
    """``cache[key]``, most recently used; absent: ``make()`` stored (the least recently
    used dropped beyond ``most``), or ``None`` without ``make``."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    if make is None:
        return None
    cache[key] = make()
    while len(cache) > most:
        cache.popitem(last=False)
    return cache[key]
