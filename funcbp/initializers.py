"""Weight initialisers by name, and the default for each activation.

Every initialiser is the variance-scaling rule of ``jax.nn.initializers`` for a
weight matrix shaped ``[n_in, n_out]``: variance ``scale / fan``, with fan-in
(axis 0), fan-out (axis 1) or their mean. The ``_normal`` variants draw from a
normal truncated at two standard deviations, as Keras and ``jax.nn`` do.

``init_weights`` draws one uniform array for every layer's matrix and maps
each layer's slice to its distribution: drawn layer by layer (or one draw per
distribution), each draw would compile its own random-bit generator, which on
CPU costs about 0.1-0.2 s of compilation before the first step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcbp.activations import Activation


class VarianceScaling(NamedTuple):
    scale: float  # variance = scale / fan
    fan: str  # "fan_in", "fan_avg"
    distribution: str  # "truncated_normal", "uniform"

    def factor(self, n_in: int, n_out: int) -> float:
        """Multiplies a unit draw (standard truncated normal, or uniform on [-1, 1])."""
        fan = n_in if self.fan == "fan_in" else (n_in + n_out) / 2
        std = math.sqrt(self.scale / fan)
        if self.distribution == "uniform":
            return std * math.sqrt(3.0)  # Var U[-a, a] = a^2 / 3
        return std / _TRUNCATED_STD


# Standard deviation of a unit normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978

_REGISTRY: dict[str, VarianceScaling] = {
    "glorot_uniform": VarianceScaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": VarianceScaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": VarianceScaling(2.0, "fan_in", "uniform"),
    "he_normal": VarianceScaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": VarianceScaling(1.0, "fan_in", "uniform"),
    "lecun_normal": VarianceScaling(1.0, "fan_in", "truncated_normal"),
}
_ALIASES = {
    "xavier_uniform": "glorot_uniform",
    "xavier_normal": "glorot_normal",
    "kaiming_uniform": "he_uniform",
    "kaiming_normal": "he_normal",
}
NAMES: tuple[str, ...] = ("auto", *_REGISTRY, *_ALIASES)


def check(name: str) -> None:
    """Raises ``ValueError`` listing the valid names unless ``name`` is one."""
    if name not in NAMES:
        raise ValueError(f"unknown initializer {name!r}; valid names: {', '.join(NAMES)}")


def resolve(name: str, activation: Activation) -> str:
    """Returns the canonical initialiser name for a layer with ``activation``
    (``"auto"``: the activation's own ``init``)."""
    check(name)
    if name == "auto":
        name = activation.init
        if name not in NAMES or name == "auto":
            raise ValueError(
                f"Activation {activation.name!r}: init must name an initializer "
                f"({', '.join(n for n in NAMES if n != 'auto')}), got {name!r}"
            )
    return _ALIASES.get(name, name)


def init_weights(
    key: jax.Array,
    shapes: Sequence[tuple[int, int]],
    rules: Sequence[VarianceScaling],
    dtype: jnp.dtype,
) -> list[jax.Array]:
    """One ``[n_in, n_out]`` matrix per layer, by its rule, from a single uniform draw.

    A slice ``v`` of ``U[0, 1)`` becomes ``U[-1, 1)`` as ``2v - 1``, or the unit
    normal truncated to ``[-2, 2]`` by inverting its distribution function, as
    ``jax.random.truncated_normal`` does.
    """
    sizes = [n_in * n_out for n_in, n_out in shapes]
    draw = jax.random.uniform(key, (sum(sizes),), dtype)
    weights, start = [], 0
    for (n_in, n_out), n, rule in zip(shapes, sizes, rules, strict=True):
        v = draw[start : start + n].reshape(n_in, n_out)
        start += n
        unit = 2 * v - 1 if rule.distribution == "uniform" else _truncated_normal(v)
        weights.append((unit * np.asarray(rule.factor(n_in, n_out), dtype)).astype(dtype))
    return weights


def _truncated_normal(v: jax.Array) -> jax.Array:
    """``U[0, 1)`` to the unit normal truncated to ``[-2, 2]``, as ``jax.random`` maps it."""
    dtype = v.dtype
    sqrt2 = np.asarray(np.sqrt(2), dtype)
    low, high = (np.asarray(math.erf(bound / math.sqrt(2)), dtype) for bound in (-2.0, 2.0))
    normal = sqrt2 * jax.lax.erf_inv(low + (high - low) * v)
    lowest, highest = np.nextafter(np.asarray([-2.0, 2.0], dtype), np.asarray([0.0, 0.0], dtype))
    return jnp.clip(normal, lowest, highest)


def get(name: str, activation: Activation) -> VarianceScaling:
    """The rule for ``name`` (``"auto"``: the default for ``activation``)."""
    return _REGISTRY[resolve(name, activation)]
