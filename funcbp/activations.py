"""Activation functions, each beside its hand-derived derivative.

An activation is a pair: ``fn(z) -> a`` and ``grad(z, a) -> f'(z)``. The
derivative receives both the pre-activation ``z`` and the output ``a = fn(z)``
and reads whichever is cheaper: sigmoid and tanh are written from ``a``, the
rest from ``z``. At kinks the derivative follows ``jax.nn`` (``relu'(0) = 0``,
``leaky_relu'(0) = 1``, ``elu'(0) = 1``), so the hand-derived gradient and
``jax.grad`` agree exactly there too.

User code makes its own the same way, ``Activation("mish", fn, grad)``, and
passes it wherever a name goes (``MLP(activation=...)``, per layer too);
``funcbp.check_activation`` checks its ``grad`` against ``jax.grad`` of its ``fn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcbp._registry import lookup

Array = jax.Array

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


class Activation(NamedTuple):
    """A named activation and its hand-derived derivative.

    Attributes:
      name: ``"relu"``, or a user activation's own name (not a built-in one).
      fn: ``z [batch, n] -> a [batch, n]``, elementwise.
      grad: ``(z, a) -> f'(z)``, both ``[batch, n]``; elementwise derivative.
      kinks: the points where ``fn`` is not differentiable (``(0.0,)`` for relu);
        ``check_activation`` leaves them out.
      max_grad: a saturating activation's largest derivative (0.25 for sigmoid):
        diagnostics count a unit as saturated where ``f'`` is below 5 % of it;
        ``None``: it does not saturate.
      can_die: ``f'`` is 0 for every ``z <= 0`` (relu): diagnostics count the units
        that are off for a whole batch as dead.
      init: the initialiser ``initializer="auto"`` picks for its layers (a name in
        ``funcbp.initializers.NAMES``; Glorot unless said).
    """

    name: str
    fn: Callable[[Array], Array]
    grad: Callable[[Array, Array], Array]
    kinks: tuple[float, ...] = ()
    max_grad: float | None = None
    can_die: bool = False
    init: str = "glorot_uniform"


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


_RECTIFIER_INIT = "he_normal"  # variance 2/fan_in keeps their activations from shrinking

_REGISTRY: dict[str, Activation] = {
    act.name: act
    for act in (
        # a = z: a' = 1
        Activation("identity", lambda z: z, lambda z, a: jnp.ones_like(z)),
        # a = 1 / (1 + e^-z): a' = a (1 - a)
        Activation("sigmoid", jax.nn.sigmoid, lambda z, a: a * (1.0 - a), max_grad=0.25),
        # a = tanh z: a' = 1 - a^2
        Activation("tanh", jnp.tanh, lambda z, a: _one_minus_square(a), max_grad=1.0),
        # a = max(z, 0): a' = [z > 0]  (0 at the kink, as jax.nn.relu)
        Activation(
            "relu",
            jax.nn.relu,
            lambda z, a: (z > 0).astype(z.dtype),
            kinks=(0.0,),
            can_die=True,
            init=_RECTIFIER_INIT,
        ),
        # a = z if z >= 0 else s z: a' = 1 if z >= 0 else s  (1 at the kink, as jax.nn)
        Activation(
            "leaky_relu",
            lambda z: jax.nn.leaky_relu(z, LEAKY_RELU_SLOPE),
            lambda z, a: jnp.where(z >= 0, 1.0, LEAKY_RELU_SLOPE).astype(z.dtype),
            kinks=(0.0,),
            init=_RECTIFIER_INIT,
        ),
        # a = z if z > 0 else alpha (e^z - 1): a' = 1 if z > 0 else a + alpha
        Activation(
            "elu",
            lambda z: jax.nn.elu(z, ELU_ALPHA),
            lambda z, a: jnp.where(z > 0, jnp.ones_like(a), a + ELU_ALPHA),
            kinks=(0.0,),  # elu' is continuous at 0 for alpha = 1, elu'' is not
            init=_RECTIFIER_INIT,
        ),
        # a = log(1 + e^z): a' = sigmoid(z)  (LeCun: its slope at 0 is 1/2)
        Activation(
            "softplus", jax.nn.softplus, lambda z, a: jax.nn.sigmoid(z), init="lecun_normal"
        ),
        Activation("silu", jax.nn.silu, _silu_grad, init=_RECTIFIER_INIT),
        Activation(
            "gelu", lambda z: jax.nn.gelu(z, approximate=False), _gelu_grad, init=_RECTIFIER_INIT
        ),
        Activation(
            "gelu_tanh",
            lambda z: jax.nn.gelu(z, approximate=True),
            _gelu_tanh_grad,
            init=_RECTIFIER_INIT,
        ),
    )
}

NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get(name: str) -> Activation:
    """Returns the activation registered as ``name``.

    Raises:
      ValueError: ``name`` is not registered; the message lists the valid names.
    """
    return lookup(_REGISTRY, name, "activation")


def resolve(activation: str | Activation) -> Activation:
    """The ``Activation`` a name or an ``Activation`` stands for.

    Raises:
      ValueError: an unknown name, or an ``Activation`` that is malformed or takes
        a built-in's name.
    """
    if isinstance(activation, Activation):
        return check(activation)
    return get(activation)


def name_of(activation: str | Activation) -> str:
    """The name of an activation given by name or as an ``Activation``."""
    return activation.name if isinstance(activation, Activation) else activation


def check(act: Activation) -> Activation:
    """``act``, if it is well formed (static checks only; ``check_activation`` checks ``grad``).

    Raises:
      ValueError: naming the field that is wrong.
    """
    if act.name in _REGISTRY:
        if _REGISTRY[act.name] == act:
            return act
        raise ValueError(f"Activation {act.name!r}: the name of a built-in activation; give "
                         "yours another name")  # fmt: skip
    problems = {
        "name": isinstance(act.name, str) and act.name and ":" not in act.name,
        "fn": callable(act.fn),
        "grad": callable(act.grad),
        "kinks": isinstance(act.kinks, tuple)
        and all(isinstance(k, float | int) for k in act.kinks),
        "max_grad": act.max_grad is None
        or (isinstance(act.max_grad, float | int) and act.max_grad > 0),
        "can_die": isinstance(act.can_die, bool),
        "init": isinstance(act.init, str),  # which names: funcbp.initializers' business
    }
    wrong = [field for field, ok in problems.items() if not ok]
    if wrong:
        expected = {
            "name": "a non-empty string without ':'",
            "fn": "a function z -> a",
            "grad": "a function (z, a) -> f'(z)",
            "kinks": "a tuple of numbers",
            "max_grad": "a positive number or None",
            "can_die": "a bool",
            "init": "an initializer's name",
        }[wrong[0]]
        raise ValueError(
            f"Activation {act.name!r}: {wrong[0]} must be {expected}, got "
            f"{getattr(act, wrong[0])!r}"
        )
    return act


def check_shapes(act: Activation, dtype=jnp.float32) -> None:
    """Raises ``ValueError`` unless ``act.fn`` and ``act.grad`` keep ``z``'s shape and dtype,
    traced on an abstract ``[3, 5]`` input (nothing is computed or compiled)."""
    z = jax.ShapeDtypeStruct((3, 5), jnp.dtype(dtype))
    for part, fn in (("fn", act.fn), ("grad", lambda z: act.grad(z, act.fn(z)))):
        try:
            got = jax.eval_shape(fn, z)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Activation {act.name!r}: {part} fails on a [3, 5] {z.dtype} input: {error}"
            ) from error
        if (tuple(np.shape(got)), getattr(got, "dtype", None)) != ((3, 5), z.dtype):
            raise ValueError(
                f"Activation {act.name!r}: {part} maps z [3, 5] {z.dtype} to "
                f"{list(np.shape(got))} {getattr(got, 'dtype', type(got).__name__)}; it must "
                "keep z's shape and dtype (elementwise)"
            )
