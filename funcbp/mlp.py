"""The MLP spec: a frozen, hashable description whose methods are pure functions.

The spec is static configuration (safe to close over or mark static under
``jax.jit``); the parameters are a plain pytree
``[{"w": [n_in, n_out], "b": [n_out]}, ...]`` that optax, ``jax.tree_util`` or a
checkpoint library handle as they are.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from funcbp import activations as _activations
from funcbp import backprop as _backprop
from funcbp import initializers as _initializers
from funcbp import losses as _losses
from funcbp._jax.memory import refuse_unless_fits

Array = jax.Array
Params = list[dict[str, Array]]
COMPUTE_DTYPES = (None, "bfloat16", "float16")
PARAM_DTYPES = ("float32", "float64", "bfloat16")  # what ``init`` and training accept


@dataclasses.dataclass(frozen=True)
class MLP:
    """A multi-layer perceptron: ``z_l = a_{l-1} @ W_l + b_l``, ``a_l = f_l(z_l)``.

    Attributes:
      sizes: layer widths ``(n_in, hidden..., n_out)``, at least two positive ints.
      activation: one name for every hidden layer, or a sequence with one name per
        hidden layer (see ``funcbp.activations.NAMES``).
      output_activation: the last layer's activation; ``"identity"`` for logits.
      cost: the loss (see ``funcbp.losses.NAMES``); named ``cost`` so that it does
        not shadow the ``loss`` method.
      l2: weight penalty ``l2 / 2 * sum ||W||^2`` (biases excluded).
      initializer: weight initialiser name, or ``"auto"`` to pick per layer from its
        activation (He for the ReLU family, Glorot for sigmoid/tanh/identity, LeCun
        for softplus).
      compute_dtype: mixed precision: ``"bfloat16"`` or ``"float16"`` runs every layer
        in that dtype on (float32) master parameters, with matrix products
        accumulated in float32 and the loss, its gradient and the parameter
        gradients in the parameters' dtype; ``None``: all in the parameters' dtype.
    """

    sizes: tuple[int, ...]
    activation: str | tuple[str, ...] = "relu"
    output_activation: str = "identity"
    cost: str = "mse"
    l2: float = 0.0
    initializer: str = "auto"
    compute_dtype: str | None = None

    def __post_init__(self) -> None:
        sizes = self.sizes
        if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence):
            raise ValueError(f"sizes must be a sequence of layer widths, got {sizes!r}")
        if len(sizes) < 2 or not all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in sizes
        ):
            raise ValueError(
                f"sizes must be at least two positive integers (n_in, ..., n_out), got {sizes!r}"
            )
        object.__setattr__(self, "sizes", tuple(int(n) for n in sizes))
        n_hidden = len(self.sizes) - 2
        if not isinstance(self.activation, str):
            if not isinstance(self.activation, Sequence):
                raise ValueError(
                    "activation must be a name or a sequence of names (one per hidden layer), "
                    f"got {self.activation!r}"
                )
            names = tuple(self.activation)
            if len(names) != n_hidden:
                raise ValueError(
                    f"activation has {len(names)} names for {n_hidden} hidden layers; give one "
                    "name per hidden layer or a single name"
                )
            object.__setattr__(self, "activation", names)
        for name in self.layer_names:
            _activations.get(name)
        _losses.get(self.cost)
        _initializers.check(self.initializer)
        l2 = self.l2
        if not isinstance(l2, numbers.Real) or isinstance(l2, bool) or not 0 <= l2 < math.inf:
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        object.__setattr__(self, "l2", float(self.l2))
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype must be one of {COMPUTE_DTYPES}, got {self.compute_dtype!r}"
            )

    # --- structure -------------------------------------------------------------

    @property
    def hidden_activations(self) -> tuple[str, ...]:
        """One activation name per hidden layer."""
        if isinstance(self.activation, str):
            return (self.activation,) * (len(self.sizes) - 2)
        return self.activation

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The activation name of every layer, the output layer's last."""
        return (*self.hidden_activations, self.output_activation)

    @property
    def init_rules(self) -> tuple[tuple[int, int, _initializers.VarianceScaling], ...]:
        """``(n_in, n_out, rule)`` per layer: all that initialisation depends on."""
        return tuple(
            (n_in, n_out, _initializers.get(self.initializer, name))
            for (n_in, n_out), name in zip(
                itertools.pairwise(self.sizes), self.layer_names, strict=True
            )
        )

    @property
    def layer_activations(self) -> tuple[_activations.Activation, ...]:
        """The activation of every layer, the output layer's last."""
        return tuple(_activations.get(name) for name in self.layer_names)

    @property
    def num_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def num_params(self) -> int:
        return sum((n_in + 1) * n_out for n_in, n_out in itertools.pairwise(self.sizes))

    # --- parameters ------------------------------------------------------------

    def init(self, key: Array, dtype: jnp.dtype = jnp.float32) -> Params:
        """Fresh parameters: initialised weights, zero biases.

        Args:
          key: a ``jax.random.key`` (legacy ``PRNGKey`` arrays work too).
          dtype: float32 (default), float64 (needs ``jax_enable_x64``) or bfloat16.

        Returns:
          ``[{"w": [n_in, n_out], "b": [n_out]}, ...]``, one dict per layer.
        """
        check_key(key)
        try:
            dtype = jnp.dtype(dtype)
        except TypeError:
            raise ValueError(f"init: dtype must be a floating type, got {dtype!r}") from None
        refuse_unless_fits(f"init: the network {self.sizes}",
                           {"parameters": self.num_params * dtype.itemsize})  # fmt: skip
        return _init(self.init_rules, key, dtype)

    # --- pure functions of (params, x, y) -----------------------------------------

    def apply(self, params: Params, x: ArrayLike) -> Array:
        """The network's output ``[batch, n_out]`` for inputs ``x`` ``[batch, n_in]``."""
        self.check_call(params, x)
        return _backprop.forward(self, params, jnp.asarray(x)).out

    def loss(self, params: Params, x: ArrayLike, y: ArrayLike) -> Array:
        """The scalar loss: ``cost(apply(params, x), y) + l2 / 2 * sum ||W||^2``."""
        self.check_call(params, x, y)
        out = _backprop.forward(self, params, jnp.asarray(x)).out
        return _backprop.loss_of_output(self, params, out, jnp.asarray(y))

    def backprop(self, params: Params, x: ArrayLike, y: ArrayLike) -> tuple[Array, Params]:
        """``(loss, grads)`` by the hand-derived backward pass (see ``funcbp.backprop``)."""
        result = self.backprop_full(params, x, y)
        return result.loss, result.grads

    def backprop_full(self, params: Params, x: ArrayLike, y: ArrayLike) -> _backprop.BackpropResult:
        """Loss, grads, ``dLoss/dx`` and every layer's delta ``dLoss/dz_l``."""
        self.check_call(params, x, y)
        return _backprop.backprop(self, params, x, y)

    def autodiff(self, params: Params, x: ArrayLike, y: ArrayLike) -> tuple[Array, Params]:
        """``(loss, grads)`` by ``jax.value_and_grad(self.loss)``: the reference engine."""
        self.check_call(params, x, y)  # before jax.grad, which refuses integers less clearly
        return jax.value_and_grad(self.loss)(params, x, y)

    def apply_custom_vjp(self, params: Params, x: ArrayLike) -> Array:
        """``apply`` whose reverse-mode derivative is the hand-derived backward pass."""
        self.check_call(params, x)
        return _backprop.apply_custom_vjp(self, params, jnp.asarray(x))

    # --- validation (static shapes only, so it also runs under jit) ---------------

    def check_call(self, params: Params, x: ArrayLike, y: ArrayLike | None = None) -> None:
        """Raises ``ValueError`` naming what in ``params``, ``x`` or ``y`` does not fit."""
        if not isinstance(params, Sequence) or len(params) != self.num_layers:
            got = len(params) if isinstance(params, Sequence) else type(params).__name__
            raise ValueError(f"params must be a list of {self.num_layers} layers, got {got}")
        for i, (layer, (n_in, n_out)) in enumerate(
            zip(params, itertools.pairwise(self.sizes), strict=True)
        ):
            if not isinstance(layer, Mapping):
                raise ValueError(
                    f"params[{i}] must be a dict {{'w': [n_in, n_out], 'b': [n_out]}}, "
                    f"got {type(layer).__name__}"
                )
            shapes = {k: jnp.shape(v) for k, v in layer.items()}
            if shapes != {"w": (n_in, n_out), "b": (n_out,)}:
                raise ValueError(
                    f"params[{i}] has shapes {shapes}, expected "
                    f"{{'w': {(n_in, n_out)}, 'b': {(n_out,)}}} for sizes {self.sizes}"
                )
            for name, value in layer.items():
                dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
                if not jnp.issubdtype(dtype, jnp.floating):  # integers get zero gradients
                    raise ValueError(
                        f"params[{i}][{name!r}] has dtype {dtype}; parameters must be floating "
                        "point (float32, float64, bfloat16), else their gradients are zero and "
                        "they never learn: make them with net.init(key) or .astype(jnp.float32)"
                    )
        x, y = (a if a is None or hasattr(a, "dtype") else np.asarray(a) for a in (x, y))
        x_shape = jnp.shape(x)
        if len(x_shape) != 2 or x_shape[1] != self.sizes[0]:
            raise ValueError(
                f"x has shape {x_shape}, expected [batch, {self.sizes[0]}] (sizes[0] = "
                f"{self.sizes[0]} input features)"
            )
        if not x_shape[0]:
            raise ValueError("x has no rows: a batch needs at least one sample")
        if not any(jnp.issubdtype(x.dtype, kind) for kind in (jnp.floating, jnp.integer, bool)):
            raise ValueError(f"x has dtype {x.dtype}; inputs must be real numbers")
        if y is not None:
            _losses.get(self.cost).check_targets(y, (x_shape[0], self.sizes[-1]))


def check_key(key) -> None:
    """Raises ``ValueError`` unless ``key`` is a ``jax.random.key`` (or a legacy ``PRNGKey``)."""
    shape, dtype = np.shape(key), getattr(key, "dtype", None)
    typed = dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key) and shape == ()
    if not (typed or (dtype == np.uint32 and shape == (2,))):
        described = f"{dtype}{list(shape)}" if dtype is not None else type(key).__name__
        raise ValueError(f"key must be a jax.random.key(seed), got {described}")


def initial_params(init_rules, key: Array, dtype: jnp.dtype) -> Params:
    """Parameters for ``MLP.init_rules``: initialised weights, zero biases (traceable)."""
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"init: dtype must be a floating type, got {dtype}")
    if dtype.itemsize == 8 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "init: float64 parameters need 64-bit mode; call "
            "jax.config.update('jax_enable_x64', True) first"
        )
    shapes = [(n_in, n_out) for n_in, n_out, _ in init_rules]
    weights = _initializers.init_weights(key, shapes, [rule for *_, rule in init_rules], dtype)
    return [
        {"w": w, "b": jnp.zeros((n_out,), dtype)}
        for w, (_, n_out) in zip(weights, shapes, strict=True)
    ]


# Compiled per layer shapes and rules, not per spec: networks that differ only in
# activations or cost (with the same initialisers) share the program.
_init = jax.jit(initial_params, static_argnums=(0, 2))
