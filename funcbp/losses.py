"""Losses ("costs"), each beside its hand-derived gradient with respect to the output.

Every cost averages like ``torch.nn.functional``'s ``reduction="mean"``:

* ``mse``: mean over every element of ``(out - y)**2``.
* ``softmax_cross_entropy``: ``out`` are logits; ``y`` are integer labels
  ``[batch]`` or one-hot / probability rows ``[batch, n_out]`` (concrete rows are
  checked: >= 0, summing to 1 within float rounding); mean over the batch.
* ``sigmoid_binary_cross_entropy``: ``out`` are logits, ``y`` in [0, 1] with the
  shape of ``out``; mean over every element.

``grad(out, y)`` is ``dLoss/dout``. With an identity output layer it *is* the
output delta, and for the two logit losses it is the fused, overflow-free form
``softmax(z) - y`` / ``sigmoid(z) - y`` (finite for logits of any magnitude).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcbp._registry import lookup

Array = jax.Array


class Cost(NamedTuple):
    """A named loss with its hand-derived output gradient.

    Attributes:
      name: registry name, e.g. ``"mse"``.
      value: ``(out [batch, n_out], y) -> scalar``.
      grad: ``(out, y) -> dLoss/dout [batch, n_out]``.
      check_targets: ``(y, out_shape) -> None``; raises ``ValueError`` naming
        what does not fit.
    """

    name: str
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    check_targets: Callable[[Array, tuple[int, ...]], None]


def _is_concrete(y) -> bool:
    return not isinstance(y, jax.core.Tracer)


def _check_same_shape(cost: str, y, out_shape: tuple[int, ...]) -> None:
    if tuple(jnp.shape(y)) != tuple(out_shape):
        hint = " (reshape it with y[:, None])" if jnp.ndim(y) == 1 and out_shape[-1] == 1 else ""
        raise ValueError(
            f"{cost}: targets y have shape {tuple(jnp.shape(y))}, expected {tuple(out_shape)} "
            f"(the network's output shape [batch, n_out]){hint}"
        )


# --- mse -------------------------------------------------------------------


def _mse_value(out: Array, y: Array) -> Array:
    return jnp.mean((out - y) ** 2)


def _mse_grad(out: Array, y: Array) -> Array:
    # d/dout mean((out - y)^2) = 2 (out - y) / size
    return 2.0 * (out - y) / out.size


def _mse_check(y, out_shape: tuple[int, ...]) -> None:
    _check_same_shape("mse", y, out_shape)


# --- softmax cross-entropy --------------------------------------------------


def _has_labels(y) -> bool:
    return jnp.ndim(y) == 1


def _softmax_ce_value(out: Array, y: Array) -> Array:
    log_p = jax.nn.log_softmax(out, axis=-1)
    if _has_labels(y):
        # Each row's log-probability of its label: a masked sum, which XLA fuses into
        # the reduction (a gather would compile bounds checks besides).
        is_label = y[:, None] == jnp.arange(out.shape[-1])[None, :]
        return -jnp.mean(jnp.sum(jnp.where(is_label, log_p, 0), axis=-1))
    return -jnp.sum(y * log_p) / out.shape[0]


def _softmax_ce_grad(out: Array, y: Array) -> Array:
    p = jax.nn.softmax(out, axis=-1)
    if _has_labels(y):
        # d/dz -log softmax(z)_y = softmax(z) - onehot(y)
        return (p - jax.nn.one_hot(y, out.shape[-1], dtype=out.dtype)) / out.shape[0]
    # d/dz -sum_k y_k log softmax(z)_k = softmax(z) sum_k y_k - y  (= p - y for rows summing to 1)
    return (p * jnp.sum(y, axis=-1, keepdims=True) - y) / out.shape[0]


def _softmax_ce_check(y, out_shape: tuple[int, ...]) -> None:
    batch, n_out = out_shape
    if n_out < 2:
        raise ValueError(
            f"softmax_cross_entropy needs at least 2 outputs, the network has {n_out}; "
            "use sigmoid_binary_cross_entropy for a single logit"
        )
    if _has_labels(y):
        if jnp.shape(y)[0] != batch:
            raise ValueError(
                f"softmax_cross_entropy: {jnp.shape(y)[0]} labels for a batch of {batch}"
            )
        if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
            raise ValueError(
                "softmax_cross_entropy: 1-D targets must be integer class labels, "
                f"got dtype {jnp.result_type(y)}"
            )
        if _is_concrete(y) and batch:
            labels = np.asarray(y)
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= n_out:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"softmax_cross_entropy: label {bad} is out of range for {n_out} classes "
                    f"(labels must lie in [0, {n_out - 1}])"
                )
        return
    if jnp.ndim(y) != 2:
        raise ValueError(
            "softmax_cross_entropy: targets must be integer labels [batch] or rows "
            f"[batch, n_out], got shape {tuple(jnp.shape(y))}"
        )
    _check_same_shape("softmax_cross_entropy", y, out_shape)
    if _is_concrete(y) and batch:
        _check_probability_rows(np.asarray(y))


def _check_probability_rows(y: np.ndarray) -> None:
    # Rows that are not distributions train silently toward nonsense: the loss is
    # unbounded below for a negative entry, and the fused delta p * sum(y) - y assumes 1.
    # Tolerance: max(16, n_out) epsilons of y's dtype (float32 softmax rows are off by a
    # few; integer rows must be exactly one-hot).
    eps = float(jnp.finfo(y.dtype).eps) if jnp.issubdtype(y.dtype, jnp.floating) else 0.0
    tolerance = max(16, y.shape[1]) * eps
    values = y.astype(np.float64)
    sums = values.sum(axis=1)
    negative, off = (values < 0).any(axis=1), np.abs(sums - 1) > tolerance
    if negative.any() or off.any():
        row = int(np.argmax(negative | off))
        problem = f"has a negative entry ({values[row].min():g})" if negative[row] else ""
        problem = problem or f"sums to {sums[row]:.9g}"
        raise ValueError(
            f"softmax_cross_entropy: target row {row} {problem}; rows [batch, n_out] must be "
            f"probabilities, >= 0 and summing to 1 (within {tolerance:.2g}), or give integer "
            "labels [batch]"
        )


# --- sigmoid binary cross-entropy --------------------------------------------


def _sigmoid_bce_value(out: Array, y: Array) -> Array:
    # -[y log s(z) + (1 - y) log(1 - s(z))] = softplus(z) - y z, finite for any z
    return jnp.mean(jax.nn.softplus(out) - y * out)


def _sigmoid_bce_grad(out: Array, y: Array) -> Array:
    # d/dz [softplus(z) - y z] = sigmoid(z) - y
    return (jax.nn.sigmoid(out) - y) / out.size


def _sigmoid_bce_check(y, out_shape: tuple[int, ...]) -> None:
    _check_same_shape("sigmoid_binary_cross_entropy", y, out_shape)
    if _is_concrete(y) and np.size(y):
        values = np.asarray(y, dtype=np.float64)
        if values.min() < 0 or values.max() > 1:
            raise ValueError(
                "sigmoid_binary_cross_entropy: targets must lie in [0, 1], "
                f"got values in [{values.min():g}, {values.max():g}]"
            )


_REGISTRY: dict[str, Cost] = {
    cost.name: cost
    for cost in (
        Cost("mse", _mse_value, _mse_grad, _mse_check),
        Cost("softmax_cross_entropy", _softmax_ce_value, _softmax_ce_grad, _softmax_ce_check),
        Cost(
            "sigmoid_binary_cross_entropy",
            _sigmoid_bce_value,
            _sigmoid_bce_grad,
            _sigmoid_bce_check,
        ),
    )
}

NAMES: tuple[str, ...] = tuple(_REGISTRY)
CLASSIFICATION: frozenset[str] = frozenset(
    {"softmax_cross_entropy", "sigmoid_binary_cross_entropy"}
)


def get(name: str) -> Cost:
    """Returns the cost registered as ``name``.

    Raises:
      ValueError: ``name`` is not registered; the message lists the valid names.
    """
    return lookup(_REGISTRY, name, "cost")


def weight_penalty(params: list[dict[str, Array]], l2: float) -> Array:
    """``l2 / 2 * sum_l ||W_l||^2`` over the weight matrices (biases are not penalised)."""
    if not l2:
        return jnp.zeros((), params[0]["w"].dtype)
    return 0.5 * l2 * sum(jnp.sum(layer["w"] ** 2) for layer in params)
