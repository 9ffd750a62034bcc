"""Losses ("costs"), each beside its hand-derived gradient with respect to the output.

Every cost averages like ``torch.nn.functional``'s ``reduction="mean"``:

* ``mse``: mean over every element of ``(out - y)**2``.
* ``mae``: mean over every element of ``|out - y|`` (``torch.nn.L1Loss``).
* ``huber``: mean over every element of ``d**2 / 2`` where ``|d| < 1``, else
  ``|d| - 1/2``, ``d = out - y`` (``torch.nn.HuberLoss(delta=1.0)``).
* ``poisson``: ``out`` is the log of the rate; mean over every element of
  ``exp(out) - y * out``, ``y >= 0`` (``torch.nn.PoissonNLLLoss(log_input=True)``).
* ``softmax_cross_entropy``: ``out`` are logits; ``y`` are integer labels
  ``[batch]`` or one-hot / probability rows ``[batch, n_out]`` (concrete rows are
  checked: >= 0, summing to 1 within float rounding); mean over the batch.
* ``sigmoid_binary_cross_entropy``: ``out`` are logits, ``y`` in [0, 1] with the
  shape of ``out``; mean over every element.

``output_delta(out, y)`` is ``dLoss/dout``. With an identity output layer it *is*
the output delta, and for the two logit losses it is the fused, overflow-free form
``softmax(z) - y`` / ``sigmoid(z) - y`` (finite for logits of any magnitude). At
kinks it follows ``jax.grad`` (``mae``: ``d|d|/dd = 1`` at 0).

Every cost is a mean over the rows of a batch of the loss of each row, so sample
weights ``w [batch]`` make it a weighted mean, ``sum_i w_i loss_i / sum_i w_i``
(``torch.nn.functional.cross_entropy(weight=...)``'s form, with ``w_i`` the weight
of row ``i``'s class), and scale row ``i`` of the output delta by
``batch * w_i / sum(w)``. User costs, ``Cost(name, loss, output_delta)``, are held
to that contract (``funcbp.check_cost`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcbp._registry import lookup

Array = jax.Array
TargetCheck = Callable[[Array, tuple[int, ...]], None]
Targets = Callable[[Array, tuple[int, ...], jnp.dtype], Array]


class Cost(NamedTuple):
    """A named loss with its hand-derived output gradient.

    Attributes:
      name: ``"mse"``, or a user cost's own name (not a built-in one).
      loss: ``(out [batch, n_out], y) -> scalar``, the mean over the rows of each
        row's loss.
      output_delta: ``(out, y) -> dLoss/dout [batch, n_out]``; with
        ``fused_activation``, ``dLoss/dz_L`` instead.
      check_targets: ``(y, out_shape) -> None``, raising ``ValueError`` naming what
        does not fit; ``None``: ``y`` must have the output's shape.
      fused_activation: the output activation (a name) for which ``output_delta``
        is the fused ``dLoss/dz_L``; a network with this cost must use it.
      targets: ``(key, out_shape, dtype) -> y``, targets ``check_cost`` may draw;
        ``None``: standard normal, of the output's shape.
    """

    name: str
    loss: Callable[[Array, Array], Array]
    output_delta: Callable[[Array, Array], Array]
    check_targets: TargetCheck | None = None
    fused_activation: str | None = None
    targets: Targets | None = None


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


# --- mae, huber, poisson ----------------------------------------------------------


def _mae_value(out: Array, y: Array) -> Array:
    return jnp.mean(jnp.abs(out - y))


def _mae_grad(out: Array, y: Array) -> Array:
    # d/dout mean|out - y| = sign(out - y) / size, +1 at 0 as jax.grad of jnp.abs
    return jnp.where(out >= y, 1.0, -1.0).astype(out.dtype) / out.size


def _huber_value(out: Array, y: Array) -> Array:
    d = out - y
    return jnp.mean(jnp.where(jnp.abs(d) < 1.0, 0.5 * d * d, jnp.abs(d) - 0.5))


def _huber_grad(out: Array, y: Array) -> Array:
    # d/dd [d^2/2 if |d| < 1 else |d| - 1/2] = clip(d, -1, 1): continuous, no kink
    return jnp.clip(out - y, -1.0, 1.0) / out.size


def _poisson_value(out: Array, y: Array) -> Array:
    # -log P(y | rate e^out) without the log(y!) constant
    return jnp.mean(jnp.exp(out) - y * out)


def _poisson_grad(out: Array, y: Array) -> Array:
    return (jnp.exp(out) - y) / out.size


def _poisson_check(y, out_shape: tuple[int, ...]) -> None:
    _check_same_shape("poisson", y, out_shape)
    if _is_concrete(y) and np.size(y) and np.asarray(y, dtype=np.float64).min() < 0:
        low = np.asarray(y, dtype=np.float64).min()
        raise ValueError(f"poisson: targets must be counts >= 0, got a value of {low:g}")


def _poisson_targets(key: Array, out_shape: tuple[int, ...], dtype) -> Array:
    return jax.random.poisson(key, 3.0, out_shape).astype(dtype)


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


def _softmax_ce_targets(key: Array, out_shape: tuple[int, ...], dtype) -> Array:
    return jax.random.randint(key, out_shape[:1], 0, out_shape[1])


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


def _sigmoid_bce_targets(key: Array, out_shape: tuple[int, ...], dtype) -> Array:
    return jax.random.uniform(key, out_shape, dtype)


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
        Cost("mse", _mse_value, _mse_grad),
        Cost("mae", _mae_value, _mae_grad),
        Cost("huber", _huber_value, _huber_grad),
        Cost("poisson", _poisson_value, _poisson_grad, _poisson_check, targets=_poisson_targets),
        Cost(
            "softmax_cross_entropy",
            _softmax_ce_value,
            _softmax_ce_grad,
            _softmax_ce_check,
            targets=_softmax_ce_targets,
        ),
        Cost(
            "sigmoid_binary_cross_entropy",
            _sigmoid_bce_value,
            _sigmoid_bce_grad,
            _sigmoid_bce_check,
            targets=_sigmoid_bce_targets,
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


def resolve(cost: str | Cost) -> Cost:
    """The ``Cost`` a name or a ``Cost`` stands for.

    Raises:
      ValueError: an unknown name, or a ``Cost`` that is malformed or takes a
        built-in's name.
    """
    if not isinstance(cost, Cost):
        return get(cost)
    if cost.name in _REGISTRY:
        if _REGISTRY[cost.name] == cost:
            return cost
        raise ValueError(f"Cost {cost.name!r}: the name of a built-in cost; give yours "
                         "another name")  # fmt: skip
    problems = {
        "name": (isinstance(cost.name, str) and cost.name and ":" not in cost.name,
                 "a non-empty string without ':'"),
        "loss": (callable(cost.loss), "a function (out, y) -> scalar"),
        "output_delta": (callable(cost.output_delta), "a function (out, y) -> dLoss/dout"),
        "check_targets": (cost.check_targets is None or callable(cost.check_targets),
                          "a function (y, out_shape) -> None, or None"),
        "fused_activation": (cost.fused_activation is None
                             or isinstance(cost.fused_activation, str),
                             "an output activation's name, or None"),
        "targets": (cost.targets is None or callable(cost.targets),
                    "a function (key, out_shape, dtype) -> y, or None"),
    }  # fmt: skip
    for field, (ok, expected) in problems.items():
        if not ok:
            raise ValueError(
                f"Cost {cost.name!r}: {field} must be {expected}, got {getattr(cost, field)!r}"
            )
    return cost


def check_shapes(cost: Cost, out: jax.ShapeDtypeStruct, y=None) -> None:
    """Raises ``ValueError`` unless ``cost.loss`` gives a scalar and ``cost.output_delta``
    an array of ``out``'s shape and dtype, traced on abstract values (nothing is computed).

    ``y``: targets (or their ``ShapeDtypeStruct``); default: what ``cost.targets`` draws,
    else ``out``'s shape.
    """
    shape, dtype = tuple(out.shape), out.dtype
    if y is None and cost.targets is not None:
        y = jax.eval_shape(lambda: cost.targets(jax.random.key(0), shape, dtype))
    y = jax.ShapeDtypeStruct(shape, dtype) if y is None else y
    where = f"for out {list(shape)} {dtype}"
    value = jax.eval_shape(cost.loss, out, y)
    if np.shape(value) != ():
        raise ValueError(
            f"Cost {cost.name!r}: loss returns shape {list(np.shape(value))} {where}; it must "
            "return a scalar, the mean over rows of each row's loss"
        )
    delta = jax.eval_shape(cost.output_delta, out, y)
    if (tuple(np.shape(delta)), getattr(delta, "dtype", None)) != (shape, dtype):
        raise ValueError(
            f"Cost {cost.name!r}: output_delta returns {list(np.shape(delta))} "
            f"{getattr(delta, 'dtype', '')} {where}; it must return dLoss/dout with out's "
            "shape and dtype"
        )


def name_of(cost: str | Cost) -> str:
    """The name of a cost given by name or as a ``Cost``."""
    return cost.name if isinstance(cost, Cost) else cost


def check_targets(cost: Cost, y, out_shape: tuple[int, ...]) -> None:
    """Raises ``ValueError`` naming what in ``y`` does not fit ``cost`` and an output of
    ``out_shape`` (a user cost without ``check_targets``: ``y`` must have that shape)."""
    if cost.check_targets is None:
        _check_same_shape(cost.name, y, out_shape)
    else:
        cost.check_targets(y, out_shape)


def row_losses(cost: Cost, out: Array, y: Array) -> Array:
    """Each row's loss, ``[batch]``: ``cost.loss`` of the one-row batch ``out[i], y[i]``."""
    return jax.vmap(lambda o, t: cost.loss(o[None], t[None]))(out, y)


def weighted_loss(cost: Cost, out: Array, y: Array, weight: Array | None) -> Array:
    """``cost.loss(out, y)``, or with sample weights ``[batch]`` the weighted mean
    ``sum_i w_i loss_i / sum_i w_i``."""
    if weight is None:
        return cost.loss(out, y)
    weight = weight.astype(out.dtype)
    return jnp.sum(weight * row_losses(cost, out, y)) / jnp.sum(weight)


def weighted_delta(cost: Cost, out: Array, y: Array, weight: Array | None) -> Array:
    """``cost.output_delta(out, y)``, each row scaled by ``batch * w_i / sum(w)`` with
    sample weights (the derivative of ``weighted_loss``: a batch mean's row ``i``
    carries ``1 / batch``, the weighted mean's ``w_i / sum(w)``)."""
    delta = cost.output_delta(out, y)
    if weight is None:
        return delta
    weight = weight.astype(delta.dtype)
    return delta * (weight * (out.shape[0] / jnp.sum(weight)))[:, None]


def weight_penalty(params: list[dict[str, Array]], l2: float) -> Array:
    """``l2 / 2 * sum_l ||W_l||^2`` over the weight matrices (biases are not penalised)."""
    if not l2:
        return jnp.zeros((), params[0]["w"].dtype)
    return 0.5 * l2 * sum(jnp.sum(layer["w"] ** 2) for layer in params)
