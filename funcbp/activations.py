"""Activation functions, each beside its hand-derived derivative.

An activation is a pair: ``fn(z) -> a`` and ``grad(z, a) -> f'(z)``. The
derivative receives both the pre-activation ``z`` and the output ``a = fn(z)``
and reads whichever is cheaper: sigmoid and tanh are written from ``a``, the
rest from ``z``. At kinks the derivative follows ``jax.nn`` (``relu'(0) = 0``,
``leaky_relu'(0) = 1``, ``elu'(0) = 1``), so the hand-derived gradient and
``jax.grad`` agree exactly there too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcbp._registry import lookup

Array = jax.Array

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


class Activation(NamedTuple):
    """A named activation and its hand-derived derivative.

    Attributes:
      name: registry name, e.g. ``"relu"``.
      fn: ``z [batch, n] -> a [batch, n]``.
      grad: ``(z, a) -> f'(z)``, both ``[batch, n]``; elementwise derivative.
    """

    name: str
    fn: Callable[[Array], Array]
    grad: Callable[[Array, Array], Array]


def _gelu_grad(z: Array, a: Array) -> Array:
    # d/dz [z * Phi(z)] = Phi(z) + z * phi(z); Phi from erfc keeps its tiny left tail
    # (1 + erf(z / sqrt 2) cancels to nothing there), as jax.nn.gelu's does.
    cdf = 0.5 * jax.lax.erfc(-z / math.sqrt(2.0))
    pdf = jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return cdf + z * pdf


def _gelu_tanh_grad(z: Array, a: Array) -> Array:
    # a = z/2 * (1 + tanh(u)), u = c (z + k z^3):  a' = (1 + t)/2 + z/2 (1 - t^2) c (1 + 3k z^2)
    t = jnp.tanh(_SQRT_2_OVER_PI * (z + _GELU_TANH_CUBIC * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * _one_minus_square(t) * _SQRT_2_OVER_PI * (
        1.0 + 3.0 * _GELU_TANH_CUBIC * z * z
    )


def _one_minus_square(t: Array) -> Array:
    """``1 - t^2`` for ``|t| <= 1``, as ``(1 - t)(1 + t)``: accurate as ``t`` nears +-1 (tanh'
    in its saturated tails), where ``1 - t * t`` loses the digits; as ``jax.nn``'s tanh."""
    return (1.0 - t) * (1.0 + t)


def _silu_grad(z: Array, a: Array) -> Array:
    # d/dz [z s(z)] = s + z s (1 - s)
    s = jax.nn.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


_REGISTRY: dict[str, Activation] = {
    act.name: act
    for act in (
        # a = z: a' = 1
        Activation("identity", lambda z: z, lambda z, a: jnp.ones_like(z)),
        # a = 1 / (1 + e^-z): a' = a (1 - a)
        Activation("sigmoid", jax.nn.sigmoid, lambda z, a: a * (1.0 - a)),
        # a = tanh z: a' = 1 - a^2
        Activation("tanh", jnp.tanh, lambda z, a: _one_minus_square(a)),
        # a = max(z, 0): a' = [z > 0]  (0 at the kink, as jax.nn.relu)
        Activation("relu", jax.nn.relu, lambda z, a: (z > 0).astype(z.dtype)),
        # a = z if z >= 0 else s z: a' = 1 if z >= 0 else s  (1 at the kink, as jax.nn)
        Activation(
            "leaky_relu",
            lambda z: jax.nn.leaky_relu(z, LEAKY_RELU_SLOPE),
            lambda z, a: jnp.where(z >= 0, 1.0, LEAKY_RELU_SLOPE).astype(z.dtype),
        ),
        # a = z if z > 0 else alpha (e^z - 1): a' = 1 if z > 0 else a + alpha
        Activation(
            "elu",
            lambda z: jax.nn.elu(z, ELU_ALPHA),
            lambda z, a: jnp.where(z > 0, jnp.ones_like(a), a + ELU_ALPHA),
        ),
        # a = log(1 + e^z): a' = sigmoid(z)
        Activation("softplus", jax.nn.softplus, lambda z, a: jax.nn.sigmoid(z)),
        Activation("silu", jax.nn.silu, _silu_grad),
        Activation("gelu", lambda z: jax.nn.gelu(z, approximate=False), _gelu_grad),
        Activation("gelu_tanh", lambda z: jax.nn.gelu(z, approximate=True), _gelu_tanh_grad),
    )
}

NAMES: tuple[str, ...] = tuple(_REGISTRY)
RELU_FAMILY: frozenset[str] = frozenset({"relu", "leaky_relu", "elu", "silu", "gelu", "gelu_tanh"})


def get(name: str) -> Activation:
    """Returns the activation registered as ``name``.

    Raises:
      ValueError: ``name`` is not registered; the message lists the valid names.
    """
    return lookup(_REGISTRY, name, "activation")
