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
ActivationLike = str | _activations.Activation


@dataclasses.dataclass(frozen=True)
class MLP:
    """A multi-layer perceptron: ``z_l = a_{l-1} @ W_l + b_l``, ``a_l = f_l(z_l)``.

    Attributes:
      sizes: layer widths ``(n_in, hidden..., n_out)``, at least two positive ints.
      activation: one activation for every hidden layer, or a sequence with one per
        hidden layer: a name (see ``funcbp.activations.NAMES``) or a user
        ``funcbp.Activation``.
      output_activation: the last layer's activation; ``"identity"`` for logits.
      cost: the loss, a name (see ``funcbp.losses.NAMES``) or a user ``funcbp.Cost``;
        named ``cost`` so that it does not shadow the ``loss`` method.
      l2: weight penalty ``l2 / 2 * sum ||W||^2`` (biases excluded).
      initializer: weight initialiser name, or ``"auto"`` to pick per layer from its
        activation (He for the ReLU family, Glorot for sigmoid/tanh/identity, LeCun
        for softplus).
      compute_dtype: mixed precision: ``"bfloat16"`` or ``"float16"`` runs every layer
        in that dtype on (float32) master parameters, with matrix products
        accumulated in float32 and the loss, its gradient and the parameter
        gradients in the parameters' dtype; ``None``: all in the parameters' dtype.
      dropout: inverted dropout rate in ``[0, 1)`` for every hidden layer, or one per
        hidden layer; applied only where a ``key`` is given (training), never by
        ``apply``.
    """

    sizes: tuple[int, ...]
    activation: ActivationLike | tuple[ActivationLike, ...] = "relu"
    output_activation: ActivationLike = "identity"
    cost: str | _losses.Cost = "mse"
    l2: float = 0.0
    initializer: str = "auto"
    compute_dtype: str | None = None
    dropout: float | tuple[float, ...] = 0.0

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
        if not isinstance(self.activation, str | _activations.Activation):
            if not isinstance(self.activation, Sequence):
                raise ValueError(
                    "activation must be a name, a funcbp.Activation or a sequence of them (one "
                    f"per hidden layer), got {self.activation!r}"
                )
            names = tuple(self.activation)
            if len(names) != n_hidden:
                raise ValueError(
                    f"activation: {len(names)} given for {n_hidden} hidden layers; give one per "
                    "hidden layer or a single one"
                )
            object.__setattr__(self, "activation", names)
        acts = self.layer_activations  # resolving them checks them
        cost = self.resolved_cost
        for piece in self.user_pieces:  # traced on abstract inputs: nothing is compiled
            if isinstance(piece, _activations.Activation):
                _activations.check_shapes(piece)
            else:
                _losses.check_shapes(piece, jax.ShapeDtypeStruct((3, self.sizes[-1]), jnp.float32))
        if cost.fused_activation is not None and cost.fused_activation != acts[-1].name:
            raise ValueError(
                f"cost {cost.name!r} gives dLoss/dz for a {cost.fused_activation!r} output layer; "
                f"this network's output_activation is {acts[-1].name!r}"
            )
        _initializers.check(self.initializer)
        self.init_rules  # noqa: B018 (an activation's own init must name an initializer)
        l2 = self.l2
        if not isinstance(l2, numbers.Real) or isinstance(l2, bool) or not 0 <= l2 < math.inf:
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        object.__setattr__(self, "l2", float(self.l2))
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype must be one of {COMPUTE_DTYPES}, got {self.compute_dtype!r}"
            )
        object.__setattr__(self, "dropout", _dropout(self.dropout, n_hidden))

    # --- structure -------------------------------------------------------------

    @property
    def hidden_activations(self) -> tuple[ActivationLike, ...]:
        """One activation (a name or an ``Activation``) per hidden layer."""
        if isinstance(self.activation, str | _activations.Activation):
            return (self.activation,) * (len(self.sizes) - 2)
        return self.activation

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The activation name of every layer, the output layer's last."""
        return tuple(act.name for act in self.layer_activations)

    @property
    def init_rules(self) -> tuple[tuple[int, int, _initializers.VarianceScaling], ...]:
        """``(n_in, n_out, rule)`` per layer: all that initialisation depends on."""
        return tuple(
            (n_in, n_out, _initializers.get(self.initializer, act))
            for (n_in, n_out), act in zip(
                itertools.pairwise(self.sizes), self.layer_activations, strict=True
            )
        )

    @property
    def layer_activations(self) -> tuple[_activations.Activation, ...]:
        """The activation of every layer, the output layer's last."""
        layers = (*self.hidden_activations, self.output_activation)
        return tuple(_activations.resolve(act) for act in layers)

    @property
    def resolved_cost(self) -> _losses.Cost:
        """The ``Cost`` that ``cost`` names (or is)."""
        return _losses.resolve(self.cost)

    @property
    def hidden_dropout(self) -> tuple[float, ...]:
        """The dropout rate of every hidden layer."""
        if isinstance(self.dropout, float):
            return (self.dropout,) * (len(self.sizes) - 2)
        return self.dropout

    @property
    def user_pieces(self) -> tuple[_activations.Activation | _losses.Cost, ...]:
        """The user activations and cost this network holds (none are built in)."""
        pieces = (*self.hidden_activations, self.output_activation, self.cost)
        return tuple(dict.fromkeys(p for p in pieces if not isinstance(p, str)))

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
        """The network's output ``[batch, n_out]`` for inputs ``x`` ``[batch, n_in]`` (no
        dropout)."""
        self.check_call(params, x)
        return _backprop.forward(self, params, jnp.asarray(x)).out

    def loss(
        self,
        params: Params,
        x: ArrayLike,
        y: ArrayLike,
        *,
        sample_weight: ArrayLike | None = None,
        key: Array | None = None,
    ) -> Array:
        """The scalar loss: ``cost(apply(params, x), y) + l2 / 2 * sum ||W||^2``.

        ``sample_weight`` ``[batch]`` makes the cost their weighted mean (see
        ``funcbp.losses``); ``key`` draws dropout masks (none without one).
        """
        self.check_call(params, x, y, sample_weight, key)
        out = _backprop.forward(self, params, jnp.asarray(x), key).out
        return _backprop.loss_of_output(self, params, out, jnp.asarray(y), _weights(sample_weight))

    def backprop(
        self, params: Params, x: ArrayLike, y: ArrayLike, **extras
    ) -> tuple[Array, Params]:
        """``(loss, grads)`` by the hand-derived backward pass (see ``funcbp.backprop``);
        ``extras``: ``sample_weight`` and ``key``, as ``loss`` takes them."""
        result = self.backprop_full(params, x, y, **extras)
        return result.loss, result.grads

    def backprop_full(
        self,
        params: Params,
        x: ArrayLike,
        y: ArrayLike,
        *,
        sample_weight: ArrayLike | None = None,
        key: Array | None = None,
    ) -> _backprop.BackpropResult:
        """Loss, grads, ``dLoss/dx`` and every layer's delta ``dLoss/dz_l``."""
        self.check_call(params, x, y, sample_weight, key)
        weight = _weights(sample_weight)
        return _backprop.backprop(self, params, x, y, sample_weight=weight, key=key)

    def autodiff(
        self, params: Params, x: ArrayLike, y: ArrayLike, **extras
    ) -> tuple[Array, Params]:
        """``(loss, grads)`` by ``jax.value_and_grad(self.loss)``: the reference engine;
        ``extras``: ``sample_weight`` and ``key``, as ``loss`` takes them."""
        self.check_call(params, x, y, extras.get("sample_weight"), extras.get("key"))
        return jax.value_and_grad(self.loss)(params, x, y, **extras)

    def apply_custom_vjp(self, params: Params, x: ArrayLike) -> Array:
        """``apply`` whose reverse-mode derivative is the hand-derived backward pass."""
        self.check_call(params, x)
        return _backprop.apply_custom_vjp(self, params, jnp.asarray(x))

    # --- validation (static shapes only, so it also runs under jit) ---------------

    def check_call(
        self,
        params: Params,
        x: ArrayLike,
        y: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
        key: Array | None = None,
    ) -> None:
        """Raises ``ValueError`` naming what in ``params``, ``x``, ``y``, ``sample_weight``
        or ``key`` does not fit."""
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
            _losses.check_targets(self.resolved_cost, y, (x_shape[0], self.sizes[-1]))
        if sample_weight is not None:
            check_sample_weight(sample_weight, x_shape[0])
        if key is not None:
            check_key(key)


def _dropout(dropout, n_hidden: int) -> float | tuple[float, ...]:
    """``dropout`` as a float or a tuple of ``n_hidden`` floats, each in ``[0, 1)``."""
    rates = dropout if isinstance(dropout, Sequence) and not isinstance(dropout, str) else None
    if rates is not None and len(rates) != n_hidden:
        raise ValueError(f"dropout: {len(rates)} rates given for {n_hidden} hidden layers; give "
                         "one per hidden layer or a single rate")  # fmt: skip
    for rate in (dropout,) if rates is None else rates:
        real = isinstance(rate, numbers.Real) and not isinstance(rate, bool)
        if not (real and 0 <= rate < 1):
            raise ValueError(f"dropout rates must be numbers in [0, 1), got {rate!r}")
    if rates is None:
        if dropout and not n_hidden:
            raise ValueError("dropout: this network has no hidden layer to drop units from")
        return float(dropout)
    return tuple(float(rate) for rate in rates)


def _weights(sample_weight: ArrayLike | None) -> Array | None:
    return None if sample_weight is None else jnp.asarray(sample_weight)


def check_sample_weight(sample_weight: ArrayLike, batch: int) -> None:
    """Raises ``ValueError`` unless ``sample_weight`` is ``[batch]`` real numbers; concrete
    ones must also be finite, ``>= 0`` and not all 0."""
    shape, dtype = np.shape(sample_weight), getattr(sample_weight, "dtype", None)
    dtype = np.asarray(sample_weight).dtype if dtype is None else dtype
    if shape != (batch,):
        raise ValueError(f"sample_weight has shape {shape}, expected ({batch},): one weight per "
                         "sample")  # fmt: skip
    if not any(jnp.issubdtype(dtype, kind) for kind in (jnp.floating, jnp.integer)):
        raise ValueError(f"sample_weight has dtype {dtype}; weights must be real numbers")
    if isinstance(sample_weight, jax.core.Tracer):
        return
    weights = np.asarray(sample_weight, dtype=np.float64)
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"sample_weight[{i}] is {weights[i]:g}; weights must be finite and >= 0")
    if batch and not weights.sum() > 0:
        raise ValueError("sample_weight: every weight is 0, so the weighted mean is undefined")


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
