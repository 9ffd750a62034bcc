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

# Executables by (program text digest, argument signature); the least recently used
# are dropped beyond this many.
MAX_EXECUTABLES = 32
_executables: collections.OrderedDict[tuple, Any] = collections.OrderedDict()


def _signature(args: tuple) -> tuple:
    """The argument tree, and per leaf its type and (for a ``jax.Array``) sharding."""
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((jax.typeof(leaf), getattr(leaf, "sharding", None)) for leaf in leaves)


class SharedProgram:
    """``jax.jit(fn)`` whose compiled executables are shared by identical programs."""

    def __init__(self, fn: Callable) -> None:
        self._jitted = jax.jit(fn)
        self._by_signature: dict[tuple, Any] = {}

    def lower(self, *args) -> jax.stages.Lowered:
        """The program for ``args``, lowered (as ``jax.jit(fn).lower``), to inspect."""
        return self._jitted.lower(*args)

    def __call__(self, *args):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(args)):
            return self._jitted(*args)  # under a transformation: as jax.jit
        signature = _signature(args)
        executable = self._by_signature.get(signature)
        if executable is None:
            executable = self._by_signature[signature] = _compile(self.lower(*args), signature)
        return executable(*args)


def _compile(lowered: jax.stages.Lowered, signature: tuple):
    key = (hashlib.sha256(lowered.as_text().encode()).digest(), signature)
    if key in _executables:
        _executables.move_to_end(key)
    else:
        _executables[key] = lowered.compile()
        while len(_executables) > MAX_EXECUTABLES:
            _executables.popitem(last=False)
    return _executables[key]
