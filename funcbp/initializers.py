"""Weight initialisers by name, and the default for each activation.

Every initialiser is the variance-scaling rule of ``jax.nn.initializers`` for a
weight matrix shaped ``[n_in, n_out]``: variance ``scale / fan``, with fan-in
(axis 0), fan-out (axis 1) or their mean. The ``_normal`` variants draw from a
normal truncated at two standard deviations, as Keras and ``jax.nn`` do.

``init_weights`` draws every layer's matrix from one random draw and scales
the slices: drawn layer by layer, each shape would compile its own random-bit
generator, which on CPU costs about 0.2 s a layer before the first step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


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

# He for the rectifier family (variance 2/fan_in keeps ReLU activations from
# shrinking layer by layer), Glorot for the symmetric saturating units and the
# linear output layer, LeCun for softplus, whose slope at 0 is 1/2.
_DEFAULT_FOR_ACTIVATION = {
    "identity": "glorot_uniform",
    "sigmoid": "glorot_uniform",
    "tanh": "glorot_uniform",
    "relu": "he_normal",
    "leaky_relu": "he_normal",
    "elu": "he_normal",
    "silu": "he_normal",
    "gelu": "he_normal",
    "gelu_tanh": "he_normal",
    "softplus": "lecun_normal",
}


def check(name: str) -> None:
    """Raises ``ValueError`` listing the valid names unless ``name`` is one."""
    if name not in NAMES:
        raise ValueError(f"unknown initializer {name!r}; valid names: {', '.join(NAMES)}")


def resolve(name: str, activation: str) -> str:
    """Returns the canonical initialiser name for a layer with ``activation``."""
    check(name)
    if name == "auto":
        return _DEFAULT_FOR_ACTIVATION[activation]
    return _ALIASES.get(name, name)


def init_weights(
    key: jax.Array,
    shapes: Sequence[tuple[int, int]],
    rules: Sequence[VarianceScaling],
    dtype: jnp.dtype,
) -> list[jax.Array]:
    """One ``[n_in, n_out]`` matrix per layer, drawn by its rule from a single draw
    per distribution."""
    sizes = [n_in * n_out for n_in, n_out in shapes]
    k_normal, k_uniform = jax.random.split(key)
    draws = {}
    for distribution in {rule.distribution for rule in rules}:
        total = sum(
            n for n, rule in zip(sizes, rules, strict=True) if rule.distribution == distribution
        )
        if distribution == "uniform":
            draws[distribution] = jax.random.uniform(k_uniform, (total,), dtype, -1.0, 1.0)
        else:
            draws[distribution] = jax.random.truncated_normal(k_normal, -2.0, 2.0, (total,), dtype)
    used = dict.fromkeys(draws, 0)
    weights = []
    for (n_in, n_out), n, rule in zip(shapes, sizes, rules, strict=True):
        start = used[rule.distribution]
        used[rule.distribution] += n
        unit = draws[rule.distribution][start : start + n].reshape(n_in, n_out)
        weights.append((unit * np.asarray(rule.factor(n_in, n_out), dtype)).astype(dtype))
    return weights


def get(name: str, activation: str) -> VarianceScaling:
    """The rule for ``name`` (``"auto"``: the default for ``activation``)."""
    return _REGISTRY[resolve(name, activation)]
