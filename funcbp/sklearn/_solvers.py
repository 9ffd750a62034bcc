"""scikit-learn's solvers: its SGD and Adam as optax transformations, L-BFGS as funcbp's.

::

    sgd    v <- momentum v - lr g;  step v, or momentum v - lr g with Nesterov's momentum
           (scikit-learn's SGDOptimizer: optax.trace over the scaled gradient)
    adam   -lr m_hat / (sqrt(v_hat) + epsilon)   (optax.scale_by_adam; scikit-learn adds
           epsilon to sqrt(v) instead, an epsilon 1 / sqrt(1 - beta_2^t) times larger)
    lbfgs  funcbp.optim.make("lbfgs"): full batch, memory 10, scipy's ftol

The stochastic ones are not ``funcbp.optim.make``'s: scikit-learn changes the learning
rate between epochs (``invscaling``, ``adaptive``), and settings that differ only in a
number (``learning_rate_init``, ``momentum``, ``beta_1``, ...) should share one compiled
program, so a ``GridSearchCV`` over them compiles once. ``optax.inject_hyperparams``
keeps those numbers in the optimizer state, and ``stochastic`` makes one optimizer
object per kind: funcbp's compiled block, cached by the optimizer object, is found
again; ``with_hyperparameters`` sets the numbers in a state.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax

from funcbp import optim
from funcbp.train import TrainState


def _sgd(learning_rate, momentum, nesterov: bool) -> optax.GradientTransformation:
    return optax.chain(optax.scale_by_learning_rate(learning_rate), optax.trace(momentum, nesterov))


def _adam(learning_rate, beta_1, beta_2, epsilon) -> optax.GradientTransformation:
    return optax.chain(optax.scale_by_adam(beta_1, beta_2, epsilon),
                       optax.scale_by_learning_rate(learning_rate))  # fmt: skip


# name -> (factory, its numeric hyperparameters as scikit-learn's constructor names them)
_STOCHASTIC = {
    "sgd": (_sgd, {"learning_rate": "learning_rate_init", "momentum": "momentum"}),
    "adam": (_adam, {"learning_rate": "learning_rate_init", "beta_1": "beta_1",
                     "beta_2": "beta_2", "epsilon": "epsilon"}),
}  # fmt: skip


@functools.cache
def stochastic(name: str, nesterov: bool, dtype: str) -> optax.GradientTransformation:
    """Solver ``name`` (``"sgd"`` or ``"adam"``) for parameters of ``dtype``, its numbers in
    its state (as made: placeholders; set them with ``with_hyperparameters``)."""
    factory, numbers = _STOCHASTIC[name]
    static = {"nesterov": nesterov} if name == "sgd" else {}
    inject = optax.inject_hyperparams(factory, static_args=tuple(static),
                                      hyperparam_dtype=jnp.dtype(dtype))  # fmt: skip
    return inject(**dict.fromkeys(numbers, 0.0), **static)


def hyperparameters(name: str, params: dict) -> dict[str, float]:
    """Solver ``name``'s numbers from an estimator's ``get_params()``."""
    return {key: params[param] for key, param in _STOCHASTIC[name][1].items()}


def with_hyperparameters(state: TrainState, **values: float) -> TrainState:
    """``state`` with these numbers in its optimizer state (``learning_rate=1e-3``, ...)."""
    current = state.opt_state.hyperparams
    hyperparams = {**current, **{k: np.asarray(v, current[k].dtype) for k, v in values.items()}}
    return state._replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))


def learning_rate(state: TrainState) -> float:
    """The learning rate in ``state``'s optimizer state."""
    return float(state.opt_state.hyperparams["learning_rate"])


@functools.cache
def lbfgs(tol: float, max_fun: int) -> optim.Solver:
    """funcbp's L-BFGS stopping as scipy's in scikit-learn: the gradient's largest element
    at ``tol``, ``max_fun`` function evaluations, or a step changing the loss by at most
    2.2e-9 relative (scipy's ``ftol``, funcbp's ``loss_tol``); one object per setting."""
    return optim.make("lbfgs", memory_size=10, tol=tol, max_evaluations=max_fun)
