"""scikit-learn's networks in funcbp's terms: activation names, losses, the ``MLP`` spec.

scikit-learn's losses differ from funcbp's built-in costs by constant factors (and
Poisson's by a constant term), which set SGD's step and the reported ``loss_curve_``.
Each is a ``funcbp.Cost`` made of a built-in's pieces, its gradient the built-in's
hand-derived one scaled; per row (a cost is the mean over rows of each row's loss)::

    out_activation_  scikit-learn's loss, per row                 funcbp's cost, per row
    softmax          -sum_k y_k log p_k                           softmax_cross_entropy
    logistic         sum over the k labels of binary log-loss      k * sigmoid_binary_cross_entropy
    identity         mean over outputs of (p - y)^2 / 2            mse / 2
    exp              sum_k y log(y / p) - y + p, p = e^z          k * (poisson + mean(y log y - y))

The network's last layer is linear (logits, or ``log p`` for Poisson); the link is the
prediction's. scikit-learn's ``alpha / (2 n) ||W||^2``, ``n`` a batch's summed sample
weights, is funcbp's ``l2 / 2 ||W||^2`` with ``l2 = alpha / n``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import xlogy

from funcbp import losses
from funcbp.activations import Activation
from funcbp.mlp import MLP

# scikit-learn's names for the hidden layers' activations; funcbp's own pass as they are.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}

_MSE = losses.get("mse")
_BCE = losses.get("sigmoid_binary_cross_entropy")
_POISSON = losses.get("poisson")

HALF_SQUARED_ERROR = losses.Cost(
    "half_squared_error",
    lambda out, y: 0.5 * _MSE.loss(out, y),
    lambda out, y: 0.5 * _MSE.output_delta(out, y),
)
LOG_LOSS_OVER_LABELS = losses.Cost(
    "log_loss_over_labels",
    lambda out, y: out.shape[-1] * _BCE.loss(out, y),
    lambda out, y: out.shape[-1] * _BCE.output_delta(out, y),
    _BCE.check_targets,
    targets=_BCE.targets,
)
HALF_POISSON_DEVIANCE = losses.Cost(
    "half_poisson_deviance",
    lambda out, y: out.shape[-1] * (_POISSON.loss(out, y) + jnp.mean(xlogy(y, y) - y)),
    lambda out, y: out.shape[-1] * _POISSON.output_delta(out, y),
    _POISSON.check_targets,
    targets=_POISSON.targets,
)

# out_activation_ -> (the cost trained on, the built-in cost funcbp.predict reads the output by)
OUTPUTS = {
    "softmax": ("softmax_cross_entropy", "softmax_cross_entropy"),
    "logistic": (LOG_LOSS_OVER_LABELS, "sigmoid_binary_cross_entropy"),
    "identity": (HALF_SQUARED_ERROR, "mse"),
    "exp": (HALF_POISSON_DEVIANCE, "poisson"),
}


def network(
    sizes: tuple[int, ...],
    activation: str | Activation,
    out_activation: str,
    l2: float = 0.0,
    dropout: float | tuple[float, ...] = 0.0,
    training: bool = True,
) -> MLP:
    """The ``MLP`` of ``sizes`` ``(n_features, *hidden_layer_sizes, n_outputs)``.

    ``training=False``: the spec that ``funcbp.predict.Predictor`` reads outputs by (the
    built-in cost of ``out_activation``, no penalty, no dropout); equal specs share one
    compiled prediction program. Weights start as scikit-learn's (Glorot uniform,
    ``sqrt(6 / (fan_in + fan_out))``; it takes ``sqrt(2 / ...)`` for logistic), biases at 0.
    """
    trained, read = OUTPUTS[out_activation]
    activation = ACTIVATIONS.get(activation, activation) if isinstance(activation, str) else (
        activation)  # fmt: skip
    if not training:
        return MLP(sizes, activation, cost=read, initializer="glorot_uniform")
    return MLP(sizes, activation, cost=trained, l2=l2, initializer="glorot_uniform",
               dropout=dropout)  # fmt: skip
