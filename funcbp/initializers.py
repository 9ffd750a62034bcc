"""Weight initialisers by name, and the default for each activation.

Every initialiser is ``jax.nn.initializers``' variance-scaling rule for a weight
matrix shaped ``[n_in, n_out]`` (fan-in is axis 0, fan-out axis 1). The
``_normal`` variants draw from a truncated normal, as Keras and ``jax.nn`` do.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

Initializer = Callable[..., jax.Array]

_REGISTRY: dict[str, Initializer] = {
    "glorot_uniform": jax.nn.initializers.glorot_uniform(),
    "glorot_normal": jax.nn.initializers.glorot_normal(),
    "he_uniform": jax.nn.initializers.he_uniform(),
    "he_normal": jax.nn.initializers.he_normal(),
    "lecun_uniform": jax.nn.initializers.lecun_uniform(),
    "lecun_normal": jax.nn.initializers.lecun_normal(),
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


def get(name: str, activation: str) -> Initializer:
    """Returns ``init(key, shape, dtype)`` for ``name`` (``"auto"``: by ``activation``)."""
    return _REGISTRY[resolve(name, activation)]
